package smtp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	stdsmtp "net/smtp"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/assert"
)

// The parity suite: every case makes the same calls through net/smtp and
// through this package, each against its own loopback server configured
// alike (internal/smtptest, real TCP), and compares what a caller of
// net/smtp can observe: each call's error (dynamic type, == io.EOF,
// errors.Is, net.Error and Timeout, the *textproto.Error's code, Error()
// with addresses masked), when a call returns against a deadline the caller
// set on its own connection, the lines the server received and the messages
// it delivered. A case marked with differs is one of the deliberate
// differences that the README's migration section lists; its want states
// this package's side, which the suite checks instead.

// parityClient is the method set that net/smtp's Client and this package's
// Client share.
type parityClient interface {
	Hello(localName string) error
	StartTLS(config *tls.Config) error
	TLSConnectionState() (tls.ConnectionState, bool)
	Verify(addr string) error
	Mail(from string) error
	Rcpt(to string) error
	Data() (io.WriteCloser, error)
	Extension(ext string) (bool, string)
	Reset() error
	Noop() error
	Quit() error
	Close() error
}

var (
	_ parityClient = (*stdsmtp.Client)(nil)
	_ parityClient = (*Client)(nil)
)

// parityImpl is one implementation of net/smtp's API.
type parityImpl struct {
	name      string
	dial      func(addr string) (parityClient, error)
	newClient func(conn net.Conn, host string) (parityClient, error)
	// auth calls c.Auth with PlainAuth(identity, user, pass, host).
	auth     func(c parityClient, user, pass, host string) error
	sendMail func(addr string, user, pass string, from string, to []string, msg []byte) error
}

