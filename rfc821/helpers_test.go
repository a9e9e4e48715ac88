package rfc821

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// The helpers of package smtp's tests that these tests need, copied: a test
// server, a Client from a Dialer, the server's transcript, and a scripted
// peer.

func newTestServer(t *testing.T, cfg smtptest.Config) *smtptest.Server {
	t.Helper()
	cfg.Logf = t.Logf
	s, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func dialTest(t *testing.T, srv *smtptest.Server, d *smtp.Dialer) *smtp.Client {
	t.Helper()
	if d == nil {
		d = &smtp.Dialer{}
	}
	d.LocalName = "client.example"
	d.TLSPolicy = smtp.TLSDisabled
	c, err := d.Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// historicSent returns what the client sent on connection conn, from the
// server's transcript.
func historicSent(srv *smtptest.Server, conn int) []string {
	var out []string
	for _, l := range srv.Transcript(conn) {
		if strings.HasPrefix(l, "C: ") {
			out = append(out, l[3:])
		}
	}
	return out
}

func historicCode(t *testing.T, err error) int {
	t.Helper()
	var e *smtp.Error
	require.ErrorAs(t, err, &e)
	return e.Code
}

// dialScript connects a net/smtp-compatible Client to a script server.
func dialScript(t *testing.T, script ...string) (*smtp.Client, *scriptServer) {
	t.Helper()
	s := newScriptServer(t, script...)
	c, err := smtp.Dial(s.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, s
}

// scriptServer plays one scripted SMTP conversation over a real loopback
// TCP connection (package smtp's, without the TLS step).
//
// The script is a list of lines: "S: text" is sent to the client (all S
// lines in a row go out in one write), "C: text" is a line the client must
// send, "CLOSE" hangs up, "STALL" waits until the test ends. Every line the
// client sends is recorded.
type scriptServer struct {
	Addr string

	t      testing.TB
	ln     net.Listener
	script []string
	done   chan struct{}

	mu       sync.Mutex
	received []string // client lines, without CRLF
	problems []string
}

func newScriptServer(t testing.TB, script ...string) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{Addr: ln.Addr().String(), t: t, ln: ln, script: script, done: make(chan struct{})}
	stop := make(chan struct{})
	go s.serve(stop)
	t.Cleanup(func() {
		close(stop)
		ln.Close()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Errorf("script server did not finish")
		}
	})
	return s
}

func (s *scriptServer) problem(format string) {
	s.mu.Lock()
	s.problems = append(s.problems, format)
	s.mu.Unlock()
}

func (s *scriptServer) serve(stop chan struct{}) {
	defer close(s.done)
	conn, err := s.ln.Accept()
	if err != nil {
		return
	}
	go func() { <-stop; conn.Close() }()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	var out []byte
	flush := func() bool {
		if len(out) > 0 {
			_, err := conn.Write(out)
			out = out[:0]
			return err == nil
		}
		return true
	}
	readLine := func() (string, bool) {
		line, err := r.ReadString('\n')
		s.mu.Lock()
		if err == nil {
			s.received = append(s.received, strings.TrimSuffix(line, "\r\n"))
		}
		s.mu.Unlock()
		return strings.TrimSuffix(line, "\r\n"), err == nil
	}
	for _, step := range s.script {
		switch {
		case strings.HasPrefix(step, "S: "):
			out = append(out, step[3:]+"\r\n"...)
		case strings.HasPrefix(step, "C: "):
			if !flush() {
				return
			}
			got, ok := readLine()
			if !ok {
				s.problem("connection ended; want " + step[3:])
				return
			}
			if got != step[3:] {
				s.problem("got " + got + "; want " + step[3:])
			}
		case step == "CLOSE":
			flush()
			return
		case step == "STALL":
			flush()
			<-stop
			return
		default:
			s.problem("bad script step " + step)
			return
		}
	}
	flush()
	// Drain what else the client says until it hangs up, so that extra
	// lines show up in Received.
	for {
		if _, ok := readLine(); !ok {
			return
		}
	}
}

// Received returns the lines the client sent, once the conversation ended.
func (s *scriptServer) Received() []string {
	s.t.Helper()
	s.ln.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.t.Fatal("script server still running")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.problems {
		s.t.Errorf("script server: %s", p)
	}
	return append([]string(nil), s.received...)
}
