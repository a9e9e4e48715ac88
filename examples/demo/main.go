// Command demo shows resmtp's main job against an embedded SMTP server:
//
//	go run ./examples/demo
//
// It starts internal/smtptest on a loopback port (STARTTLS with a
// certificate made at start, AUTH, PIPELINING, CHUNKING, CHECKPOINT) and
//
//  1. sends three messages in one pipelined Batch over STARTTLS and AUTH,
//     printing the exchange;
//  2. sends a large message (64 MiB by default) through a connection that
//     the server cuts at about 60 %: the client reconnects, reissues MAIL
//     with the same TRANSID, learns from "355 <offset>" how much the server
//     holds, and sends only the rest (RFC 1845). It prints the octets sent
//     against the message size and checks the server's copy byte for byte.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/progress"
	"github.com/resmtp/smtp/internal/smtptest"
)

func main() {
	size := flag.Int("size", 64<<20, "size in octets of the large message")
	cut := flag.Float64("cut", 0.6, "where the server cuts the connection, as a fraction of the large message")
	quiet := flag.Bool("quiet", false, "do not print the transcript")
	flag.Parse()
	if err := run(os.Stdout, *size, *cut, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, size int, cut float64, quiet bool) error {
	ext := []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", fmt.Sprintf("SIZE %d", 2*size+1<<20), "DSN",
		"CHUNKING", "CHECKPOINT", "STARTTLS", "AUTH PLAIN LOGIN"}
	srv, err := smtptest.NewServer(smtptest.Config{
		Hostname:       "mx.demo.example",
		Extensions:     ext,
		MaxMessageSize: int64(2*size + 1<<20),
		Users:          map[string]string{"demo": "correct horse battery staple"},
		// The fourth connection is the large message's first: cut it.
		ConnFaults: map[int]smtptest.Faults{2: {CloseAfterDataOctets: int64(float64(size) * cut)}},
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "embedded SMTP server listening on %s\n\n", srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	small, err := session(ctx, out, srv, quiet)
	if err != nil {
		return err
	}
	large := largeMessage(size)
	if err := resumable(ctx, out, srv, large); err != nil {
		return err
	}
	return check(out, srv, append(small, large))
}

// session sends three messages in one pipelined Batch over STARTTLS and
// AUTH and prints the exchange.
func session(ctx context.Context, out io.Writer, srv *smtptest.Server, quiet bool) ([][]byte, error) {
	fmt.Fprintln(out, "== 1. STARTTLS (required), AUTH, and three messages in one pipelined batch")
	trace := &smtp.ClientTrace{
		CommandSent: func(line string) {
			if !quiet {
				fmt.Fprintf(out, "  C: %s\n", line)
			}
		},
		ReplyRead: func(r *smtp.Reply) {
			if quiet {
				return
			}
			for i, l := range r.Lines {
				sep := " "
				if i < len(r.Lines)-1 {
					sep = "-"
				}
				fmt.Fprintf(out, "  S: %d%s%s\n", r.Code, sep, l)
			}
		},
		TLSHandshakeDone: func(state tls.ConnectionState, err error) {
			if err == nil {
				fmt.Fprintf(out, "  -- TLS handshake done: %s, %s\n", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
			}
		},
	}
	d := &smtp.Dialer{LocalName: "client.demo.example", TLSPolicy: smtp.TLSRequired, TLSConfig: srv.ClientTLSConfig(), Trace: trace}
	c, err := d.Dial(ctx, srv.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	host, _, _ := net.SplitHostPort(srv.Addr) // PlainAuth checks the server's name
	if err := c.AuthContext(ctx, smtp.PlainAuth("", "demo", "correct horse battery staple", host)); err != nil {
		return nil, err
	}
	b, err := c.NewBatch(ctx)
	if err != nil {
		return nil, err
	}
	msgs := [][]byte{
		[]byte("From: alice@demo.example\r\nTo: bob@demo.example\r\nSubject: hello\r\n\r\nHello, Bob.\r\n"),
		[]byte("Subject: dots and LF-only line ends\n\n.a line with a leading dot\n..two dots\n.\nend\n"),
		[]byte("Subject: to two\r\n\r\nOne message, two recipients.\r\n"),
	}
	to := [][]string{{"bob@demo.example"}, {"bob@demo.example", "carol@demo.example"}, {"dave@demo.example", "erin@demo.example"}}
	var failed error
	for i, m := range msgs {
		i := i
		err := b.Send(&smtp.Envelope{From: "alice@demo.example", To: smtp.Recipients(to[i]...)}, bytes.NewReader(m),
			func(res *smtp.Result, err error) {
				if err != nil {
					failed = err
					return
				}
				fmt.Fprintf(out, "  -- message %d: %s\n", i+1, res.Reply.Text())
			})
		if err != nil {
			return nil, err
		}
	}
	if err := b.Quit(); err != nil {
		return nil, err
	}
	if failed != nil {
		return nil, failed
	}
	for i := range msgs {
		msgs[i] = canonical(msgs[i])
	}
	return msgs, nil
}

// resumable sends the large message with a Courier through a connection
// the server cuts.
func resumable(ctx context.Context, out io.Writer, srv *smtptest.Server, msg []byte) error {
	fmt.Fprintf(out, "\n== 2. a %s message; the server cuts the connection part-way (RFC 1845 CHECKPOINT)\n", progress.Size(int64(len(msg))))
	bar := progress.New(out, "  sending", int64(len(msg)))
	trace := &smtp.ClientTrace{
		DataProgress: func(written, total int64) { bar.Set(written) },
		Connected: func(addr string, attempt int) {
			if attempt > 1 {
				fmt.Fprintf(out, "  -- connected to %s again (attempt %d)\n", addr, attempt)
			}
		},
		AttemptFailed: func(addr string, err error) {
			bar.Done()
			fmt.Fprintf(out, "  !! connection lost: %v\n  -- reconnecting in 1s\n", err)
		},
		Resumed: func(offset int64, err error) {
			if err != nil {
				fmt.Fprintf(out, "  !! the server's offset %d cannot be right: %v\n", offset, err)
				return
			}
			fmt.Fprintf(out, "  -- the server holds %d octets (%.1f %%): sending only the rest\n", offset, 100*float64(offset)/float64(len(msg)))
		},
	}
	k := &smtp.Courier{
		Dialer:     &smtp.Dialer{LocalName: "client.demo.example", TLSConfig: srv.ClientTLSConfig(), Trace: trace},
		RetryDelay: time.Second,
	}
	start := time.Now()
	res, err := k.Send(ctx, []string{srv.Addr}, &smtp.Envelope{From: "alice@demo.example", To: smtp.Recipients("bob@demo.example")}, bytes.NewReader(msg))
	bar.Done()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  -- %s\n", res.Reply.Text())
	fmt.Fprintf(out, "  sent %d octets for a %d-octet message (%.1f %% of it) in %v, %d restart(s)\n",
		res.Transmitted, res.Octets, 100*float64(res.Transmitted)/float64(res.Octets), time.Since(start).Round(time.Millisecond), res.Restarts)
	return nil
}

// check compares the server's copies with what was sent.
func check(out io.Writer, srv *smtptest.Server, want [][]byte) error {
	got := srv.Messages()
	fmt.Fprintf(out, "\n== summary: the server received %d messages, %d expected\n", len(got), len(want))
	if len(got) != len(want) {
		return fmt.Errorf("server has %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		same := bytes.Equal(m.Data, want[i])
		resumed := ""
		if len(m.ResumedAt) > 0 {
			resumed = fmt.Sprintf(", resumed at octet %d", m.ResumedAt[0])
		}
		fmt.Fprintf(out, "  %d. to %s: %s via %s, queue id %s%s, byte-identical: %v\n",
			i+1, strings.Join(m.To, ","), progress.Size(int64(len(m.Data))), m.Via, m.QueueID, resumed, same)
		if !same {
			return errors.New("the server's copy differs from the message sent")
		}
	}
	return nil
}

// largeMessage returns size octets of a plain-text message with 76-column
// lines, some starting with ".".
func largeMessage(size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 100)
	b.WriteString("From: alice@demo.example\r\nTo: bob@demo.example\r\nSubject: large\r\n\r\n")
	words := strings.Fields("the quick brown fox jumps over the lazy dog while resmtp counts canonical octets and stuffs dots")
	for n := 0; b.Len() < size; n++ {
		var line strings.Builder
		if n%50 == 0 {
			line.WriteString(".")
		}
		for i := n; line.Len() < 70; i++ {
			line.WriteString(words[i%len(words)])
			line.WriteByte(' ')
		}
		b.WriteString(strings.TrimSpace(line.String()))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// canonical returns what the server stores for body: CRLF line ends, and a
// final CRLF.
func canonical(body []byte) []byte {
	s := strings.ReplaceAll(string(body), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return []byte(s)
}
