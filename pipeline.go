package smtp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A Pipeline is a group of commands written together and answered in order
// (RFC 2920). Queue commands with Cmd, then run the group with Exec, or end
// it with a command that starts a data phase (Data) or with handing the
// connection over (Hijack). If the server does not offer PIPELINING, the
// commands are sent one at a time instead; the results are the same.
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

// Timeouts returns the bounds the Pipeline's Client waits by, each zero
// field of the Dialer's Timeouts replaced by its default (so none is zero).
// On a Client from NewClient, whose connection's deadlines are the
// caller's, every field is negative: no bound of the Client's own.
func (p *Pipeline) Timeouts() Timeouts { return p.c.timeouts }

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
//
// The reply is awaited as long as the Client's Timeouts say for the verb:
// Mail for MAIL, SEND, SOML and SAML, Rcpt for RCPT, DataInit for DATA,
// Command for any other; CmdTimeout chooses another bound.
func (p *Pipeline) Cmd(expect int, format string, args ...any) *Cmd {
	return p.CmdTimeout(0, expect, format, args...)
}

// CmdTimeout is Cmd with a bound of its own on the wait for the reply:
// timeout instead of the Timeouts field for the verb (zero keeps that one,
// a negative timeout sets no bound). The context given to Exec bounds it
// too. On a Client from NewClient, whose connection's deadlines are the
// caller's, timeout is ignored, as the Timeouts are. Use it for a command
// whose reply may take long, such as one answered only once a message is
// delivered, or p.Timeouts().Rcpt to wait for an extension's command as
// long as for RCPT.
func (p *Pipeline) CmdTimeout(timeout time.Duration, expect int, format string, args ...any) *Cmd {
	line := fmt.Sprintf(format, args...)
	verb, _, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if timeout == 0 || p.c.callerConn {
		timeout = p.c.commandTimeout(verb)
	}
	x := &Cmd{cmd: command{verb: verb, expect: expect, timeout: timeout}}
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
	if c.pending.len() > 0 {
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
	return c.ext.has("PIPELINING") && !c.noPipelining
}
