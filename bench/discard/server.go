// Package discard is a small, fast SMTP server that accepts every message
// and throws it away, for benchmarking clients. It reads pipelined input
// through a buffer and, like real servers, writes its buffered replies only
// when that buffer is empty and it has to wait for more input.
package discard

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// DefaultExtensions are the EHLO keywords a server offers when
// Config.Extensions is nil.
var DefaultExtensions = []string{"PIPELINING", "CHUNKING", "8BITMIME", "SIZE 1073741824"}

// Config configures a Server.
type Config struct {
	// Extensions are the EHLO keywords (with parameters) offered; nil
	// means DefaultExtensions. BDAT is accepted whether or not CHUNKING
	// is offered.
	Extensions []string
	// ReadBuffer is the size of a conn's input buffer; 0 means 256 KiB.
	ReadBuffer int
}

// A Server is a discarding SMTP server on a loopback port.
type Server struct {
	// Addr is the address ("127.0.0.1:port") the server listens on.
	Addr string

	ln      net.Listener
	ehlo    []byte
	bufSize int

	messages, recipients, octets, flushes atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewServer starts a Server on 127.0.0.1 (a free port).
func NewServer(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	exts := cfg.Extensions
	if exts == nil {
		exts = DefaultExtensions
	}
	ehlo := []byte("250 discard.example\r\n")
	if len(exts) > 0 {
		ehlo[3] = '-'
	}
	for i, e := range exts {
		sep := byte('-')
		if i == len(exts)-1 {
			sep = ' '
		}
		ehlo = append(ehlo, '2', '5', '0', sep)
		ehlo = append(ehlo, e...)
		ehlo = append(ehlo, '\r', '\n')
	}
	s := &Server{
		Addr:    ln.Addr().String(),
		ln:      ln,
		ehlo:    ehlo,
		bufSize: cfg.ReadBuffer,
		conns:   make(map[net.Conn]struct{}),
	}
	if s.bufSize <= 0 {
		s.bufSize = 256 << 10
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Messages returns how many messages were accepted (a "." or BDAT LAST
// answered with 250).
func (s *Server) Messages() int64 { return s.messages.Load() }

// Recipients returns how many RCPT commands were accepted.
func (s *Server) Recipients() int64 { return s.recipients.Load() }

// Octets returns the message octets received: with DATA as on the wire
// (dot-stuffed, without the final "."), with BDAT the chunks' sizes.
func (s *Server) Octets() int64 { return s.octets.Load() }

// Flushes returns how many times replies were written to the network.
func (s *Server) Flushes() int64 { return s.flushes.Load() }

// ResetCounters sets the counters to zero.
func (s *Server) ResetCounters() {
	s.messages.Store(0)
	s.recipients.Store(0)
	s.octets.Store(0)
	s.flushes.Store(0)
}

// Close stops the server, closes its connections and waits for them.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// flushReader writes the buffered replies before every read from the
// connection: bufio.Reader reads only when its buffer is empty (or holds
// only an incomplete line), so replies go out when the server is about to
// wait for the client, in one write per pipelined group.
type flushReader struct {
	c net.Conn
	w *bufio.Writer
	s *Server
}

func (f flushReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		f.s.flushes.Add(1)
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.c.Read(p)
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its line ending. Lines over the
// buffer's size are an error.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if err == bufio.ErrBufferFull {
			return nil, errLineTooLong
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// verb returns the command word of line in upper case.
func verb(line []byte) string {
	n := bytes.IndexByte(line, ' ')
	if n < 0 {
		n = len(line)
	}
	if n > 8 {
		return ""
	}
	var b [8]byte
	for i := range n {
		c := line[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	return string(b[:n])
}

func (s *Server) serve(c net.Conn) {
	w := bufio.NewWriterSize(c, 4096)
	ss := &conn{s: s, w: w, r: bufio.NewReaderSize(flushReader{c, w, s}, s.bufSize)}
	w.WriteString("220 discard.example ESMTP\r\n")
	for {
		line, err := readLine(ss.r)
		if err == errLineTooLong {
			// Skip to the end of the line.
			for err == errLineTooLong {
				_, err = readLine(ss.r)
			}
			if err != nil {
				return
			}
			w.WriteString("500 Line too long\r\n")
			continue
		}
		if err != nil || !ss.command(line) {
			return
		}
	}
}

// A conn is the state of one connection.
type conn struct {
	s     *Server
	w     *bufio.Writer
	r     *bufio.Reader
	inTx  bool
	rcpts int
}

// command answers one command line; false ends the conn.
func (ss *conn) command(line []byte) bool {
	w := ss.w
	switch verb(line) {
	case "EHLO":
		ss.inTx, ss.rcpts = false, 0
		w.Write(ss.s.ehlo)
	case "HELO":
		ss.inTx, ss.rcpts = false, 0
		w.WriteString("250 discard.example\r\n")
	case "MAIL":
		if ss.inTx {
			w.WriteString("503 Nested MAIL command\r\n")
			break
		}
		ss.inTx, ss.rcpts = true, 0
		w.WriteString("250 Ok\r\n")
	case "RCPT":
		if !ss.inTx {
			w.WriteString("503 Need MAIL command\r\n")
			break
		}
		ss.rcpts++
		ss.s.recipients.Add(1)
		w.WriteString("250 Ok\r\n")
	case "DATA":
		return ss.data()
	case "BDAT":
		return ss.bdat(line)
	case "RSET":
		ss.inTx, ss.rcpts = false, 0
		w.WriteString("250 Ok\r\n")
	case "NOOP":
		w.WriteString("250 Ok\r\n")
	case "QUIT":
		w.WriteString("221 Bye\r\n")
		ss.s.flushes.Add(1)
		w.Flush()
		return false
	default:
		w.WriteString("500 Unknown command\r\n")
	}
	return true
}

// data takes a message after DATA; false ends the conn.
func (ss *conn) data() bool {
	if ss.rcpts == 0 {
		ss.w.WriteString("554 No valid recipients\r\n")
		return true
	}
	ss.w.WriteString("354 End data with <CR><LF>.<CR><LF>\r\n")
	n, err := readData(ss.r)
	if err != nil {
		return false
	}
	ss.s.octets.Add(n)
	ss.s.messages.Add(1)
	ss.inTx, ss.rcpts = false, 0
	ss.w.WriteString("250 Ok: queued\r\n")
	return true
}

// bdat takes one chunk; false ends the conn.
func (ss *conn) bdat(line []byte) bool {
	size, last, ok := parseBDAT(line)
	if !ok {
		// The chunk's size is unknown: the conn cannot go on.
		ss.w.WriteString("501 Syntax: BDAT size [LAST]\r\n")
		ss.w.Flush()
		return false
	}
	if _, err := ss.r.Discard(int(size)); err != nil {
		return false
	}
	ss.s.octets.Add(size)
	switch {
	case ss.rcpts == 0:
		ss.w.WriteString("503 No valid recipients\r\n")
	case last:
		ss.s.messages.Add(1)
		ss.inTx, ss.rcpts = false, 0
		ss.w.WriteString("250 Ok: queued\r\n")
	default:
		ss.w.WriteString("250 Ok: " + strconv.FormatInt(size, 10) + " octets received\r\n")
	}
	return true
}

// parseBDAT parses "BDAT size [LAST]".
func parseBDAT(line []byte) (size int64, last bool, ok bool) {
	f := bytes.Fields(line)
	if len(f) < 2 || len(f) > 3 {
		return 0, false, false
	}
	size, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || size < 0 || size > 1<<40 {
		return 0, false, false
	}
	if len(f) == 3 {
		if !bytes.EqualFold(f[2], []byte("LAST")) {
			return 0, false, false
		}
		last = true
	}
	return size, last, true
}

var crlfDot = []byte("\r\n.")

// readData consumes the text of a message after DATA up to and including
// the line ".", and returns the octets before that line. It looks for
// CR LF "." CR LF, the first CR LF being the end of the DATA command's line,
// with a small automaton that jumps from one line starting with "." to the
// next.
func readData(r *bufio.Reader) (int64, error) {
	state := 2 // "\r\n" of the DATA line already seen
	var n int64
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
		}
		buf, _ := r.Peek(r.Buffered())
		i := 0
		for i < len(buf) {
			if state == 0 {
				// Lines that start with "." are rare: jump to the next.
				j := bytes.Index(buf[i:], crlfDot)
				if j >= 0 {
					i += j + len(crlfDot)
					state = 3
					continue
				}
				// Not here; the buffer may end in part of one.
				i = len(buf)
				switch {
				case bytes.HasSuffix(buf, crlfDot[:2]):
					state = 2
				case buf[len(buf)-1] == '\r':
					state = 1
				}
				break
			}
			c := buf[i]
			i++
			switch state {
			case 1: // CR
				state = 0
				if c == '\n' {
					state = 2
				}
			case 2: // CR LF
				state = 0
				if c == '.' {
					state = 3
				}
			case 3: // CR LF .
				state = 0
				if c == '\r' {
					state = 4
				}
			case 4: // CR LF . CR
				if c == '\n' {
					r.Discard(i)
					return n + int64(i) - 3, nil
				}
				state = 0
			}
			if state == 0 && c == '\r' {
				state = 1
			}
		}
		r.Discard(i)
		n += int64(i)
	}
}
