package rfc821

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/resmtp/smtp"
)

// ErrTurnRefused is matched, with the server's *smtp.Error, by the error
// Turn returns when the server refuses to change roles with 502 (RFC 821
// §3.8).
var ErrTurnRefused = errors.New("rfc821: TURN refused")

// Turn asks the server at the other end of c to change roles with TURN
// (RFC 821 §3.8, §4.1.1): on 250 the client becomes the receiver of the
// mail the server holds for it, on the same connection, and Turn returns
// the Receiver that takes the connection over (Pipeline.Hijack); Serve then
// greets the server and answers its commands. The Client can send nothing
// after a successful Turn: its methods return an error that matches
// smtp.ErrClosed, and its Close leaves the connection to the Receiver.
//
// A 502 refusal returns an error that matches ErrTurnRefused and, with
// errors.As, the *smtp.Error; any other reply (500, 503) returns the
// *smtp.Error alone. After a refusal the Client is the sender still and
// may go on. An I/O, protocol or context error leaves the Client unusable.
// TURN ends a pipelined group (RFC 2920 §3.1); Turn sends it alone, after
// the hello if none was sent.
//
// # Why RFC 2821 removed TURN
//
// A server that accepts TURN sends the mail it holds for the domain the
// client claims to be. Without strong authentication of that client,
// anyone who connects and says "HELO victim.example" can have
// victim.example's mail diverted to them; RFC 2821 (and RFC 5321 F.1)
// therefore deprecate TURN: "SMTP systems SHOULD NOT use it unless the
// server can authenticate the client". Its successors are ETRN (RFC 1985),
// which makes the server open a new connection to the domain's real MX,
// and ATRN (RFC 2645), which requires AUTH first.
//
// So before calling Turn the caller must make sure that both sides know
// who the other is: use TLS with a verified server certificate
// (smtp.Dialer's TLSPolicy smtp.TLSRequired, or ImplicitTLS), so that the
// mail that comes back is from the server the caller meant, and
// authenticate with AUTH, so that the server can tell this client is
// entitled to the mail it is about to hand over. The TurnHandler should
// then accept only recipients of the caller's own domains.
func Turn(ctx context.Context, c *smtp.Client) (*Receiver, error) {
	p := c.Pipeline()
	p.Cmd(250, "TURN")
	conn, br, err := p.Hijack(ctx)
	if err != nil {
		var e *smtp.Error
		if errors.As(err, &e) && e.Code == 502 {
			return nil, fmt.Errorf("%w: %w", ErrTurnRefused, err)
		}
		return nil, err
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	return &Receiver{conn: conn, raw: raw, br: br, bw: bufio.NewWriter(conn)}, nil
}

// A TurnHandler decides the replies a Receiver sends. Each method's nil
// return accepts (250); an error whose chain holds an *smtp.Error with a
// 2yz, 4yz or 5yz Code sends that code and its Msg (one reply line per line
// of Msg); any other error sends "451 Requested action aborted: local error
// in processing". A handler may also implement Hello(domain string) error,
// called for HELO and EHLO (an error refuses them), and Reset(), called
// when a transaction the handler has seen is abandoned (RSET, a new HELO,
// the end of the session).
type TurnHandler interface {
	// Mail is called with the reverse-path of MAIL FROM, without angle
	// brackets ("" for "<>", a source route as given).
	Mail(from string) error
	// Rcpt is called with the forward-path of each RCPT TO, without angle
	// brackets.
	Rcpt(to string) error
	// Data is called after DATA, once at least one recipient was accepted,
	// with the message: dot-stuffing removed, lines ending as sent (CRLF),
	// without the terminating ".". r is valid until Data returns; what
	// Data leaves unread is read and discarded before the reply is sent.
	// A read error (the connection broke) is also what Data should return.
	Data(r io.Reader) error
}

// TurnFuncs is a TurnHandler made of functions; a nil function accepts.
type TurnFuncs struct {
	OnMail func(from string) error
	OnRcpt func(to string) error
	OnData func(r io.Reader) error
}

// Mail calls OnMail and returns its error; nil if OnMail is nil.
func (f TurnFuncs) Mail(from string) error {
	if f.OnMail == nil {
		return nil
	}
	return f.OnMail(from)
}

// Rcpt calls OnRcpt and returns its error; nil if OnRcpt is nil.
func (f TurnFuncs) Rcpt(to string) error {
	if f.OnRcpt == nil {
		return nil
	}
	return f.OnRcpt(to)
}

// Data calls OnData and returns its error; nil if OnData is nil.
func (f TurnFuncs) Data(r io.Reader) error {
	if f.OnData == nil {
		return nil
	}
	return f.OnData(r)
}

// A Receiver is the receiving end of a connection after TURN: a minimal
// SMTP server (RFC 821's minimum implementation, RFC 5321 §4.5.1) on the
// Client's connection, which Turn hijacked. It greets with 220 and
// answers:
//
//   - HELO and EHLO: 250 with Hostname (EHLO lists no extension, so the
//     peer neither pipelines nor sends parameters); 501 without a domain;
//   - MAIL FROM, RCPT TO: the handler's verdict; 503 out of sequence, 501
//     for a malformed path, 555 for parameters;
//   - DATA: 354, the message to the handler, then its verdict; 503 without
//     a transaction, 554 if no recipient was accepted;
//   - RSET, NOOP: 250; VRFY: 252; HELP: 214;
//   - QUIT: 221, and the connection is closed;
//   - TURN: 502 (the roles do not change back); EXPN, SEND, SOML, SAML: 502;
//     anything else 500, as is a line over 1000 octets (RFC 5321
//     §4.5.3.1.4 allows 512).
type Receiver struct {
	// Hostname is the name in the greeting and the HELO reply: set it,
	// before Serve, to the name the Client gave in its hello (the Dialer's
	// LocalName), the domain whose mail the server is about to send. If
	// empty, the address literal of the connection's local address is
	// used, such as "[192.0.2.1]" (RFC 5321 §4.1.3).
	Hostname string
	// Timeout bounds the wait for each command and for each read of
	// message data, and each write of a reply; zero means 5 minutes (RFC
	// 5321 §4.5.3.2.7), negative no limit.
	Timeout time.Duration

	conn   net.Conn      // the hijacked connection, TLS or not
	raw    net.Conn      // the network connection under it, closed to end a read
	br     *bufio.Reader // the Client's reader: it may hold the peer's first command
	bw     *bufio.Writer
	served bool
}

// Serve sends the 220 greeting (RFC 821 §4.1.1: after TURN the new
// receiver is "in the initial state as if the transmission channel just
// opened") and answers the peer's commands through h until QUIT. It always
// closes the connection before it returns.
//
// Serve returns nil after QUIT; the context's cause (matched with
// errors.Is) when ctx ends first; otherwise the I/O error that ended the
// session, io.ErrUnexpectedEOF if the peer closed the connection without
// QUIT. A second call returns an error, as does a call on a Receiver that
// Turn did not make.
func (r *Receiver) Serve(ctx context.Context, h TurnHandler) error {
	if r.served {
		return errors.New("rfc821: Receiver.Serve called twice")
	}
	if r.conn == nil {
		return errors.New("rfc821: the Receiver was not made by Turn")
	}
	r.served = true
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		r.raw.Close()
	})
	err := r.serve(h)
	stopped := stop()
	if !stopped {
		<-closed // the close that ended the session has run: no goroutine is left
	}
	r.raw.Close()
	r.conn.Close()
	if (!stopped || ctx.Err() != nil) && err != nil {
		return fmt.Errorf("rfc821: %w", context.Cause(ctx))
	}
	return err
}
