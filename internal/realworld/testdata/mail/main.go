// Command mail drives gopkg.in/mail.v2 (github.com/go-mail/mail) against the
// SMTP server at -addr with Dialer.Timeout set to -timeout: the library sets
// that deadline on its own net.Conn (conn.SetDeadline) after smtp.NewClient
// and again at the start of every Send, and with RetryFailure it redials
// and retries a Send whose MAIL failed with io.EOF or a net.Error that
// reports Timeout(). It sends one message and closes the SendCloser; the
// server decides what stalls.
package main

import (
	"flag"
	"time"

	mail "gopkg.in/mail.v2"
)

func main() {
	addr := flag.String("addr", "", "SMTP server host:port")
	timeout := flag.Duration("timeout", 1500*time.Millisecond, "Dialer.Timeout")
	flag.Parse()
	host, port := splitAddr(*addr)

	d := &mail.Dialer{Host: host, Port: port, Timeout: *timeout,
		RetryFailure: true, StartTLSPolicy: mail.NoStartTLS}
	start := time.Now()
	s, err := d.Dial()
	report("dial", start, err)
	if err != nil {
		return
	}
	m := mail.NewMessage()
	m.SetHeader("From", "sender@example.org")
	m.SetHeader("To", "rcpt@example.org")
	m.SetHeader("Subject", "message 1")
	m.SetBody("text/plain", "hello")
	start = time.Now()
	err = mail.Send(s, m)
	if se, ok := err.(*mail.SendError); ok {
		err = se.Cause // the error the library's smtp client returned
	}
	report("send 1", start, err)
	start = time.Now()
	report("close", start, s.Close())
}
