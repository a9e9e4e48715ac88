package rfc821

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// RFC 772: "MRSQ" and "MRSQ ?" test for the command; 215 names the
// preferred scheme; a scheme the server cannot use is 501.
func TestMRSQ_Selection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{MRSQ: "T"})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	pref, err := MRSQ(ctx, c, MRSQQuery)
	require.NoError(t, err)
	assert.Equal(t, MRSQTextFirst, pref)
	_, err = MRSQ(ctx, c, MRSQRecipientsFirst)
	assert.ErrorIs(t, err, ErrMRSQRefused)
	assert.Equal(t, 501, historicCode(t, err))
	pref, err = MRSQ(ctx, c, MRSQTextFirst)
	require.NoError(t, err)
	assert.Equal(t, MRSQNone, pref)
	_, err = MRSQ(ctx, c, MRSQNone)
	require.NoError(t, err)
	_, err = MRSQ(ctx, c, "X")
	assert.Error(t, err)
	assert.Equal(t, []string{"EHLO client.example", "MRSQ ?", "MRSQ R", "MRSQ T", "MRSQ"}, srv.Commands(1))

	// Not implemented: the test answers 502.
	c2 := dialTest(t, newTestServer(t, smtptest.Config{}), nil)
	for _, s := range []MRSQScheme{MRSQNone, MRSQQuery} {
		_, err := MRSQ(ctx, c2, s)
		assert.ErrorIs(t, err, ErrMRSQRefused)
		assert.Equal(t, 502, historicCode(t, err))
	}
	_, err = SendMRSQ(ctx, c2, MRSQTextFirst, "a@b", []string{"c@d"}, strings.NewReader("x\r\n"))
	assert.ErrorIs(t, err, ErrMRSQRefused)

	// A 215 without a scheme.
	c3, _ := dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: MRSQ ?", "S: 215 whatever")
	_, err = MRSQ(ctx, c3, MRSQQuery)
	assert.ErrorContains(t, err, "names no scheme")
}

const mrsqText = "Subject: MRSQ\r\n\r\nBlah blah blah blah....etc. etc. etc.\r\n.\r\n"

// mrsqWire is how the server's transcript shows mrsqText on the wire: one dot
// stuffed, and the ".\r\n" terminator.
var mrsqWire = fmt.Sprintf("<data %d octets>", len(mrsqText)+1+3)

// RFC 772 Appendix A: MRSQ R, one MRCP per name (the 553 refuses that one
// only), then MAIL with the text for all of them.
func TestSendMRSQ_RecipientsFirst(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{MRSQ: "TR", Extensions: []string{"ENHANCEDSTATUSCODES"}})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	to := []string{"Foo@Y", "reject.Raboof@Y", "bar@Y", "@Y,@X,fubar@Z"}
	res, err := SendMRSQ(ctx, c, MRSQRecipientsFirst, "waldo@A", to, strings.NewReader(mrsqText))
	var re *smtp.RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, re.Accepted)
	require.Len(t, re.Refused, 1)
	assert.Equal(t, "reject.Raboof@Y", re.Refused[0].Addr)
	assert.Equal(t, 553, historicCode(t, err))
	assert.Equal(t, 200, res.Recipients[0].Reply.Code)
	assert.Equal(t, 250, res.Reply.Code)
	assert.Equal(t, int64(len(mrsqText)), res.Octets)
	assert.Equal(t, 3, res.Accepted())

	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "R", msgs[0].Scheme)
	assert.Equal(t, []string{"Foo@Y", "bar@Y", "@Y,@X,fubar@Z"}, msgs[0].To)
	assert.Equal(t, mrsqText, string(msgs[0].Data), "dot-stuffed on the wire, the same text at the server")
	assert.Equal(t, []string{"EHLO client.example", "MRSQ R",
		"MRCP TO:<Foo@Y>", "MRCP TO:<reject.Raboof@Y>", "MRCP TO:<bar@Y>", "MRCP TO:<@Y,@X,fubar@Z>",
		"MAIL FROM:<waldo@A>", mrsqWire, "MRSQ"}, srv.Commands(1))

	// No scheme is left selected: MAIL is SMTP's again.
	_, err = c.Send(ctx, &smtp.Envelope{From: "a@example.org", To: smtp.Recipients("b@example.com")}, strings.NewReader("x\r\n"))
	require.NoError(t, err)
	assert.Len(t, srv.Messages(), 2)
}

