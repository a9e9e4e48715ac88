package smtp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
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

	cmd  command
	done bool // the reply has been consumed (consumer goroutine only)
	read bool // the pump has read the reply (guarded by pump.mu)
}

// Done reports whether the command's reply has been read.
func (x *Cmd) Done() bool { return x.done }

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
	x := &Cmd{cmd: cmd}
	return x, c.write(x, traceLine, line)
}

// queueLine is queue for a line that needs no formatting.
func (c *Client) queueLine(cmd command, line string) (*Cmd, error) {
	x := &Cmd{cmd: cmd}
	return x, c.write(x, "", line)
}

// write writes line, then CRLF, for a Cmd the caller made, and appends it
// to the FIFO.
func (c *Client) write(x *Cmd, traceLine string, line string) error {
	if c.err != nil {
		return c.err
	}
	if len(c.pending) == 0 && c.unsolicited() {
		b, _ := c.rr.r.Peek(c.rr.r.Buffered())
		return c.fail(protocolError("reply received when none was due", b, nil))
	}
	_, err := c.bw.WriteString(line)
	if err == nil {
		_, err = c.bw.WriteString("\r\n")
	}
	if err != nil {
		return c.fail(netError("writing "+x.cmd.verb, err))
	}
	c.due(x)
	if t := c.trace; t != nil && t.CommandSent != nil {
		if traceLine == "" {
			traceLine = line
		}
		t.CommandSent(traceLine)
	}
	return nil
}

// expect appends a Cmd for a reply that is due without a command line of
// its own: the greeting, or the end of message data.
func (c *Client) expect(cmd command) *Cmd {
	x := &Cmd{cmd: cmd}
	c.due(x)
	return x
}

