package smtp

import (
	"errors"
	"io"
	"net/textproto"
	"strconv"
)

// The methods and functions that net/smtp has (Dial, NewClient, SendMail,
// and Client.Hello, StartTLS, Auth, Mail, Rcpt, Data and its writer, Verify,
// Reset, Noop, Quit) return what net/smtp returns in the same case, so that
// code written for net/smtp keeps working with only its import path changed:
//
//   - a refusing reply is a *textproto.Error with net/smtp's Code and Msg;
//   - a failure of the connection is the bare error the network returned:
//     io.EOF when the server closed it, the *net.OpError of a timeout or a
//     reset, comparable with == and usable in type assertions;
//   - a reply that breaks the SMTP grammar is a textproto.ProtocolError,
//     with net/textproto's text wherever net/textproto rejects it too;
//   - after Close or Quit, a call returns the error of writing to the closed
//     connection, as net/smtp's does; after a failure, the same failure, or
//     the error that writing to the connection returns now (a deadline that
//     has passed).
//
// Their Context variants, and everything net/smtp lacks, return this
// package's richer errors instead: an *Error (with the enhanced status code
// and Temporary), an error matching ErrProtocol, and connection failures wrapped with
// what the Client was doing ("smtp: reading reply to MAIL: EOF"), all of
// which errors.Is and errors.As see through. EnhancedCodeOf gives a
// compat caller the enhanced status code of a *textproto.Error.

// An opError is a failure of the connection while the Client was doing op:
// Err is exactly what the network, TLS or the reply reader returned.
type opError struct {
	op  string // "reading reply to MAIL", "writing commands", ...
	err error
}

func (e *opError) Error() string { return "smtp: " + e.op + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// netError wraps a connection failure with what the Client was doing.
func netError(op string, err error) error { return &opError{op: op, err: err} }

// compatErr turns an error of the engine into the value net/smtp returns in
// the same case (see the comment at the top of this file).
func (c *Client) compatErr(err error) error {
	if err == nil {
		return nil
	}
	if err == c.err {
		// The call did nothing: the Client was closed (by Close, Quit or
		// a failed Auth) or had failed before. net/smtp's would write
		// its command anyway and return what the connection says, so
		// write nothing and return what the connection says to that: the
		// error of a closed connection or of a passed deadline. Else the
		// connection is still open after the failure, and the failure is
		// what net/smtp's next read would meet again.
		if _, werr := c.conn.Write(nil); werr != nil {
			return werr
		}
		if err == ErrClosed {
			return err
		}
	}
	var oe *opError
	if errors.As(err, &oe) {
		err = oe.err
		var te *truncatedError
		if errors.As(err, &te) {
			if te.partialLine {
				return io.ErrUnexpectedEOF
			}
			// net/textproto returns a bare io.EOF when the connection
			// ends between the lines of a multi-line reply.
			return io.EOF
		}
	}
	var pe *protoError
	if errors.As(err, &pe) {
		if pe.textproto != "" {
			return textproto.ProtocolError(pe.textproto)
		}
		return textproto.ProtocolError(pe.Error())
	}
	var e *Error
	if errors.As(err, &e) {
		return &textproto.Error{Code: e.Code, Msg: e.Msg}
	}
	return err
}

// A truncatedError reports a connection that ended in the middle of a
// reply. errors.Is matches it with io.ErrUnexpectedEOF.
type truncatedError struct {
	partialLine bool // inside a line, not between the lines of a reply
}

func (e *truncatedError) Error() string        { return io.ErrUnexpectedEOF.Error() }
func (e *truncatedError) Is(target error) bool { return target == io.ErrUnexpectedEOF }

// textprotoLineError returns the text of the textproto.ProtocolError that
// net/textproto's ReadResponse returns for line as the first line of a
// reply, or "" if net/textproto accepts it.
func textprotoLineError(line []byte) string {
	s := string(line)
	if len(s) < 4 || s[3] != ' ' && s[3] != '-' {
		return "short response: " + strconv.Quote(s)
	}
	if code, err := strconv.Atoi(s[:3]); err != nil || code < 100 {
		return "invalid response code: " + strconv.Quote(s)
	}
	return ""
}

// EnhancedCodeOf returns the RFC 3463 enhanced status code of a refusal:
// err's *Error's Enhanced, or, for the *textproto.Error that the
// net/smtp-compatible methods return, the code parsed from the start of its
// text (RFC 2034 §4). It returns the zero EnhancedCode when err holds
// neither or the reply carried no enhanced code.
func EnhancedCodeOf(err error) EnhancedCode {
	var e *Error
	if errors.As(err, &e) {
		return e.Enhanced
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return parseEnhanced(te.Code, []byte(te.Msg))
	}
	return EnhancedCode{}
}
