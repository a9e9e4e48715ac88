package smtp

import (
	"context"
	"errors"
	"strings"

	"github.com/resmtp/smtp/internal/pathscan"
)

// This file holds the commands RFC 821 defined besides the core ones that
// the Client still speaks: the verbs SEND, SOML and SAML (RFC 821 §3.4) for
// an Envelope, EXPN (§3.3) and HELP (§4.1.1). Source routes are in path.go.
// The rfc821 package has the rest, built on the Client's public API: SEND,
// SOML and SAML as calls of their own, TURN, and RFC 772's MRSQ/MRCP.

// A MailVerb is the command that begins a mail transaction (RFC 821 §3.4):
// MAIL delivers to mailboxes; SEND, SOML and SAML are RFC 821's "sending"
// variants, which deliver to the recipients' terminals.
//
// RFC 5321 F.6 says clients SHOULD NOT offer SEND, SOML and SAML as
// services and servers that implement them list them in their EHLO reply;
// they are here so that the library can speak to a server that still does.
// They are sent when the caller asks, without looking at the EHLO reply (an
// RFC 821 server has none): a server that does not implement them answers
// 500 or 502. Envelope.Verb chooses the verb for Send and a Batch, and a
// Pipeline may send any of them; the rfc821 package's StartMail, SendFrom,
// SomlFrom and SamlFrom begin a transaction with one, as MailContext does
// with MAIL.
type MailVerb string

const (
	// MailMAIL delivers to the recipients' mailboxes.
	MailMAIL MailVerb = "MAIL"
	// MailSEND delivers to the recipients' terminals; it fails for a
	// recipient who is not active or not accepting terminal messages (a
	// 450 to RCPT, RFC 821 §3.4).
	MailSEND MailVerb = "SEND"
	// MailSOML (Send Or MaiL) delivers to the terminal of each recipient
	// who is active, and to the mailbox of the others.
	MailSOML MailVerb = "SOML"
	// MailSAML (Send And MaiL) delivers to every recipient's mailbox, and
	// to the terminal of those who are active.
	MailSAML MailVerb = "SAML"
)

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