// RFC 772 Appendix B: MRSQ T, MAIL with the text, then one MRCP per
// recipient, each answered with its own delivery.
func TestSendMRSQ_TextFirst(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{MRSQ: "TR"})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	to := []string{"Foo@Y", "reject.Raboof@Y", "bar@Y", "temp@Y", "@Y,@X,fubar@Z"}
	res, err := SendMRSQ(ctx, c, MRSQTextFirst, "WALDO@A", to, strings.NewReader(mrsqText))
	var re *smtp.RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, re.Accepted)
	require.Len(t, re.Refused, 2)
	assert.Equal(t, 553, re.Refused[0].Reply.Code)
	assert.Equal(t, 450, re.Refused[1].Reply.Code)
	assert.Equal(t, "Mail stored", res.Reply.Text())
	for _, i := range []int{0, 2, 4} {
		assert.NoError(t, res.Recipients[i].Err)
		assert.Equal(t, 250, res.Recipients[i].Reply.Code)
	}
	msgs := srv.Messages()
	require.Len(t, msgs, 3)
	for i, want := range []string{"Foo@Y", "bar@Y", "@Y,@X,fubar@Z"} {
		assert.Equal(t, []string{want}, msgs[i].To)
		assert.Equal(t, "T", msgs[i].Scheme)
		assert.Equal(t, "MRCP", msgs[i].Via)
		assert.Equal(t, mrsqText, string(msgs[i].Data))
	}
	assert.Equal(t, []string{"EHLO client.example", "MRSQ T", "MAIL FROM:<WALDO@A>", mrsqWire,
		"MRCP TO:<Foo@Y>", "MRCP TO:<reject.Raboof@Y>", "MRCP TO:<bar@Y>", "MRCP TO:<temp@Y>", "MRCP TO:<@Y,@X,fubar@Z>",
		"MRSQ"}, srv.Commands(1))
	require.NoError(t, c.NoopContext(ctx))
}

// mrsqOnlyReader hides everything but Read (no Seek, no Len).
type mrsqOnlyReader struct{ r io.Reader }

func (o mrsqOnlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// RFC 772: "A 452 reply to an MRCP can be handled by using MAIL to specify
// the message for currently stored recipients, and then sending more MRCPs
// and another MAIL".
func TestSendMRSQ_TableFull(t *testing.T) {
	for name, body := range map[string]func() io.Reader{
		"seeker":     func() io.Reader { return strings.NewReader(mrsqText) },
		"not seeker": func() io.Reader { return mrsqOnlyReader{strings.NewReader(mrsqText)} },
	} {
		t.Run(name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{MRSQ: "R", MRSQTable: 2})
			c := dialTest(t, srv, nil)
			to := []string{"a@Y", "b@Y", "reject@Y", "c@Y", "d@Y", "e@Y"}
			res, err := SendMRSQ(context.Background(), c, MRSQRecipientsFirst, "waldo@A", to, body())
			var re *smtp.RecipientsError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, 5, re.Accepted)
			assert.Equal(t, "reject@Y", re.Refused[0].Addr)
			msgs := srv.Messages()
			require.Len(t, msgs, 3)
			assert.Equal(t, []string{"a@Y", "b@Y"}, msgs[0].To)
			assert.Equal(t, []string{"c@Y", "d@Y"}, msgs[1].To)
			assert.Equal(t, []string{"e@Y"}, msgs[2].To)
			for _, m := range msgs {
				assert.Equal(t, mrsqText, string(m.Data))
			}
			assert.Equal(t, 3*int64(len(mrsqText)), res.Transmitted)
			assert.Equal(t, []string{"EHLO client.example", "MRSQ R",
				"MRCP TO:<a@Y>", "MRCP TO:<b@Y>", "MRCP TO:<reject@Y>", // 452
				"MAIL FROM:<waldo@A>", mrsqWire, "MRCP TO:<reject@Y>", "MRCP TO:<c@Y>", "MRCP TO:<d@Y>", "MRCP TO:<e@Y>", // 553, 200, 200, 452
				"MAIL FROM:<waldo@A>", mrsqWire, "MRCP TO:<e@Y>",
				"MAIL FROM:<waldo@A>", mrsqWire, "MRSQ"}, srv.Commands(1))
		})
	}
}

