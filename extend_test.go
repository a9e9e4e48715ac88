package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// selectMRSQ selects RFC 772's scheme T, under which "MAIL FROM:<x>" is
// answered 354 and followed by a text: a command other than DATA that
// starts a data phase.
func selectMRSQ(t *testing.T, c *Client, scheme string) {
	t.Helper()
	p := c.Pipeline()
	x := p.Cmd(200, "MRSQ %s", scheme)
	require.NoError(t, p.Exec(context.Background()))
	require.NoError(t, x.Err)
}

// Pipeline.Data runs any command answered 354 through the Client's data
// phase: the text is dot-stuffed on the wire and the same at the server,
// Close returns the reply to "."; refusals are *Error values that leave
// the Client usable; a bad line is refused before anything is written.
func TestPipelineData(t *testing.T) {
	const text = "Subject: x\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n"
	// On the wire: three stuffed dots and the ".\r\n" terminator.
	wire := fmt.Sprintf("<data %d octets>", len(text)+3+3)
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  smtptest.Config
		run  func(t *testing.T, c *Client, srv *smtptest.Server)
	}{
		{"a command answered 354 delivers its text, dot-stuffed", smtptest.Config{MRSQ: "T"}, func(t *testing.T, c *Client, srv *smtptest.Server) {
			selectMRSQ(t, c, "T")
			w, err := c.Pipeline().Data(ctx, "MAIL FROM:<a@example.org>")
			require.NoError(t, err)
			_, err = io.WriteString(w, text)
			require.NoError(t, err)
			assert.Nil(t, w.Reply(), "no reply before Close")
			require.NoError(t, w.Close())
			require.NotNil(t, w.Reply())
			assert.Equal(t, 250, w.Reply().Code)
			assert.Equal(t, "Mail stored", w.Reply().Text())
			assert.Equal(t, int64(len(text)), w.Count(), "canonical octets, before stuffing")
			assert.Error(t, w.Close(), "closed twice")
			p := c.Pipeline()
			mrcp := p.Cmd(250, "MRCP TO:<b@example.com>")
			require.NoError(t, p.Exec(ctx))
			require.NoError(t, mrcp.Err)
			require.Len(t, srv.Messages(), 1)
			assert.Equal(t, text, string(srv.Messages()[0].Data))
			assert.Equal(t, []string{"EHLO client.example", "MRSQ T", "MAIL FROM:<a@example.org>", wire, "MRCP TO:<b@example.com>"}, srv.Commands(1))
		}},
		{"DATA through Pipeline.Data is DataContext", smtptest.Config{}, func(t *testing.T, c *Client, srv *smtptest.Server) {
			require.NoError(t, c.MailContext(ctx, "a@example.org"))
			require.NoError(t, c.RcptContext(ctx, "b@example.com"))
			w, err := c.Pipeline().Data(ctx, "DATA")
			require.NoError(t, err)
			io.WriteString(w, text)
			require.NoError(t, w.Close())
			assert.Contains(t, w.Reply().msg(), "queued as")
			require.Len(t, srv.Messages(), 1)
			assert.Equal(t, text, string(srv.Messages()[0].Data))
			assert.Contains(t, srv.Commands(1), wire)
		}},
		{"a reply other than 354 is an *Error and the Client goes on", smtptest.Config{}, func(t *testing.T, c *Client, srv *smtptest.Server) {
			w, err := c.Pipeline().Data(ctx, "DATA") // no transaction: 503
			assert.Nil(t, w)
			e, ok := err.(*Error)
			require.True(t, ok, "the *Error itself: %#v", err)
			assert.Equal(t, 503, e.Code)
			require.NoError(t, c.NoopContext(ctx))
		}},
		{"a refused text is an *Error from Close, with its reply", smtptest.Config{MRSQ: "T", MaxMessageSize: 10}, func(t *testing.T, c *Client, srv *smtptest.Server) {
			selectMRSQ(t, c, "T")
			w, err := c.Pipeline().Data(ctx, "MAIL FROM:<a@example.org>")
			require.NoError(t, err)
			io.WriteString(w, text)
			err = w.Close()
			e, ok := err.(*Error)
			require.True(t, ok, "the *Error itself: %#v", err)
			assert.Equal(t, 552, e.Code)
			assert.Equal(t, 552, w.Reply().Code)
			require.NoError(t, c.NoopContext(ctx))
			assert.Empty(t, srv.Messages())
		}},
		{"CR, LF, NUL or no command are refused before anything is written", smtptest.Config{MRSQ: "T"}, func(t *testing.T, c *Client, srv *smtptest.Server) {
			for line, want := range map[string]error{"MAIL FROM:<a@b>\r\nRSET": ErrCRLF, "MAIL FROM:<a@b>\nRSET": ErrCRLF, "DATA\x00": ErrNUL} {
				_, err := c.Pipeline().Data(ctx, line)
				assert.ErrorIs(t, err, want, "%q", line)
			}
			_, err := c.Pipeline().Data(ctx, "")
			assert.Error(t, err)
			assert.Equal(t, []string{"EHLO client.example"}, srv.Commands(1), "nothing written")
			require.NoError(t, c.NoopContext(ctx))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.cfg)
			tt.run(t, dialTest(t, srv, nil), srv)
		})
	}
}

