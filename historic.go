package smtp

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// This file holds the commands RFC 821 defined besides the core ones:
// SEND, SOML and SAML (RFC 821 §3.4), EXPN (§3.3) and HELP (§4.1.1).
// TURN is in turn.go, source routes in path.go, and RFC 772's
// MRSQ/MRCP in mrsq.go.

// A MailVerb is the command that begins a mail transaction (RFC 821 §3.4):
// MAIL delivers to mailboxes; SEND, SOML and SAML are RFC 821's "sending"
// variants, which deliver to the recipients' terminals.
//
// RFC 5321 F.6 says clients SHOULD NOT offer SEND, SOML and SAML as
// services and servers that implement them list them in their EHLO reply;
// they are here so that the library can speak to a server that still does.
// They are sent when the caller asks, without looking at the EHLO reply (an
// RFC 821 server has none): a server that does not implement them answers
// 500 or 502.
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

// StartMail begins a mail transaction with verb: "<verb> FROM:<from>",
// followed, as after Mail, by Rcpt calls and Data. The reverse-path is
// given without angle brackets, and may be a source route
// ("@A,@B:joe@C", see Path); "" sends the null reverse-path "<>".
//
// StartMail with MailMAIL is MailContext: it adds the BODY=8BITMIME and
// SMTPUTF8 parameters as net/smtp does. SEND, SOML and SAML carry no
// parameters (RFC 1869 defines them for MAIL and RCPT only). A Pipeline may
// also send them, anywhere in a group (RFC 2920 §3.1).
//
// StartMail returns an error for an unknown verb and ErrCRLF, ErrNUL or an
// error for angle brackets in from, before anything is sent; an *Error
// unless the server answers 250 (RFC 821 §4.3: 552, 451, 452, 500, 501,
// 502, 421).
func (c *Client) StartMail(ctx context.Context, verb MailVerb, from string) error {
	switch verb {
	case MailMAIL:
		if err := validateAddress(from); err != nil {
			return err
		}
		return c.MailContext(ctx, from)
	case MailSEND, MailSOML, MailSAML:
	default:
		return fmt.Errorf("smtp: unknown mail verb %q", string(verb))
	}
	if err := validateAddress(from); err != nil {
		return err
	}
	if err := c.hello(ctx); err != nil {
		return err
	}
	_, err := c.simple(ctx, command{verb: string(verb), expect: 250, timeout: c.timeouts.Mail}, "%s FROM:<%s>", string(verb), from)
	return err
}

// SendFrom begins a transaction with "SEND FROM:<from>": the message goes
// to the recipients' terminals (RFC 821 §3.4). See StartMail.
func (c *Client) SendFrom(ctx context.Context, from string) error {
	return c.StartMail(ctx, MailSEND, from)
}

// SomlFrom begins a transaction with "SOML FROM:<from>": each recipient's
// terminal if active, else the mailbox (RFC 821 §3.4). See StartMail.
func (c *Client) SomlFrom(ctx context.Context, from string) error {
	return c.StartMail(ctx, MailSOML, from)
}

// SamlFrom begins a transaction with "SAML FROM:<from>": every mailbox,
// and the terminal of each active recipient (RFC 821 §3.4). See StartMail.
func (c *Client) SamlFrom(ctx context.Context, from string) error {
	return c.StartMail(ctx, MailSAML, from)
}

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
	if !strings.HasSuffix(line, ">") {
		return line
	}
	start := -1
	quoted, escaped := false, false
	for i := 0; i < len(line)-1; i++ {
		switch ch := line[i]; {
		case escaped:
			escaped = false
		case ch == '\\':
			escaped = true
		case ch == '"':
			quoted = !quoted
		case ch == '<' && !quoted:
			start = i
		}
	}
	if start < 0 {
		return line
	}
	return line[start+1 : len(line)-1]
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