// The refusals of the text: with R it fails every stored name; with T
// nothing is delivered. No accepted name: no text at all.
func TestSendMRSQ_TextRefused(t *testing.T) {
	ctx := context.Background()
	big := strings.Repeat("x", 200) + "\r\n"

	srv := newTestServer(t, smtptest.Config{MRSQ: "RT", MaxMessageSize: 100})
	c := dialTest(t, srv, nil)
	res, err := SendMRSQ(ctx, c, MRSQRecipientsFirst, "a@b", []string{"c@d", "reject@d", "e@d"}, strings.NewReader(big))
	var re *smtp.RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 0, re.Accepted)
	assert.Equal(t, 552, res.Recipients[0].Err.(*smtp.Error).Code)
	assert.Equal(t, 553, res.Recipients[1].Err.(*smtp.Error).Code)
	assert.Equal(t, 552, res.Recipients[2].Err.(*smtp.Error).Code)
	assert.Equal(t, 552, res.Reply.Code)

	res, err = SendMRSQ(ctx, c, MRSQTextFirst, "a@b", []string{"c@d", "e@d"}, strings.NewReader(big))
	assert.Equal(t, 552, historicCode(t, err))
	assert.NotErrorAs(t, err, &re)
	assert.Equal(t, 552, res.Recipients[1].Err.(*smtp.Error).Code)
	assert.Empty(t, srv.Messages())

	res, err = SendMRSQ(ctx, c, MRSQRecipientsFirst, "a@b", []string{"reject@d"}, strings.NewReader("x\r\n"))
	require.ErrorAs(t, err, &re)
	assert.Nil(t, res.Reply)
	sent := srv.Commands(1)
	assert.Equal(t, []string{"MRSQ R", "MRCP TO:<reject@d>", "MRSQ"}, sent[len(sent)-3:], "no text without a name")

	_, err = SendMRSQ(ctx, c, MRSQQuery, "a@b", []string{"c@d"}, strings.NewReader("x"))
	assert.Error(t, err)
	_, err = SendMRSQ(ctx, c, MRSQTextFirst, "a@b", nil, strings.NewReader("x"))
	assert.Error(t, err)
	_, err = SendMRSQ(ctx, c, MRSQTextFirst, "a@b", []string{"c@d\r\nRSET"}, strings.NewReader("x"))
	assert.ErrorIs(t, err, smtp.ErrCRLF)
	require.NoError(t, c.NoopContext(ctx))
}

// SendMRSQ's text goes through the Client's data phase, so it reports
// progress by package smtp's one definition: canonical octets written, a
// total that is the canonical size or -1, and (size, size) as the last
// call. The message is 110,000 octets of LF-only text, 111,000 in
// canonical form.
func TestSendMRSQ_DataProgress(t *testing.T) {
	line := strings.Repeat("x", 109) + "\n"
	msg := strings.Repeat(line, 1000)
	const canonical = 111000
	for _, scheme := range []MRSQScheme{MRSQTextFirst, MRSQRecipientsFirst} {
		t.Run(string(scheme), func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{MRSQ: string(scheme), Extensions: []string{"ENHANCEDSTATUSCODES"}})
			var calls [][2]int64
			d := &smtp.Dialer{Trace: &smtp.ClientTrace{DataProgress: func(w, total int64) { calls = append(calls, [2]int64{w, total}) }}}
			c := dialTest(t, srv, d)
			res, err := SendMRSQ(context.Background(), c, scheme, "a@example.org", []string{"b@example.com"}, strings.NewReader(msg))
			require.NoError(t, err)
			assert.Equal(t, int64(canonical), res.Octets)
			assert.Equal(t, int64(canonical), res.Transmitted)
			require.NotEmpty(t, calls)
			assert.Greater(t, len(calls), 1, "progress within the text, not only at its end")
			assert.Equal(t, [2]int64{canonical, canonical}, calls[len(calls)-1], "the last call")
			for i, c := range calls {
				assert.True(t, c[1] == -1 || c[1] == canonical, "call %d: total %d is neither -1 nor the canonical size", i, c[1])
				assert.LessOrEqual(t, c[0], int64(canonical), "call %d", i)
				if i > 0 {
					assert.GreaterOrEqual(t, c[0], calls[i-1][0], "call %d: progress went back", i)
				}
			}
			require.Len(t, srv.Messages(), 1)
			assert.Len(t, srv.Messages()[0].Data, canonical)
		})
	}
}

