package smtp

import (
	"context"
	"errors"
	"strings"

	"github.com/resmtp/smtp/internal/pathscan"
)

// This file holds the two questions a client may ask the server besides
// VRFY (Client.Verify): EXPN (RFC 821 §3.3, RFC 5321 §3.5) and HELP (RFC
// 821 §4.1.1, RFC 5321 §4.1.1.8). Source routes are in path.go, and the
// historic commands RFC 5321 dropped (SEND, SOML and SAML as calls of their
// own, TURN, RFC 772's MRSQ/MRCP) in package rfc821.

// Expand asks the server for the members of a mailing list with EXPN
// (RFC 821 §3.3, RFC 5321 §3.5) and returns their addresses, one per line
// of the 250 reply, in order: the part between the last angle brackets of
// a "Full Name <local@domain>" line (a source route within them is kept,
// as RFC 821's Example 4 shows), or the whole line, trimmed, when it has
// none.
//
// Many servers disable EXPN (RFC 5321 §7.3). Expand returns nil and an
// *Error for any reply but 250: 550 for an unknown list or one the client
// may not see, 252 when the server cannot expand the list but will accept
// mail for it, 500, 501, 502 or 504 when EXPN is not available. An empty
// list name, or one with CR, LF or NUL, is an error before anything is
// sent. EXPN ends a pipelined group (RFC 2920 §3.1); Expand sends it
// alone.
func (c *Client) Expand(ctx context.Context, list string) ([]string, error) {
	if list == "" {
		return nil, errors.New("smtp: EXPN needs a list name")
	}
	if err := validateLine(list); err != nil {
		return nil, err
	}
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	rep, err := c.simple(ctx, command{verb: "EXPN", expect: 250}, "EXPN %s", list)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, line := range strings.Split(rep.Text(), "\n") {
		if a := expnAddress(line); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// expnAddress returns the address on one line of an EXPN or VRFY reply:
// what is inside the last "<" ">" outside a quoted string, or the trimmed
// line.
func expnAddress(line string) string {
	line = strings.TrimSpace(line)
	if mailbox, ok := pathscan.LastBracketed(line); ok {
		return mailbox
	}
	return line
}

// Help sends HELP, or "HELP topic" when topic is not "" (RFC 821 §4.1.1,
// RFC 5321 §4.1.1.8), and returns the text of the 211 or 214 reply: its
// lines joined by "\n", enhanced status codes removed. The text is meant
// for people.
//
// Help returns "" and an *Error for any other reply (500, 501, 502, 504 for
// an unknown topic), and ErrCRLF or ErrNUL for a bad topic before anything
// is sent. HELP ends a pipelined group (RFC 2920 §3.1); Help sends it
// alone.
func (c *Client) Help(ctx context.Context, topic string) (string, error) {
	if err := validateLine(topic); err != nil {
		return "", err
	}
	if err := c.hello(ctx); err != nil {
		return "", err
	}
	line := "HELP"
	if topic != "" {
		line += " " + topic
	}
	rep, err := c.simple(ctx, command{verb: "HELP", expect: 21}, "%s", line)
	if err != nil {
		return "", err
	}
	return rep.Text(), nil
}
