package smtp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrTurnRefused is matched, with the server's *Error, by the error Turn
// returns when the server refuses to change roles with 502 (RFC 821 §3.8).
var ErrTurnRefused = errors.New("smtp: TURN refused")

// Turn asks the server to change roles with TURN (RFC 821 §3.8, §4.1.1):
// on 250 the Client becomes the receiver of the mail the server holds for
// it, on the same connection, and Turn returns the Receiver that takes the
// connection over; Serve then greets the server and answers its commands.
// The Client can send nothing after a successful Turn: its methods return
// an error that matches ErrClosed.
//
// A 502 refusal returns an error that matches ErrTurnRefused and, with
// errors.As, the *Error; any other reply (500, 503) returns the *Error
// alone. After a refusal the Client is the sender still and may go on.
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
// (Dialer.TLSPolicy TLSRequired, or ImplicitTLS), so that the mail that
// comes back is from the server the caller meant, and authenticate with
// AUTH, so that the server can tell this client is entitled to the mail it
// is about to hand over. The TurnHandler should then accept only
// recipients of the caller's own domains.
func (c *Client) Turn(ctx context.Context) (*Receiver, error) {
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	if _, err := c.simple(ctx, command{verb: "TURN", expect: 250}, "TURN"); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == 502 {
			return nil, fmt.Errorf("%w: %w", ErrTurnRefused, err)
		}
		return nil, err
	}
	c.err = fmt.Errorf("%w: the roles were changed by TURN; the connection belongs to the Receiver", ErrClosed)
	return &Receiver{Hostname: c.localName, c: c}, nil
}

// A TurnHandler decides the replies a Receiver sends. Each method's nil
// return accepts (250); an error whose chain holds an *Error with a 2yz,
// 4yz or 5yz Code sends that code and its Msg (one reply line per line of
// Msg); any other error sends "451 Requested action aborted: local error in
// processing". A handler may also implement Hello(domain string) error,
// called for HELO and EHLO (an error refuses them), and Reset(), called when
// a transaction the handler has seen is abandoned (RSET, a new HELO, the
// end of the session).
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

// Mail calls OnMail.
func (f TurnFuncs) Mail(from string) error {
	if f.OnMail == nil {
		return nil
	}
	return f.OnMail(from)
}

// Rcpt calls OnRcpt.
func (f TurnFuncs) Rcpt(to string) error {
	if f.OnRcpt == nil {
		return nil
	}
	return f.OnRcpt(to)
}

// Data calls OnData.
func (f TurnFuncs) Data(r io.Reader) error {
	if f.OnData == nil {
		return nil
	}
	return f.OnData(r)
}

// A Receiver is the receiving end of a connection after TURN: a minimal
// SMTP server (RFC 821's minimum implementation, RFC 5321 §4.5.1) on the
// Client's connection. It greets with 220 and answers:
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
	// Hostname is the name in the greeting and the HELO reply; Turn sets it
	// to the Client's local name.
	Hostname string
	// Timeout bounds the wait for each command and for each read of
	// message data; zero means 5 minutes (RFC 5321 §4.5.3.2.7), negative
	// no limit.
	Timeout time.Duration

	c      *Client
	served bool
}

// maxCommandLine bounds a command line the Receiver reads.
const maxCommandLine = 1000

// Serve sends the 220 greeting (RFC 821 §4.1.1: after TURN the new
// receiver is "in the initial state as if the transmission channel just
// opened") and answers the peer's commands through h until QUIT. It always
// closes the connection before it returns.
//
// Serve returns nil after QUIT; the context's cause (matched with
// errors.Is) when ctx ends first; otherwise the I/O error that ended the
// session, io.ErrUnexpectedEOF if the peer closed the connection without
// QUIT. A second call returns an error.
func (r *Receiver) Serve(ctx context.Context, h TurnHandler) error {
	if r.served {
		return errors.New("smtp: Receiver.Serve called twice")
	}
	r.served = true
	c := r.c
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	err := r.serve(h)
	stopped := stop()
	c.raw.Close()
	c.conn.Close()
	if (!stopped || ctx.Err() != nil) && err != nil {
		return fmt.Errorf("smtp: %w", context.Cause(ctx))
	}
	return err
}

