package smtptest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkNoGoroutineLeak records the goroutine count now and, at cleanup
// (registered before the server's Close, so it runs after it), waits briefly
// for the count to come back down.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				assert.Failf(t, "goroutines left", "goroutines: %d before, %d after Close\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// newTestServer starts a server closed at the end of the test, and checks
// that closing it leaves no goroutines behind.
func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	checkNoGoroutineLeak(t)
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	s, err := NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// tclient is a minimal raw SMTP client for the tests (it must not use the
// root package).
type tclient struct {
	t  *testing.T
	nc net.Conn
	tp *textproto.Conn
}

func dial(t *testing.T, s *Server) *tclient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	t.Cleanup(func() { nc.Close() })
	return &tclient{t: t, nc: nc, tp: textproto.NewConn(nc)}
}

// dialGreeted dials and consumes the 220 greeting.
func dialGreeted(t *testing.T, s *Server) *tclient {
	c := dial(t, s)
	c.expect(220)
	return c
}

// ehlo dials, reads the greeting and sends EHLO.
func ehlo(t *testing.T, s *Server) *tclient {
	c := dialGreeted(t, s)
	c.cmd("EHLO client.example")
	c.expect(250)
	return c
}

// write sends raw octets in a single Write.
func (c *tclient) write(s string) {
	c.t.Helper()
	_, err := c.nc.Write([]byte(s))
	require.NoError(c.t, err)
}

// cmd sends the lines, CRLF-terminated, in a single Write (pipelined).
func (c *tclient) cmd(lines ...string) {
	c.t.Helper()
	c.write(strings.Join(lines, "\r\n") + "\r\n")
}

// reply reads one (possibly multi-line) reply.
func (c *tclient) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.tp.ReadResponse(0)
	require.NoError(c.t, err)
	return code, msg
}

// expect reads a reply and checks its code; it returns the text.
func (c *tclient) expect(code int) string {
	c.t.Helper()
	got, msg := c.reply()
	require.Equal(c.t, code, got, "reply text: %q", msg)
	return msg
}

// expectClosed checks that the server closed the connection without
// sending anything more.
func (c *tclient) expectClosed() {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	line, err := c.tp.ReadLine()
	require.Error(c.t, err, "unexpected line %q", line)
	var ne net.Error
	if errorsAs(err, &ne) {
		require.False(c.t, ne.Timeout(), "connection still open")
	}
}

// expectSilence checks that nothing arrives within d.
func (c *tclient) expectSilence(d time.Duration) {
	c.t.Helper()
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(d)))
	line, err := c.tp.ReadLine()
	require.Error(c.t, err, "unexpected line %q", line)
	var ne net.Error
	require.True(c.t, errorsAs(err, &ne) && ne.Timeout(), "want timeout, got %v", err)
	require.NoError(c.t, c.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
}

// startTLS upgrades the connection after a 220 reply to STARTTLS.
func (c *tclient) startTLS(cfg *tls.Config) error {
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		return err
	}
	c.nc = tc
	c.tp = textproto.NewConn(tc)
	return nil
}

// stuff dot-stuffs canonical CRLF data and appends the terminator.
func stuff(data []byte) string {
	var b strings.Builder
	bol := true
	for i := 0; i < len(data); i++ {
		if bol && data[i] == '.' {
			b.WriteByte('.')
		}
		b.WriteByte(data[i])
		bol = data[i] == '\n' && i > 0 && data[i-1] == '\r'
	}
	b.WriteString(".\r\n")
	return b.String()
}

// testMessage returns a canonical message of about n octets with lines that
// need dot-stuffing.
func testMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		switch i % 5 {
		case 0:
			b.WriteString(".a line that starts with a dot\r\n")
		case 1:
			b.WriteString("..two dots\r\n")
		case 2:
			b.WriteString(".\r\n")
		default:
			b.WriteString("plain line number " + strings.Repeat("x", i%37) + "\r\n")
		}
	}
	return b.Bytes()
}

// drainUntilClosed reads until the server closes the connection.
func drainUntilClosed(t *testing.T, c *tclient) {
	t.Helper()
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err := io.Copy(io.Discard, c.nc)
	var ne net.Error
	if errorsAs(err, &ne) {
		require.False(t, ne.Timeout(), "server did not close the connection")
	}
}

func filter(lines []string, prefixes ...string) []string {
	var out []string
	for _, l := range lines {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

func errorsAs(err error, target *net.Error) bool {
	return errors.As(err, target)
}
