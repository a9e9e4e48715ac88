package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/scriptpeer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hostile-server table: raw TCP peers that do what internal/smtptest
// cannot (endless or enormous replies, replies that never come, broken
// grammar, unsolicited replies, bad restart offsets, absurd SIZE values,
// 421 and TCP resets at every step, a peer that stops reading). Every case
// must end in a typed error (or, where a careful client carries on, in
// success) within the configured deadline, with no more than 1 MiB of
// client heap left behind, no goroutine left running, and no panic.

// hostileT is the timeout every step of the Client gets in the table.
const hostileT = 300 * time.Millisecond

// hostileSlack is what a case may take beyond its timeouts (scheduling on 2
// cores, -race).
const hostileSlack = 1500 * time.Millisecond

// A hostileServer is a scriptpeer.Listener whose handlers also record the
// messages they answered 250.
type hostileServer struct {
	*scriptpeer.Listener

	mu        sync.Mutex
	delivered []int64 // canonical sizes of the messages answered 250
}

// A hostileConn is the server's side of one connection.
type hostileConn struct {
	*scriptpeer.Conn
	s *hostileServer
}

// hostileBuffer is the socket buffer size of the cases with small buffers,
// so that a peer that stops reading stops the client's writes after a few
// KiB, not after the megabytes loopback buffers can grow to.
const hostileBuffer = 8 << 10

func startHostile(t *testing.T, small bool, handler func(h *hostileConn)) *hostileServer {
	t.Helper()
	buffer := 0
	if small {
		buffer = hostileBuffer
	}
	s := &hostileServer{}
	s.Listener = scriptpeer.Listen(t, buffer, func(c *scriptpeer.Conn) { handler(&hostileConn{Conn: c, s: s}) })
	return s
}

func (s *hostileServer) deliveries() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.delivered...)
}

// send writes s and CRLF in one write; s may hold several lines.
func (h *hostileConn) send(s string) error {
	_, err := io.WriteString(h, s+"\r\n")
	return err
}

// line reads one command line without its line ending; a line longer than
// the buffer is cut, its rest discarded.
func (h *hostileConn) line() (string, error) {
	b, err := h.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s := string(b)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = h.R.ReadSlice('\n')
		}
		return s, err
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// reset aborts the connection: SO_LINGER 0, then close sends a TCP RST.
func (h *hostileConn) reset() {
	if tc, ok := h.Conn.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	h.Close()
}

// stall neither reads nor writes until the server is closed.
func (h *hostileConn) stall() { <-h.Stop }

// readData reads message data up to the lone ".", undoing dot-stuffing, and
// returns the canonical octets.
func (h *hostileConn) readData() (int64, error) {
	var n int64
	bol := true
	for {
		b, err := h.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
		if bol && string(b) == ".\r\n" {
			return n, nil
		}
		if bol && len(b) > 0 && b[0] == '.' {
			b = b[1:]
		}
		n += int64(len(b))
		bol = err == nil
	}
}

// A hostileAct replaces the server's normal reply at one step; normal is
// the reply it would have sent. It reports whether the conversation goes
// on.
type hostileAct func(h *hostileConn, normal string) bool

// hostilePeer is a small SMTP server that misbehaves at chosen steps: acts
// maps a step ("GREETING", "EHLO", "MAIL", "RCPT", "DATA" (its 354), "."
// (the reply after the data), "BDAT", "RSET", "NOOP", "QUIT"), to what it
// does instead; "n:STEP" applies on the n-th connection only, "STEP#k" at
// the k-th occurrence of the step only. Each act fires once per connection,
// at the first occurrence it matches.
type hostilePeer struct {
	ext  []string
	acts map[string]hostileAct
}

