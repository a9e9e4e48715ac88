package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// A Reply is one complete server reply (RFC 5321 §4.2): a three-digit code
// and one or more lines of text.
type Reply struct {
	// Code is the reply code, 200 to 559.
	Code int
	// Enhanced is the RFC 3463 status code at the start of the first line's
	// text, or the zero value when there is none (RFC 2034 §4: greetings,
	// EHLO replies and 3yz replies carry none).
	Enhanced EnhancedCode
	// Lines holds the text of each line after the code and its separator,
	// enhanced code included, without the line ending.
	Lines []string

	line0 [1]string // storage for the usual single line
}

// msg returns the reply's lines joined by "\n", the message net/textproto
// reports for it.
func (r *Reply) msg() string { return strings.Join(r.Lines, "\n") }

// Text returns the reply's lines joined by "\n" with the enhanced status
// code removed from the start of each line.
func (r *Reply) Text() string {
	if r.Enhanced == (EnhancedCode{}) {
		return r.msg()
	}
	lines := make([]string, len(r.Lines))
	for i, l := range r.Lines {
		if n := enhancedLen(l); n > 0 {
			l = strings.TrimLeft(l[n:], " ")
		}
		lines[i] = l
	}
	return strings.Join(lines, "\n")
}

// matches reports whether the reply satisfies expect in net/textproto's
// convention: 0 matches anything, a one-digit expect matches the first digit,
// two digits the first two, three digits the whole code.
func (r *Reply) matches(expect int) bool {
	switch {
	case expect <= 0:
		return true
	case expect < 10:
		return r.Code/100 == expect
	case expect < 100:
		return r.Code/10 == expect
	default:
		return r.Code == expect
	}
}

// err returns the reply as an *Error.
func (r *Reply) err() *Error {
	return &Error{Code: r.Code, Enhanced: r.Enhanced, Msg: r.msg()}
}

// Default reply limits. RFC 5321 §4.5.3.1.5 allows 512 octets per reply line,
// RFC 4954 §4 up to 12288 for AUTH; real servers send longer, so the defaults
// are generous but bounded.
const (
	defaultMaxLineLength = 16 << 10
	defaultMaxReplySize  = 64 << 10
	minMaxLineLength     = 2 << 10
)

// replyReader reads replies from a buffered reader within limits.
type replyReader struct {
	r        *bufio.Reader
	maxLine  int
	maxReply int
	recent   [4]string // the last texts read, shared by the replies that repeat them
	next     int       // the slot of recent to fill next
}

// read reads one complete reply into rep. A reply that breaks the grammar or
// the limits returns a *protoError (ErrProtocol); an I/O error is returned as is, except
// that the end of the connection once part of a reply was read is an error
// that matches io.ErrUnexpectedEOF.
func (rr *replyReader) read(rep *Reply) error {
	*rep = Reply{}
	rep.Lines = rep.line0[:0]
	total := 0
	for {
		line, err := rr.line()
		if err != nil {
			if err == io.EOF && len(rep.Lines) > 0 {
				err = &truncatedError{}
			}
			return err
		}
		total += len(line)
		if total > rr.maxReply {
			return protocolError("reply exceeds the size limit", line, ErrReplyTooLong)
		}
		code, more, text, perr := parseReplyLine(line)
		if perr != nil {
			if len(rep.Lines) == 0 {
				perr.textproto = textprotoLineError(line)
			}
			return perr
		}
		if len(rep.Lines) == 0 {
			rep.Code = code
			rep.Enhanced = parseEnhanced(code, text)
		} else if code != rep.Code {
			return protocolError("reply code changed within a multi-line reply", line, nil)
		}
		rep.Lines = append(rep.Lines, rr.intern(text))
		if !more {
			return nil
		}
	}
}

// buffered reports whether a whole reply is in the read buffer already, so
// that reading it will not wait for the network: a line ending in LF that
// is not a continuation line ("xyz-").
func (rr *replyReader) buffered() bool {
	b, _ := rr.r.Peek(rr.r.Buffered())
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		if i < 4 || b[3] != '-' {
			return true
		}
		b = b[i+1:]
	}
}

// intern returns text as a string, the same string as a recent line's if
// the text is the same: a server that answers every RCPT alike costs one
// string, not one per reply.
func (rr *replyReader) intern(text []byte) string {
	for _, s := range rr.recent {
		if s == string(text) {
			return s
		}
	}
	s := string(text)
	rr.recent[rr.next] = s
	rr.next = (rr.next + 1) % len(rr.recent)
	return s
}

// line returns the next line without its line ending. The slice is valid
// until the next read.
func (rr *replyReader) line() ([]byte, error) {
	line, err := rr.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > rr.maxLine {
			return nil, protocolError("reply line exceeds the length limit", line, ErrReplyTooLong)
		}
		if err == io.EOF && len(line) > 0 {
			err = &truncatedError{partialLine: true}
		}
		return nil, err
	}
	if len(line) > rr.maxLine+2 {
		return nil, protocolError("reply line exceeds the length limit", line, ErrReplyTooLong)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseReplyLine splits a reply line into its code, whether more lines
// follow, and its text. A code alone ("250") is accepted, as real MTAs accept
// it. The code must match RFC 5321 §4.2's Reply-code: %x32-35 %x30-35 %x30-39.
func parseReplyLine(line []byte) (code int, more bool, text []byte, err *protoError) {
	if len(line) < 3 {
		return 0, false, nil, protocolError("short reply line", line, nil)
	}
	if line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9' {
		return 0, false, nil, protocolError("invalid reply code", line, nil)
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return 0, false, nil, protocolError("NUL in reply", line, nil)
	}
	if bytes.IndexByte(line, '\r') >= 0 {
		return 0, false, nil, protocolError("bare CR in reply", line, nil)
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if len(line) == 3 {
		return code, false, nil, nil
	}
	switch line[3] {
	case ' ':
	case '-':
		more = true
	default:
		return 0, false, nil, protocolError("invalid separator after reply code", line, nil)
	}
	return code, more, line[4:], nil
}

// parseEnhanced returns the RFC 3463 status code at the start of text, if
// there is one whose class agrees with the reply code (RFC 2034 §4).
func parseEnhanced(code int, text []byte) EnhancedCode {
	n := enhancedLen(string(text))
	if n == 0 {
		return EnhancedCode{}
	}
	var e EnhancedCode
	part := 0
	for _, c := range text[:n] {
		if c == '.' {
			part++
			continue
		}
		d := int(c - '0')
		switch part {
		case 0:
			e.Class = e.Class*10 + d
		case 1:
			e.Subject = e.Subject*10 + d
		default:
			e.Detail = e.Detail*10 + d
		}
	}
	if e.Class != code/100 {
		return EnhancedCode{}
	}
	return e
}

// enhancedLen returns the length of the "class.subject.detail" prefix of s
// (RFC 3463 §2: class 2, 4 or 5; subject and detail 1 to 3 digits), followed
// by a space or the end of s, or 0 if s does not start with one.
func enhancedLen(s string) int {
	if len(s) < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.' {
		return 0
	}
	i := 2
	for part := 0; part < 2; part++ {
		start := i
		for i < len(s) && i-start < 4 && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if n := i - start; n < 1 || n > 3 {
			return 0
		}
		if part == 0 {
			if i >= len(s) || s[i] != '.' {
				return 0
			}
			i++
		}
	}
	if i < len(s) && s[i] != ' ' {
		return 0
	}
	return i
}