// Pipeline.Data sends the queued commands and the data command in one
// group with PIPELINING: MAIL, RCPT and DATA in one turnaround. A refused
// RCPT is in its Cmd and the data phase goes on for the others.
func TestPipelineData_AfterQueuedCommands(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	before := srv.Flushes(1)
	p := c.Pipeline()
	mail := p.Cmd(250, "MAIL FROM:<a@example.org>")
	ok := p.Cmd(25, "RCPT TO:<b@example.com>")
	refused := p.Cmd(25, "RCPT TO:<reject@example.com>")
	w, err := p.Data(ctx, "DATA")
	require.NoError(t, err)
	assert.Equal(t, before+1, srv.Flushes(1), "MAIL, RCPT, RCPT and DATA answered in one go")
	require.NoError(t, mail.Err)
	require.NoError(t, ok.Err)
	var e *Error
	require.ErrorAs(t, refused.Err, &e)
	assert.Equal(t, 550, e.Code)
	_, err = io.WriteString(w, "Subject: x\r\n\r\nhi\r\n")
	require.NoError(t, err)
	require.NoError(t, w.Close())
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{"b@example.com"}, msgs[0].To)

	p = c.Pipeline()
	p.Cmd(250, "NOOP")
	_, err = p.Data(ctx, "DATA")
	require.Error(t, err, "NOOP must end a group (RFC 2920 §3.1)")
	require.NoError(t, c.NoopContext(ctx), "nothing was written")
}

// Pipeline.Data says hello first on a Client that has not, as every command
// does on a Client from Dial.
func TestPipelineData_SaysHelloFirst(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	c, err := Dial(srv.Addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Pipeline().Data(context.Background(), "DATA")
	assert.Equal(t, 503, historicCode(t, err))
	assert.Equal(t, []string{"EHLO localhost", "DATA"}, srv.Commands(1))
}

// Closing the Client during a data phase ends it: the text is not
// delivered, and the context the phase ran under no longer reaches the
// Client.
func TestPipelineData_CloseAbandonsTheText(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	c := dialTest(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, c.MailContext(ctx, "a@example.org"))
	require.NoError(t, c.RcptContext(ctx, "b@example.com"))
	w, err := c.Pipeline().Data(ctx, "DATA")
	require.NoError(t, err)
	io.WriteString(w, "partial\r\n")
	require.NoError(t, c.Close())
	cancel()
	assert.Error(t, w.Close())
	_, err = w.Write([]byte("more"))
	assert.Error(t, err)
	assert.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
	time.Sleep(50 * time.Millisecond) // time for a context.AfterFunc left behind to run
	c.mu.Lock()
	assert.NoError(t, c.cancel, "the phase's context was let go at Close")
	c.mu.Unlock()
	assert.Empty(t, srv.Messages())
}

// Hijack hands over the connection in use, TLS after STARTTLS, and the
// reader with what the server already sent; the Client is then closed to
// its caller but leaves the connection open.
func TestHijack_HandsOverTheConnection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{
		Extensions: []string{"STARTTLS", "PIPELINING", "ENHANCEDSTATUSCODES"},
		Turn:       &smtptest.Turn{Helo: "mx.example.net", From: "a@example.net", To: []string{"b@client.example"}, Data: "x\r\n"},
	})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	require.NoError(t, c.StartTLSContext(ctx, srv.ClientTLSConfig()))
	p := c.Pipeline()
	turn := p.Cmd(250, "TURN")
	conn, br, err := p.Hijack(ctx)
	require.NoError(t, err)
	require.NoError(t, turn.Err)
	defer conn.Close()
	_, isTLS := conn.(*tls.Conn)
	assert.True(t, isTLS, "the connection in use, not the one under TLS")

	// The Client is done with it; Close leaves it open.
	assert.ErrorIs(t, c.NoopContext(ctx), ErrClosed)
	_, _, err = c.Pipeline().Hijack(ctx)
	assert.ErrorIs(t, err, ErrClosed, "hijacked once")
	require.NoError(t, c.Close())
	assert.ErrorIs(t, c.NoopContext(ctx), ErrClosed)

	// The caller speaks on it, as the receiver after TURN.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	exchange := func(reply, want string) {
		t.Helper()
		_, err := io.WriteString(conn, reply+"\r\n")
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, want+"\r\n", line)
	}
	exchange("220 client.example ready", "HELO mx.example.net")
	exchange("250 client.example", "MAIL FROM:<a@example.net>")
	exchange("250 OK", "RCPT TO:<b@client.example>")
	exchange("421 enough", "QUIT")
	log := srv.TurnLog(1)
	require.NotEmpty(t, log)
	assert.Equal(t, smtptest.TurnStep{Command: "", Reply: "220 client.example ready"}, log[0])
}

