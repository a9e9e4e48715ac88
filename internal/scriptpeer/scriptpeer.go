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
	p := &play{s: s, c: conn, r: bufio.NewReader(conn)}
	for _, step := range s.script {
		if !p.step(step, stop) {
			return
		}
	}
	p.flush()
	// Drain what else the client says until it hangs up, so that extra
	// lines show up in Received.
	for {
		if _, ok := p.readLine(); !ok {
			return
		}
	}
}

// A play is the Server's side of its one conversation.
type play struct {
	s   *Server
	c   net.Conn
	r   *bufio.Reader
	out []byte // S lines not yet written
}

// step plays one step of the script; false ends the conversation.
func (p *play) step(step string, stop chan struct{}) bool {
	switch {
	case strings.HasPrefix(step, "S: "):
		p.out = append(p.out, step[3:]+"\r\n"...)
	case strings.HasPrefix(step, "C: "):
		if !p.flush() {
			return false
		}
		got, ok := p.readLine()
		if !ok {
			p.s.problem("connection ended; want " + step[3:])
			return false
		}
		if got != step[3:] {
			p.s.problem("got " + got + "; want " + step[3:])
		}
	case step == "TLS":
		return p.flush() && p.startTLS()
	case step == "CLOSE":
		p.flush()
		return false
	case step == "STALL":
		p.flush()
		<-stop
		return false
	default:
		p.s.problem("bad script step " + step)
		return false
	}
	return true
}

// startTLS turns the connection into the server side of TLS.
func (p *play) startTLS() bool {
	if p.s.tls == nil {
		p.s.problem("TLS step without a TLS configuration")
		return false
	}
	tc := tls.Server(p.c, p.s.tls)
	if err := tc.Handshake(); err != nil {
		p.s.problem("TLS handshake: " + err.Error())
		return false
	}
	p.c, p.r = tc, bufio.NewReader(tc)
	return true
}

// flush writes the S lines queued; false if the write failed.
func (p *play) flush() bool {
	if len(p.out) > 0 {
		_, err := p.c.Write(p.out)
		p.out = p.out[:0]
		return err == nil
	}
	return true
}

// readLine reads one line of the client's, recording it.
func (p *play) readLine() (string, bool) {
	line, err := p.r.ReadString('\n')
	s := p.s
	s.mu.Lock()
	s.raw.WriteString(line)
	if err == nil {
		s.received = append(s.received, strings.TrimSuffix(line, "\r\n"))
	}
	s.mu.Unlock()
	return strings.TrimSuffix(line, "\r\n"), err == nil
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
