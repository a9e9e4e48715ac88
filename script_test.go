package smtp

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptServer plays one scripted SMTP conversation over a real loopback
// TCP connection, for tests that check the exact bytes a client writes.
//
// The script is a list of lines: "S: text" is sent to the client (all S
// lines in a row go out in one write), "C: text" is a line the client must
// send, "C* n" reads n raw lines without comparing them, "TLS" turns the
// connection into a TLS server connection, "CLOSE" hangs up, "STALL" waits
// until the test ends. Every line the client sends is recorded.
type scriptServer struct {
	Addr string

	t      testing.TB
	ln     net.Listener
	script []string
	done   chan struct{}

	mu       sync.Mutex
	received []string // client lines, without CRLF
	raw      strings.Builder
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
			tc := tls.Server(c, testServerTLSConfig(s.t))
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

// Raw returns the exact bytes the client sent, once the conversation ended.
func (s *scriptServer) Raw() string {
	s.Received()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}
