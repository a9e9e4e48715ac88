package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

var (
	extPipelining = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1000000", "DSN", "SMTPUTF8"}
	extChunking   = append([]string{"CHUNKING", "BINARYMIME"}, extPipelining...)
	extLockstep   = []string{"8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 1000000", "DSN", "CHUNKING"}
)

// RFC 2920 §3.1: MAIL, RCPT and DATA go in one group, so a message costs
// two round trips with DATA; replies are counted, never matched by text.
func TestSend_PipelinesTheEnvelope(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	before := srv.Flushes(1)
	res, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com", "c@example.com", "d@example.com")},
		strings.NewReader(testMessage(1)))
	require.NoError(t, err)
	assert.Equal(t, 2, srv.Flushes(1)-before, "MAIL+RCPT×3+DATA, then the data")
	assert.Equal(t, 3, res.Accepted())
	require.NotNil(t, res.Reply)
	assert.Contains(t, res.Reply.msg(), "queued as")
	assert.Equal(t, int64(len(testMessage(1))), res.Octets)
	require.Len(t, srv.Messages(), 1)
	assert.Equal(t, testMessage(1), string(srv.Messages()[0].Data))
	assert.Equal(t, []string{"SIZE=" + fmt.Sprint(len(testMessage(1))), "BODY=8BITMIME"}, srv.Messages()[0].MailParams)
}

// A refused recipient is not a failure of the others; all refused is a
// failure with no message (RFC 2920 §3.1: a lone "." if DATA got 354).
func TestSend_RecipientRefusals(t *testing.T) {
	tests := []struct {
		name      string
		to        []string
		faults    smtptest.Faults
		delivered bool
		refused   []string
	}{
		{"one of three refused", []string{"b@example.com", "reject1@example.com", "c@example.com"}, smtptest.Faults{}, true, []string{"reject1@example.com"}},
		{"temporary refusal", []string{"temp@example.com", "c@example.com"}, smtptest.Faults{}, true, []string{"temp@example.com"}},
		{"all refused, DATA refused", []string{"reject1@example.com", "reject2@example.com"}, smtptest.Faults{}, false, []string{"reject1@example.com", "reject2@example.com"}},
		{"all refused, DATA accepted anyway: lone dot", []string{"reject1@example.com"},
			smtptest.Faults{Reply: map[string]string{"DATA": "354 go ahead anyway"}}, false, []string{"reject1@example.com"}},
	}
	for _, tt := range tests {
		for _, ext := range []struct {
			name string
			ext  []string
		}{{"pipelined", extPipelining}, {"lockstep", extLockstep[:3]}, {"chunking", extChunking}} {
			t.Run(tt.name+"/"+ext.name, func(t *testing.T) {
				srv := newTestServer(t, smtptest.Config{Extensions: ext.ext, Faults: tt.faults})
				c := dialTest(t, srv, nil)
				res, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients(tt.to...)}, strings.NewReader(testMessage(1)))
				var re *RecipientsError
				require.ErrorAs(t, err, &re)
				var got []string
				for _, r := range re.Refused {
					got = append(got, r.Addr)
					var e *Error
					require.ErrorAs(t, r.Err, &e)
				}
				assert.Equal(t, tt.refused, got)
				var te *textproto.Error
				require.ErrorAs(t, err, &te, "net/smtp code finds the first refusal")
				if tt.delivered {
					require.NotNil(t, res.Reply)
					require.Len(t, srv.Messages(), 1)
					assert.Equal(t, len(tt.to)-len(tt.refused), len(srv.Messages()[0].To))
				} else {
					assert.Empty(t, srv.Messages())
				}
				// The session is still in step: another message goes through.
				_, err = c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("z@example.com")}, strings.NewReader("x\r\n"))
				require.NoError(t, err)
			})
		}
	}
}

// RFC 1870 §6: SIZE is declared when known, and a message over the limit
// is refused before anything is written.
func TestSend_SizeLimitIsCheckedBeforeSending(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "SIZE 100"}})
	c := dialTest(t, srv, nil)
	before := len(srv.Transcript(1))
	_, err := c.Send(context.Background(), &Envelope{From: "a@b.example", To: Recipients("c@d.example")}, strings.NewReader(strings.Repeat("x", 101)))
	require.ErrorIs(t, err, ErrMessageTooLarge)
	assert.Len(t, srv.Transcript(1), before, "nothing was sent")
	require.NoError(t, c.Noop())
}