func (p hostilePeer) serve(h *hostileConn) {
	fired := map[string]bool{}
	seen := map[string]int{}
	// step sends the reply of a step, or runs its act; acted reports that
	// the act ran.
	step := func(name, normal string) (cont, acted bool) {
		seen[name]++
		nth := name + "#" + strconv.Itoa(seen[name])
		conn := strconv.Itoa(h.N) + ":"
		for _, key := range []string{conn + nth, nth, conn + name, name} {
			if act, ok := p.acts[key]; ok && !fired[key] {
				fired[key] = true
				return act(h, normal), true
			}
		}
		return h.send(normal) == nil, false
	}
	if cont, _ := step("GREETING", "220 hostile.example ESMTP"); !cont {
		return
	}
	var chunked int64
	for {
		line, err := h.line()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var cont, acted bool
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"hostile.example"}
			lines = append(lines, p.ext...)
			var b strings.Builder
			for i, l := range lines {
				if i == len(lines)-1 {
					b.WriteString("250 " + l)
				} else {
					b.WriteString("250-" + l + "\r\n")
				}
			}
			cont, _ = step("EHLO", b.String())
		case "HELO":
			cont, _ = step("EHLO", "250 hostile.example")
		case "MAIL":
			chunked = 0
			cont, _ = step("MAIL", "250 2.1.0 ok")
		case "RCPT":
			cont, _ = step("RCPT", "250 2.1.5 ok")
		case "DATA":
			if cont, _ = step("DATA", "354 go ahead"); !cont {
				return
			}
			n, err := h.readData()
			if err != nil {
				return
			}
			if cont, acted = step(".", "250 2.0.0 queued"); cont && !acted {
				h.s.mu.Lock()
				h.s.delivered = append(h.s.delivered, n)
				h.s.mu.Unlock()
			}
		case "BDAT":
			f := strings.Fields(arg)
			if len(f) == 0 {
				return
			}
			size, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return
			}
			if _, err := io.CopyN(io.Discard, h.R, size); err != nil {
				return
			}
			chunked += size
			last := len(f) > 1 && strings.EqualFold(f[1], "LAST")
			if cont, acted = step("BDAT", "250 2.0.0 ok"); cont && !acted && last {
				h.s.mu.Lock()
				h.s.delivered = append(h.s.delivered, chunked)
				h.s.mu.Unlock()
			}
		case "RSET":
			chunked = 0
			cont, _ = step("RSET", "250 2.0.0 ok")
		case "NOOP":
			cont, _ = step("NOOP", "250 2.0.0 ok")
		case "QUIT":
			step("QUIT", "221 2.0.0 bye")
			return
		default:
			cont = h.send("502 5.5.2 unknown command") == nil
		}
		if !cont {
			return
		}
	}
}

// Acts.

func hReply(s string) hostileAct {
	return func(h *hostileConn, _ string) bool { return h.send(s) == nil }
}

// hReplyClose sends s and closes the connection (FIN), as a server that
// shuts down with 421 does (RFC 5321 §3.8).
func hReplyClose(s string) hostileAct {
	return func(h *hostileConn, _ string) bool {
		h.send(s)
		h.Close()
		return false
	}
}

// hReset aborts the connection with a TCP RST instead of replying.
func hReset(h *hostileConn, _ string) bool { h.reset(); return false }

// hSilent never replies, and reads nothing more.
func hSilent(h *hostileConn, _ string) bool { h.stall(); return false }

// hDeafAfter replies normally, then never reads again.
func hDeafAfter(h *hostileConn, normal string) bool {
	if h.send(normal) == nil {
		h.stall()
	}
	return false
}

// hCutData answers DATA with 354, reads n octets of data and resets.
func hCutData(n int64) hostileAct {
	return func(h *hostileConn, normal string) bool {
		if h.send(normal) == nil {
			io.CopyN(io.Discard, h.R, n)
		}
		h.reset()
		return false
	}
}

// hStream writes prefix, then unit over and over until total octets of it
// have gone (forever if total < 0), then suffix, pausing every between
// units when it is not zero. It stops at the first failed write.
func hStream(prefix, unit string, total int64, suffix string, every time.Duration) hostileAct {
	return func(h *hostileConn, _ string) bool {
		if _, err := io.WriteString(h.Conn, prefix); err != nil {
			return false
		}
		var buf []byte
		if every > 0 {
			buf = []byte(unit)
		} else {
			buf = bytes.Repeat([]byte(unit), max(1, (64<<10)/len(unit)))
		}
		for sent := int64(0); total < 0 || sent < total; {
			b := buf
			if total >= 0 && int64(len(b)) > total-sent {
				b = b[:total-sent]
			}
			if _, err := h.Conn.Write(b); err != nil {
				return false
			}
			sent += int64(len(b))
			if every > 0 {
				select {
				case <-h.Stop:
					return false
				case <-time.After(every):
				}
			}
		}
		_, err := io.WriteString(h.Conn, suffix)
		return err == nil
	}
}

// hostileBody generates n octets of CRLF text (every seventh line starts
// with a dot) without holding them: the client reads it as it goes.
type hostileBody struct {
	n, off int64
}

const hostileLine = "0123456789 the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n"

func (b *hostileBody) Read(p []byte) (int, error) {
	if b.off >= b.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), b.n-b.off)]
	for i := range p {
		o := (b.off + int64(i)) % int64(len(hostileLine))
		c := hostileLine[o]
		if o == 0 && (b.off+int64(i))/int64(len(hostileLine))%7 == 0 {
			c = '.'
		}
		p[i] = c
	}
	b.off += int64(len(p))
	return len(p), nil
}

func hostileMsg(lines int) (io.Reader, int64) {
	n := int64(lines * len(hostileLine))
	return &hostileBody{n: n}, n
}

// hostileSmallDialer dials with a small send buffer (see hostileBuffer).
type hostileSmallDialer struct{}

func (hostileSmallDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetWriteBuffer(hostileBuffer)
	}
	return conn, err
}

