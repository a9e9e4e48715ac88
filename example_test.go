package smtp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/resmtp/smtp"
)

// SendMail is net/smtp's: change the import path and nothing else. A
// refusal is a *textproto.Error, as with net/smtp, and if any recipient is
// refused, no one gets the message.
func ExampleSendMail() {
	auth := smtp.PlainAuth("", "user@example.com", "password", "mail.example.com")
	msg := []byte("To: recipient@example.net\r\nSubject: hello\r\n\r\nThis is the body.\r\n")
	err := smtp.SendMail("mail.example.com:587", auth, "sender@example.org", []string{"recipient@example.net"}, msg)
	if te, ok := err.(*textproto.Error); ok && te.Code/100 == 4 {
		log.Print("refused for now; try again later: ", err)
	} else if err != nil {
		log.Fatal(err)
	}
}

// The net/smtp-named calls return net/smtp's *textproto.Error; its
// enhanced status code (RFC 3463) is in the text, where EnhancedCodeOf
// finds it. The same works on the *smtp.Error of the other calls.
func ExampleEnhancedCodeOf() {
	err := error(&textproto.Error{Code: 550, Msg: "5.1.1 <nobody@example.net>: Recipient address rejected"})
	code := smtp.EnhancedCodeOf(err)
	fmt.Println(code, code.Class == 5 && code.Subject == 1)
	// Output: 5.1.1 true
}

// Dial with a context, require TLS, authenticate and send one message.
func ExampleDialer() {
	d := &smtp.Dialer{
		LocalName: "app1.example.org",
		TLSPolicy: smtp.TLSRequired,
		Timeouts:  smtp.Timeouts{Mail: 30 * time.Second},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := d.Dial(ctx, "mail.example.com:587")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.AuthContext(ctx, smtp.SASLAuth(sasl.NewPlainClient("", "user", "password"))); err != nil {
		log.Fatal(err)
	}
	if err := c.MailContext(ctx, "sender@example.org"); err != nil {
		log.Fatal(err)
	}
	if err := c.RcptContext(ctx, "recipient@example.net"); err != nil {
		log.Fatal(err)
	}
	w, err := c.DataContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.WriteString(w, "Subject: hello\r\n\r\nHello.\r\n"); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // the server's reply to the final "."
		log.Fatal(err)
	}
	if err := c.QuitContext(ctx); err != nil {
		log.Fatal(err)
	}
}

// Gmail and Microsoft 365 take an OAuth 2.0 access token with XOAUTH2.
func ExampleXOAuth2Client() {
	token := "ya29.a0Af..." // from your OAuth 2.0 flow
	auth := smtp.SASLAuth(smtp.XOAuth2Client("user@gmail.com", token))
	err := smtp.SendMail("smtp.gmail.com:587", auth, "user@gmail.com",
		[]string{"friend@example.net"}, []byte("Subject: hi\r\n\r\nhi\r\n"))
	if err != nil {
		log.Fatal(err)
	}
}

// Inspect a refusal: the reply code, the RFC 3463 enhanced code, and whether
// trying again later may help.
func ExampleError() {
	var err error = fmt.Errorf("sending: %w", &smtp.Error{Code: 452, Enhanced: smtp.EnhancedCode{Class: 4, Subject: 2, Detail: 2}, Msg: "4.2.2 mailbox full"})

	var e *smtp.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code, e.Enhanced, e.Temporary())
	}
	// Output: 452 4.2.2 true
}

// The DotWriter turns any line endings into CRLF, stuffs leading dots and
// ends the data.
func ExampleDotWriter() {
	var out strings.Builder
	w := smtp.NewDotWriter(&out)
	io.WriteString(w, "Subject: dots\n\n.one dot\nend")
	w.Close()
	fmt.Print(strings.ReplaceAll(out.String(), "\r\n", "<CRLF>\n"))
	fmt.Printf("%d canonical octets\n", w.Count())
	// Output:
	// Subject: dots<CRLF>
	// <CRLF>
	// ..one dot<CRLF>
	// end<CRLF>
	// .<CRLF>
	// 32 canonical octets
}

// Resume after the server reported (RFC 1845 §3) that it already holds the
// first 14 octets (the header): only the rest goes out, stuffed as it
// would have been.
func ExampleDotWriter_Skip() {
	var out strings.Builder
	w := smtp.NewDotWriter(&out)
	w.Skip(14)
	io.WriteString(w, "Subject: x\r\n\r\n.hidden\r\n")
	w.Close()
	fmt.Printf("%q\n", out.String())
	// Output: "..hidden\r\n.\r\n"
}

// Trace the exchange; credentials are redacted before a hook sees them.
func ExampleClientTrace() {
	trace := &smtp.ClientTrace{
		CommandSent: func(line string) { log.Printf("C: %s", line) },
		ReplyRead:   func(r *smtp.Reply) { log.Printf("S: %d %s", r.Code, r.Text()) },
		DataProgress: func(written, total int64) {
			log.Printf("%d octets sent", written)
		},
	}
	d := &smtp.Dialer{Trace: trace}
	c, err := d.Dial(context.Background(), "mail.example.com:25")
	if err != nil {
		log.Fatal(err)
	}
	c.Quit()
}

