package rfc821

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/pathscan"
)

// The Receiver's side of the session: RFC 821's minimum implementation of
// a server, over the connection Turn hijacked.

// maxCommandLine bounds a command line the Receiver reads.
const maxCommandLine = 1000

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
	if r.Hostname == "" {
		r.Hostname = addressLiteral(r.conn.LocalAddr())
	}
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
	dr := &dotReader{r: r.br, deadline: r.setReadDeadline, bol: true}
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
	path, rest, ok := pathscan.Cut(arg, prefix)
	return path, strings.TrimSpace(rest), ok
}

// isAccept reports whether a handler's verdict accepts.
func isAccept(err error) bool {
	if err == nil {
		return true
	}
	var e *smtp.Error
	return errors.As(err, &e) && e.Code/100 == 2
}

// verdict sends the reply for a handler's result: okCode and okText for
// nil, the *smtp.Error's code and text, or 451.
func (r *Receiver) verdict(err error, okCode int, okText string) error {
	if err == nil {
		return r.reply(okCode, okText)
	}
	var e *smtp.Error
	if errors.As(err, &e) && e.Code >= 200 && e.Code <= 559 && e.Code/100 != 3 {
		return r.reply(e.Code, e.Msg)
	}
	return r.reply(451, "Requested action aborted: local error in processing")
}

// reply writes a reply, one line per line of text, and flushes it, within
// the Receiver's Timeout.
func (r *Receiver) reply(code int, text string) error {
	var d time.Time
	if t := r.timeout(); t > 0 {
		d = time.Now().Add(t)
	}
	r.conn.SetWriteDeadline(d)
	lines := strings.Split(strings.ReplaceAll(text, "\r", ""), "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		r.bw.WriteString(strconv.Itoa(code))
		r.bw.WriteString(sep)
		r.bw.WriteString(l)
		r.bw.WriteString("\r\n")
	}
	if err := r.bw.Flush(); err != nil {
		return fmt.Errorf("rfc821: writing a reply after TURN: %w", err)
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
	r.conn.SetReadDeadline(d)
}

// readLine reads one command line without its line ending. A line over
// maxCommandLine octets is read to its end and reported as tooLong.
func (r *Receiver) readLine() (line string, tooLong bool, err error) {
	br := r.br
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
			return "", false, fmt.Errorf("rfc821: reading a command after TURN: %w", err)
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
			d.err = fmt.Errorf("rfc821: reading message data after TURN: %w", err)
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

// addressLiteral returns the RFC 5321 §4.1.3 address literal of a, such as
// "[192.0.2.1]" or "[IPv6:2001:db8::1]", or "localhost" if a is not an IP
// address and port.
func addressLiteral(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return "localhost"
	}
	if ip := ap.Addr().Unmap(); ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ap.Addr().WithZone("").String() + "]"
}