// failingReader gives its text, then an error.
type failingReader struct {
	text string
	done bool
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, errors.New("disk on fire")
	}
	r.done = true
	return copy(p, r.text), nil
}

// A message that cannot be read must not be delivered in part: with T,
// SendMRSQ closes the Client in the middle of the text (RFC 772 has no
// other way to abort it); with R, a message read whole before the first
// text fails before any text is sent, and the scheme is reset.
func TestSendMRSQ_UnreadableMessage(t *testing.T) {
	ctx := context.Background()
	srv := newTestServer(t, smtptest.Config{MRSQ: "TR"})
	c := dialTest(t, srv, nil)
	_, err := SendMRSQ(ctx, c, MRSQTextFirst, "a@b", []string{"c@d"}, &failingReader{text: "Subject: half\r\n"})
	assert.ErrorContains(t, err, "disk on fire")
	assert.ErrorIs(t, c.NoopContext(ctx), smtp.ErrClosed)
	assert.Empty(t, srv.Messages())
	sent := srv.Commands(1)
	last := sent[len(sent)-1]
	assert.True(t, last == "MAIL FROM:<a@b>" || strings.HasSuffix(last, "incomplete>"), "no end of the text, no MRSQ after it: %q", last)

	c = dialTest(t, srv, nil)
	_, err = SendMRSQ(ctx, c, MRSQRecipientsFirst, "a@b", []string{"c@d"}, mrsqOnlyReader{&failingReader{text: "Subject: half\r\n"}})
	assert.ErrorContains(t, err, "disk on fire")
	require.NoError(t, c.NoopContext(ctx), "nothing was sent: the Client goes on")
	assert.Equal(t, []string{"EHLO client.example", "MRSQ R", "MRSQ", "NOOP"}, srv.Commands(2))
	assert.Empty(t, srv.Messages())
}

// MRCP's reply is awaited as long as RCPT's with R (a name stored) and as
// long as the end of the data with T (the delivery), not Timeouts.Command.
func TestSendMRSQ_MRCPTimeouts(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{MRSQ: "TR", Faults: smtptest.Faults{Delay: map[string]time.Duration{"MRCP": 300 * time.Millisecond}}})
	short, long := 100*time.Millisecond, 10*time.Second
	tests := []struct {
		name     string
		scheme   MRSQScheme
		timeouts smtp.Timeouts
		ok       bool
	}{
		{"R waits as long as for RCPT", MRSQRecipientsFirst, smtp.Timeouts{Command: short, DataTerm: short, Rcpt: long}, true},
		{"R gives up when RCPT would", MRSQRecipientsFirst, smtp.Timeouts{Command: long, DataTerm: long, Rcpt: short}, false},
		{"T waits as long as for the end of data", MRSQTextFirst, smtp.Timeouts{Command: short, Rcpt: short, DataTerm: long}, true},
		{"T gives up when the end of data would", MRSQTextFirst, smtp.Timeouts{Command: long, Rcpt: long, DataTerm: short}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialTest(t, srv, &smtp.Dialer{Timeouts: tt.timeouts})
			_, err := SendMRSQ(context.Background(), c, tt.scheme, "a@b", []string{"c@d"}, strings.NewReader("x\r\n"))
			if tt.ok {
				require.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
			}
		})
	}
}
