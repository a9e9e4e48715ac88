package smtp

import (
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
)

// An EnhancedCode is an RFC 3463 enhanced mail system status code,
// class.subject.detail, as servers that advertise ENHANCEDSTATUSCODES
// (RFC 2034) put at the start of their reply text. The zero value means the
// reply carried none.
type EnhancedCode struct {
	Class, Subject, Detail int
}

// String returns e as "class.subject.detail", or "" for the zero value.
func (e EnhancedCode) String() string {
	if e == (EnhancedCode{}) {
		return ""
	}
	return strconv.Itoa(e.Class) + "." + strconv.Itoa(e.Subject) + "." + strconv.Itoa(e.Detail)
}

// Error is a reply from the server that the client did not expect: a
// negative completion (4yz, 5yz) or any code other than the one the command
// calls for. It is the one error type for server replies; find it with
// errors.As.
//
// For code written against net/smtp, errors.As also finds a *textproto.Error
// with the same Code and Msg in any error chain that holds an *Error, and
// Error returns the same text that *textproto.Error would.
type Error struct {
	// Code is the three-digit reply code (RFC 5321 §4.2).
	Code int
	// Enhanced is the RFC 3463 status code from the start of the reply
	// text, or the zero value if the server sent none.
	Enhanced EnhancedCode
	// Msg is the reply text, the lines joined by "\n", exactly as
	// net/textproto reports it (the enhanced code, if any, is kept).
	Msg string
}

// Error returns the code and the quoted text, in net/textproto's format.
func (e *Error) Error() string {
	return fmt.Sprintf("%03d %q", e.Code, e.Msg)
}

// Temporary reports whether the reply is a transient negative completion
// (4yz, RFC 5321 §4.2.1): the same command may succeed if tried again later.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// As lets errors.As find a *textproto.Error in a chain that holds an *Error,
// so that code written for net/smtp keeps working.
func (e *Error) As(target any) bool {
	if t, ok := target.(**textproto.Error); ok {
		*t = &textproto.Error{Code: e.Code, Msg: e.Msg}
		return true
	}
	return false
}

// ErrProtocol is matched (errors.Is) by the error for a server that broke
// the SMTP grammar or exceeded the client's limits: a malformed or
// over-long reply, a reply that changes its code mid-way, bytes that arrive
// when no reply is due. The connection is out of step after one, so the
// Client closes it. The error's text says what was wrong and quotes the
// start of the offending input (64 bytes at most); it also matches
// ErrReplyTooLong when a limit was exceeded.
var ErrProtocol = errors.New("smtp: protocol error")

// A protoError is the error that matches ErrProtocol.
type protoError struct {
	reason string // what was wrong
	line   string // the start of the offending input, quoted
	err    error  // ErrReplyTooLong when a limit was exceeded

	textproto string // net/textproto's text for the same line, if it rejects it too
}

// Error returns "smtp: protocol error: ", what was wrong and the quoted
// input.
func (e *protoError) Error() string {
	if e.line == "" {
		return "smtp: protocol error: " + e.reason
	}
	return "smtp: protocol error: " + e.reason + ": " + e.line
}

// Unwrap returns ErrReplyTooLong when a limit was exceeded, else nil.
func (e *protoError) Unwrap() error { return e.err }

// Is makes every protoError match ErrProtocol.
func (e *protoError) Is(target error) bool { return target == ErrProtocol }

func protocolError(reason string, line []byte, err error) *protoError {
	const max = 64
	if len(line) > max {
		line = line[:max]
	}
	return &protoError{reason: reason, line: strconv.Quote(string(line)), err: err}
}

var (
	// ErrNoFinalReply is matched by the outcome of a message whose text
	// was sent to its end but whose connection failed before the server's
	// reply to it was read, and no earlier reply refused it: the server may
	// have taken it (RFC 1047, RFC 5321 §6.1), so sending it again may
	// deliver it twice. With CHECKPOINT a Courier resolves it (RFC 1845).
	ErrNoFinalReply = errors.New("smtp: connection lost before the reply to the end of the message: it may have been delivered")
	// ErrReplyTooLong is wrapped by the protoError for a reply, or a
	// line of one, longer than the Dialer's limits (MaxReplySize).
	ErrReplyTooLong = errors.New("smtp: reply too long")
	// ErrCRLF is returned, before anything is written, for an argument that
	// contains CR or LF. Its text is net/smtp's.
	ErrCRLF = errors.New("smtp: A line must not contain CR or LF")
	// ErrNUL is returned, before anything is written, for an argument that
	// contains a NUL byte.
	ErrNUL = errors.New("smtp: a line must not contain NUL")
	// ErrClosed is matched by the errors of calls on a Client whose
	// connection has been closed by Close, Quit or a fatal error, and on a
	// Pool or DotWriter after its Close.
	ErrClosed = errors.New("smtp: client is closed")
)

// validateLine rejects an argument that would break the command line it is
// put into: CR or LF (RFC 5321 §2.3.8) or NUL.
func validateLine(line string) error {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\r', '\n':
			return ErrCRLF
		case 0:
			return ErrNUL
		}
	}
	return nil
}

// closedError is the error of a Pool or DotWriter used after its Close: its
// own text, matching ErrClosed.
type closedError string

func (e closedError) Error() string        { return string(e) }
func (e closedError) Is(target error) bool { return target == ErrClosed }
