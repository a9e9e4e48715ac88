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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, err, "NewClient(%s)", addr)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Hello("client.resmtp.test"), "Hello")
	return c
}

// sendData sends msg with DATA.
func sendData(t *testing.T, c *smtp.Client, msg []byte) {
	t.Helper()
	w, err := c.Data()
	require.NoError(t, err, "Data")
	_, err = w.Write(msg)
	require.NoError(t, err, "writing message")
	require.NoError(t, w.Close(), "closing Data writer (end of data)")
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
			require.NoError(t, err, "SendMail")
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
	require.IsType(t, &textproto.Error{}, err, "SendMail: %v; want net/smtp's *textproto.Error 550", err)
	require.Equal(t, 550, err.(*textproto.Error).Code, "SendMail: %v; want net/smtp's *textproto.Error 550", err)

	control := interop.Marker(t)
	accepted := []string{"first@example.com", "last@example.org"}
	msg2 := interopMessage(control, from, accepted, "SendMail afterwards", "delivered")
	err = interop.Within(t, interopTimeout, func() error { return smtp.SendMail(addr, nil, from, accepted, msg2) })
	require.NoError(t, err, "SendMail afterwards")
	checkDelivered(t, accepted, control, msg2)
	time.Sleep(time.Second)
	require.False(t, interop.Delivered(t, refused), "Postfix delivered the message whose SendMail failed")
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
		require.NoError(t, c.Mail("sender@example.org"), "message %d: Mail", i)
		require.NoError(t, c.Rcpt(rcpt), "message %d: Rcpt", i)
		sendData(t, c, msg)
		require.NoError(t, c.Reset(), "message %d: Reset", i)
		all = append(all, sent{rcpt, marker, msg})
	}
	require.NoError(t, c.Noop(), "Noop")
	require.NoError(t, c.Quit(), "Quit")
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
			offered, _ := c.Extension("STARTTLS")
			require.True(t, offered, `Extension("STARTTLS") on the STARTTLS port`)
			_, ok := c.TLSConnectionState()
			require.False(t, ok, "TLSConnectionState ok before StartTLS")
			err := c.StartTLS(&tls.Config{ServerName: tt.serverName, RootCAs: roots})
			if tt.wantErr {
				require.Error(t, err, "StartTLS with ServerName %q: want a certificate error", tt.serverName)
				return
			}
			require.NoError(t, err, "StartTLS")
			state, ok := c.TLSConnectionState()
			require.True(t, ok, "TLSConnectionState: not ok after StartTLS")
			assert.True(t, state.HandshakeComplete, "TLS handshake not complete")
			assert.GreaterOrEqual(t, state.Version, uint16(tls.VersionTLS12), "TLS version %#x, want >= TLS 1.2", state.Version)
			assert.NotEmpty(t, state.VerifiedChains, "no verified certificate chain")
			// Postfix does not offer STARTTLS again after the new EHLO.
			offered, _ = c.Extension("STARTTLS")
			assert.False(t, offered, `Extension("STARTTLS") after StartTLS`)
			marker := interop.Marker(t)
			rcpt := "tls@example.com"
			msg := interopMessage(marker, "sender@example.com", []string{rcpt}, "over TLS", dotLines...)
			require.NoError(t, c.Mail("sender@example.com"), "Mail")
			require.NoError(t, c.Rcpt(rcpt), "Rcpt")
			sendData(t, c, msg)
			require.NoError(t, c.Quit(), "Quit")
			got := interop.WaitForMessage(t, interop.Maildir(t), marker, deliveryTimeout)
			interop.CheckDelivered(t, got, msg)
			// smtpd_tls_received_header = yes: Postfix records the TLS session.
			added, _, _ := interop.SplitDelivered(got, "From")
			assert.Contains(t, string(added), "(using TLS", "Received header does not say the message came over TLS")
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
	require.Error(t, err, "SendMail to a server with an untrusted certificate")
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
	require.Error(t, err, "SendMail with PlainAuth to a server without AUTH")
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
			require.NoError(t, c.Mail("sender@example.com"), "Mail")
			var accepted []string
			for i, rcpt := range tt.rcpts {
				err := c.Rcpt(rcpt)
				if want := tt.codes[i]; want == 0 {
					require.NoError(t, err, "Rcpt(%s)", rcpt)
					accepted = append(accepted, rcpt)
				} else {
					require.Error(t, err, "Rcpt(%s): want %d", rcpt, want)
					require.Equal(t, want, replyCode(err), "Rcpt(%s): %v", rcpt, err)
				}
			}
			marker := interop.Marker(t)
			msg := interopMessage(marker, "sender@example.com", tt.rcpts, "partly rejected", "Some recipients were rejected.", ".")
			sendData(t, c, msg)
			require.NoError(t, c.Quit(), "Quit")
			checkDelivered(t, accepted, marker, msg)
		})
	}
}

// TestInteropRcptAllRejected: with every recipient rejected, DATA fails.
func TestInteropRcptAllRejected(t *testing.T) {
	c := interopClient(t, interop.Postfix(t))
	require.NoError(t, c.Mail("sender@example.com"), "Mail")
	err := c.Rcpt("reject@example.com")
	require.Equal(t, 550, replyCode(err), "Rcpt(reject@example.com): %v", err)
	_, err = c.Data()
	require.Error(t, err, "Data with no accepted recipient")
	code := replyCode(err)
	require.GreaterOrEqual(t, code, 500, "Data: %v, want a 5xx reply", err)
	require.LessOrEqual(t, code, 599, "Data: %v, want a 5xx reply", err)
	// The session is still usable.
	require.NoError(t, c.Reset(), "Reset")
	require.NoError(t, c.Noop(), "Noop")
	require.NoError(t, c.Quit(), "Quit")
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
				assert.Equal(t, e.want, ok, "Extension(%q)", e.name)
				if ok && e.want && e.param != "" {
					assert.Equal(t, e.param, param, "Extension(%q) parameter", e.name)
				}
			}
			// Lower case works too.
			lower, _ := c.Extension("pipelining")
			assert.True(t, lower, `Extension("pipelining")`)
			assert.NoError(t, c.Noop(), "Noop")
			assert.NoError(t, c.Quit(), "Quit")
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
				require.NoError(t, c.Mail(fmt.Sprintf("sender%d@example.com", i)), "message %d: Mail", i)
				for j := range 3 {
					require.NoError(t, c.Rcpt(fmt.Sprintf("rcpt%d-%d@example.net", i, j)), "message %d: Rcpt %d", i, j)
				}
				if !tt.abort {
					body := append([]string{fmt.Sprintf("message %d", i)}, dotLines...)
					if i%5 == 0 {
						body = append(body, bigBody(64<<10)...)
					}
					sendData(t, c, interopMessage(interop.Marker(t), "sender@example.com", []string{"x@example.net"}, "sink", body...))
				}
				require.NoError(t, c.Reset(), "message %d: Reset", i)
			}
			require.NoError(t, c.Noop(), "Noop")
			require.NoError(t, c.Quit(), "Quit")
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
			require.NoError(t, c.Noop(), "Noop")
			require.NoError(t, c.Quit(), "Quit")
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
		assert.Equal(t, tt.code, replyCode(err), "Verify(%s): %v", tt.addr, err)
	}
	require.NoError(t, c.Quit(), "Quit")
}
