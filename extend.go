package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"time"
)

// This file holds what a package needs to add commands of its own to the
// Client, besides Pipeline and DataCommand: taking over the connection
// (Hijack), the name the Client gives in its hello and the bounds it uses.
// The rfc821 package builds TURN, MRSQ and SEND/SOML/SAML on them alone.

// Hijack lets the caller take over the connection, as net/http's Hijacker
// lets an HTTP handler take over its connection: for a command after which
// the connection no longer speaks SMTP as a client, such as RFC 821's TURN
// (the rfc821 package), or one that hands it to another protocol.
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
// Hijack returns an error, and leaves the Client as it was, while replies
// are due, a Batch is in progress or a data phase is open (a DataWriter not
// yet closed); it returns the Client's error, which matches ErrClosed, after
// Close, Quit or a failure; and the error of writing what was buffered,
// which leaves the Client unusable.
func (c *Client) Hijack() (net.Conn, *bufio.Reader, error) {
	switch {
	case c.err != nil:
		return nil, nil, c.err
	case c.batch != nil:
		return nil, nil, errors.New("smtp: Hijack: a Batch is in progress on this Client")
	case c.openData != nil:
		return nil, nil, errors.New("smtp: Hijack: a data phase is in progress (close its writer first)")
	case len(c.pending) > 0 || c.pump != nil:
		return nil, nil, errors.New("smtp: Hijack: replies are still due")
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

// LocalName returns the name the Client gives in its HELO or EHLO (LHLO):
// the Dialer's LocalName (or the name it found for the host), the name
// given to Hello, or "localhost" on a Client from Dial or NewClient.
func (c *Client) LocalName() string { return c.localName }

// Timeouts returns the bounds the Client waits by, each zero field of the
// Dialer's Timeouts replaced by its default (so none is zero). On a Client
// from NewClient, whose connection's deadlines are the caller's, every
// field is negative: no bound of the Client's own.
func (c *Client) Timeouts() Timeouts { return c.timeouts }
