package smtp

import (
	"fmt"
	"time"
)

// A command is one line the engine has written and whose reply is due.
// Replies are matched to commands strictly by count, in order (RFC 2920
// §3.1): the engine never looks at a reply's code or text to decide which
// command it answers.
type command struct {
	verb    string        // the command word, for errors: "MAIL", "." for end of data
	expect  int           // the code wanted, in net/textproto's convention
	timeout time.Duration // how long to wait for the reply
	secret  bool          // AUTH exchange: keep the reply text out of traces
}

// send appends one command line to the write buffer and queues its reply.
// The line is built like net/textproto's PrintfLine: format and args, then
// CRLF. Nothing reaches the network before flush (or a full buffer).
// When traceLine is not "", the trace sees it instead of the real line.
func (c *Client) send(cmd command, traceLine string, format string, args ...any) error {
	if c.err != nil {
		return c.err
	}
	var err error
	if len(args) == 0 {
		_, err = c.bw.WriteString(format)
	} else {
		_, err = fmt.Fprintf(c.bw, format, args...)
	}
	if err == nil {
		_, err = c.bw.WriteString("\r\n")
	}
	if err != nil {
		return c.fail(fmt.Errorf("smtp: writing %s: %w", cmd.verb, err))
	}
	c.pending = append(c.pending, cmd)
	if t := c.trace; t != nil && t.CommandSent != nil {
		if traceLine == "" {
			traceLine = format
			if len(args) > 0 {
				traceLine = fmt.Sprintf(format, args...)
			}
		}
		t.CommandSent(traceLine)
	}
	return nil
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
		return c.fail(fmt.Errorf("smtp: writing commands: %w", err))
	}
	return nil
}

// recv reads the reply to the oldest pending command. It returns the reply,
// and an *Error as well if the reply is not the one the command expects. An
// I/O or protocol error makes the Client unusable.
func (c *Client) recv() (*Reply, error) {
	if c.err != nil {
		return nil, c.err
	}
	if len(c.pending) == 0 {
		return nil, fmt.Errorf("smtp: internal error: no reply is due")
	}
	cmd := c.pending[0]
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.pending = c.pending[:0:cap(c.pending)]
	}
	c.setReadDeadline(cmd.timeout)
	rep := new(Reply)
	if err := c.rr.read(rep); err != nil {
		return nil, c.fail(fmt.Errorf("smtp: reading reply to %s: %w", cmd.verb, err))
	}
	if t := c.trace; t != nil && t.ReplyRead != nil {
		if cmd.secret && rep.Code == 334 {
			t.ReplyRead(&Reply{Code: rep.Code, Lines: []string{redacted}})
		} else {
			t.ReplyRead(rep)
		}
	}
	if !rep.matches(cmd.expect) {
		return rep, rep.err()
	}
	return rep, nil
}

// roundTrip sends one command alone, a group of one, and reads its reply.
func (c *Client) roundTrip(cmd command, format string, args ...any) (*Reply, error) {
	if err := c.send(cmd, "", format, args...); err != nil {
		return nil, err
	}
	if err := c.flush(); err != nil {
		return nil, err
	}
	return c.recv()
}
