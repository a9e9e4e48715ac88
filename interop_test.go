package smtp_test

// Interop tests against a real Postfix and Postfix's smtp-sink, started by
// .ci/postfix-up.sh (see internal/interop). Without the RESMTP_* variables
// they skip; .ci/run fails if any of them skipped.
//
//	source .ci/postfix-up.sh && go test -run Interop -v -count=1 . ; resmtp_interop_down
//
// They use only the API that net/smtp has too.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"testing"
	"time"

	smtp "github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/interop"
)

const (
	interopTimeout  = 60 * time.Second // per connection or SendMail call
	deliveryTimeout = 30 * time.Second // until Postfix has written the Maildir file
)

// interopMessage builds a message whose Message-ID contains marker, with
// CRLF line endings. body lines are joined with CRLF; the message ends in
// CRLF.
func interopMessage(marker, from string, to []string, subject string, body ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\n", from)
	fmt.Fprintf(&b, "To: %s\r\n", "<"+strings.Join(to, ">,\r\n <")+">")
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Mon, 02 Jan 2006 15:04:05 +0000\r\n")
	fmt.Fprintf(&b, "Message-ID: <%s@resmtp.test>\r\n", marker)
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: 8bit\r\n")
	b.WriteString("\r\n")
	for _, l := range body {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// dotLines are body lines that must survive dot-stuffing unchanged.
var dotLines = []string{
	".",
	"..",
	"...",
	".leading dot",
	"..two leading dots",
	". space after dot",
	"",
	".",
	"trailing dot.",
	"a line\twith a tab and trailing spaces   ",
	"",
	"",
	".",
}

// bigBody returns about n bytes of body lines: 78 to 998 characters,
// deterministic, printable, some starting with one or more dots.
func bigBody(n int) []string {
	var lines []string
	x := uint32(2463534242)
	next := func() uint32 { // xorshift32
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+/()<>@\"'"
	total := 0
	for i := 0; total < n; i++ {
		length := 78
		switch i % 7 {
		case 3:
			length = 998 // the longest line RFC 5321 allows
		case 5:
			length = int(next()%900) + 1
		}
		var l strings.Builder
		if i%5 == 0 {
			l.WriteString(strings.Repeat(".", i%3+1))
		}
		for l.Len() < length {
			l.WriteByte(alphabet[next()%uint32(len(alphabet))])
		}
		s := l.String()
		lines = append(lines, s)
		total += len(s) + 2
	}
	return append(lines, ".", "end of big body")
}

// checkDelivered waits until each recipient's copy of the message with
// marker is in the Maildir and compares it with msg.
func checkDelivered(t *testing.T, rcpts []string, marker string, msg []byte) {
	t.Helper()
	for _, rcpt := range rcpts {
		got := interop.WaitForDelivery(t, rcpt, marker, deliveryTimeout)
		interop.CheckDelivered(t, got, msg)
	}
}

// interopClient connects to addr with a deadline and returns a Client that
// has said EHLO as client.resmtp.test.
func interopClient(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	conn := interop.Dial(t, addr, interopTimeout)
	host, _, _ := strings.Cut(addr, ":")
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		t.Fatalf("NewClient(%s): %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.resmtp.test"); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	return c
}

// sendData sends msg with DATA.
func sendData(t *testing.T, c *smtp.Client, msg []byte) {
	t.Helper()
	w, err := c.Data()
	if err != nil {
		t.Fatalf("Data: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("writing message: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("closing Data writer (end of data): %v", err)
	}
}

// replyCode returns the SMTP reply code in err's chain, or 0.
func replyCode(err error) int {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		return tpErr.Code
	}
	return 0
}

func TestInteropSendMail(t *testing.T) {
	addr := interop.Postfix(t)
	tests := []struct {
		name  string
		rcpts []string // local parts; @example.com or @example.org appended by index
		body  []string
	}{
		{"simple", []string{"alice"}, []string{"Hello from resmtp."}},
		{"dot-stuffing", []string{"dots"}, dotLines},
		{"8bit-utf8", []string{"utf8"}, []string{"Grüße, ½ €, 日本語, emoji 📨", "plain ascii line"}},
		{"two-recipients", []string{"bob", "carol"}, []string{"to two mailboxes", "."}},
		{"1MiB", []string{"big"}, bigBody(1 << 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := interop.Marker(t)
			var rcpts []string
			for i, local := range tt.rcpts {
				domain := interop.DomainCom
				if i%2 == 1 {
					domain = interop.DomainOrg
				}
				rcpts = append(rcpts, local+"@"+domain)
			}
			from := "sender@example.com"
			msg := interopMessage(marker, from, rcpts, "SendMail "+tt.name, tt.body...)
			err := interop.Within(t, interopTimeout, func() error {
				return smtp.SendMail(addr, nil, from, rcpts, msg)
			})
			if err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			checkDelivered(t, rcpts, marker, msg)
		})
	}
}

// TestInteropSendMailRefusedRecipientDeliversNothing: Postfix offers
// PIPELINING, so SendMail sends MAIL, the RCPTs and DATA in one group; one
// recipient is refused, DATA still gets its 354, and SendMail drops the
// connection without the text. Postfix must deliver nothing (RFC 5321
// §4.1.1.10), and the error is net/smtp's: the refusal's *textproto.Error.
// A message sent afterwards shows that Postfix had the time to deliver.
func TestInteropSendMailRefusedRecipientDeliversNothing(t *testing.T) {
	addr := interop.Postfix(t)
	from := "sender@example.com"
	rcpts := []string{"first@example.com", "reject@example.com", "last@example.org"}
	refused := interop.Marker(t)
	msg := interopMessage(refused, from, rcpts, "SendMail with a refused recipient", "must not be delivered")
	err := interop.Within(t, interopTimeout, func() error { return smtp.SendMail(addr, nil, from, rcpts, msg) })
	te, ok := err.(*textproto.Error)
	if !ok || te.Code != 550 {
		t.Fatalf("SendMail: %T %v; want net/smtp's *textproto.Error 550", err, err)
	}

	control := interop.Marker(t)
	accepted := []string{"first@example.com", "last@example.org"}
	msg2 := interopMessage(control, from, accepted, "SendMail afterwards", "delivered")
	if err := interop.Within(t, interopTimeout, func() error { return smtp.SendMail(addr, nil, from, accepted, msg2) }); err != nil {
		t.Fatalf("SendMail afterwards: %v", err)
	}
	checkDelivered(t, accepted, control, msg2)
	time.Sleep(time.Second)
	if interop.Delivered(t, refused) {
		t.Fatal("Postfix delivered the message whose SendMail failed")
	}
}

// TestInteropClientTransactions sends several messages, one of them big, over
// one connection with the Client API, with RSET between them.
func TestInteropClientTransactions(t *testing.T) {
	addr := interop.Postfix(t)
	c := interopClient(t, addr)
	bodies := [][]string{
		{"first"},
		dotLines,
		bigBody(1 << 20),
		{"last", "."},
	}
	type sent struct {
		rcpt, marker string
		msg          []byte
	}
	var all []sent
	for i, body := range bodies {
		marker := interop.Marker(t)
		rcpt := fmt.Sprintf("txn%d@example.org", i)
		msg := interopMessage(marker, "sender@example.org", []string{rcpt}, fmt.Sprintf("transaction %d", i), body...)
		if err := c.Mail("sender@example.org"); err != nil {
			t.Fatalf("message %d: Mail: %v", i, err)
		}
		if err := c.Rcpt(rcpt); err != nil {
			t.Fatalf("message %d: Rcpt: %v", i, err)
		}
		sendData(t, c, msg)
		if err := c.Reset(); err != nil {
			t.Fatalf("message %d: Reset: %v", i, err)
		}
		all = append(all, sent{rcpt, marker, msg})
	}
	if err := c.Noop(); err != nil {
		t.Fatalf("Noop: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	for _, s := range all {
		checkDelivered(t, []string{s.rcpt}, s.marker, s.msg)
	}
}

func TestInteropStartTLS(t *testing.T) {
	addr, roots := interop.PostfixTLS(t)
	tests := []struct {
		name       string
		serverName string
		wantErr    bool
	}{
		{"dns-name", interop.TLSServerName, false},
		{"ip-address", "127.0.0.1", false},
		{"wrong-name", "wrong.example.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := interopClient(t, addr)
			if ok, _ := c.Extension("STARTTLS"); !ok {
				t.Fatal(`Extension("STARTTLS") = false on the STARTTLS port`)
			}
			if _, ok := c.TLSConnectionState(); ok {
				t.Fatal("TLSConnectionState ok before StartTLS")
			}
			err := c.StartTLS(&tls.Config{ServerName: tt.serverName, RootCAs: roots})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("StartTLS with ServerName %q: no error, want a certificate error", tt.serverName)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartTLS: %v", err)
			}
			state, ok := c.TLSConnectionState()
			if !ok {
				t.Fatal("TLSConnectionState: not ok after StartTLS")
			}
			if !state.HandshakeComplete {
				t.Error("TLS handshake not complete")
			}
			if state.Version < tls.VersionTLS12 {
				t.Errorf("TLS version %#x, want >= TLS 1.2", state.Version)
			}
			if len(state.VerifiedChains) == 0 {
				t.Error("no verified certificate chain")
			}
			// Postfix does not offer STARTTLS again after the new EHLO.
			if ok, _ := c.Extension("STARTTLS"); ok {
				t.Error(`Extension("STARTTLS") = true after StartTLS`)
			}
			marker := interop.Marker(t)
			rcpt := "tls@example.com"
			msg := interopMessage(marker, "sender@example.com", []string{rcpt}, "over TLS", dotLines...)
			if err := c.Mail("sender@example.com"); err != nil {
				t.Fatalf("Mail: %v", err)
			}
			if err := c.Rcpt(rcpt); err != nil {
				t.Fatalf("Rcpt: %v", err)
			}
			sendData(t, c, msg)
			if err := c.Quit(); err != nil {
				t.Fatalf("Quit: %v", err)
			}
			got := interop.WaitForMessage(t, interop.Maildir(t), marker, deliveryTimeout)
			interop.CheckDelivered(t, got, msg)
			// smtpd_tls_received_header = yes: Postfix records the TLS session.
			if added, _, _ := interop.SplitDelivered(got, "From"); !bytes.Contains(added, []byte("(using TLS")) {
				t.Errorf("Received header does not say the message came over TLS:\n%s", added)
			}
		})
	}
}

// TestInteropSendMailUntrustedCert: SendMail uses STARTTLS when offered, and
// verifies the certificate against the system roots, which do not have the
// test instance's self-signed certificate.
func TestInteropSendMailUntrustedCert(t *testing.T) {
	addr, _ := interop.PostfixTLS(t)
	msg := interopMessage(interop.Marker(t), "sender@example.com", []string{"alice@example.com"}, "untrusted", "x")
	err := interop.Within(t, interopTimeout, func() error {
		return smtp.SendMail(addr, nil, "sender@example.com", []string{"alice@example.com"}, msg)
	})
	if err == nil {
		t.Fatal("SendMail to a server with an untrusted certificate: no error")
	}
}

// TestInteropSendMailAuthUnsupported: the test Postfix offers no AUTH, so
// SendMail with an Auth must fail before sending.
func TestInteropSendMailAuthUnsupported(t *testing.T) {
	addr := interop.Postfix(t)
	host, _, _ := strings.Cut(addr, ":")
	auth := smtp.PlainAuth("", "user", "password", host)
	msg := interopMessage(interop.Marker(t), "sender@example.com", []string{"alice@example.com"}, "auth", "x")
	err := interop.Within(t, interopTimeout, func() error {
		return smtp.SendMail(addr, auth, "sender@example.com", []string{"alice@example.com"}, msg)
	})
	if err == nil {
		t.Fatal("SendMail with PlainAuth to a server without AUTH: no error")
	}
}

// TestInteropRcptRejected: recipients rejected in the middle of a transaction
// make Rcpt fail with the server's code; the others still get the message.
func TestInteropRcptRejected(t *testing.T) {
	addr := interop.Postfix(t)
	tests := []struct {
		name  string
		rcpts []string
		codes []int // 0: accepted
	}{
		{
			name:  "550-in-the-middle",
			rcpts: []string{"first@example.com", "reject@example.com", "last@example.org"},
			codes: []int{0, 550, 0},
		},
		{
			name:  "450-and-550",
			rcpts: []string{"tempfail@example.org", "one@example.com", "reject@example.org", "two@example.com"},
			codes: []int{450, 0, 550, 0},
		},
		{
			name:  "relay-denied",
			rcpts: []string{"someone@elsewhere.invalid", "three@example.org"},
			codes: []int{554, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := interopClient(t, addr)
			if err := c.Mail("sender@example.com"); err != nil {
				t.Fatalf("Mail: %v", err)
			}
			var accepted []string
			for i, rcpt := range tt.rcpts {
				err := c.Rcpt(rcpt)
				switch want := tt.codes[i]; {
				case want == 0 && err != nil:
					t.Fatalf("Rcpt(%s): %v", rcpt, err)
				case want == 0:
					accepted = append(accepted, rcpt)
				case err == nil:
					t.Fatalf("Rcpt(%s): no error, want %d", rcpt, want)
				case replyCode(err) != want:
					t.Fatalf("Rcpt(%s): %v (code %d), want code %d", rcpt, err, replyCode(err), want)
				}
			}
			marker := interop.Marker(t)
			msg := interopMessage(marker, "sender@example.com", tt.rcpts, "partly rejected", "Some recipients were rejected.", ".")
			sendData(t, c, msg)
			if err := c.Quit(); err != nil {
				t.Fatalf("Quit: %v", err)
			}
			checkDelivered(t, accepted, marker, msg)
		})
	}
}

// TestInteropRcptAllRejected: with every recipient rejected, DATA fails.
func TestInteropRcptAllRejected(t *testing.T) {
	c := interopClient(t, interop.Postfix(t))
	if err := c.Mail("sender@example.com"); err != nil {
		t.Fatalf("Mail: %v", err)
	}
	if err := c.Rcpt("reject@example.com"); replyCode(err) != 550 {
		t.Fatalf("Rcpt(reject@example.com): %v, want code 550", err)
	}
	if _, err := c.Data(); err == nil {
		t.Fatal("Data with no accepted recipient: no error")
	} else if code := replyCode(err); code < 500 || code > 599 {
		t.Fatalf("Data: %v (code %d), want a 5xx reply", err, code)
	}
	// The session is still usable.
	if err := c.Reset(); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	if err := c.Noop(); err != nil {
		t.Fatalf("Noop: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}
}

func TestInteropExtensions(t *testing.T) {
	type ext struct {
		name  string
		want  bool
		param string // compared when want; "" means don't care
	}
	tests := []struct {
		name string
		addr func(t *testing.T) string
		exts []ext
	}{
		{
			name: "postfix",
			addr: func(t *testing.T) string { return interop.Postfix(t) },
			exts: []ext{
				{"PIPELINING", true, ""}, {"SIZE", true, "52428800"}, {"8BITMIME", true, ""},
				{"ENHANCEDSTATUSCODES", true, ""}, {"DSN", true, ""}, {"CHUNKING", true, ""},
				{"SMTPUTF8", true, ""}, {"STARTTLS", false, ""}, {"AUTH", false, ""},
			},
		},
		{
			name: "postfix-starttls",
			addr: func(t *testing.T) string { a, _ := interop.PostfixTLS(t); return a },
			exts: []ext{{"PIPELINING", true, ""}, {"STARTTLS", true, ""}, {"CHUNKING", true, ""}},
		},
		{
			name: "smtp-sink",
			addr: func(t *testing.T) string { return interop.Sink(t) },
			exts: []ext{
				{"PIPELINING", true, ""}, {"8BITMIME", true, ""}, {"AUTH", true, "PLAIN LOGIN"},
				{"CHUNKING", false, ""}, {"STARTTLS", false, ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := interopClient(t, tt.addr(t))
			for _, e := range tt.exts {
				ok, param := c.Extension(e.name)
				if ok != e.want {
					t.Errorf("Extension(%q) = %v, want %v", e.name, ok, e.want)
				}
				if ok && e.want && e.param != "" && param != e.param {
					t.Errorf("Extension(%q) parameter = %q, want %q", e.name, param, e.param)
				}
			}
			// Lower case works too.
			if ok, _ := c.Extension("pipelining"); !ok {
				t.Error(`Extension("pipelining") = false`)
			}
			if err := c.Noop(); err != nil {
				t.Errorf("Noop: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Errorf("Quit: %v", err)
			}
		})
	}
}

// TestInteropSinkManyMessages sends 20 messages over one connection to
// smtp-sink, with RSET between them.
func TestInteropSinkManyMessages(t *testing.T) {
	addr := interop.Sink(t)
	tests := []struct {
		name  string
		abort bool // RSET after RCPT instead of sending DATA
	}{
		{"deliver-then-reset", false},
		{"reset-before-data", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := interopClient(t, addr)
			for i := range 20 {
				if err := c.Mail(fmt.Sprintf("sender%d@example.com", i)); err != nil {
					t.Fatalf("message %d: Mail: %v", i, err)
				}
				for j := range 3 {
					if err := c.Rcpt(fmt.Sprintf("rcpt%d-%d@example.net", i, j)); err != nil {
						t.Fatalf("message %d: Rcpt %d: %v", i, j, err)
					}
				}
				if !tt.abort {
					body := append([]string{fmt.Sprintf("message %d", i)}, dotLines...)
					if i%5 == 0 {
						body = append(body, bigBody(64<<10)...)
					}
					sendData(t, c, interopMessage(interop.Marker(t), "sender@example.com", []string{"x@example.net"}, "sink", body...))
				}
				if err := c.Reset(); err != nil {
					t.Fatalf("message %d: Reset: %v", i, err)
				}
			}
			if err := c.Noop(); err != nil {
				t.Fatalf("Noop: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("Quit: %v", err)
			}
		})
	}
}

// TestInteropQuitClose: Quit ends the session; Close after Quit is harmless
// to the test (its error, if any, is not checked: net/smtp returns one).
func TestInteropQuitClose(t *testing.T) {
	for _, name := range []string{"postfix", "smtp-sink"} {
		t.Run(name, func(t *testing.T) {
			addr := interop.Sink(t)
			if name == "postfix" {
				addr = interop.Postfix(t)
			}
			c := interopClient(t, addr)
			if err := c.Noop(); err != nil {
				t.Fatalf("Noop: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("Quit: %v", err)
			}
			_ = c.Close()
		})
	}
}

// TestInteropVerify: Postfix applies the recipient restrictions to VRFY.
// (For a deliverable address it answers 252, which net/smtp's Verify, wanting
// 250, reports as an error; that case is not checked here.)
func TestInteropVerify(t *testing.T) {
	c := interopClient(t, interop.Postfix(t))
	tests := []struct {
		addr string
		code int
	}{
		{"reject@example.com", 550},
		{"tempfail@example.org", 450},
		{"someone@elsewhere.invalid", 554},
	}
	for _, tt := range tests {
		err := c.Verify(tt.addr)
		if replyCode(err) != tt.code {
			t.Errorf("Verify(%s): %v (code %d), want code %d", tt.addr, err, replyCode(err), tt.code)
		}
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("Quit: %v", err)
	}
}
