// Command gomail drives gopkg.in/gomail.v2 against the SMTP server at -addr:
// it dials one SendCloser, sends message 1, stays idle for -wait (the
// server closes the idle connection meanwhile) and sends message 2 through
// the same SendCloser, which must redial because Mail returned io.EOF.
package main

import (
	"flag"
	"fmt"
	"time"

	gomail "gopkg.in/gomail.v2"
)

func main() {
	addr := flag.String("addr", "", "SMTP server host:port")
	wait := flag.Duration("wait", time.Second, "idle time between the messages")
	flag.Parse()
	host, port := splitAddr(*addr)

	d := &gomail.Dialer{Host: host, Port: port}
	start := time.Now()
	s, err := d.Dial()
	report("dial", start, err)
	if err != nil {
		return
	}
	for i := 1; i <= 2; i++ {
		if i > 1 {
			time.Sleep(*wait)
		}
		m := gomail.NewMessage()
		m.SetHeader("From", "sender@example.org")
		m.SetHeader("To", "rcpt@example.org")
		m.SetHeader("Subject", fmt.Sprintf("message %d", i))
		m.SetBody("text/plain", "hello")
		start = time.Now()
		report(fmt.Sprintf("send %d", i), start, gomail.Send(s, m))
	}
	start = time.Now()
	report("close", start, s.Close())
}