// Parameters go out only where the extension is offered (RFC 3461, RFC
// 6531, RFC 6152); xtext encodes ENVID and ORCPT.
func TestSend_Parameters(t *testing.T) {
	env := &Envelope{From: "a@example.org", To: []Recipient{{Addr: "b@example.com", Notify: []DSNNotify{"success", DSNFailure}, ORCPT: "b+x=y@example.com"}},
		Ret: "hdrs", EnvID: "id 1"}
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	_, err := c.Send(context.Background(), env, strings.NewReader("hi\r\n"))
	require.NoError(t, err)
	m := srv.Messages()[0]
	assert.Equal(t, []string{"SIZE=4", "BODY=8BITMIME", "RET=HDRS", "ENVID=id+201"}, m.MailParams)
	assert.Equal(t, [][]string{{"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b+2Bx+3Dy@example.com"}}, m.RcptParams)

	tests := []struct {
		name string
		env  *Envelope
	}{
		{"DSN", env},
		{"SMTPUTF8 for a non-ASCII address", &Envelope{From: "jörg@example.org", To: Recipients("b@example.com")}},
		{"BINARYMIME", &Envelope{From: "a@example.org", To: Recipients("b@example.com"), Body: BodyBinaryMIME}},
		{"REQUIRETLS", &Envelope{From: "a@example.org", To: Recipients("b@example.com"), RequireTLS: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" not offered", func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING"}})
			c := dialTest(t, srv, nil)
			_, err := c.Send(context.Background(), tt.env, strings.NewReader("hi\r\n"))
			require.ErrorIs(t, err, ErrExtensionNotOffered)
			require.NoError(t, c.Noop(), "nothing half-sent")
			assert.Empty(t, srv.Messages())
		})
	}
}

// Invalid envelopes are refused before anything is written.
func TestSend_RefusesBadEnvelopes(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	for _, env := range []*Envelope{
		{From: "a@b", To: nil},
		{From: "a@b\r\nRSET", To: Recipients("c@d")},
		{From: "a@b", To: Recipients("c@d>")},
		{From: "a@b", To: Recipients("")},
		{From: "a@b", To: []Recipient{{Addr: "c@d", Notify: []DSNNotify{DSNNever, DSNSuccess}}}},
		{From: "a@b", To: Recipients("c@d"), Ret: "SOME"},
	} {
		_, err := c.Send(context.Background(), env, strings.NewReader("x"))
		require.Error(t, err, "%+v", env)
	}
	require.NoError(t, c.Noop())
	assert.Empty(t, srv.Messages())
}

// net/smtp's SendMail gets pipelining for free: three client turns for a
// three-recipient message, with the same bytes.
func TestSendMail_PipelinesInThreeTurns(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME"}})
	err := SendMail(srv.Addr, nil, "a@example.org", []string{"b@example.com", "c@example.com", "d@example.com"}, []byte(testMessage(1)))
	require.NoError(t, err)
	// The server flushes once for the greeting and once per client turn.
	assert.Equal(t, 1+3, srv.Flushes(1))
	assert.Equal(t, []string{"EHLO localhost", "MAIL FROM:<a@example.org> BODY=8BITMIME", "RCPT TO:<b@example.com>",
		"RCPT TO:<c@example.com>", "RCPT TO:<d@example.com>", "DATA", fmt.Sprintf("<data %d octets>", len(testMessage(1))+len(".\r\n")+1), "QUIT"}, srv.Commands(1))
}

// Bulk over one connection: with DATA about one round trip per message,
// with CHUNKING almost none; every outcome goes to the right message, in
// order, including a refused recipient in the middle.
func TestBatch_Bulk(t *testing.T) {
	const n = 40
	for _, tt := range []struct {
		name       string
		ext        []string
		maxFlushes int
	}{
		{"DATA", extPipelining, n + 4},
		{"CHUNKING", extChunking, n/4 + 4},
		{"lockstep", extLockstep[:3], 6*n + 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: tt.ext})
			c := dialTest(t, srv, &Dialer{ChunkSize: 64})
			b, err := c.NewBatch(context.Background())
			require.NoError(t, err)
			type outcome struct {
				i   int
				res *Result
				err error
			}
			var got []outcome
			for i := 0; i < n; i++ {
				to := Recipients("b@example.com", "c@example.com")
				if i%10 == 5 {
					to[1].Addr = "reject@example.com"
				}
				require.NoError(t, b.Send(&Envelope{From: "a@example.org", To: to}, strings.NewReader(testMessage(i)),
					func(res *Result, err error) { got = append(got, outcome{i, res, err}) }))
			}
			require.NoError(t, b.Quit())
			require.Len(t, got, n)
			for k, o := range got {
				require.Equal(t, k, o.i, "outcomes in order")
				if o.i%10 == 5 {
					var re *RecipientsError
					require.ErrorAs(t, o.err, &re)
					assert.Equal(t, "reject@example.com", re.Refused[0].Addr)
				} else {
					require.NoError(t, o.err)
				}
				assert.NotNil(t, o.res.Reply)
			}
			msgs := srv.Messages()
			require.Len(t, msgs, n)
			for i, m := range msgs {
				assert.Equal(t, testMessage(i), string(m.Data))
			}
			assert.LessOrEqual(t, srv.Flushes(1), tt.maxFlushes)
			t.Logf("%d messages, %d server flushes", n, srv.Flushes(1))
		})
	}
}