var parityStd = parityImpl{
	name: "net/smtp",
	dial: func(addr string) (parityClient, error) {
		c, err := stdsmtp.Dial(addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	newClient: func(conn net.Conn, host string) (parityClient, error) {
		c, err := stdsmtp.NewClient(conn, host)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	auth: func(c parityClient, user, pass, host string) error {
		return c.(*stdsmtp.Client).Auth(stdsmtp.PlainAuth("", user, pass, host))
	},
	sendMail: func(addr, user, pass, from string, to []string, msg []byte) error {
		var a stdsmtp.Auth
		if user != "" {
			a = stdsmtp.PlainAuth("", user, pass, "127.0.0.1")
		}
		return stdsmtp.SendMail(addr, a, from, to, msg)
	},
}

var parityOurs = parityImpl{
	name: "resmtp",
	dial: func(addr string) (parityClient, error) {
		c, err := Dial(addr)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	newClient: func(conn net.Conn, host string) (parityClient, error) {
		c, err := NewClient(conn, host)
		if err != nil {
			return nil, err
		}
		return c, nil
	},
	auth: func(c parityClient, user, pass, host string) error {
		return c.(*Client).Auth(PlainAuth("", user, pass, host))
	},
	sendMail: func(addr, user, pass, from string, to []string, msg []byte) error {
		var a Auth
		if user != "" {
			a = PlainAuth("", user, pass, "127.0.0.1")
		}
		return SendMail(addr, a, from, to, msg)
	},
}

// parityRun is one run of a case with one implementation.
type parityRun struct {
	t    *testing.T
	impl parityImpl
	srv  *smtptest.Server
	obs  []string
	// deadline, if set, is the deadline the caller put on its connection:
	// every call records whether it returned before it or at it.
	deadline time.Time
}

// do records the outcome of one call.
func (r *parityRun) do(name string, call func() error) error {
	err := call()
	o := name + ": " + parityDescribe(err)
	if !r.deadline.IsZero() {
		switch now := time.Now(); {
		case now.Before(r.deadline.Add(-100 * time.Millisecond)):
			o += " [before the deadline]"
		case now.Before(r.deadline.Add(2 * time.Second)):
			o += " [at the deadline]"
		default:
			o += " [long after the deadline]"
		}
	}
	r.obs = append(r.obs, o)
	return err
}

// note records a value that is not an error (Extension's results).
func (r *parityRun) note(format string, args ...any) {
	r.obs = append(r.obs, fmt.Sprintf(format, args...))
}

// dial dials the case's server; nil if that failed (recorded).
func (r *parityRun) dial() parityClient {
	var c parityClient
	r.do("Dial", func() (err error) { c, err = r.impl.dial(r.srv.Addr); return err })
	return c
}

// newClient connects, sets the caller's deadline d on the connection when
// d > 0, and makes a Client with NewClient; nil if that failed.
func (r *parityRun) newClient(d time.Duration) parityClient {
	conn, err := net.Dial("tcp", r.srv.Addr)
	if !assert.NoError(r.t, err) { // not require: the run may be on a goroutine of its own
		return nil
	}
	if d > 0 {
		r.deadline = time.Now().Add(d)
		conn.SetDeadline(r.deadline)
	}
	var c parityClient
	r.do("NewClient", func() (err error) { c, err = r.impl.newClient(conn, "127.0.0.1"); return err })
	if c == nil {
		conn.Close()
	}
	return c
}

// message sends one message with Mail, Rcpt for each of to, Data, Write
// and Close, stopping at the first error as a net/smtp caller does.
func (r *parityRun) message(c parityClient, from string, to []string, body string) error {
	if err := r.do("Mail", func() error { return c.Mail(from) }); err != nil {
		return err
	}
	for _, a := range to {
		if err := r.do("Rcpt "+a, func() error { return c.Rcpt(a) }); err != nil {
			return err
		}
	}
	var w io.WriteCloser
	if err := r.do("Data", func() (err error) { w, err = c.Data(); return err }); err != nil {
		return err
	}
	if err := r.do("Write", func() error { _, err := io.WriteString(w, body); return err }); err != nil {
		return err
	}
	return r.do("Data Close", w.Close)
}

// server returns what the server saw: each connection's command lines and
// the messages it delivered. It waits (boundedly) for the server to finish
// with every connection.
func (r *parityRun) server(wire bool) []string {
	// A server stalled by a fault never ends its side by itself: wait
	// half a second at most for the others.
	limit := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(limit) {
		open := 0
		for i := 1; i <= r.srv.Conns(); i++ {
			if !slices.ContainsFunc(r.srv.Transcript(i), func(l string) bool { return strings.HasPrefix(l, "* close") }) {
				open++
			}
		}
		if open == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.srv.Close()
	var out []string
	if wire {
		for i := 1; i <= r.srv.Conns(); i++ {
			for _, l := range r.srv.Transcript(i) {
				if strings.HasPrefix(l, "C: ") || strings.HasPrefix(l, "* tls") {
					out = append(out, fmt.Sprintf("conn %d %s", i, l))
				}
			}
		}
	}
	for _, m := range r.srv.Messages() {
		out = append(out, fmt.Sprintf("delivered from=%q to=%q data=%q", m.From, m.To, m.Data))
	}
	return out
}

var parityAddrRE = regexp.MustCompile(`(127\.0\.0\.1|\[::1\]):\d+`)

// parityDescribe says what a caller can observe of err.
func parityDescribe(err error) string {
	if err == nil {
		return "nil"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%T", err)
	if err == io.EOF {
		b.WriteString(" ==io.EOF")
	}
	if err == io.ErrUnexpectedEOF {
		b.WriteString(" ==io.ErrUnexpectedEOF")
	}
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, os.ErrDeadlineExceeded, net.ErrClosed} {
		if errors.Is(err, target) {
			fmt.Fprintf(&b, " Is(%v)", target)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		fmt.Fprintf(&b, " net.Error(Timeout=%v)", ne.Timeout())
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		fmt.Fprintf(&b, " textproto.Error(%d)", te.Code)
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		b.WriteString(" tls.CertificateVerificationError")
	}
	fmt.Fprintf(&b, " %q", parityAddrRE.ReplaceAllString(err.Error(), "ADDR"))
	return b.String()
}

// A parityCase is one scenario.
type parityCase struct {
	name string
	cfg  smtptest.Config
	run  func(r *parityRun)
	// wire: compare the command lines the server received, not only the
	// messages it delivered (SendMail pipelines with PIPELINING, so its
	// lines may differ in number, never in what is delivered).
	wire bool
	// differs names the README's deliberate difference this case shows;
	// want then lists this package's observations.
	differs string
	want    []string
	// noDelivery: whatever net/smtp does, nothing may be delivered.
	noDelivery bool
}

// Extension lists for the cases.
var (
	parityExtPipe   = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10485760"}
	parityExtPlain  = []string{"8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10485760"}
	parityExtAuth   = []string{"PIPELINING", "ENHANCEDSTATUSCODES", "AUTH PLAIN LOGIN"}
	parityExtTLS    = []string{"PIPELINING", "ENHANCEDSTATUSCODES", "STARTTLS"}
	parityUsers     = map[string]string{"u": "p"}
	parityThree     = []string{"b@example.com", "reject@example.com", "c@example.com"}
	parityMsg       = "From: a@example.org\r\nSubject: parity\r\n\r\nhello\r\n"
	parityMsgOddEnd = "Subject: odd\n\n.leading dot\n..two dots\nlf only\nno final newline"
)

func parityCases() []parityCase {
	reply := func(verb, text string) smtptest.Config {
		return smtptest.Config{Extensions: parityExtPipe, Faults: smtptest.Faults{Reply: map[string]string{verb: text}}}
	}
	quit := func(r *parityRun, c parityClient) {
		r.do("Quit", c.Quit)
		r.do("Close", c.Close)
	}
	return []parityCase{
		{name: "refused MAIL, then RSET and a new transaction", cfg: reply("MAIL", "550 5.7.1 sender rejected"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Reset", c.Reset)
			r.do("Noop", c.Noop)
			quit(r, c)
		}},
		{name: "refused RCPT, PIPELINING", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Mail", func() error { return c.Mail("a@example.org") })
			r.do("Rcpt", func() error { return c.Rcpt("reject@example.com") })
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg) // MAIL again: 503
			r.do("Reset", c.Reset)
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "refused RCPT, no PIPELINING", cfg: smtptest.Config{Extensions: parityExtPlain}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Mail", func() error { return c.Mail("a@example.org") })
			r.do("Rcpt", func() error { return c.Rcpt("reject@example.com") })
			r.do("Rcpt", func() error { return c.Rcpt("b@example.com") })
			w, err := c.Data()
			r.note("Data: %s", parityDescribe(err))
			if err == nil {
				io.WriteString(w, parityMsg)
				r.do("Data Close", w.Close)
			}
			quit(r, c)
		}},
		{name: "refused DATA", cfg: reply("DATA", "554 5.5.1 no valid recipients"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Reset", c.Reset)
			quit(r, c)
		}},
		{name: "refused end of data", cfg: reply(".", "554 5.7.1 content rejected"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "temporary refusal 451 of RCPT", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"temp@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "message text: LF line ends, leading dots, no final newline", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsgOddEnd)
			quit(r, c)
		}},
		{name: "message text: a bare CR", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true,
			differs: "a bare CR is sent as a line break (CRLF)",
			want: []string{
				"Dial: nil", "Mail: nil", "Rcpt b@example.com: nil", "Data: nil", "Write: nil", "Data Close: nil", "Quit: nil",
				`Close: *net.OpError Is(use of closed network connection) net.Error(Timeout=false) "close tcp ADDR->ADDR: use of closed network connection"`,
				"conn 1 C: EHLO localhost", "conn 1 C: MAIL FROM:<a@example.org> BODY=8BITMIME", "conn 1 C: RCPT TO:<b@example.com>",
				"conn 1 C: DATA", "conn 1 C: <data 28 octets>", "conn 1 C: QUIT",
				`delivered from="a@example.org" to=["b@example.com"] data="Subject: cr\r\n\r\na\r\n.\r\nb\r\n"`,
			},
			run: func(r *parityRun) {
				c := r.dial()
				r.message(c, "a@example.org", []string{"b@example.com"}, "Subject: cr\r\n\r\na\r.\r\nb\r\n")
				quit(r, c)
			}},
		{name: "server closed an idle connection: EOF, redial, deliver", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{IdleCloseAfterMessage: 50 * time.Millisecond}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			time.Sleep(300 * time.Millisecond)
			err := r.message(c, "a@example.org", []string{"c@example.com"}, parityMsg)
			r.note("err == io.EOF: %v", err == io.EOF)
			if err == io.EOF {
				// What connection pools written for net/smtp do.
				r.do("Close", c.Close)
				c = r.dial()
				r.message(c, "a@example.org", []string{"c@example.com"}, parityMsg)
			}
			quit(r, c)
		}},
		{name: "Quit after the server closed an idle connection", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{IdleCloseAfterMessage: 50 * time.Millisecond}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			time.Sleep(300 * time.Millisecond)
			quit(r, c)
		}},
		{name: "server closes instead of answering MAIL", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{CloseAfterCommand: "MAIL"}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Close", c.Close)
		}},
		{name: "server closes instead of answering the end of data", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{CloseAfterCommand: "."}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Close", c.Close)
		}},
		{name: "421 to RCPT, then the server closes", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{Reply: map[string]string{"RCPT": "421 4.3.2 shutting down"}, CloseAfterReply: "RCPT"}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Close", c.Close)
		}},
		{name: "server stalls; the caller's deadline on its conn", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{Stall: "MAIL"}}, wire: true, run: func(r *parityRun) {
			c := r.newClient(time.Second)
			r.do("Hello", func() error { return c.Hello("client.example") })
			r.do("Mail", func() error { return c.Mail("a@example.org") })
			r.do("Close", c.Close)
		}},
		{name: "server stalls after the data; the caller's deadline", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{Stall: "."}}, wire: true, run: func(r *parityRun) {
			c := r.newClient(time.Second)
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			r.do("Close", c.Close)
		}},
		{name: "greeting never comes; the caller's deadline", cfg: smtptest.Config{Faults: smtptest.Faults{Stall: "GREETING"}}, wire: true, run: func(r *parityRun) {
			r.newClient(time.Second)
		}},
		{name: "a deadline the caller sets before each call, met", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{Delay: map[string]time.Duration{"NOOP": 50 * time.Millisecond}}}, wire: true, run: func(r *parityRun) {
			conn, err := net.Dial("tcp", r.srv.Addr)
			if !assert.NoError(r.t, err) { // not require: the run may be on a goroutine of its own
				return
			}
			var c parityClient
			r.do("NewClient", func() (err error) { c, err = r.impl.newClient(conn, "127.0.0.1"); return err })
			for i := 0; i < 3; i++ {
				conn.SetDeadline(time.Now().Add(time.Second))
				r.do("Noop (1 s deadline, 50 ms reply)", c.Noop)
			}
			r.do("Quit", c.Quit)
		}},
		// After a timeout the reply is still on its way: net/smtp reads it
		// as the reply to the next command, and every later reply is one
		// command late.
		{name: "a deadline missed, then extended", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{Delay: map[string]time.Duration{"NOOP": 150 * time.Millisecond}}}, wire: true,
			differs: "after a failure of the connection the Client stops",
			want: []string{
				"NewClient: nil",
				`Noop (100 ms deadline, 150 ms reply): *net.OpError Is(i/o timeout) net.Error(Timeout=true) "read tcp ADDR->ADDR: i/o timeout"`,
				`Noop (1 s deadline): *net.OpError Is(i/o timeout) net.Error(Timeout=true) "read tcp ADDR->ADDR: i/o timeout"`,
				`Mail (1 s deadline): *net.OpError Is(i/o timeout) net.Error(Timeout=true) "read tcp ADDR->ADDR: i/o timeout"`,
				"Close: nil",
				"conn 1 C: EHLO localhost", "conn 1 C: NOOP",
			},
			run: func(r *parityRun) {
				conn, err := net.Dial("tcp", r.srv.Addr)
				if !assert.NoError(r.t, err) { // not require: the run may be on a goroutine of its own
					return
				}
				var c parityClient
				r.do("NewClient", func() (err error) { c, err = r.impl.newClient(conn, "127.0.0.1"); return err })
				conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
				r.do("Noop (100 ms deadline, 150 ms reply)", c.Noop)
				conn.SetDeadline(time.Now().Add(time.Second))
				r.do("Noop (1 s deadline)", c.Noop)
				r.do("Mail (1 s deadline)", func() error { return c.Mail("a@example.org") })
				r.do("Close", c.Close)
			}},
		{name: "garbage reply", cfg: reply("NOOP", "garbage"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Noop", c.Noop)
			r.do("Close", c.Close)
		}},
		{name: "garbage reply, then more calls", cfg: reply("NOOP", "garbage"), wire: true,
			differs: "after a malformed reply the Client stops",
			want: []string{
				"Dial: nil",
				`Noop: textproto.ProtocolError "short response: \"garbage\""`,
				`Noop: textproto.ProtocolError "short response: \"garbage\""`,
				`Quit: textproto.ProtocolError "short response: \"garbage\""`,
				"Close: nil",
				"conn 1 C: EHLO localhost", "conn 1 C: NOOP",
			},
			run: func(r *parityRun) {
				c := r.dial()
				r.do("Noop", c.Noop)
				r.do("Noop", c.Noop)
				quit(r, c)
			}},
		{name: "reply code outside RFC 5321's grammar", cfg: reply("NOOP", "600 what"), wire: true,
			differs: "replies that break RFC 5321's grammar are protocol errors",
			want: []string{
				"Dial: nil",
				`Noop: textproto.ProtocolError "smtp: protocol error: invalid reply code: \"600 what\""`,
				"Close: nil",
				"conn 1 C: EHLO localhost", "conn 1 C: NOOP",
			},
			run: func(r *parityRun) {
				c := r.dial()
				r.do("Noop", c.Noop)
				r.do("Close", c.Close)
			}},
		// net/textproto reads on after a line whose code differs, waiting
		// for a last line with the first code: net/smtp hangs until the
		// caller's deadline.
		{name: "multi-line reply whose code changes", cfg: reply("NOOP", "250-first\r\n550 second"), wire: true,
			differs: "replies that break RFC 5321's grammar are protocol errors",
			want: []string{
				"NewClient: nil [before the deadline]",
				`Noop: textproto.ProtocolError "smtp: protocol error: reply code changed within a multi-line reply: \"550 second\"" [before the deadline]`,
				"Close: nil [before the deadline]",
				"conn 1 C: EHLO localhost", "conn 1 C: NOOP",
			},
			run: func(r *parityRun) {
				c := r.newClient(time.Second)
				r.do("Noop", c.Noop)
				r.do("Close", c.Close)
			}},
		{name: "multi-line refusal", cfg: reply("RCPT", "550-5.1.1 no such user\r\n550 5.1.1 really"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "greeting 554 (Dial)", cfg: smtptest.Config{Faults: smtptest.Faults{Reply: map[string]string{"GREETING": "554 5.3.2 go away"}}}, wire: true, run: func(r *parityRun) {
			r.dial()
		}},
		{name: "greeting 421 (NewClient)", cfg: smtptest.Config{Faults: smtptest.Faults{Reply: map[string]string{"GREETING": "421 4.3.2 busy"}}}, wire: true, run: func(r *parityRun) {
			r.newClient(0)
		}},
		{name: "dial refused", cfg: smtptest.Config{}, run: func(r *parityRun) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if !assert.NoError(r.t, err) { // not require: the run may be on a goroutine of its own
				return
			}
			addr := ln.Addr().String()
			ln.Close()
			r.do("Dial", func() error { _, err := r.impl.dial(addr); return err })
			r.do("SendMail", func() error {
				return r.impl.sendMail(addr, "", "", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "arguments with CR or LF; Hello after other calls; Rcpt before Mail", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Mail CRLF", func() error { return c.Mail("a@example.org>\r\nRCPT TO:<x@example.com") })
			r.do("Rcpt LF", func() error { return c.Rcpt("x@example.com\n") })
			r.do("Verify CR", func() error { return c.Verify("x\r") })
			r.do("Hello CRLF", func() error { return c.Hello("a\r\nb") })
			r.do("Rcpt before Mail", func() error { return c.Rcpt("b@example.com") })
			r.do("Hello after Rcpt", func() error { return c.Hello("client.example") })
			r.do("SendMail CRLF", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"b@example.com\r\nDATA"}, []byte(parityMsg))
			})
			quit(r, c)
		}},
		{name: "Hello first, Extension, Verify", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Hello", func() error { return c.Hello("client.example") })
			r.do("Hello again", func() error { return c.Hello("client.example") })
			for _, ext := range []string{"PIPELINING", "pipelining", "AUTH", "SIZE", "STARTTLS", ""} {
				ok, param := c.Extension(ext)
				r.note("Extension(%q) = %v, %q", ext, ok, param)
			}
			r.do("Verify", func() error { return c.Verify("b@example.com") })
			_, ok := c.TLSConnectionState()
			r.note("TLSConnectionState ok=%v", ok)
			quit(r, c)
		}},
		{name: "extension keywords in lower case", cfg: smtptest.Config{Extensions: []string{"pipelining", "size 1000", "Auth PLAIN"}}, wire: true,
			differs: "extension keywords are matched case-insensitively",
			want: []string{
				"Dial: nil",
				`Extension("SIZE") = true, "1000"`, `Extension("PIPELINING") = true, ""`, `Extension("AUTH") = true, "PLAIN"`,
				"Quit: nil",
				`Close: *net.OpError Is(use of closed network connection) net.Error(Timeout=false) "close tcp ADDR->ADDR: use of closed network connection"`,
				"conn 1 C: EHLO localhost", "conn 1 C: QUIT",
			},
			run: func(r *parityRun) {
				c := r.dial()
				for _, ext := range []string{"SIZE", "PIPELINING", "AUTH"} {
					ok, param := c.Extension(ext)
					r.note("Extension(%q) = %v, %q", ext, ok, param)
				}
				quit(r, c)
			}},
		{name: "a NUL in an argument", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true,
			differs: "a NUL in an argument is refused",
			want: []string{
				"Dial: nil",
				`Mail: *errors.errorString "smtp: a line must not contain NUL"`,
				"Quit: nil",
				`Close: *net.OpError Is(use of closed network connection) net.Error(Timeout=false) "close tcp ADDR->ADDR: use of closed network connection"`,
				"conn 1 C: EHLO localhost", "conn 1 C: QUIT",
			},
			run: func(r *parityRun) {
				c := r.dial()
				r.do("Mail", func() error { return c.Mail("a\x00@example.org") })
				quit(r, c)
			}},
		{name: "Extension on a HELO-only server", cfg: smtptest.Config{NoEHLO: true}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			ok, param := c.Extension("8BITMIME")
			r.note("Extension = %v, %q", ok, param)
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "Hello on a HELO-only server, then a message", cfg: smtptest.Config{NoEHLO: true}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Hello", func() error { return c.Hello("client.example") })
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "RSET refused", cfg: reply("RSET", "500 5.5.1 no"), wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Reset", c.Reset)
			r.do("Noop", c.Noop)
			quit(r, c)
		}},
		{name: "calls after Close", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Noop", c.Noop)
			r.do("Close", c.Close)
			r.do("Noop", c.Noop)
			r.do("Mail", func() error { return c.Mail("a@example.org") })
			r.do("Quit", c.Quit)
			r.do("Close", c.Close)
		}},
		{name: "calls after Quit", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Quit", c.Quit)
			r.do("Quit", c.Quit)
			r.do("Noop", c.Noop)
			_, err := c.Data()
			r.note("Data: %s", parityDescribe(err))
		}},
		{name: "AUTH accepted", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Auth", func() error { return r.impl.auth(c, "u", "p", "127.0.0.1") })
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "AUTH refused: wrong password", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Auth", func() error { return r.impl.auth(c, "u", "wrong", "127.0.0.1") })
			r.do("Noop", c.Noop)
			r.do("Close", c.Close)
		}},
		{name: "AUTH refused by PlainAuth: wrong host name", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Auth", func() error { return r.impl.auth(c, "u", "p", "mail.example.com") })
			r.do("Close", c.Close)
		}},
		{name: "AUTH on a server that does not offer it", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("Auth", func() error { return r.impl.auth(c, "u", "p", "127.0.0.1") })
			r.do("Close", c.Close)
		}},
		{name: "STARTTLS and a message over TLS", cfg: smtptest.Config{Extensions: parityExtTLS}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("StartTLS", func() error { return c.StartTLS(r.srv.ClientTLSConfig()) })
			state, ok := c.TLSConnectionState()
			r.note("TLSConnectionState ok=%v handshake=%v server=%q", ok, state.HandshakeComplete, state.ServerName)
			ok, _ = c.Extension("STARTTLS")
			r.note("Extension(STARTTLS) after TLS = %v", ok)
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "STARTTLS: certificate not trusted", cfg: smtptest.Config{Extensions: parityExtTLS}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("StartTLS", func() error {
				return c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12})
			})
			r.do("Close", c.Close)
		}},
		{name: "STARTTLS refused", cfg: smtptest.Config{Extensions: parityExtTLS, Faults: smtptest.Faults{Reply: map[string]string{"STARTTLS": "454 4.7.0 TLS not available"}}}, wire: true, run: func(r *parityRun) {
			c := r.dial()
			r.do("StartTLS", func() error { return c.StartTLS(r.srv.ClientTLSConfig()) })
			r.message(c, "a@example.org", []string{"b@example.com"}, parityMsg)
			quit(r, c)
		}},
		{name: "SendMail, three recipients", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"b@example.com", "c@example.com", "d@example.com"}, []byte(parityMsgOddEnd))
			})
		}},
		{name: "SendMail, one of three refused, PIPELINING", noDelivery: true, cfg: smtptest.Config{Extensions: parityExtPipe}, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", parityThree, []byte(parityMsg))
			})
		}},
		{name: "SendMail, one of three refused, no PIPELINING", noDelivery: true, cfg: smtptest.Config{Extensions: parityExtPlain}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", parityThree, []byte(parityMsg))
			})
		}},
		{name: "SendMail, first of three refused temporarily, PIPELINING", noDelivery: true, cfg: smtptest.Config{Extensions: parityExtPipe}, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"temp@example.com", "b@example.com", "c@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "SendMail, MAIL refused, PIPELINING", cfg: reply("MAIL", "550 5.7.1 sender rejected"), run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", parityThree, []byte(parityMsg))
			})
		}},
		{name: "SendMail, DATA refused, PIPELINING", cfg: reply("DATA", "554 5.5.1 no"), run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		// With PIPELINING, QUIT goes with the end of the data (three client
		// turns in all), so the server receives a QUIT that net/smtp does
		// not send after a refusal; what is delivered is the same.
		{name: "SendMail, end of data refused, PIPELINING", cfg: reply(".", "554 5.7.1 content rejected"), run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "SendMail, server closes instead of answering QUIT", cfg: smtptest.Config{Extensions: parityExtPipe,
			Faults: smtptest.Faults{CloseAfterCommand: "QUIT"}}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "", "", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "SendMail with AUTH", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "u", "p", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "SendMail with AUTH refused", cfg: smtptest.Config{Extensions: parityExtAuth, Users: parityUsers}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "u", "wrong", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
		{name: "SendMail with AUTH to a server without AUTH", cfg: smtptest.Config{Extensions: parityExtPipe}, wire: true, run: func(r *parityRun) {
			r.do("SendMail", func() error {
				return r.impl.sendMail(r.srv.Addr, "u", "p", "a@example.org", []string{"b@example.com"}, []byte(parityMsg))
			})
		}},
	}
}