// hostileEnv is what an action gets.
type hostileEnv struct {
	addr     string
	d        *Dialer
	ctx      context.Context
	problems []string
	// successes counts the messages the client reported delivered; the
	// server must have taken at least as many.
	successes int
	// refused counts the 355 offsets a Courier refused (RSET, then the
	// whole message).
	refused int
}

func (e *hostileEnv) problem(format string, args ...any) {
	e.problems = append(e.problems, fmt.Sprintf(format, args...))
}

type hostileAction struct {
	name string
	run  func(e *hostileEnv) error
}

func actDial() hostileAction {
	return hostileAction{"Dial", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err == nil {
			c.Close()
		} else if c != nil {
			e.problem("Dial returned a Client with an error")
		}
		return err
	}}
}

// actNoop dials and sends NOOP times NOOPs; after a connection failure the
// Client must be closed for good (ErrClosed).
func actNoop(times int) hostileAction {
	return hostileAction{"Noop", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < times; i++ {
			if err = c.NoopContext(e.ctx); err != nil {
				break
			}
		}
		var re *Error
		if err != nil && !errors.As(err, &re) {
			if again := c.NoopContext(context.Background()); !errors.Is(again, ErrClosed) {
				e.problem("after %v, Noop returned %v, not ErrClosed", err, again)
			}
		}
		return err
	}}
}

func actQuit() hostileAction {
	return hostileAction{"Quit", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.QuitContext(e.ctx)
	}}
}

func hostileRcpts(n int) []Recipient {
	to := make([]Recipient, n)
	for i := range to {
		to[i].Addr = fmt.Sprintf("recipient-with-a-long-name-%06d@example.com", i)
	}
	return to
}

// actSend dials, sends one message of lines lines to rcpts recipients
// (declaring its size when declare is set), then QUIT.
func actSend(lines, rcpts int, declare bool) hostileAction {
	return hostileAction{"Send", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		body, n := hostileMsg(lines)
		env := &Envelope{From: "a@example.org", To: hostileRcpts(rcpts)}
		if declare {
			env.Size = n
		}
		res, err := c.Send(e.ctx, env, body)
		if err != nil {
			return err
		}
		if res == nil || res.Reply == nil || res.Accepted() != rcpts {
			e.problem("Send succeeded without a final reply for every recipient: %+v", res)
		}
		e.successes++
		return c.QuitContext(e.ctx)
	}}
}

// actBatch sends msgs messages in a Batch and quits. Every message must be
// reported exactly once, by Send's error or by its done function, and a
// broken connection must not be reported as a delivery.
func actBatch(msgs int) hostileAction {
	return hostileAction{"Batch", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := c.NewBatch(e.ctx)
		if err != nil {
			return err
		}
		reported := make([]int, msgs)
		var first error
		sent := 0
		for i := 0; i < msgs; i++ {
			body, _ := hostileMsg(200)
			i := i
			err := b.Send(&Envelope{From: "a@example.org", To: hostileRcpts(2)}, body, func(r *Result, err error) {
				reported[i]++
				if err == nil {
					e.successes++
				} else if first == nil {
					first = err
				}
			})
			if err != nil {
				reported[i]++
				if first == nil {
					first = err
				}
				break
			}
			sent++
		}
		qerr := b.Quit()
		for i := 0; i < sent+1 && i < msgs; i++ {
			if i < sent && reported[i] != 1 || i == sent && reported[i] > 1 {
				e.problem("message %d reported %d times", i, reported[i])
			}
		}
		if first == nil {
			first = qerr
		}
		return first
	}}
}