// RFC 3030: text is sent in canonical form in chunks of the configured
// size; BINARYMIME goes as it is.
func TestBatch_Chunking(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extChunking})
	c := dialTest(t, srv, &Dialer{ChunkSize: 100})
	text := strings.Repeat("line with LF only\n", 50) + "no final newline"
	res, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader(text))
	require.NoError(t, err)
	want := strings.ReplaceAll(text, "\n", "\r\n") + "\r\n"
	assert.Equal(t, int64(len(want)), res.Octets)
	binary := "\x00\x01bare\nLF and bare\r CR\xff"
	_, err = c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com"), Body: BodyBinaryMIME}, strings.NewReader(binary))
	require.NoError(t, err)
	msgs := srv.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, want, string(msgs[0].Data))
	assert.Equal(t, "BDAT", msgs[0].Via)
	assert.Equal(t, binary, string(msgs[1].Data))
	chunks := 0
	for _, l := range srv.Transcript(1) {
		if strings.HasPrefix(l, "C: BDAT ") {
			chunks++
		}
	}
	// One BDAT per 100 octets, perhaps an empty "BDAT 0 LAST" (RFC 3030
	// §2 allows it), and one for the binary message.
	assert.InDelta(t, (len(want)+99)/100+1, chunks, 1)
}

// A message whose final reply was read before the connection broke is
// reported delivered, even though the next transaction's RSET or MAIL, in
// the same group, is what broke; the next message is reported failed.
func TestBatch_FailureAfterACompleteTransaction(t *testing.T) {
	// With CHUNKING each transaction after the first starts with RSET.
	for _, fault := range []smtptest.Faults{{CloseBeforeReply: "RSET"}, {CloseAfterCommand: "RSET"}} {
		{
			t.Run(fmt.Sprintf("close before reply %v, after command %v", fault.CloseBeforeReply != "", fault.CloseAfterCommand != ""), func(t *testing.T) {
				srv := newTestServer(t, smtptest.Config{Extensions: extChunking, Faults: fault})
				c := dialTest(t, srv, nil)
				b, err := c.NewBatch(context.Background())
				require.NoError(t, err)
				errs := make([]error, 2)
				for i := range errs {
					env := &Envelope{From: "a@example.org", To: Recipients(fmt.Sprintf("r%d@example.com", i))}
					sendErr := b.Send(env, strings.NewReader(testMessage(i)), func(_ *Result, err error) { errs[i] = err })
					if sendErr != nil {
						errs[i] = sendErr
					}
				}
				b.Close()
				require.Len(t, srv.Messages(), 1)
				assert.NoError(t, errs[0], "the server has the first message")
				assert.Error(t, errs[1])
			})
		}
	}
}

