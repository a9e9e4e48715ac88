package smtp

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// cancelBound is how soon after its context is cancelled a blocking call
// must return: the hardening issue's 100 ms. The race detector slows the
// whole program down many times over, so under it only a hang would fail.
var cancelBound = func() time.Duration {
	if raceEnabled {
		return 2 * time.Second
	}
	return 100 * time.Millisecond
}()

// Every blocking method returns promptly when its context is cancelled,
// with the connection closed and the Client unusable afterwards. The
// server withholds the reply each call waits for (or stops reading).
func TestCancel_EveryBlockingCallReturnsPromptly(t *testing.T) {
	env := &Envelope{From: "a@example.org", To: Recipients("b@example.com")}
	tests := []struct {
		name  string
		stall string // the verb whose reply never comes
		ext   []string
		call  func(ctx context.Context, c *Client, srv *smtptest.Server) error
	}{
		{"Noop", "NOOP", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error { return c.NoopContext(ctx) }},
		{"Reset", "RSET", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error { return c.ResetContext(ctx) }},
		{"Verify", "VRFY", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error { return c.VerifyContext(ctx, "x") }},
		{"Mail", "MAIL", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error { return c.MailContext(ctx, "a@b") }},
		{"Rcpt", "RCPT", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			if err := c.MailContext(context.Background(), "a@b"); err != nil {
				return err
			}
			return c.RcptContext(ctx, "c@d")
		}},
		{"Data", "DATA", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			if err := c.MailContext(context.Background(), "a@b"); err != nil {
				return err
			}
			if err := c.RcptContext(context.Background(), "c@d"); err != nil {
				return err
			}
			_, err := c.DataContext(ctx)
			return err
		}},
		{"Data writer Close", ".", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			bg := context.Background()
			if err := c.MailContext(bg, "a@b"); err != nil {
				return err
			}
			if err := c.RcptContext(bg, "c@d"); err != nil {
				return err
			}
			w, err := c.DataContext(ctx)
			if err != nil {
				return err
			}
			io.WriteString(w, "hi\r\n")
			return w.Close()
		}},
		{"Quit", "QUIT", nil, func(ctx context.Context, c *Client, _ *smtptest.Server) error { return c.QuitContext(ctx) }},
		{"StartTLS", "STARTTLS", []string{"STARTTLS"}, func(ctx context.Context, c *Client, srv *smtptest.Server) error {
			return c.StartTLSContext(ctx, srv.ClientTLSConfig())
		}},
		{"Auth", "AUTH", []string{"AUTH PLAIN"}, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			return c.AuthContext(ctx, PlainAuth("", "u", "p", "127.0.0.1"))
		}},
		{"Pipeline.Exec", "RCPT", []string{"PIPELINING"}, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			p := c.Pipeline()
			p.Cmd(250, "MAIL FROM:<a@b>")
			p.Cmd(25, "RCPT TO:<c@d>")
			return p.Exec(ctx)
		}},
		{"Send, pipelined", "DATA", []string{"PIPELINING"}, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			_, err := c.Send(ctx, env, strings.NewReader("hi\r\n"))
			return err
		}},
		{"Send, chunked", ".", []string{"PIPELINING", "CHUNKING"}, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			_, err := c.Send(ctx, env, strings.NewReader("hi\r\n"))
			return err
		}},
		{"Batch.Quit", "QUIT", []string{"PIPELINING", "CHUNKING"}, func(ctx context.Context, c *Client, _ *smtptest.Server) error {
			b, err := c.NewBatch(ctx)
			if err != nil {
				return err
			}
			if err := b.Send(env, strings.NewReader("hi\r\n"), nil); err != nil {
				return err
			}
			return b.Quit()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bound is on the library, not on a loaded machine: a run
			// may be retried twice for time alone.
			withinBound(t, func() time.Duration {
				srv := newTestServer(t, smtptest.Config{Extensions: tt.ext, Users: map[string]string{"u": "p"},
					Faults: smtptest.Faults{Stall: tt.stall}})
				c := dialTest(t, srv, nil)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var cancelled time.Time
				time.AfterFunc(50*time.Millisecond, func() { cancelled = time.Now(); cancel() })
				err := tt.call(ctx, c, srv)
				returned := time.Now()
				require.Error(t, err)
				require.ErrorIs(t, err, context.Canceled)
				require.False(t, cancelled.IsZero(), "returned before the cancellation: %v", err)
				err = c.NoopContext(context.Background())
				require.ErrorIs(t, err, ErrClosed)
				require.ErrorIs(t, err, context.Canceled)
				requireClosed(t, c)
				return returned.Sub(cancelled)
			})
		})
	}
}