// turnSession is the state of one Serve.
type turnSession struct {
	r        *Receiver
	h        TurnHandler
	greeted  bool
	inTx     bool
	accepted int // recipients accepted in the transaction
	tried    int // RCPT commands in the transaction
}

func (r *Receiver) serve(h TurnHandler) error {
	s := &turnSession{r: r, h: h}
	defer s.reset()
	if err := r.reply(220, r.Hostname+" Service ready"); err != nil {
		return err
	}
	for {
		line, tooLong, err := r.readLine()
		if err != nil {
			return err
		}
		if tooLong {
			if err := r.reply(500, "Line too long"); err != nil {
				return err
			}
			continue
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		arg = strings.TrimLeft(arg, " ")
		if verb == "QUIT" {
			return r.reply(221, r.Hostname+" Service closing transmission channel")
		}
		if err := s.command(verb, arg); err != nil {
			return err
		}
	}
}

// reset ends the transaction, telling the handler if it saw one.
func (s *turnSession) reset() {
	if s.inTx {
		if h, ok := s.h.(interface{ Reset() }); ok {
			h.Reset()
		}
	}
	s.inTx, s.accepted, s.tried = false, 0, 0
}

func (s *turnSession) command(verb, arg string) error {
	r := s.r
	switch verb {
	case "HELO", "EHLO":
		return s.hello(verb, arg)
	case "MAIL":
		return s.mail(arg)
	case "RCPT":
		return s.rcpt(arg)
	case "DATA":
		return s.data(arg)
	case "RSET":
		s.reset()
		return r.reply(250, "OK")
	case "NOOP":
		return r.reply(250, "OK")
	case "VRFY":
		if arg == "" {
			return r.reply(501, "Syntax: VRFY string")
		}
		return r.reply(252, "Cannot VRFY user, but will accept message and attempt delivery")
	case "HELP":
		return r.reply(214, "Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT")
	case "TURN":
		return r.reply(502, "TURN refused: the roles change only once")
	case "EXPN", "SEND", "SOML", "SAML":
		return r.reply(502, "Command not implemented")
	}
	return r.reply(500, "Command not recognized")
}

func (s *turnSession) hello(verb, arg string) error {
	r := s.r
	if arg == "" {
		return r.reply(501, "Syntax: "+verb+" domain")
	}
	s.reset()
	var err error
	if h, ok := s.h.(interface{ Hello(string) error }); ok {
		err = h.Hello(arg)
	}
	s.greeted = isAccept(err)
	return r.verdict(err, 250, r.Hostname)
}

func (s *turnSession) mail(arg string) error {
	r := s.r
	switch {
	case !s.greeted:
		return r.reply(503, "Send HELO first")
	case s.inTx:
		return r.reply(503, "Nested MAIL command")
	}
	path, params, ok := cutPath(arg, "FROM:")
	if !ok {
		return r.reply(501, "Syntax: MAIL FROM:<reverse-path>")
	}
	if params != "" {
		return r.reply(555, "No parameters are supported")
	}
	err := s.h.Mail(path)
	s.inTx = isAccept(err)
	return r.verdict(err, 250, "OK")
}

func (s *turnSession) rcpt(arg string) error {
	r := s.r
	if !s.inTx {
		return r.reply(503, "Need MAIL command")
	}
	path, params, ok := cutPath(arg, "TO:")
	if !ok || path == "" {
		return r.reply(501, "Syntax: RCPT TO:<forward-path>")
	}
	if params != "" {
		return r.reply(555, "No parameters are supported")
	}
	s.tried++
	err := s.h.Rcpt(path)
	if isAccept(err) {
		s.accepted++
	}
	return r.verdict(err, 250, "OK")
}

func (s *turnSession) data(arg string) error {
	r := s.r
	switch {
	case arg != "":
		return r.reply(501, "Syntax: DATA")
	case !s.inTx || s.tried == 0:
		return r.reply(503, "Need MAIL and RCPT commands")
	case s.accepted == 0:
		return r.reply(554, "No valid recipients")
	}
	if err := r.reply(354, "Start mail input; end with <CRLF>.<CRLF>"); err != nil {
		return err
	}
	dr := &dotReader{r: r.c.rr.r, deadline: r.setReadDeadline, bol: true}
	herr := s.h.Data(dr)
	if _, err := io.Copy(io.Discard, dr); err != nil {
		return err
	}
	s.inTx, s.accepted, s.tried = false, 0, 0
	return r.verdict(herr, 250, "OK")
}

// cutPath splits "PREFIX<path> params" (prefix matched case-insensitively,
// spaces after it tolerated).
func cutPath(arg, prefix string) (path, params string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", "", false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", "", false
	}
	quoted, escaped := false, false
	for i := 1; i < len(rest); i++ {
		switch ch := rest[i]; {
		case escaped:
			escaped = false
		case ch == '\\':
			escaped = true
		case ch == '"':
			quoted = !quoted
		case ch == '>' && !quoted:
			tail := rest[i+1:]
			if tail != "" && tail[0] != ' ' {
				return "", "", false
			}
			return rest[1:i], strings.TrimSpace(tail), true
		}
	}
	return "", "", false
}

