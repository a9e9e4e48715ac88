// Command email drives github.com/jordan-wright/email's Pool (one
// connection) against the SMTP server at -addr, sending messages 1 to 4
// one after another. Scenario "refused": message 2 goes to a recipient the
// server refuses with 550. Scenario "idle": the client waits -wait before
// message 2, long enough for the server to close the idle connection.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jordan-wright/email"
)

func main() {
	addr := flag.String("addr", "", "SMTP server host:port")
	scenario := flag.String("scenario", "refused", `"refused" or "idle"`)
	wait := flag.Duration("wait", time.Second, `idle time before message 2 ("idle")`)
	flag.Parse()

	p, err := email.NewPool(*addr, 1, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 1; i <= 4; i++ {
		e := email.NewEmail()
		e.From = "sender@example.org"
		e.To = []string{"rcpt@example.org"}
		e.Subject = fmt.Sprintf("message %d", i)
		e.Text = []byte("hello\n")
		switch {
		case i == 2 && *scenario == "refused":
			e.To = []string{"reject@example.org"}
		case i == 2 && *scenario == "idle":
			time.Sleep(*wait)
		}
		start := time.Now()
		report(fmt.Sprintf("send %d", i), start, p.Send(e, 10*time.Second))
	}
	p.Close()
}
