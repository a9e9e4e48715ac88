package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
)

// Send sends one message and waits for its outcome: a Batch of one. It
// takes two round trips with PIPELINING (MAIL, RCPT and DATA in one group,
// then the data), one with CHUNKING as well. See Batch.Send for the
// outcome's errors; the Result is returned whenever the transaction ran,
// also with a *RecipientsError.
func (c *Client) Send(ctx context.Context, env *Envelope, msg io.Reader) (*Result, error) {
	b, err := c.NewBatch(ctx)
	if err != nil {
		return nil, err
	}
	var res *Result
	var sendErr error
	err = b.Send(env, msg, func(r *Result, e error) { res, sendErr = r, e })
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	return res, sendErr
}

// SendMail connects to the server at addr, switches to TLS if
// possible, authenticates with the optional mechanism a if possible,
// and then sends an email from address from, to addresses to, with
// message msg.
// The addr must include a port, as in "mail.example.com:smtp".
//
// The addresses in the to parameter are the SMTP RCPT addresses.
//
// The msg parameter should be an RFC 822-style email with headers
// first, a blank line, and then the message body. The lines of msg
// should be CRLF terminated. The msg headers should usually include
// fields such as "From", "To", "Subject", and "Cc".  Sending "Bcc"
// messages is accomplished by including an email address in the to
// parameter but not including it in the msg headers.
//
// SendMail returns ErrCRLF or ErrNUL for a bad address before connecting,
// the dial error, or net/smtp's error for the first failure of the session:
// a *textproto.Error for a refusing reply, the network's error for a broken
// connection. Every step is bounded by the default Timeouts (see Dial).
//
// The message is delivered to all of the recipients or to none, as with
// net/smtp: when the server refuses one of them, SendMail returns that
// refusal and the message is not sent. With PIPELINING, MAIL, every RCPT
// and DATA go out in one group (three client turns in all); if a recipient
// was refused but the server still answered DATA with 354, SendMail closes
// the connection without sending the message, which makes the server drop
// the transaction (RFC 5321 §4.1.1.10; an RSET there would be read as
// message text, and a lone "." would deliver an empty message).
func SendMail(addr string, a Auth, from string, to []string, msg []byte) error {
	if err := validateLine(from); err != nil {
		return err
	}
	for _, recp := range to {
		if err := validateLine(recp); err != nil {
			return err
		}
	}
	c, err := Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err = c.compatErr(c.hello(context.Background())); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		config := &tls.Config{ServerName: c.serverName}
		if err = c.StartTLS(config); err != nil {
			return err
		}
	}
	if a != nil && c.ext != nil {
		if !c.ext.has("AUTH") {
			return errors.New("smtp: server doesn't support AUTH")
		}
		if err = c.Auth(a); err != nil {
			return err
		}
	}
	if c.pipelining() {
		return c.compatErr(c.sendMailPipelined(from, to, msg))
	}
	if err = c.Mail(from); err != nil {
		return err
	}
	for _, addr := range to {
		if err = c.Rcpt(addr); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err = w.Write(msg); err != nil {
		return err
	}
	if err = w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// sendMailPipelined is SendMail's transaction for a server that offers
// PIPELINING: MAIL, the RCPTs and DATA in one group, then the message, "."
// and QUIT in another.
func (c *Client) sendMailPipelined(from string, to []string, msg []byte) error {
	end, err := c.begin(context.Background())
	if err != nil {
		return err
	}
	cmds := make([]*Cmd, 0, len(to)+2)
	lines := make([]string, 0, len(to)+2)
	add := func(verb string, expect int, line string) *Cmd {
		x := &Cmd{cmd: command{verb: verb, expect: expect, timeout: c.commandTimeout(verb)}}
		cmds, lines = append(cmds, x), append(lines, line)
		return x
	}
	add("MAIL", 250, c.mailLine(from))
	for _, addr := range to {
		line, _ := rcptCommand(c.ext, Recipient{Addr: addr}) // no parameters: no error
		add("RCPT", 25, line)
	}
	data := add("DATA", 354, "DATA")
	if err := c.execGroup(cmds, lines); err != nil {
		return end(err)
	}
	// net/smtp's error: the first refusal in the order it sends the
	// commands, before which it would have stopped.
	for _, x := range cmds {
		if x.Err == nil {
			continue
		}
		if data.Err == nil {
			// DATA was accepted for the other recipients, but the message
			// must reach all of them or none: abandon the data phase by
			// closing the connection.
			c.fail(errors.New("smtp: SendMail abandoned the transaction after a refusal"))
			c.Text.Close()
		}
		return end(x.Err)
	}
	if _, err := c.writeData(newMessage(bytes.NewReader(msg), false), 0); err != nil {
		return end(err)
	}
	dot := c.endText(1, nil)
	quit, err := c.queueLine(command{verb: "QUIT", expect: 221, timeout: c.timeouts.Command}, "QUIT")
	if err == nil {
		err = c.drain()
	}
	if err == nil {
		err = dot.Err
	}
	if err == nil {
		err = quit.Err
	}
	return end(err)
}
