package discard

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReadData_FindsTheEndWhereverTheReadsSplitIt(t *testing.T) {
	cases := []struct {
		in   string // after DATA's CRLF
		want int64  // octets before the final "."
	}{
		{".\r\n", 0},
		{"a\r\n.\r\n", 3},
		{"..\r\n.\r\n", 4},
		{".x\r\n..\r\n.\r\n", 8},
		{"a\r\r\n.\r\n", 4},
		{"a\r\n.\r\r\n.\r\n", 7},
		{"a\r\n.a\r\n\r\n.\r\n", 9},
		{"a\n.\n\r\n.\r\n", 6},
	}
	for _, c := range cases {
		for _, one := range []bool{false, true} {
			var src io.Reader = strings.NewReader(c.in + "NEXT\r\n")
			if one {
				src = iotest.OneByteReader(src)
			}
			r := bufio.NewReaderSize(src, 16)
			n, err := readData(r)
			if err != nil || n != c.want {
				t.Errorf("readData(%q), one byte a read %v = %d, %v; want %d", c.in, one, n, err, c.want)
				continue
			}
			if rest, _ := io.ReadAll(r); string(rest) != "NEXT\r\n" {
				t.Errorf("readData(%q) left %q, want the next command", c.in, rest)
			}
		}
	}
	if _, err := readData(bufio.NewReader(strings.NewReader("a\r\n.\r"))); err != io.ErrUnexpectedEOF {
		t.Errorf("readData of a cut message: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestServer_AcceptsNetSMTPMessages(t *testing.T) {
	s := newServer(t, Config{})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("test.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "CHUNKING", "8BITMIME", "SIZE"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not offered", ext)
		}
	}
	body := "Subject: x\r\n\r\n.leading dot\r\nline\r\n"
	for range 3 {
		if err := c.Mail("a@example.com"); err != nil {
			t.Fatal(err)
		}
		for _, r := range []string{"b@example.com", "c@example.com"} {
			if err := c.Rcpt(r); err != nil {
				t.Fatal(err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Reset(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if s.Messages() != 3 || s.Recipients() != 6 {
		t.Errorf("%d messages, %d recipients; want 3, 6", s.Messages(), s.Recipients())
	}
	if want := int64(3 * (len(body) + 1)); s.Octets() != want { // +1: the stuffed dot
		t.Errorf("%d octets, want %d", s.Octets(), want)
	}
}

// session dials s and reads the greeting.
func session(t *testing.T, s *Server) (net.Conn, *textproto.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := textproto.NewReader(bufio.NewReader(c))
	if _, _, err := r.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	return c, r
}

func expect(t *testing.T, r *textproto.Reader, codes ...int) {
	t.Helper()
	for _, code := range codes {
		if got, msg, err := r.ReadResponse(code); err != nil {
			t.Fatalf("reply %d %q, want %d: %v", got, msg, code, err)
		}
	}
}

func TestServer_RepliesToAPipelinedGroupInOneWrite(t *testing.T) {
	s := newServer(t, Config{})
	c, r := session(t, s)
	io.WriteString(c, "EHLO x\r\n")
	expect(t, r, 250)
	s.ResetCounters()
	io.WriteString(c, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n")
	expect(t, r, 250, 250, 250, 354)
	io.WriteString(c, "x\r\n.\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nBDAT 5\r\nhello")
	expect(t, r, 250, 250, 250, 250)
	io.WriteString(c, "BDAT 2 LAST\r\n\r\nQUIT\r\n")
	expect(t, r, 250, 221)
	if f := s.Flushes(); f != 3 {
		t.Errorf("%d flushes for three pipelined groups, want 3", f)
	}
	if s.Messages() != 2 || s.Octets() != 3+7 {
		t.Errorf("%d messages, %d octets; want 2, 10", s.Messages(), s.Octets())
	}
}

func TestServer_RefusesOutOfOrderCommands(t *testing.T) {
	s := newServer(t, Config{Extensions: []string{}})
	c, r := session(t, s)
	io.WriteString(c, "EHLO x\r\nRCPT TO:<b@example.com>\r\nDATA\r\nMAIL FROM:<a@example.com>\r\nMAIL FROM:<a@example.com>\r\nBDAT 3 LAST\r\nabcRSET\r\nNOOP\r\nVRFY x\r\n")
	expect(t, r, 250, 503, 554, 250, 503, 503, 250, 250, 500)
	if s.Messages() != 0 {
		t.Errorf("%d messages accepted, want 0", s.Messages())
	}
	// A line longer than the buffer is refused and the session goes on.
	io.WriteString(c, "NOOP "+strings.Repeat("x", 300<<10)+"\r\nNOOP\r\n")
	expect(t, r, 500, 250)
}

func TestSink_ReadsEverything(t *testing.T) {
	s, err := NewSink()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := []byte(strings.Repeat("0123456789abcdef", 1<<16))
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	ack, err := io.ReadAll(c)
	if err != nil || string(ack) != "ok\n" {
		t.Fatalf("got %q, %v; want ok", ack, err)
	}
	if s.Bytes() != int64(len(data)) {
		t.Errorf("sink read %d bytes, want %d", s.Bytes(), len(data))
	}
}

func BenchmarkServer_DATA(b *testing.B) {
	s, err := NewServer(Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var sb strings.Builder
	for i := 0; sb.Len() < 16<<20; i++ {
		fmt.Fprintf(&sb, "line %d of the message, some text to make it about 76 octets long..\r\n", i)
	}
	msg := sb.String()
	b.SetBytes(int64(len(msg)))
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := textproto.NewReader(bufio.NewReader(c))
	r.ReadResponse(220)
	io.WriteString(c, "EHLO x\r\n")
	r.ReadResponse(250)
	for b.Loop() {
		io.WriteString(c, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
		io.WriteString(c, msg)
		io.WriteString(c, ".\r\n")
		for _, code := range []int{250, 250, 354, 250} {
			if _, _, err := r.ReadResponse(code); err != nil {
				b.Fatal(err)
			}
		}
	}
}
