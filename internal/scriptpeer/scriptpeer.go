// Package scriptpeer holds the raw server peers of this module's tests: a
// Server that plays a script, for tests that check the exact bytes a
// client writes and what it makes of exact replies, and a Listener that
// runs a handler of the test's on each connection, for peers that
// misbehave as no real server would (the hostile-server table). The full
// SMTP server for conversations is internal/smtptest.
package scriptpeer

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Server plays one scripted SMTP conversation over a real loopback TCP
// connection, for tests that check the exact bytes a client writes.
//
// The script is a list of lines: "S: text" is sent to the client (all S
// lines in a row go out in one write), "C: text" is a line the client must
// send, "C* n" reads n raw lines without comparing them, "TLS" turns the
// connection into a TLS server connection, "CLOSE" hangs up, "STALL" waits
// until the test ends. Every line the client sends is recorded.
type Server struct {
	Addr string

	t      testing.TB
	ln     net.Listener
	script []string
	tls    *tls.Config
	done   chan struct{}

	mu       sync.Mutex
	received []string // client lines, without CRLF
	raw      strings.Builder
	problems []string
}

// New starts a Server for script on 127.0.0.1; it stops when the test ends.
// tlsConfig serves the "TLS" step (nil if the script has none).
func New(t testing.TB, tlsConfig *tls.Config, script ...string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), t: t, ln: ln, script: script, tls: tlsConfig, done: make(chan struct{})}
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

func (s *Server) problem(format string) {
	s.mu.Lock()
	s.problems = append(s.problems, format)
	s.mu.Unlock()
}

func (s *Server) serve(stop chan struct{}) {
	defer close(s.done)
	conn, err := s.ln.Accept()
	if err != nil {
		return
	}
	go func() { <-stop; conn.Close() }()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	var c net.Conn = conn
	r := bufio.NewReader(c)
	var out []byte
	flush := func() bool {
		if len(out) > 0 {
			_, err := c.Write(out)
			out = out[:0]
			return err == nil
		}
		return true
	}
	readLine := func() (string, bool) {
		line, err := r.ReadString('\n')
		s.mu.Lock()
		s.raw.WriteString(line)
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
		case step == "TLS":
			if !flush() {
				return
			}
			if s.tls == nil {
				s.problem("TLS step without a TLS configuration")
				return
			}
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				s.problem("TLS handshake: " + err.Error())
				return
			}
			c = tc
			r = bufio.NewReader(c)
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
func (s *Server) Received() []string {
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

// Raw returns the exact bytes the client sent, once the conversation ended.
func (s *Server) Raw() string {
	s.Received()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}