// Input the server sent with a reply, before the Client hijacked the
// connection, is in the reader Hijack returns.
func TestHijack_KeepsBufferedInput(t *testing.T) {
	c, s := dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: XSWITCH",
		"S: 250 switching", "S: first line of the new protocol", "C: answer")
	p := c.Pipeline()
	p.Cmd(250, "XSWITCH")
	conn, br, err := p.Hijack(context.Background())
	require.NoError(t, err)
	assert.Positive(t, br.Buffered(), "the line came in the reply's segment")
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "first line of the new protocol\r\n", line)
	_, err = io.WriteString(conn, "answer\r\n")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, conn.Close())
	assert.Equal(t, []string{"EHLO localhost", "XSWITCH", "answer"}, s.Received())
}

// A Hijack whose command the server refuses returns the refusal and leaves
// the Client to its caller, who may go on.
func TestHijack_RefusedCommandKeepsTheClient(t *testing.T) {
	c, s := dialScript(t, "S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: XSWITCH",
		"S: 502 5.5.1 not here", "C: NOOP", "S: 250 OK")
	p := c.Pipeline()
	sw := p.Cmd(250, "XSWITCH")
	conn, br, err := p.Hijack(context.Background())
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 502, e.Code)
	assert.Same(t, sw.Err, err)
	assert.Nil(t, conn)
	assert.Nil(t, br)
	require.NoError(t, c.NoopContext(context.Background()))
	require.NoError(t, c.Close())
	assert.Equal(t, []string{"EHLO localhost", "XSWITCH", "NOOP"}, s.Received())
}

// Hijack is refused while the Client is in the middle of something, and
// the Client goes on as before; after Close it reports ErrClosed.
func TestHijack_RefusedWhileBusy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		busy func(t *testing.T, c *Client) (done func())
	}{
		{"a Batch is open", func(t *testing.T, c *Client) func() {
			b, err := c.NewBatch(ctx)
			require.NoError(t, err)
			require.NoError(t, b.Send(&Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("x\r\n"), nil))
			return func() { require.NoError(t, b.Close()) }
		}},
		{"a data phase is open", func(t *testing.T, c *Client) func() {
			require.NoError(t, c.MailContext(ctx, "a@example.org"))
			require.NoError(t, c.RcptContext(ctx, "b@example.com"))
			w, err := c.DataContext(ctx)
			require.NoError(t, err)
			return func() { require.NoError(t, w.Close()) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
			c := dialTest(t, srv, nil)
			done := tt.busy(t, c)
			conn, br, err := c.Pipeline().Hijack(ctx)
			require.Error(t, err)
			assert.NotErrorIs(t, err, ErrClosed)
			assert.Nil(t, conn)
			assert.Nil(t, br)
			done()
			require.NoError(t, c.NoopContext(ctx), "the Client goes on")
			require.Len(t, srv.Messages(), 1)
		})
	}

	c := dialTest(t, newTestServer(t, smtptest.Config{}), nil)
	require.NoError(t, c.Close())
	_, _, err := c.Pipeline().Hijack(ctx)
	assert.ErrorIs(t, err, ErrClosed)
}

// A Cmd waits for its reply as long as CmdTimeout says, not the Timeouts
// field of its verb.
func TestPipeline_CmdTimeout(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{Delay: map[string]time.Duration{"NOOP": 300 * time.Millisecond}}})
	ctx := context.Background()
	tests := []struct {
		name    string
		timeout time.Duration
		ok      bool
	}{
		{"longer than Timeouts.Command", 5 * time.Second, true},
		{"no bound", -1, true},
		{"zero keeps Timeouts.Command", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialTest(t, srv, &Dialer{Timeouts: Timeouts{Command: 100 * time.Millisecond}})
			p := c.Pipeline()
			x := p.CmdTimeout(tt.timeout, 250, "NOOP")
			err := p.Exec(ctx)
			if tt.ok {
				require.NoError(t, err)
				assert.NoError(t, x.Err)
			} else {
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
				assert.ErrorIs(t, c.NoopContext(ctx), ErrClosed, "a timeout ends the Client")
			}
		})
	}
}

// The Client keeps the Dialer's name and Timeouts, each zero Timeouts field
// replaced by RFC 5321's bound; a net/smtp Client says "localhost" until
// Hello names it.
func TestClient_LocalNameAndTimeouts(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	c := dialTest(t, srv, &Dialer{Timeouts: Timeouts{Mail: 7 * time.Second}})
	assert.Equal(t, "client.example", c.localName)
	to := c.timeouts
	assert.Equal(t, 7*time.Second, to.Mail)
	assert.Equal(t, 5*time.Minute, to.Command, "defaults filled in")
	assert.Equal(t, 10*time.Minute, to.DataTerm)

	c2, err := Dial(srv.Addr)
	require.NoError(t, err)
	defer c2.Close()
	assert.Equal(t, "localhost", c2.localName)
	require.NoError(t, c2.Hello("me.example"))
	assert.Equal(t, "me.example", c2.localName)
}