// actBatchPause sends a message in a Batch, waits pause (as a caller
// producing the next message may), sends one to rcpts recipients, and
// quits; against a healthy server everything must succeed.
func actBatchPause(pause time.Duration, rcpts int) hostileAction {
	return hostileAction{"Batch+pause", func(e *hostileEnv) error {
		c, err := e.d.Dial(e.ctx, e.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := c.NewBatch(e.ctx)
		if err != nil {
			return err
		}
		var first error
		done := func(_ *Result, err error) {
			if err == nil {
				e.successes++
			} else if first == nil {
				first = err
			}
		}
		body, _ := hostileMsg(1300) // 100 KiB: data reaches the network
		if err := b.Send(&Envelope{From: "a@example.org", To: hostileRcpts(1)}, body, done); err != nil {
			b.Close()
			return err
		}
		time.Sleep(pause)
		body, _ = hostileMsg(10)
		if err := b.Send(&Envelope{From: "a@example.org", To: hostileRcpts(rcpts)}, body, done); err != nil {
			b.Close()
			return err
		}
		if err := b.Quit(); err != nil {
			return err
		}
		return first
	}}
}

// actCourier sends one message with a Courier (RFC 1845 restarts), two
// attempts at most.
func actCourier(lines int) hostileAction {
	return hostileAction{"Courier.Send", func(e *hostileEnv) error {
		body, _ := hostileMsg(lines)
		d := *e.d
		d.Trace = &ClientTrace{Resumed: func(_ int64, err error) {
			if err != nil {
				e.refused++
			}
		}}
		k := &Courier{Dialer: &d, RetryDelay: time.Millisecond, Attempts: 2}
		_, err := k.Send(e.ctx, []string{e.addr}, &Envelope{From: "a@example.org", To: hostileRcpts(1)}, body)
		if err == nil {
			e.successes++
		}
		return err
	}}
}

// actSendMail is net/smtp's SendMail (default timeouts: only for cases that
// end by themselves).
func actSendMail() hostileAction {
	return hostileAction{"SendMail", func(e *hostileEnv) error {
		return SendMail(e.addr, nil, "a@example.org", []string{"b@example.com"}, []byte("Subject: x\r\n\r\nhi\r\n"))
	}}
}

// hostileKind names the class of err for the table.
func hostileKind(err error) string {
	var pe *protoError
	var tpe textproto.ProtocolError
	var re *Error
	var ne net.Error
	switch {
	case err == nil:
		return "nil"
	case errors.As(err, &pe) && errors.Is(err, ErrReplyTooLong):
		return "protoError/ErrReplyTooLong"
	case errors.As(err, &pe) && errors.Is(err, ErrReplyTooLong):
		return "protoError/ErrReplyTooLong"
	case errors.As(err, &pe):
		return "protoError"
	case errors.As(err, &tpe):
		// What the net/smtp-named calls return for a malformed reply,
		// as net/smtp does.
		if strings.Contains(string(tpe), "exceeds the length limit") {
			return "textproto.ProtocolError/limit"
		}
		return "textproto.ProtocolError"
	case errors.As(err, &re):
		return "Error " + strconv.Itoa(re.Code)
	case errors.Is(err, ErrMessageTooLarge):
		return "ErrMessageTooLarge"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return "reset"
	case errors.Is(err, net.ErrClosed):
		return "net.ErrClosed"
	}
	return fmt.Sprintf("untyped %T", err)
}

type hostileCase struct {
	name   string
	peer   hostilePeer
	raw    func(h *hostileConn) // instead of peer
	action hostileAction
	want   []string // acceptable hostileKind values
	// steps is how many timeouts may run out one after the other (0: 1).
	steps int
	// allocCap, if not zero, bounds the octets the whole case may allocate:
	// proof that a stream is not buffered.
	allocCap uint64
	// delivered, if not zero, is the size of the one message the server
	// must have taken.
	delivered int64
	// timeouts replaces the table's Timeouts; ctxTimeout adds a context
	// deadline.
	timeouts   *Timeouts
	ctxTimeout time.Duration
	noDialer   bool // the action does not use the Dialer's Timeouts
	// small gives both ends small socket buffers (see hostileBuffer).
	small bool
	// refused: a Courier must have refused one 355 offset.
	refused bool
}

var (
	hExtPipe  = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"}
	hExtPlain = []string{"8BITMIME"}
	hExtChunk = []string{"PIPELINING", "8BITMIME", "CHUNKING"}
	hExtCkpt  = []string{"PIPELINING", "8BITMIME", "CHECKPOINT"}
)

func hostileCases() []hostileCase {
	protocol := []string{"protoError"}
	lineTooLong := []string{"protoError/ErrReplyTooLong"}
	replyTooLong := []string{"protoError/ErrReplyTooLong"}
	timeout := []string{"timeout"}
	broken := []string{"EOF", "reset"}
	ok := []string{"nil"}
	peer := func(ext []string, acts map[string]hostileAct) hostilePeer { return hostilePeer{ext: ext, acts: acts} }
	on := func(step string, act hostileAct) map[string]hostileAct { return map[string]hostileAct{step: act} }
	tenMiB := int64(10 << 20)

	cases := []hostileCase{
		// Enormous and endless replies.
		{name: "10 MiB greeting line", peer: peer(hExtPipe, on("GREETING", hStream("220 ", "x", tenMiB, "\r\n", 0))),
			action: actDial(), want: lineTooLong, allocCap: 4 << 20},
		{name: "10 MiB reply line to NOOP", peer: peer(hExtPipe, on("NOOP", hStream("250 ", "x", tenMiB, "\r\n", 0))),
			action: actNoop(1), want: lineTooLong, allocCap: 4 << 20},
		{name: "10 MiB reply line to MAIL (pump)", peer: peer(hExtPipe, on("MAIL", hStream("250 ", "x", tenMiB, "\r\n", 0))),
			action: actSend(10, 1, false), want: lineTooLong, allocCap: 4 << 20},
		{name: "million continuation lines to EHLO", peer: peer(hExtPipe, on("EHLO", hStream("", "250-x\r\n", 7_000_000, "250 end\r\n", 0))),
			action: actDial(), want: replyTooLong, allocCap: 4 << 20},
		{name: "million continuation lines to RCPT (pump)", peer: peer(hExtPipe, on("RCPT", hStream("", "250-x\r\n", 7_000_000, "250 end\r\n", 0))),
			action: actSend(10, 1, false), want: replyTooLong, allocCap: 4 << 20},
		{name: "continuation lines forever, slowly", peer: peer(hExtPipe, on("NOOP", hStream("", "250-x\r\n", -1, "", 5*time.Millisecond))),
			action: actNoop(1), want: timeout},
		{name: "continuation lines forever to DATA (pump)", peer: peer(hExtPipe, on("DATA", hStream("", "354-x\r\n", -1, "", 5*time.Millisecond))),
			action: actSend(10, 1, false), want: timeout},
		{name: "a line that never ends", peer: peer(hExtPipe, on("NOOP", hStream("250 ", "x", -1, "", 10*time.Millisecond))),
			action: actNoop(1), want: timeout},

		// Replies that never come.
		{name: "greeting never comes", peer: peer(hExtPipe, on("GREETING", hSilent)), action: actDial(), want: timeout},
		{name: "greeting never comes, context deadline", peer: peer(hExtPipe, on("GREETING", hSilent)), action: actDial(),
			// The read deadline is the context's deadline: whichever
			// fires first names the error.
			want: []string{"context.DeadlineExceeded", "timeout"}, timeouts: &Timeouts{}, ctxTimeout: hostileT},
		{name: "EHLO never answered", peer: peer(hExtPipe, on("EHLO", hSilent)), action: actDial(), want: timeout},
		{name: "NOOP never answered", peer: peer(hExtPipe, on("NOOP", hSilent)), action: actNoop(1), want: timeout},
		{name: "RCPT never answered (pump)", peer: peer(hExtPipe, on("RCPT", hSilent)), action: actSend(10, 1, false), want: timeout},
		{name: "final reply never comes", peer: peer(hExtPipe, on(".", hSilent)), action: actSend(10, 1, false), want: timeout},
		{name: "final reply never comes (Batch)", peer: peer(hExtPipe, on(".", hSilent)), action: actBatch(3), want: timeout},
		{name: "BDAT never answered", peer: peer(hExtChunk, on("BDAT", hSilent)), action: actSend(1000, 1, false), want: timeout},

		// Broken grammar.
		{name: "code changes mid-reply", peer: peer(hExtPipe, on("NOOP", hReply("250-a\r\n550 b"))), action: actNoop(1), want: protocol},
		{name: "code changes mid-reply (pump)", peer: peer(hExtPipe, on("MAIL", hReply("250-a\r\n550 b"))), action: actSend(10, 1, false), want: protocol},
		{name: "code changes mid-EHLO", peer: peer(hExtPipe, on("EHLO", hReply("250-a\r\n251 b"))), action: actDial(), want: protocol},
		{name: `invalid code "abc"`, peer: peer(hExtPipe, on("NOOP", hReply("abc"))), action: actNoop(1), want: protocol},
		{name: `invalid code "199 x"`, peer: peer(hExtPipe, on("NOOP", hReply("199 x"))), action: actNoop(1), want: protocol},
		{name: `invalid code "600 x"`, peer: peer(hExtPipe, on("NOOP", hReply("600 x"))), action: actNoop(1), want: protocol},
		{name: `invalid code "2500 x"`, peer: peer(hExtPipe, on("NOOP", hReply("2500 x"))), action: actNoop(1), want: protocol},
		{name: `short line "25"`, peer: peer(hExtPipe, on("NOOP", hReply("25"))), action: actNoop(1), want: protocol},
		{name: "empty line", peer: peer(hExtPipe, on("NOOP", hReply(""))), action: actNoop(1), want: protocol},
		{name: `invalid greeting "220x"`, peer: peer(hExtPipe, on("GREETING", hReply("220x hi"))), action: actDial(), want: protocol},
		{name: `NUL in code "25\x00 x"`, peer: peer(hExtPipe, on("NOOP", hReply("25\x00 x"))), action: actNoop(1), want: protocol},
		{name: "NUL in text", peer: peer(hExtPipe, on("NOOP", hReply("250 o\x00k"))), action: actNoop(1), want: protocol},
		{name: "NUL in greeting", peer: peer(hExtPipe, on("GREETING", hReply("220 \x00\x00\x00"))), action: actDial(), want: protocol},
		{name: "NUL in RCPT reply (pump)", peer: peer(hExtPipe, on("RCPT", hReply("250 \x00"))), action: actSend(10, 1, false), want: protocol},
		{name: "bare CR in reply", peer: peer(hExtPipe, on("NOOP", hReply("250 a\rb"))), action: actNoop(1), want: protocol},
		{name: "invalid code, SendMail", peer: peer(hExtPipe, on("MAIL", hReply("abc"))), action: actSendMail(), want: []string{"textproto.ProtocolError"}, noDialer: true},
		{name: "10 MiB line, SendMail", peer: peer(hExtPipe, on("EHLO", hStream("250 ", "x", tenMiB, "\r\n", 0))),
			action: actSendMail(), want: []string{"textproto.ProtocolError/limit"}, noDialer: true, allocCap: 4 << 20},

		// Replies to commands never sent.
		{name: "unsolicited reply with the greeting", peer: peer(hExtPipe, on("GREETING", hReply("220 hi\r\n250 extra"))),
			action: actDial(), want: protocol},
		{name: "unsolicited reply after EHLO", peer: peer(hExtPipe, on("EHLO", hReply("250-hostile.example\r\n250 PIPELINING\r\n250 extra"))),
			action: actNoop(1), want: protocol},
		{name: "NOOP answered twice", peer: peer(hExtPipe, on("NOOP", hReply("250 ok\r\n250 extra"))), action: actNoop(2), want: protocol},
		{name: "reply before the greeting", peer: peer(hExtPipe, on("GREETING", hReply("250 extra\r\n220 hi"))),
			action: actDial(), want: []string{"Error 250", "protoError"}},
		{name: "MAIL answered twice (pump)", peer: peer(hExtPipe, on("MAIL", hReply("250 ok\r\n250 extra"))),
			action: actSend(10, 1, false), want: []string{"Error 250", "protoError"}},
		{name: "MAIL answered twice (no pipelining)", peer: peer(hExtPlain, on("MAIL", hReply("250 ok\r\n250 extra"))),
			action: actSend(10, 1, false), want: protocol},

		// SIZE (RFC 1870): a value that cannot be read is no limit, a huge
		// one a limit the message cannot reach; the message goes out.
		{name: "SIZE 99999999999999999999", peer: peer([]string{"PIPELINING", "SIZE 99999999999999999999"}, nil),
			action: actSend(100, 1, true), want: ok, delivered: 100 * int64(len(hostileLine))},
		{name: "SIZE 9223372036854775807", peer: peer([]string{"PIPELINING", "SIZE 9223372036854775807"}, nil),
			action: actSend(100, 1, true), want: ok, delivered: 100 * int64(len(hostileLine))},
		{name: "SIZE -5", peer: peer([]string{"PIPELINING", "SIZE -5"}, nil),
			action: actSend(100, 1, true), want: ok, delivered: 100 * int64(len(hostileLine))},
		{name: "SIZE x", peer: peer([]string{"PIPELINING", "SIZE x"}, nil),
			action: actSend(100, 1, true), want: ok, delivered: 100 * int64(len(hostileLine))},
		{name: "SIZE with 10 KiB of digits", peer: peer([]string{"PIPELINING", "SIZE " + strings.Repeat("9", 10<<10)}, nil),
			action: actSend(100, 1, true), want: ok, delivered: 100 * int64(len(hostileLine))},
		{name: "SIZE 10 (control: a real limit)", peer: peer([]string{"PIPELINING", "SIZE 10"}, nil),
			action: actSend(100, 1, true), want: []string{"ErrMessageTooLarge"}},
	}

	// RFC 1845: the first connection is cut during the data, the second
	// answers the restart's MAIL with an offset the message cannot have.
	// A careful client sends RSET and the whole message again.
	const ckLines = 1000 // 78 000 octets
	for _, bad := range []string{"355 99999999999 octets", "355 7 not at a line start", "355 78001 one past the end",
		"355 -5", "355 99999999999999999999999", "355", "355 x"} {
		cases = append(cases, hostileCase{name: "Courier, restart answered " + strconv.Quote(bad),
			peer:   peer(hExtCkpt, map[string]hostileAct{"1:DATA": hCutData(30000), "2:MAIL": hReply(bad)}),
			action: actCourier(ckLines), want: ok, delivered: ckLines * int64(len(hostileLine)), refused: true})
	}
	cases = append(cases,
		hostileCase{name: "Courier, bad 355 then 421 to RSET",
			peer:   peer(hExtCkpt, map[string]hostileAct{"1:DATA": hCutData(30000), "2:MAIL": hReply("355 7"), "2:RSET": hReplyClose("421 4.3.2 bye")}),
			action: actCourier(ckLines), want: []string{"Error 421"}},
		hostileCase{name: "Courier, BDAT restart answered \"355 78001\"",
			peer: peer(append([]string{"CHUNKING"}, hExtCkpt...), map[string]hostileAct{"1:RCPT": func(h *hostileConn, normal string) bool {
				h.send(normal) // a checkpointed BDAT waits for this (RFC 3030 §2)
				io.CopyN(io.Discard, h.R, 30000)
				h.reset()
				return false
			}, "2:MAIL": hReply("355 78001")}),
			action: actCourier(ckLines), want: ok, delivered: ckLines * int64(len(hostileLine)), refused: true},
		hostileCase{name: "Courier, first MAIL answered \"355 0\"", peer: peer(hExtCkpt, on("MAIL", hReply("355 0"))),
			action: actCourier(ckLines), want: []string{"Error 355"}},
		hostileCase{name: "Courier, cut during the data every time", peer: peer(hExtCkpt, on("DATA", hCutData(30000))),
			action: actCourier(ckLines), want: broken},
		hostileCase{name: "Courier, greeting never comes", peer: peer(hExtCkpt, on("GREETING", hSilent)),
			action: actCourier(ckLines), want: timeout, steps: 2},
		hostileCase{name: "Courier, restart never answered", peer: peer(hExtCkpt, map[string]hostileAct{"1:DATA": hCutData(30000), "2:MAIL": hSilent}),
			action: actCourier(ckLines), want: timeout},
	)

	// 421 and TCP resets at every step, with and without PIPELINING.
	for _, step := range []string{"GREETING", "EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"} {
		for _, ext := range [][]string{hExtPipe, hExtPlain} {
			mode := "pipelined"
			if len(ext) == 1 {
				mode = "one by one"
			}
			// RFC 5321 §3.8: the server says 421 and closes. Whatever
			// the client was still waiting for, the error it returns
			// must carry the 421 (errors.As finds the *Error), not only
			// the EOF or reset that followed.
			want421 := []string{"Error 421"}
			cases = append(cases,
				hostileCase{name: fmt.Sprintf("421 at %s (%s)", step, mode), peer: peer(ext, on(step, hReplyClose("421 4.3.2 shutting down"))),
					action: actSend(10, 2, false), want: want421},
				hostileCase{name: fmt.Sprintf("reset at %s (%s)", step, mode), peer: peer(ext, on(step, hReset)),
					action: actSend(10, 2, false), want: broken},
			)
		}
	}
	cases = append(cases,
		hostileCase{name: "reset mid-data", peer: peer(hExtPipe, on("DATA", hCutData(100000))), action: actSend(20000, 1, false), want: broken},
		hostileCase{name: "reset mid-BDAT", peer: peer(hExtChunk, on("MAIL", func(h *hostileConn, normal string) bool {
			h.send(normal)
			io.CopyN(io.Discard, h.R, 100000)
			h.reset()
			return false
		})), action: actSend(20000, 1, false), want: broken},
		hostileCase{name: "reset at NOOP", peer: peer(hExtPipe, on("NOOP", hReset)), action: actNoop(1), want: broken},
		hostileCase{name: "421 at QUIT (Quit)", peer: peer(hExtPipe, on("QUIT", hReplyClose("421 4.3.2 bye"))), action: actQuit(), want: []string{"Error 421"}},
		hostileCase{name: "reset at QUIT (Quit)", peer: peer(hExtPipe, on("QUIT", hReset)), action: actQuit(), want: broken},
		hostileCase{name: "421 at second MAIL (Batch)", peer: peer(hExtPipe, on("MAIL#2", hReplyClose("421 4.3.2 bye"))),
			action: actBatch(3), want: []string{"Error 421"}},
		hostileCase{name: "reset at final reply (Batch)", peer: peer(hExtPipe, on(".", hReset)), action: actBatch(3), want: broken},
		hostileCase{name: "10 MiB final reply (Batch)", peer: peer(hExtPipe, on(".", hStream("250 ", "x", tenMiB, "\r\n", 0))),
			action: actBatch(3), want: lineTooLong, allocCap: 8 << 20},
		hostileCase{name: "10 MiB reply to BDAT (Batch)", peer: peer(hExtChunk, on("BDAT", hStream("250 ", "x", tenMiB, "\r\n", 0))),
			action: actBatch(3), want: lineTooLong, allocCap: 8 << 20},
	)

	// A server that stops reading while the client writes a large group.
	cases = append(cases,
		// Control: a healthy server, and a caller that pauses longer than
		// DataBlock between two Sends of a Batch; the second one's group
		// overflows the write buffer.
		hostileCase{name: "healthy server, pause between Batch sends", peer: peer(hExtPipe, nil),
			action: actBatchPause(2*hostileT, 1000), want: ok, steps: 2},
		hostileCase{name: "stops reading after EHLO; 20000 RCPTs", small: true, peer: peer(hExtPipe, on("EHLO", hDeafAfter)),
			action: actSend(10, 20000, false), want: timeout},
		hostileCase{name: "stops reading after 354; 50 MiB message", small: true, peer: peer(hExtPipe, on("DATA", hDeafAfter)),
			action: actSend(50<<20/len(hostileLine), 1, false), want: timeout},
		hostileCase{name: "stops reading after EHLO; 50 MiB BDAT", small: true, peer: peer(hExtChunk, on("EHLO", hDeafAfter)),
			action: actSend(50<<20/len(hostileLine), 1, false), want: timeout},
		hostileCase{name: "stops reading after EHLO; Batch of 200", small: true, peer: peer(hExtPipe, on("EHLO", hDeafAfter)),
			action: actBatch(200), want: timeout},
	)
	return cases
}

func TestHostileServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the hostile-server table takes seconds; go test without -short runs it")
	}
	type row struct {
		name, action, kind string
		elapsed            time.Duration
		heap               int64
		alloc              uint64
	}
	var rows []row
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap0, alloc0 := ms.HeapAlloc, ms.TotalAlloc
			goroutines0 := runtime.NumGoroutine()

			handler := tc.raw
			if handler == nil {
				handler = tc.peer.serve
			}
			srv := startHostile(t, tc.small, handler)
			timeouts := Timeouts{Greeting: hostileT, Mail: hostileT, Rcpt: hostileT, DataInit: hostileT, DataBlock: hostileT, DataTerm: hostileT, Command: hostileT}
			if tc.timeouts != nil {
				timeouts = *tc.timeouts
			}
			env := &hostileEnv{addr: srv.Addr, ctx: context.Background(),
				d: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled, Timeouts: withConnect(timeouts, 2*time.Second)}}
			if tc.small {
				env.d.NetDialer = hostileSmallDialer{}
			}
			var cancel context.CancelFunc = func() {}
			if tc.ctxTimeout > 0 {
				env.ctx, cancel = context.WithTimeout(env.ctx, tc.ctxTimeout)
			}
			steps := max(tc.steps, 1)
			budget := time.Duration(steps)*hostileT + hostileSlack

			start := time.Now()
			done := make(chan error, 1)
			var paniced any
			go func() {
				defer func() {
					if p := recover(); p != nil {
						paniced = p
						done <- errors.New("panic")
					}
				}()
				done <- tc.action.run(env)
			}()
			var err error
			hung := false
			select {
			case err = <-done:
			case <-time.After(budget + 5*time.Second):
				// Free the client, then fail the case.
				hung = true
				srv.HangUp()
				select {
				case err = <-done:
				case <-time.After(10 * time.Second):
					require.Failf(t, "hung", "%s did not return, even after the server hung up", tc.action.name)
				}
			}
			elapsed := time.Since(start)
			cancel()
			assert.True(t, srv.Close(), "server goroutines did not end")

			// Goroutines: back to where the case started.
			deadline := time.Now().Add(2 * time.Second)
			for runtime.NumGoroutine() > goroutines0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			goroutines1 := runtime.NumGoroutine()

			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			heap := int64(ms.HeapAlloc) - int64(heap0)
			alloc := ms.TotalAlloc - alloc0

			kind := hostileKind(err)
			if hung {
				kind = "HANG (" + kind + " after the server hung up)"
			}
			rows = append(rows, row{tc.name, tc.action.name, kind, elapsed, heap, alloc})

			if paniced != nil {
				require.Failf(t, "panic", "%v", paniced)
			}
			if hung {
				assert.Failf(t, "hung", "%s did not return within %v; it returned %v once the server hung up", tc.action.name, budget+5*time.Second, err)
			} else if !tc.noDialer {
				assert.LessOrEqual(t, elapsed, budget, "took %v; the deadline is %v (+%v slack)", elapsed, time.Duration(steps)*hostileT, hostileSlack)
			}
			assert.Contains(t, tc.want, kind, "outcome %s (%v)", kind, err)
			assert.Empty(t, env.problems)
			assert.LessOrEqual(t, env.successes, len(srv.deliveries()), "the client reported more messages delivered than the server took")
			if tc.refused {
				assert.Equal(t, 1, env.refused, "the offsets the Courier refused")
			}
			if tc.delivered != 0 && err == nil {
				assert.Equal(t, []int64{tc.delivered}, srv.deliveries(), "the sizes of the messages the server took")
			}
			assert.LessOrEqual(t, heap, int64(1<<20), "client heap grew by %d octets (limit 1 MiB)", heap)
			if tc.allocCap != 0 {
				assert.LessOrEqual(t, alloc, tc.allocCap, "the case allocated %d octets (limit %d): the stream was buffered", alloc, tc.allocCap)
			}
			if goroutines1 > goroutines0 {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				assert.Failf(t, "goroutines left", "%d goroutines before, %d after:\n%s", goroutines0, goroutines1, buf)
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-58s | %-12s | %-30s | %8s | %9s | %9s\n", "case", "action", "outcome", "elapsed", "heap Δ", "allocated")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-58s | %-12s | %-30s | %8s | %9d | %9d\n", r.name, r.action, r.kind, r.elapsed.Round(time.Millisecond), r.heap, r.alloc)
	}
	t.Log(b.String())
}

// withConnect returns t with its Connect timeout set to d.
func withConnect(t Timeouts, d time.Duration) Timeouts {
	t.Connect = d
	return t
}
