package smtp

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A command describes one line the engine writes: what reply it wants and
// how long to wait for it.
type command struct {
	verb    string        // the command word, for errors: "MAIL", "." for end of data
	expect  int           // the code wanted, in net/textproto's convention
	timeout time.Duration // how long to wait for the reply
	secret  bool          // AUTH exchange: keep the reply text out of traces
}

// A Cmd is a command that has been written and the reply it drew.
//
// Replies are matched to commands strictly by count, in order (RFC 2920
// §3.1): the engine never looks at a reply's code or text to decide which
// command it answers.
type Cmd struct {
	// Reply is the server's reply, or nil if none was read (the group was
	// not sent, or the connection failed first).
	Reply *Reply
	// Err is an *Error if the reply is not the one the command expects, or
	// the failure that kept the reply from being read.
	Err error

	cmd   command
	done  bool  // the reply has been consumed (consumer goroutine only)
	read  bool  // the pump has read the reply (guarded by pump.mu)
	reply Reply // where Reply points once it is read
}

// queue writes one command line to the write buffer and appends its Cmd to
// the FIFO of replies due. The line is built like net/textproto's
// PrintfLine: format and args, then CRLF. Nothing reaches the network before
// flush (or a full buffer). When traceLine is not "", the trace sees it
// instead of the real line.
func (c *Client) queue(cmd command, traceLine string, format string, args ...any) (*Cmd, error) {
	line := format
	if len(args) > 0 {
		line = fmt.Sprintf(format, args...)
	}
	x := c.newCmd(cmd)
	return x, c.write(x, traceLine, line)
}

// queueLine is queue for a line that needs no formatting.
func (c *Client) queueLine(cmd command, line string) (*Cmd, error) {
	x := c.newCmd(cmd)
	return x, c.write(x, "", line)
}

// newCmd returns a Cmd for cmd, taken from the slab a Batch set aside for
// its transaction (c.cmds) while there is room in it: one allocation for
// all the commands of a transaction and their replies.
func (c *Client) newCmd(cmd command) *Cmd {
	if n := len(c.cmds); n < cap(c.cmds) {
		c.cmds = c.cmds[:n+1]
		x := &c.cmds[n]
		x.cmd = cmd
		return x
	}
	return &Cmd{cmd: cmd}
}

// write writes line, then CRLF, for a Cmd the caller made, and appends it
// to the FIFO.
func (c *Client) write(x *Cmd, traceLine string, line string) error {
	if err := c.writable(); err != nil {
		return err
	}
	_, err := c.bw.WriteString(line)
	if err == nil {
		_, err = c.bw.WriteString("\r\n")
	}
	if traceLine == "" {
		traceLine = line
	}
	return c.written(x, err, traceLine, nil)
}

// queueBytes is queueLine for a line in a buffer of the caller's, which
// ends in CRLF: no string is made for it unless a trace wants one.
func (c *Client) queueBytes(cmd command, line []byte) (*Cmd, error) {
	x := c.newCmd(cmd)
	if err := c.writable(); err != nil {
		return x, err
	}
	_, err := c.bw.Write(line)
	return x, c.written(x, err, "", line[:len(line)-2])
}

// written finishes writing x's line: a failure stops the Client, else the
// reply is due and the trace sees the line (traceLine, or raw as a string).
func (c *Client) written(x *Cmd, err error, traceLine string, raw []byte) error {
	if err != nil {
		return c.fail(netError("writing "+x.cmd.verb, err))
	}
	c.due(x)
	if t := c.trace; t != nil && t.CommandSent != nil {
		if traceLine == "" {
			traceLine = string(raw)
		}
		t.CommandSent(traceLine)
	}
	return nil
}

// writable returns the error that keeps a command from being written: the
// Client's failure, or a reply that came although none was due.
func (c *Client) writable() error {
	if c.err != nil {
		return c.err
	}
	if c.pending.len() == 0 && c.unsolicited() {
		b, _ := c.rr.r.Peek(c.rr.r.Buffered())
		return c.fail(protocolError("reply received when none was due", b, nil))
	}
	return nil
}

// expect appends a Cmd for a reply that is due without a command line of
// its own: the greeting, or the end of message data.
func (c *Client) expect(cmd command) *Cmd {
	x := c.newCmd(cmd)
	c.due(x)
	return x
}

func (c *Client) due(x *Cmd) {
	c.pending.push(x)
	if c.pump != nil {
		c.unhanded++
	}
}

// handoff gives the pump the commands that became due since the last
// handoff (the newest c.unhanded of c.pending). It runs before any octet
// goes to the network (deadlineConn.Write) and before a wait for a reply,
// so that the pump reads every reply that can come, whatever blocks: once
// per write, not once per command.
func (c *Client) handoff() {
	if c.unhanded == 0 || c.pump == nil {
		return
	}
	xs := c.pending.items()
	c.pump.add(xs[len(xs)-c.unhanded:])
	c.unhanded = 0
}

// unsolicited reports whether reply octets have arrived although no reply
// is due. Only what is already buffered is seen. Clients from NewClient and
// Dial do not look, as net/smtp does not: its own tests feed a whole
// conversation in one read.
func (c *Client) unsolicited() bool {
	if c.pump != nil || !c.strict {
		return false
	}
	return c.rr.r.Buffered() > 0
}

// flush writes the buffered group to the network.
func (c *Client) flush() error {
	if c.err != nil {
		return c.err
	}
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.writeTimeout = c.timeouts.Command
	err := c.bw.Flush()
	c.writeTimeout = 0
	if err != nil {
		return c.fail(netError("writing commands", err))
	}
	return nil
}