// isAccept reports whether a handler's verdict accepts.
func isAccept(err error) bool {
	if err == nil {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Code/100 == 2
}

// verdict sends the reply for a handler's result: okCode and okText for
// nil, the *Error's code and text, or 451.
func (r *Receiver) verdict(err error, okCode int, okText string) error {
	if err == nil {
		return r.reply(okCode, okText)
	}
	var e *Error
	if errors.As(err, &e) && e.Code >= 200 && e.Code <= 559 && e.Code/100 != 3 {
		return r.reply(e.Code, e.Msg)
	}
	return r.reply(451, "Requested action aborted: local error in processing")
}

// reply writes a reply, one line per line of text, and flushes it.
func (r *Receiver) reply(code int, text string) error {
	c := r.c
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		c.bw.WriteString(strconv.Itoa(code))
		c.bw.WriteString(sep)
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	if t := r.timeout(); t > 0 {
		c.conn.SetWriteDeadline(time.Now().Add(t))
	}
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("smtp: writing a reply after TURN: %w", err)
	}
	return nil
}

func (r *Receiver) timeout() time.Duration {
	if r.Timeout == 0 {
		return 5 * time.Minute
	}
	return r.Timeout
}

func (r *Receiver) setReadDeadline() {
	var d time.Time
	if t := r.timeout(); t > 0 {
		d = time.Now().Add(t)
	}
	r.c.conn.SetReadDeadline(d)
}

// readLine reads one command line without its line ending. A line over
// maxCommandLine octets is read to its end and reported as tooLong.
func (r *Receiver) readLine() (line string, tooLong bool, err error) {
	br := r.c.rr.r
	var buf []byte
	for {
		r.setReadDeadline()
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > maxCommandLine+2 {
			tooLong = true
		} else {
			buf = append(buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", false, fmt.Errorf("smtp: reading a command after TURN: %w", err)
		}
		break
	}
	if tooLong {
		return "", true, nil
	}
	s := strings.TrimSuffix(string(buf), "\n")
	return strings.TrimSuffix(s, "\r"), false, nil
}

// dotReader reads DATA's message lines up to the line holding only ".",
// removing the dot-stuffing (RFC 5321 §4.5.2). ".\r\n" ends the data, and
// so does ".\n" from a peer that sends bare LF line endings.
type dotReader struct {
	r        *bufio.Reader
	deadline func()
	bol      bool   // at the beginning of a line
	buf      []byte // the rest of the current piece, not yet returned
	off      int
	done     bool
	err      error
}

func (d *dotReader) Read(p []byte) (int, error) {
	for d.off == len(d.buf) {
		if d.done {
			return 0, io.EOF
		}
		if d.err != nil {
			return 0, d.err
		}
		d.deadline()
		piece, err := d.r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			d.err = fmt.Errorf("smtp: reading message data after TURN: %w", err)
			return 0, d.err
		}
		whole := err == nil // piece ends a line
		if d.bol && len(piece) > 0 && piece[0] == '.' {
			if whole && (string(piece) == ".\r\n" || string(piece) == ".\n") {
				d.done = true
				return 0, io.EOF
			}
			piece = piece[1:]
		}
		d.bol = whole
		d.buf = append(d.buf[:0], piece...)
		d.off = 0
	}
	n := copy(p, d.buf[d.off:])
	d.off += n
	return n, nil
}