// Trace one Send of a shared Pool, not every connection: the trace comes
// with the call's context, as with net/http/httptrace.
func ExampleWithClientTrace() {
	pool := &smtp.Pool{Dialer: &smtp.Dialer{LocalName: "app1.example.org"}}
	defer pool.Close()
	ctx := smtp.WithClientTrace(context.Background(), &smtp.ClientTrace{
		CommandSent: func(line string) { log.Printf("order 1234: C: %s", line) },
	})
	env := &smtp.Envelope{From: "shop@example.org", To: smtp.Recipients("customer@example.net")}
	if _, err := pool.Send(ctx, "mail.example.com:25", env, strings.NewReader("Subject: your order\r\n\r\n...\r\n")); err != nil {
		log.Print(err)
	}
}

// Pipeline your own commands (RFC 2920): one write, replies in order.
func ExampleClient_Pipeline() {
	c, err := (&smtp.Dialer{}).Dial(context.Background(), "mail.example.com:25")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p := c.Pipeline()
	mail := p.Cmd(250, "MAIL FROM:<%s>", "sender@example.org")
	rcpts := []*smtp.Cmd{
		p.Cmd(25, "RCPT TO:<%s>", "a@example.net"),
		p.Cmd(25, "RCPT TO:<%s>", "b@example.net"),
	}
	rset := p.Cmd(250, "RSET") // only checking the addresses
	if err := p.Exec(context.Background()); err != nil {
		log.Fatal(err) // the connection failed, or the group broke the rules
	}
	if mail.Err != nil {
		log.Fatal(mail.Err)
	}
	for _, r := range rcpts {
		fmt.Println(r.Reply.Code, r.Err)
	}
	_ = rset
}

// Send many messages over one connection: about one round trip per message
// with PIPELINING, almost none with CHUNKING as well.
func ExampleBatch() {
	c, err := (&smtp.Dialer{}).Dial(context.Background(), "mail.example.com:25")
	if err != nil {
		log.Fatal(err)
	}
	b, err := c.NewBatch(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for i, to := range []string{"a@example.net", "b@example.net", "c@example.net"} {
		env := &smtp.Envelope{From: "news@example.org", To: smtp.Recipients(to)}
		body := strings.NewReader(fmt.Sprintf("Subject: issue %d\r\n\r\nHello.\r\n", i))
		err := b.Send(env, body, func(res *smtp.Result, err error) {
			if err != nil {
				log.Printf("%s: %v", to, err)
				return
			}
			log.Printf("%s: %s", to, res.Reply.Text())
		})
		if err != nil {
			log.Fatal(err) // a bad envelope, or the connection failed
		}
	}
	if err := b.Quit(); err != nil { // QUIT goes with the last message
		log.Fatal(err)
	}
}

// One message with per-recipient outcomes: a refused recipient does not
// stop the others.
func ExampleClient_Send() {
	c, err := (&smtp.Dialer{}).Dial(context.Background(), "mail.example.com:25")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	env := &smtp.Envelope{
		From: "sender@example.org",
		To:   []smtp.Recipient{{Addr: "a@example.net", Notify: []smtp.DSNNotify{smtp.DSNFailure, smtp.DSNDelay}}, {Addr: "b@example.net"}},
		Ret:  smtp.DSNReturnHeaders,
	}
	res, err := c.Send(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhi\r\n"))
	var refused *smtp.RecipientsError
	switch {
	case errors.As(err, &refused) && refused.Accepted > 0:
		log.Printf("delivered to %d, refused: %v", refused.Accepted, refused)
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("queued: %s", res.Reply.Text())
	}
}

// Share connections among goroutines: each Send takes an idle connection
// to the server, or dials one, up to MaxConns.
func ExamplePool() {
	pool := &smtp.Pool{
		Dialer:   &smtp.Dialer{LocalName: "app1.example.org", TLSPolicy: smtp.TLSRequired},
		Auth:     smtp.SASLAuth(sasl.NewPlainClient("", "user", "password")),
		MaxConns: 8,
	}
	defer pool.Close()
	env := &smtp.Envelope{From: "app@example.org", To: smtp.Recipients("user@example.net")}
	res, err := pool.Send(context.Background(), "smtp.example.org:587", env, strings.NewReader("Subject: hi\r\n\r\nhi\r\n"))
	if err != nil {
		log.Fatal(err)
	}
	log.Print(res.Reply.Text())
}

// Push a large message through a link that breaks: with CHECKPOINT (RFC
// 1845) a broken transfer resumes where the server's copy ends.
func ExampleCourier() {
	f, err := os.Open("large.eml")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	k := &smtp.Courier{
		Dialer:     &smtp.Dialer{LocalName: "app1.example.org"},
		RetryDelay: time.Minute, // the default is RFC 1123's 30 minutes
		Attempts:   10,
	}
	env := &smtp.Envelope{From: "app@example.org", To: smtp.Recipients("archive@example.net")}
	res, err := k.Deliver(context.Background(), "example.net", env, f) // MX lookup, then send
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("sent %d octets for %d, %d restarts: %s", res.Transmitted, res.Octets, res.Restarts, res.Reply.Text())
}