func (c *Client) due(x *Cmd) {
	c.pending = append(c.pending, x)
	if c.pump != nil {
		c.pump.add(x)
	}
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
	if len(c.pending) == 0 {
		return nil, errors.New("smtp: internal error: no reply is due")
	}
	x := c.pending[0]
	c.pending[0] = nil
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.pending = c.pending[:0:cap(c.pending)]
	}
	x.done = true
	var err error
	if p := c.pump; p != nil {
		err = p.wait(x, c.deadline(x.cmd.timeout))
	} else {
		c.setReadDeadline(x.cmd.timeout)
		rep := new(Reply)
		if err = c.rr.read(rep); err == nil {
			x.Reply = rep
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
		x.Err = protocolError("reply out of step with the commands: "+strconv.Itoa(x.Reply.Code)+" to "+x.cmd.verb, []byte(x.Reply.Msg()), nil)
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
	for len(c.pending) > 0 {
		if _, err := c.next(); err != nil {
			return err
		}
	}
	return nil
}

// ready reports whether the reply to the oldest command has been read by
// the pump, so that next will not wait for the network.
func (c *Client) ready() bool {
	if len(c.pending) == 0 || c.err != nil || c.pump == nil {
		return false
	}
	return c.pump.has(c.pending[0])
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

// A pump reads replies on a goroutine of its own while the caller goes on
// writing, so that a server which answers as it reads can never block
// against a client that is still writing (RFC 2920 §3.1: "deadlock").
// Replies still go to their commands strictly in order.
//
// The pump reads only while a reply is due, so it is idle, not blocked on
// the network, whenever every reply has been read. Its goroutine ends when
// the pump is stopped or the connection fails; it never outlives the call
// or the Batch that started it.
type pump struct {
	c      *Client
	mu     sync.Mutex
	toRead []*Cmd // written, reply not read yet, oldest first
	err    error  // the read failure that stopped the goroutine
	work   chan struct{}
	ready  chan struct{}
	quit   chan struct{}
	done   chan struct{}
	timer  *time.Timer
}

// startPump starts reading replies concurrently; stopPump ends it.
func (c *Client) startPump() {
	p := &pump{
		c:     c,
		work:  make(chan struct{}, 1),
		ready: make(chan struct{}, 1),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	p.toRead = append(p.toRead, c.pending...)
	c.pump = p
	go p.run()
}

// stopPump waits for the reader goroutine to end. Every reply due must have
// been read, or the connection have failed; otherwise the connection is
// closed, since the reader is in the middle of a reply.
func (c *Client) stopPump() {
	p := c.pump
	if p == nil {
		return
	}
	if len(c.pending) > 0 && c.err == nil {
		c.fail(errors.New("smtp: replies still due when pipelining ended"))
	}
	close(p.quit)
	<-p.done
	if p.timer != nil {
		p.timer.Stop()
	}
	c.pump = nil
	// Replies read before a failure still count: a restart needs to know
	// which recipients were accepted.
	for _, x := range c.pending {
		if !x.read {
			break
		}
		x.done = true
		if !x.Reply.matches(x.cmd.expect) {
			x.Err = x.Reply.err()
		}
	}
	c.pending = c.pending[:0]
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *pump) add(x *Cmd) {
	p.mu.Lock()
	p.toRead = append(p.toRead, x)
	p.mu.Unlock()
	wake(p.work)
}

func (p *pump) has(x *Cmd) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return x.read || p.err != nil
}

func (p *pump) run() {
	defer close(p.done)
	for {
		p.mu.Lock()
		for len(p.toRead) == 0 {
			p.mu.Unlock()
			select {
			case <-p.work:
			case <-p.quit:
				return
			}
			p.mu.Lock()
		}
		x := p.toRead[0]
		p.mu.Unlock()

		rep := new(Reply)
		err := p.c.rr.read(rep)

		p.mu.Lock()
		if err != nil {
			p.err = err
			p.mu.Unlock()
			wake(p.ready)
			return
		}
		x.Reply = rep
		x.read = true
		p.toRead[0] = nil
		p.toRead = p.toRead[1:]
		p.mu.Unlock()
		wake(p.ready)
	}
}

// wait waits until x's reply has been read, until deadline if it is not
// zero.
func (p *pump) wait(x *Cmd, deadline time.Time) error {
	var expired <-chan time.Time
	for {
		p.mu.Lock()
		read, err := x.read, p.err
		p.mu.Unlock()
		if read {
			return nil
		}
		if err != nil {
			return err
		}
		if expired == nil && !deadline.IsZero() {
			d := time.Until(deadline)
			if p.timer == nil {
				p.timer = time.NewTimer(d)
			} else {
				p.timer.Reset(d)
			}
			expired = p.timer.C
			defer p.timer.Stop()
		}
		select {
		case <-p.ready:
		case <-expired:
			return os.ErrDeadlineExceeded
		}
	}
}

// A Pipeline is a group of commands written together and answered in order
// (RFC 2920). Queue commands with Cmd, then run the group with Exec. If the
// server does not offer PIPELINING, Exec sends them one at a time instead;
// the results are the same.
//
// A Pipeline enforces RFC 2920 §3.1's rules: RSET, MAIL, RCPT, SEND, SOML
// and SAML may appear anywhere in a group; any other command (EHLO, DATA,
// VRFY, EXPN, TURN, QUIT, NOOP, STARTTLS, AUTH, and the commands of other
// extensions) must be the last one.
type Pipeline struct {
	c     *Client
	lines []string
	cmds  []*Cmd
	err   error
}

// Pipeline returns an empty group of commands for c.
func (c *Client) Pipeline() *Pipeline {
	return &Pipeline{c: c}
}

// anywhereInGroup lists the commands RFC 2920 §3.1 lets a group continue
// after.
var anywhereInGroup = map[string]bool{"RSET": true, "MAIL": true, "RCPT": true, "SEND": true, "SOML": true, "SAML": true}

// Cmd queues a command built like fmt.Sprintf(format, args...) and returns
// its Cmd, whose Reply and Err are set once Exec has run. expect is the
// reply code wanted, in net/textproto's convention (250, or 25 for 250 and
// 251, or 2 for any 2yz; 0 accepts anything).
//
// A line that holds CR, LF or NUL, or a command after one that must end the
// group, makes Exec fail before anything is written.
func (p *Pipeline) Cmd(expect int, format string, args ...any) *Cmd {
	line := fmt.Sprintf(format, args...)
	verb, _, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	x := &Cmd{cmd: command{verb: verb, expect: expect, timeout: p.c.commandTimeout(verb)}}
	if p.err == nil {
		if err := validateLine(line); err != nil {
			p.err = err
		} else if n := len(p.cmds); n > 0 && !anywhereInGroup[p.cmds[n-1].cmd.verb] {
			p.err = fmt.Errorf("smtp: %s cannot follow %s in a pipelined group (RFC 2920 §3.1)", verb, p.cmds[n-1].cmd.verb)
		}
	}
	p.lines = append(p.lines, line)
	p.cmds = append(p.cmds, x)
	return x
}

// Exec sends the group and reads every reply, after the hello exchange if
// none has been sent yet (as every method does on a Client from NewClient
// or Dial). It returns an error when the group breaks the rules (then
// nothing is written), when the hello fails, or when the connection
// fails (an I/O, protocol or context error; the Client is then unusable).
// A refusing reply is not an error of Exec: it is in that command's Err.
func (p *Pipeline) Exec(ctx context.Context) error {
	if p.err != nil {
		return p.err
	}
	c := p.c
	if err := c.hello(ctx); err != nil {
		return err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	return end(c.execGroup(p.cmds, p.lines))
}

func (c *Client) execGroup(cmds []*Cmd, lines []string) error {
	if len(c.pending) > 0 {
		return errors.New("smtp: a group cannot start while replies are due")
	}
	pipelining := c.pipelining()
	if pipelining {
		c.startPump()
		defer c.stopPump()
	}
	for i, x := range cmds {
		if err := c.write(x, "", lines[i]); err != nil {
			return err
		}
		if !pipelining {
			if err := c.await(x); err != nil {
				return err
			}
		}
	}
	return c.drain()
}

// pipelining reports whether the server offers PIPELINING and the Client
// may use it.
func (c *Client) pipelining() bool {
	_, ok := c.ext["PIPELINING"]
	return ok && !c.noPipelining
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
