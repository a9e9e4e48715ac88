package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// This file holds what a package needs to add commands of its own to the
// Client: besides Exec, a Pipeline can end in a data phase (Data) or by
// handing the connection over (Hijack). The rfc821 package builds TURN,
// MRSQ and SEND/SOML/SAML on Pipeline alone.

// Data sends the queued commands and then line, a command whose 354 reply
// starts a data phase, in one group, and returns the writer for the text
// that follows, as DataContext does for DATA. It is for the commands of
// extensions and historic protocols that carry text after 354, such as RFC
// 772's "MAIL FROM:<x>" under MRSQ T (the rfc821 package). The hello is sent
// first if it has not been, as with Exec.
//
// The context bounds the whole data phase, up to and including the
// writer's Close; the reply to line is awaited as long as the Client's
// Timeouts say for its verb (Mail for MAIL, DataInit for DATA, Command for
// any other). The writer dot-stuffs the text and reports progress
// (ClientTrace.DataProgress) as DATA's does; its Close sends the final "."
// and returns an *Error unless the server answers 250.
//
// The queued commands' replies are in their Cmds, as after Exec, and a
// refusal among them does not stop the data phase if line draws 354 (RFC
// 2920 §3.1 leaves it to the client then to send an empty text or to give
// up the connection). Data returns ErrCRLF or ErrNUL for a line with CR,
// LF or NUL, an error for an empty one or for a group that breaks RFC
// 2920's rules, before anything is written; the error of the hello if it
// fails; an *Error (the error itself, not wrapped) if the server answers
// line with anything but 354, after which the Client may go on; and an
// I/O, protocol or context error, which leaves the Client unusable.
func (p *Pipeline) Data(ctx context.Context, line string) (*DataWriter, error) {
	if line == "" {
		return nil, errors.New("smtp: Pipeline.Data needs a command line")
	}
	x := p.Cmd(354, "%s", line)
	if p.err != nil {
		return nil, p.err
	}
	c := p.c
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.execGroup(p.cmds, p.lines); err != nil {
		return nil, end(err)
	}
	if x.Err != nil {
		return nil, end(x.Err)
	}
	return c.startData(end, false), nil
}

// Hijack sends the queued commands, as Exec does, and if the server
// accepted every one of them lets the caller take over the connection, as
// net/http's Hijacker lets an HTTP handler take over its connection: for a
// command after which the connection no longer speaks SMTP as a client,
// such as RFC 821's TURN (the rfc821 package), or one that hands it to
// another protocol. With no command queued nothing is sent, not even the
// hello.
//
// Hijack returns the connection in use (the *tls.Conn after StartTLS or
// with implicit TLS) and the Client's buffered reader over it, which may
// hold input the server has already sent: read from the reader, not from
// the connection. What the Client had buffered for writing is written
// first. After Hijack the connection is the caller's, who must close it:
// the Client writes and reads nothing more, sets no deadline on it and
// closes it neither on Close nor when a context ends; its methods return an
// error that matches ErrClosed, and Close returns nil. Neither Text nor the
// Client may be used to talk to the server anymore. The connection keeps
// the deadlines it has: none on a Client from a Dialer or Dial, the
// caller's on one from NewClient.
//
// Hijack returns Exec's errors; the first queued command's refusal (an
// *Error), after which the Client is the caller's still and may go on; an
// error, and leaves the Client as it was, while a Batch is in progress or
// a data phase is open (a DataWriter not yet closed); the Client's error,
// which matches ErrClosed, after Close, Quit or a failure; and the error of
// writing what was buffered, which leaves the Client unusable.
func (p *Pipeline) Hijack(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	c := p.c
	if err := c.hijackable(); err != nil {
		return nil, nil, err
	}
	if len(p.cmds) > 0 || p.err != nil {
		if err := p.Exec(ctx); err != nil {
			return nil, nil, err
		}
		for _, x := range p.cmds {
			if x.Err != nil {
				return nil, nil, x.Err
			}
		}
	}
	if err := c.flush(); err != nil {
		return nil, nil, err
	}
	if !c.callerConn {
		c.conn.SetDeadline(time.Time{})
	}
	c.hijacked = true
	c.err = fmt.Errorf("%w: the connection was hijacked", ErrClosed)
	return c.conn, c.rr.r, nil
}

// hijackable returns an error if the Client cannot be taken over now.
func (c *Client) hijackable() error {
	switch {
	case c.err != nil:
		return c.err
	case c.batch != nil:
		return errors.New("smtp: Hijack: a Batch is in progress on this Client")
	case c.openData != nil:
		return errors.New("smtp: Hijack: a data phase is in progress (close its writer first)")
	case c.pending.len() > 0 || c.pump != nil:
		return errors.New("smtp: Hijack: replies are still due")
	}
	return nil
}