// runParity runs tc with impl and returns the caller's and the server's
// observations.
func runParity(t *testing.T, tc parityCase, impl parityImpl) []string {
	cfg := tc.cfg
	srv, err := smtptest.NewServer(cfg)
	if !assert.NoError(t, err) { // not require: runParity may run on a goroutine of its own
		return nil
	}
	defer srv.Close()
	r := &parityRun{t: t, impl: impl, srv: srv}
	tc.run(r)
	return append(r.obs, r.server(tc.wire)...)
}

// TestParity_NetSMTP runs every case through net/smtp and through this
// package and requires the same observations, except in the cases of the
// README's deliberate differences, where this package's side must be the
// documented one.
func TestParity_NetSMTP(t *testing.T) {
	var (
		mu   sync.Mutex
		rows = map[string]string{}
	)
	cases := parityCases()
	t.Cleanup(func() { // after the parallel cases
		var table strings.Builder
		fmt.Fprintf(&table, "\n%-62s | %-50s | %-50s | %s\n", "case", "net/smtp", "resmtp", "same?")
		for _, tc := range cases {
			table.WriteString(rows[tc.name])
		}
		t.Log(table.String())
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The two runs are independent (a server each): run them side
			// by side, as most of their time is waiting.
			var std []string
			done := make(chan struct{})
			go func() { defer close(done); std = runParity(t, tc, parityStd) }()
			ours := runParity(t, tc, parityOurs)
			<-done
			same := slices.Equal(std, ours)
			verdict := "same"
			switch {
			case tc.differs != "":
				verdict = "differs: " + tc.differs
				assert.Equal(t, tc.want, ours, "documented difference %q: what resmtp observed", tc.differs)
				assert.False(t, same, "documented difference %q, yet net/smtp behaves the same:\n%s", tc.differs, strings.Join(std, "\n"))
			case !same:
				verdict = "NO"
				assert.Fail(t, "net/smtp and resmtp differ", parityDiff(std, ours))
			}
			if tc.noDelivery {
				delivered := slices.ContainsFunc(ours, func(o string) bool { return strings.HasPrefix(o, "delivered") })
				assert.False(t, delivered, "a message was delivered:\n%s", strings.Join(ours, "\n"))
			}
			mu.Lock()
			rows[tc.name] = fmt.Sprintf("%-62s | %-50s | %-50s | %s\n", tc.name, parityKey(std), parityKey(ours), verdict)
			mu.Unlock()
		})
	}
}

