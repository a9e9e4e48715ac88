package smtp

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// RFC 772: "MRSQ" and "MRSQ ?" test for the command; 215 names the
// preferred scheme; a scheme the server cannot use is 501.
func TestMRSQ_Selection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{MRSQ: "T"})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	pref, err := c.MRSQ(ctx, MRSQQuery)
	require.NoError(t, err)
	assert.Equal(t, MRSQTextFirst, pref)
	_, err = c.MRSQ(ctx, MRSQRecipientsFirst)
	assert.ErrorIs(t, err, ErrMRSQRefused)
	assert.Equal(t, 501, historicCode(t, err))
	pref, err = c.MRSQ(ctx, MRSQTextFirst)
	require.NoError(t, err)
	assert.Equal(t, MRSQNone, pref)
	_, err = c.MRSQ(ctx, MRSQNone)
	require.NoError(t, err)
	_, err = c.MRSQ(ctx, "X")
	assert.Error(t, err)
	assert.Equal(t, []string{"EHLO client.example", "MRSQ ?", "MRSQ R", "MRSQ T", "MRSQ"}, historicSent(srv, 1))

	// Not implemented: the test answers 502.
	c2 := dialTest(t, newTestServer(t, smtptest.Config{}), nil)
	for _, s := range []MRSQScheme{MRSQNone, MRSQQuery} {
		_, err := c2.MRSQ(ctx, s)
		assert.ErrorIs(t, err, ErrMRSQRefused)
		assert.Equal(t, 502, historicCode(t, err))
	}
	_, err = c2.SendMRSQ(ctx, MRSQTextFirst, "a@b", []string{"c@d"}, strings.NewReader("x\r\n"))
	assert.ErrorIs(t, err, ErrMRSQRefused)

	// A 215 without a scheme.
	c3, _ := dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: MRSQ ?", "S: 215 whatever")
	_, err = c3.MRSQ(ctx, MRSQQuery)
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
	res, err := c.SendMRSQ(ctx, MRSQRecipientsFirst, "waldo@A", to, strings.NewReader(mrsqText))
	var re *RecipientsError
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
		"MAIL FROM:<waldo@A>", mrsqWire, "MRSQ"}, historicSent(srv, 1))

	// No scheme is left selected: MAIL is SMTP's again.
	_, err = c.Send(ctx, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("x\r\n"))
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
	res, err := c.SendMRSQ(ctx, MRSQTextFirst, "WALDO@A", to, strings.NewReader(mrsqText))
	var re *RecipientsError
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
		"MRSQ"}, historicSent(srv, 1))
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
			res, err := c.SendMRSQ(context.Background(), MRSQRecipientsFirst, "waldo@A", to, body())
			var re *RecipientsError
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
				"MAIL FROM:<waldo@A>", mrsqWire, "MRSQ"}, historicSent(srv, 1))
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
	res, err := c.SendMRSQ(ctx, MRSQRecipientsFirst, "a@b", []string{"c@d", "reject@d", "e@d"}, strings.NewReader(big))
	var re *RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 0, re.Accepted)
	assert.Equal(t, 552, res.Recipients[0].Err.(*Error).Code)
	assert.Equal(t, 553, res.Recipients[1].Err.(*Error).Code)
	assert.Equal(t, 552, res.Recipients[2].Err.(*Error).Code)
	assert.Equal(t, 552, res.Reply.Code)

	res, err = c.SendMRSQ(ctx, MRSQTextFirst, "a@b", []string{"c@d", "e@d"}, strings.NewReader(big))
	assert.Equal(t, 552, historicCode(t, err))
	assert.NotErrorAs(t, err, &re)
	assert.Equal(t, 552, res.Recipients[1].Err.(*Error).Code)
	assert.Empty(t, srv.Messages())

	res, err = c.SendMRSQ(ctx, MRSQRecipientsFirst, "a@b", []string{"reject@d"}, strings.NewReader("x\r\n"))
	require.ErrorAs(t, err, &re)
	assert.Nil(t, res.Reply)
	sent := historicSent(srv, 1)
	assert.Equal(t, []string{"MRSQ R", "MRCP TO:<reject@d>", "MRSQ"}, sent[len(sent)-3:], "no text without a name")

	_, err = c.SendMRSQ(ctx, MRSQQuery, "a@b", []string{"c@d"}, strings.NewReader("x"))
	assert.Error(t, err)
	_, err = c.SendMRSQ(ctx, MRSQTextFirst, "a@b", nil, strings.NewReader("x"))
	assert.Error(t, err)
	_, err = c.SendMRSQ(ctx, MRSQTextFirst, "a@b", []string{"c@d\r\nRSET"}, strings.NewReader("x"))
	assert.ErrorIs(t, err, ErrCRLF)
	require.NoError(t, c.NoopContext(ctx))
}
