// Command demo sends a few messages through resmtp to an embedded SMTP
// server and prints a readable account of each exchange.
//
//	go run ./examples/demo
//
// It starts internal/smtptest on a loopback port (STARTTLS with a
// certificate made at start, AUTH PLAIN and LOGIN, PIPELINING, CHECKPOINT,
// CHUNKING), dials it with STARTTLS required, authenticates, sends a short
// message, one whose lines start with dots, and a large one with a progress
// bar, then checks the server's copies byte for byte.
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
	size := flag.Int("size", 16<<20, "size in octets of the large message")
	quiet := flag.Bool("quiet", false, "do not print the transcript")
	flag.Parse()
	if err := run(os.Stdout, *size, *quiet); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, size int, quiet bool) error {
	srv, err := smtptest.NewServer(smtptest.Config{
		Hostname:       "mx.demo.example",
		MaxMessageSize: 256 << 20,
		Extensions: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 268435456", "DSN",
			"CHUNKING", "CHECKPOINT", "STARTTLS", "AUTH PLAIN LOGIN"},
		Users: map[string]string{"demo": "correct horse battery staple"},
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(out, "embedded SMTP server listening on %s\n\n", srv.Addr)

	var bar *progress.Bar
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
		DataProgress: func(written, total int64) {
			if bar != nil {
				bar.Set(written)
			}
		},
	}
	d := &smtp.Dialer{
		LocalName: "client.demo.example",
		TLSPolicy: smtp.TLSRequired,
		TLSConfig: srv.ClientTLSConfig(),
		Trace:     trace,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	fmt.Fprintln(out, "== connect, STARTTLS (required), EHLO again")
	c, err := d.Dial(ctx, srv.Addr)
	if err != nil {
		return err
	}
	defer c.Close()

	host, _, _ := net.SplitHostPort(srv.Addr) // PlainAuth checks the server's name
	fmt.Fprintln(out, "\n== AUTH PLAIN (the credentials never reach the trace)")
	if err := c.AuthContext(ctx, smtp.PlainAuth("", "demo", "correct horse battery staple", host)); err != nil {
		return err
	}

	messages := []struct {
		title string
		from  string
		to    []string
		body  []byte
		large bool
	}{
		{"a short message", "alice@demo.example", []string{"bob@demo.example"},
			[]byte("From: alice@demo.example\r\nTo: bob@demo.example\r\nSubject: hello\r\n\r\nHello, Bob.\r\n"), false},
		{"lines that start with dots (RFC 5321 §4.5.2) and LF-only line ends", "alice@demo.example", []string{"bob@demo.example", "carol@demo.example"},
			[]byte("Subject: dots\n\n.a line with a leading dot\n..two dots\n.\nend\n"), false},
		{fmt.Sprintf("a large message (%s)", progress.Size(int64(size))), "alice@demo.example", []string{"bob@demo.example"},
			largeMessage(size), true},
	}
	var want [][]byte
	for i, m := range messages {
		fmt.Fprintf(out, "\n== message %d: %s\n", i+1, m.title)
		if m.large {
			bar = progress.New(out, "  sending", int64(len(m.body)))
		}
		err := send(ctx, out, c, m.from, m.to, m.body, quiet || m.large, trace)
		if bar != nil {
			bar.Done()
			bar = nil
		}
		if err != nil {
			return err
		}
		want = append(want, canonical(m.body))
	}

	fmt.Fprintln(out, "\n== QUIT")
	if err := c.QuitContext(ctx); err != nil {
		return err
	}

	got := srv.Messages()
	fmt.Fprintf(out, "\n== summary: the server received %d messages\n", len(got))
	if len(got) != len(want) {
		return fmt.Errorf("server has %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		same := bytes.Equal(m.Data, want[i])
		fmt.Fprintf(out, "  %d. from %s to %s: %s via %s, queue id %s, TLS %v, user %q, byte-identical: %v\n",
			i+1, m.From, strings.Join(m.To, ","), progress.Size(int64(len(m.Data))), m.Via, m.QueueID, m.TLS, m.AuthUser, same)
		if !same {
			return errors.New("the server's copy differs from the message sent")
		}
	}
	fmt.Fprintf(out, "  round trips the server saw (flushes of its replies): %d\n", srv.Flushes(0))
	return nil
}

// send runs one lockstep transaction. The large message's transcript lines
// are muted so that the progress bar stays readable.
func send(ctx context.Context, out io.Writer, c *smtp.Client, from string, to []string, body []byte, mute bool, trace *smtp.ClientTrace) error {
	if err := c.MailContext(ctx, from); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.RcptContext(ctx, rcpt); err != nil {
			return err
		}
	}
	w, err := c.DataContext(ctx)
	if err != nil {
		return err
	}
	if mute {
		cs, rr := trace.CommandSent, trace.ReplyRead
		trace.CommandSent, trace.ReplyRead = nil, nil
		defer func() { trace.CommandSent, trace.ReplyRead = cs, rr }()
	} else {
		fmt.Fprintf(out, "  C: <%d octets of message data>\n", len(body))
	}
	if _, err := io.Copy(w, bytes.NewReader(body)); err != nil {
		return err
	}
	return w.Close()
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

// canonical returns what the server should store for body: CRLF line ends,
// and a final CRLF.
func canonical(body []byte) []byte {
	s := strings.ReplaceAll(string(body), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return []byte(s)
}