// withinBound runs try, which returns how long a call took to return after
// its cancellation, up to three times, until it is within cancelBound.
func withinBound(t *testing.T, try func() time.Duration) {
	t.Helper()
	var took time.Duration
	for i := 0; i < 3; i++ {
		if took = try(); took < cancelBound {
			return
		}
		t.Logf("attempt %d: returned %v after the cancellation", i+1, took)
	}
	require.Less(t, took, cancelBound, "returned %v after the cancellation", took)
}

// requireClosed checks that the Client's network connection is closed.
func requireClosed(t *testing.T, c *Client) {
	t.Helper()
	_, err := c.raw.Write([]byte("NOOP\r\n"))
	require.ErrorIs(t, err, net.ErrClosed)
}

// Cancelling while the client is blocked writing (the server stopped
// reading) also returns promptly.
func TestCancel_BlockedWrite(t *testing.T) {
	withinBound(t, func() time.Duration {
		s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250 mx", "C: MAIL FROM:<a@b>", "S: 250 ok",
			"C: RCPT TO:<c@d>", "S: 250 ok", "C: DATA", "S: 354 go", "STALL")
		c, err := (&Dialer{LocalName: "client.example"}).Dial(context.Background(), s.Addr)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Mail("a@b"))
		require.NoError(t, c.Rcpt("c@d"))
		ctx, cancel := context.WithCancel(context.Background())
		w, err := c.DataContext(ctx)
		require.NoError(t, err)
		var cancelled time.Time
		time.AfterFunc(200*time.Millisecond, func() { cancelled = time.Now(); cancel() })
		_, err = io.Copy(w, bytes.NewReader(bytes.Repeat([]byte("a line that fills the socket buffers\r\n"), 4<<20)))
		returned := time.Now()
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
		requireClosed(t, c)
		return returned.Sub(cancelled)
	})
}

// Dialing, the Pool and the Courier honour their contexts too: while
// waiting for a greeting, for a free connection, or to reconnect.
func TestCancel_DialPoolAndCourier(t *testing.T) {
	t.Run("Dial waits for a greeting", func(t *testing.T) {
		srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{Stall: "GREETING"}})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := (&Dialer{LocalName: "client.example"}).Dial(ctx, srv.Addr)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 50*time.Millisecond+cancelBound)
	})
	t.Run("Pool waits for a connection", func(t *testing.T) {
		srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{Stall: "."}})
		p := &Pool{Dialer: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}, MaxConns: 1}
		defer p.Close()
		busy, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := p.Send(busy, srv.Addr, &Envelope{From: "a@b", To: Recipients("c@d")}, strings.NewReader("x\r\n"))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // the only connection is in use
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := p.Send(ctx, srv.Addr, &Envelope{From: "a@b", To: Recipients("c@d")}, strings.NewReader("x\r\n"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 50*time.Millisecond+cancelBound)
		stop()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	t.Run("Courier waits to reconnect", func(t *testing.T) {
		srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 10}}})
		k := testCourier(nil)
		k.RetryDelay = time.Hour
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := k.Send(ctx, []string{srv.Addr}, &Envelope{From: "a@b", To: Recipients("c@d")}, strings.NewReader(strings.Repeat("x\r\n", 1000)))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), 100*time.Millisecond+cancelBound)
	})
}