// next reads the reply to the oldest command in the FIFO and records it in
// its Cmd, with an *Error in Cmd.Err if it is not the reply the command
// expects. It returns an error only when the connection failed: an I/O or
// protocol error, which makes the Client unusable.
func (c *Client) next() (*Cmd, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.pending.len() == 0 {
		return nil, errors.New("smtp: internal error: no reply is due")
	}
	c.handoff()
	x := c.pending.pop()
	x.done = true
	var err error
	if p := c.pump; p != nil {
		if c.readAhead > 0 {
			c.readAhead-- // seen read by ready
		} else {
			err = p.wait(x, x.cmd.timeout)
		}
	} else {
		c.setReadDeadline(x.cmd.timeout)
		if err = c.rr.read(&x.reply); err == nil {
			x.Reply = &x.reply
		}
	}
	if err != nil {
		x.Err = netError("reading reply to "+x.cmd.verb, err)
		return x, c.fail(x.Err)
	}
	if t := c.trace; t != nil && t.ReplyRead != nil {
		if x.cmd.secret && x.Reply.Code == 334 {
			t.ReplyRead(&Reply{Code: x.Reply.Code, Lines: []string{redacted}})
		} else {
			t.ReplyRead(x.Reply)
		}
	}
	if c.strict && outOfStep(x.cmd.verb, x.Reply.Code) {
		// A reply no command of this kind can get: the replies have
		// slipped (the server answered something twice, or unasked).
		x.Err = protocolError("reply out of step with the commands: "+strconv.Itoa(x.Reply.Code)+" to "+x.cmd.verb, []byte(x.Reply.msg()), nil)
		return x, c.fail(x.Err)
	}
	if x.Reply.Code == 421 && c.closing == nil {
		// RFC 5321 §3.8: the server is closing the channel, whatever the
		// command expected.
		c.closing = x.Reply.err()
	}
	if !x.Reply.matches(x.cmd.expect) {
		x.Err = x.Reply.err()
	}
	return x, nil
}

// outOfStep reports whether code cannot answer verb: a positive completion
// to DATA (it wants 354 or a refusal) or an intermediate reply to a command
// that has none.
func outOfStep(verb string, code int) bool {
	switch verb {
	case "DATA":
		return code/100 == 2
	case "RCPT", "RSET", "NOOP", "QUIT", "EHLO", "HELO", "LHLO", "BDAT", ".", "VRFY":
		return code/100 == 3
	}
	return false
}

// await flushes the write buffer and reads replies until x has its own.
func (c *Client) await(x *Cmd) error {
	if err := c.flush(); err != nil {
		return err
	}
	for !x.done {
		if _, err := c.next(); err != nil {
			return err
		}
	}
	return nil
}

// drain flushes and reads every reply due.
func (c *Client) drain() error {
	if err := c.flush(); err != nil {
		return err
	}
	for c.pending.len() > 0 {
		if _, err := c.next(); err != nil {
			return err
		}
	}
	return nil
}

// ready reports whether the reply to the oldest command has been read by
// the pump, so that next will not wait for the network.
//
// It counts, under one lock, every reply in a row the pump has read, so
// that next takes them without locking again.
func (c *Client) ready() bool {
	if c.pending.len() == 0 || c.err != nil || c.pump == nil {
		return false
	}
	if c.readAhead > 0 {
		return true
	}
	xs := c.pending.items()
	n := c.pump.readAhead(xs[:len(xs)-c.unhanded])
	if n < 0 {
		return true // the pump failed: next says how
	}
	c.readAhead = n
	return n > 0
}

// roundTrip sends one command alone, a group of one, and reads its reply.
// It returns the reply, and an *Error as well if it is not the expected
// one.
func (c *Client) roundTrip(cmd command, format string, args ...any) (*Reply, error) {
	x, err := c.queue(cmd, "", format, args...)
	if err != nil {
		return nil, err
	}
	if err := c.await(x); err != nil {
		return nil, err
	}
	return x.Reply, x.Err
}

// commandTimeout returns the timeout for a reply to verb.
func (c *Client) commandTimeout(verb string) time.Duration {
	switch verb {
	case "MAIL", "SEND", "SOML", "SAML":
		return c.timeouts.Mail
	case "RCPT":
		return c.timeouts.Rcpt
	case "DATA":
		return c.timeouts.DataInit
	case "BDAT":
		return c.timeouts.DataTerm
	}
	return c.timeouts.Command
}

// A cmdFIFO is a queue of Cmds that reuses its array: taking from the
// front leaves room that a later push uses, so a Client in steady use does
// not allocate for it.
type cmdFIFO struct {
	buf  []*Cmd
	head int
}

func (q *cmdFIFO) len() int { return len(q.buf) - q.head }

// push appends x, moving the queue to the front of its array rather than
// growing it when there is room there.
func (q *cmdFIFO) push(x *Cmd) {
	if len(q.buf) == cap(q.buf) && q.head > 0 {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, x)
}

// pop removes and returns the oldest Cmd; the queue must not be empty.
func (q *cmdFIFO) pop() *Cmd {
	x := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return x
}

// items returns the queued Cmds, oldest first, until the next change.
func (q *cmdFIFO) items() []*Cmd { return q.buf[q.head:] }

// reset empties the queue.
func (q *cmdFIFO) reset() {
	clear(q.buf)
	q.buf, q.head = q.buf[:0], 0
}