// parityKey summarises a run for the table: its first failing call.
func parityKey(obs []string) string {
	for _, o := range obs {
		name, desc, ok := strings.Cut(o, ": ")
		if ok && name != "Close" && !strings.HasPrefix(desc, "nil") && !strings.HasPrefix(name, "conn ") && !strings.HasPrefix(name, "delivered") && !strings.HasPrefix(name, "err ==") {
			kind := desc
			if i := strings.IndexByte(desc, ' '); i > 0 {
				kind = desc[:i]
			}
			switch {
			case strings.Contains(desc, " ==io.EOF"):
				kind = "io.EOF"
			case strings.Contains(desc, "Timeout=true"):
				kind += " (timeout)"
			}
			if i := strings.Index(desc, "textproto.Error("); i >= 0 {
				kind += " " + desc[i+len("textproto.Error("):i+len("textproto.Error(")+3]
			}
			return name + ": " + kind
		}
	}
	n := 0
	for _, o := range obs {
		if strings.HasPrefix(o, "delivered") {
			n++
		}
	}
	return fmt.Sprintf("no error, %d delivered", n)
}

// parityDiff shows two observation lists side by side.
func parityDiff(a, b []string) string {
	var s strings.Builder
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		mark := "  "
		if x != y {
			mark = "≠ "
		}
		fmt.Fprintf(&s, "%snet/smtp: %s\n%sresmtp:   %s\n", mark, x, mark, y)
	}
	return s.String()
}
