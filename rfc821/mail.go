package rfc821

import (
	"context"
	"fmt"
	"strings"

	"github.com/resmtp/smtp"
)

// StartMail begins a mail transaction with verb, "MAIL", "SEND", "SOML" or
// "SAML" (RFC 821 §3.4): "<verb> FROM:<from>",
// followed, as after Client.MailContext, by RcptContext calls and
// DataContext. The reverse-path is given without angle brackets, and may be
// a source route ("@A,@B:joe@C", see smtp.Path); "" sends the null
// reverse-path "<>".
//
// SEND delivers to the recipients' terminals, and a recipient who is not
// active or not accepting terminal messages is refused with 450 to RCPT;
// SOML (Send Or MaiL) to the terminal of each active recipient and the
// mailbox of the others; SAML (Send And MaiL) to every mailbox and the
// terminal of each active recipient.
//
// SEND, SOML and SAML are sent when the caller asks, without
// looking at the EHLO reply (an RFC 821 server has none): a server that
// does not implement them answers 500 or 502. RFC 5321 F.6 says clients
// SHOULD NOT offer them as services. They carry no parameters (RFC 1869
// defines them for MAIL and RCPT only). A Pipeline may also send them,
// anywhere in a group (RFC 2920 §3.1), and Client.Send does when
// Envelope.Verb asks.
//
// StartMail with "MAIL" is Client.MailContext: it adds the
// BODY=8BITMIME and SMTPUTF8 parameters as net/smtp does.
//
// StartMail returns an error for an unknown verb and smtp.ErrCRLF,
// smtp.ErrNUL or an error for angle brackets or a malformed path in from,
// before anything is sent; an *smtp.Error unless the server answers 250
// (RFC 821 §4.3: 552, 451, 452, 500, 501, 502, 421); and an I/O, protocol
// or context error, which leaves the Client unusable.
func StartMail(ctx context.Context, c *smtp.Client, verb, from string) error {
	switch verb {
	case "MAIL":
		if err := checkAddress(from); err != nil {
			return err
		}
		return c.MailContext(ctx, from)
	case "SEND", "SOML", "SAML":
	default:
		return fmt.Errorf("rfc821: unknown mail verb %q", verb)
	}
	if err := checkAddress(from); err != nil {
		return err
	}
	p := c.Pipeline()
	x := p.Cmd(250, "%s FROM:<%s>", verb, from)
	if err := p.Exec(ctx); err != nil {
		return err
	}
	return x.Err
}

// checkAddress checks an address to be sent in angle brackets, as package
// smtp checks the addresses of an Envelope: no CR, LF or NUL, no angle
// brackets around it, a valid RFC 5321 path when it holds "<>\"\\[]", and
// no longer than a path may be. "" (the null path) is valid.
func checkAddress(addr string) error {
	for i := 0; i < len(addr); i++ {
		switch addr[i] {
		case '\r', '\n':
			return smtp.ErrCRLF
		case 0:
			return smtp.ErrNUL
		}
	}
	if strings.ContainsAny(addr, `<>"\[]`) {
		if addr[0] == '<' || addr[len(addr)-1] == '>' {
			return fmt.Errorf("rfc821: invalid address %q: give it without angle brackets", addr)
		}
		if _, err := smtp.ParsePath("<" + addr + ">"); err != nil {
			return err // matches smtp.ErrInvalidPath and says why
		}
	}
	if len(addr) > 254 {
		return fmt.Errorf("rfc821: address of %d octets is longer than a path may be (RFC 5321 §4.5.3.1.3)", len(addr))
	}
	return nil
}