// A group larger than any socket buffer does not deadlock, although the
// server writes replies while it reads (RFC 2920 §3.1).
func TestPipeline_LargeGroupDoesNotDeadlock(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	var to []string
	for i := 0; i < 20000; i++ {
		to = append(to, fmt.Sprintf("recipient-with-a-long-name-%06d@example.com", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Send(ctx, &Envelope{From: "a@example.org", To: Recipients(to...)}, strings.NewReader("hi\r\n"))
	require.NoError(t, err)
	assert.Equal(t, len(to), res.Accepted())
}

// A Pipeline on a Client from NewClient says EHLO first, as every method
// does, and then sends the group together when PIPELINING is offered.
func TestPipeline_NewClientSaysHelloFirst(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	conn, err := net.Dial("tcp", srv.Addr)
	require.NoError(t, err)
	c, err := NewClient(conn, "127.0.0.1")
	require.NoError(t, err)
	defer c.Close()
	p := c.Pipeline()
	mail := p.Cmd(250, "MAIL FROM:<a@example.org>")
	rcpt := p.Cmd(25, "RCPT TO:<b@example.com>")
	require.NoError(t, p.Exec(context.Background()))
	require.NoError(t, mail.Err)
	require.NoError(t, rcpt.Err)
	require.NoError(t, c.Quit())
	assert.Equal(t, []string{"EHLO localhost", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.com>", "QUIT"}, srv.Commands(1))
	assert.Equal(t, 4, srv.Flushes(1), "greeting, EHLO, MAIL+RCPT answered together, QUIT")
}

// The public Pipeline enforces RFC 2920 §3.1's group rules before writing,
// and falls back to one command at a time without PIPELINING.
func TestPipeline_GroupRules(t *testing.T) {
	for _, ext := range [][]string{extPipelining, {"8BITMIME"}} {
		srv := newTestServer(t, smtptest.Config{Extensions: ext})
		c := dialTest(t, srv, nil)
		p := c.Pipeline()
		p.Cmd(250, "NOOP")
		p.Cmd(250, "RSET")
		require.Error(t, p.Exec(context.Background()), "NOOP must be last")

		p = c.Pipeline()
		p.Cmd(250, "MAIL FROM:<%s>", "a@b\r\nDATA")
		require.ErrorIs(t, p.Exec(context.Background()), ErrCRLF)

		p = c.Pipeline()
		rset := p.Cmd(250, "RSET")
		mail := p.Cmd(250, "MAIL FROM:<a@example.org>")
		bad := p.Cmd(25, "RCPT TO:<reject@example.com>")
		good := p.Cmd(25, "RCPT TO:<b@example.com>")
		noop := p.Cmd(250, "NOOP")
		require.NoError(t, p.Exec(context.Background()))
		for _, x := range []*Cmd{rset, mail, good, noop} {
			require.NoError(t, x.Err)
			require.True(t, x.done)
		}
		var e *Error
		require.ErrorAs(t, bad.Err, &e)
		assert.Equal(t, 550, e.Code)
		require.NoError(t, c.Reset())
	}
}

// A Client with a Batch open refuses other calls instead of interleaving.
func TestBatch_ClientIsBusy(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	b, err := c.NewBatch(context.Background())
	require.NoError(t, err)
	require.Error(t, c.Noop())
	require.NoError(t, b.Close())
	require.NoError(t, c.Noop())
}

// A message whose reader fails: with BDAT the transaction is reset and the
// connection lives on; with DATA the connection is closed so that a cut
// message is never delivered.
func TestBatch_BodyReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	body := func() *failingReader { return &failingReader{data: []byte(strings.Repeat("x\r\n", 1000)), err: boom} }
	t.Run("BDAT", func(t *testing.T) {
		srv := newTestServer(t, smtptest.Config{Extensions: extChunking})
		c := dialTest(t, srv, &Dialer{ChunkSize: 512})
		_, err := c.Send(context.Background(), &Envelope{From: "a@b.example", To: Recipients("c@d.example")}, body())
		require.ErrorIs(t, err, boom)
		_, err = c.Send(context.Background(), &Envelope{From: "a@b.example", To: Recipients("c@d.example")}, strings.NewReader("ok\r\n"))
		require.NoError(t, err)
		require.Len(t, srv.Messages(), 1)
		assert.Equal(t, "ok\r\n", string(srv.Messages()[0].Data))
	})
	t.Run("DATA", func(t *testing.T) {
		srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
		c := dialTest(t, srv, nil)
		_, err := c.Send(context.Background(), &Envelope{From: "a@b.example", To: Recipients("c@d.example")}, body())
		require.ErrorIs(t, err, boom)
		require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
		time.Sleep(50 * time.Millisecond)
		assert.Empty(t, srv.Messages())
	})
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data[:min(len(r.data), 700)])
	r.data = r.data[n:]
	return n, nil
}

var _ = bytes.NewReader

// RFC 5321 §4.1.1.4: the reply to the end of the data decides; a refusal
// there is the transaction's error, never a success.
func TestSend_RefusalAfterTheData(t *testing.T) {
	for _, tt := range []struct {
		name string
		ext  []string
	}{{"DATA", extPipelining}, {"BDAT", extChunking}, {"lockstep", extLockstep[:3]}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: tt.ext, Faults: smtptest.Faults{Reply: map[string]string{".": "554 5.7.1 content rejected"}}})
			c := dialTest(t, srv, nil)
			res, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("spam\r\n"))
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, 554, e.Code)
			assert.Nil(t, res.Reply)
			assert.Empty(t, srv.Messages())
		})
	}
}
