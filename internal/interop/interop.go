// Package interop gives tests access to the real SMTP servers that
// .ci/postfix-up.sh starts: a private Postfix instance (plain and STARTTLS
// ports, delivering into a Maildir) and Postfix's smtp-sink.
//
// Comparing what Postfix delivered with what was sent: put a Marker in a
// header (a Message-ID, say), send a message with CRLF line endings that ends
// in CRLF and does not start with a Return-Path, X-Original-To, Delivered-To
// or Received header, get the delivered copy with WaitForDelivery and check
// it with CheckDelivered: Postfix stores the message with LF line endings and
// puts those headers on top, and changes nothing else (header rewriting and
// MIME conversion are off in the test instance).
//
// The servers are described by environment variables. Each getter skips the
// calling test, with a message saying how to get the servers, when its
// variable is not set; .ci/run fails if any interop test was skipped.
//
// Run the interop tests locally (as root, Debian/Ubuntu):
//
//	source .ci/postfix-up.sh
//	go test -run Interop -v -count=1 .
//	resmtp_interop_down
package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Environment variables set by .ci/postfix-up.sh.
const (
	EnvPostfixAddr    = "RESMTP_POSTFIX_ADDR"     // host:port, plain smtpd (no TLS)
	EnvPostfixTLSAddr = "RESMTP_POSTFIX_TLS_ADDR" // host:port, smtpd offering STARTTLS
	EnvPostfixCA      = "RESMTP_POSTFIX_CA"       // PEM certificate of the STARTTLS port
	EnvPostfixMaildir = "RESMTP_POSTFIX_MAILDIR"  // the Maildir all mail is delivered to
	EnvSinkAddr       = "RESMTP_SMTPSINK_ADDR"    // host:port, smtp-sink
)

// Facts about the Postfix instance configured by .ci/postfix-up.sh.
const (
	// TLSServerName is a name the STARTTLS certificate is valid for
	// (it is also valid for the IP address 127.0.0.1).
	TLSServerName = "localhost"
	// Domains whose recipients are accepted and delivered (other domains:
	// 554 5.7.1 Relay access denied).
	DomainCom = "example.com"
	DomainOrg = "example.org"
	// RejectLocal: LOCAL@any-domain is rejected at RCPT with
	// "550 5.1.1 Recipient rejected by resmtp test policy".
	RejectLocal = "reject"
	// TempfailLocal: LOCAL@any-domain is rejected at RCPT with
	// "450 4.2.0 Recipient temporarily rejected by resmtp test policy".
	TempfailLocal = "tempfail"
)

const skipHint = "; run `bash .ci/run` or `source .ci/postfix-up.sh` (installs Postfix; needs root)"

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Skipf("interop: %s not set%s", name, skipHint)
	}
	return v
}

// Postfix returns the address (host:port) of the Postfix port without TLS.
func Postfix(t testing.TB) (addr string) {
	t.Helper()
	return env(t, EnvPostfixAddr)
}

// PostfixTLS returns the address of the Postfix port that offers STARTTLS
// and a pool holding its certificate. Verify it with ServerName
// TLSServerName.
func PostfixTLS(t testing.TB) (addr string, roots *x509.CertPool) {
	t.Helper()
	addr = env(t, EnvPostfixTLSAddr)
	caFile := env(t, EnvPostfixCA)
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("interop: reading %s: %v", EnvPostfixCA, err)
	}
	roots = x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("interop: no certificate in %s (%s)", caFile, EnvPostfixCA)
	}
	return addr, roots
}

// Sink returns the address of Postfix's smtp-sink, which accepts and drops
// everything. It advertises PIPELINING, 8BITMIME, AUTH PLAIN LOGIN (answering
// AUTH with 250, not 235), XCLIENT, XFORWARD, ENHANCEDSTATUSCODES and DSN, but
// neither SIZE, CHUNKING, SMTPUTF8 nor STARTTLS; its EHLO reply ends with an
// empty "250 " line.
func Sink(t testing.TB) string {
	t.Helper()
	return env(t, EnvSinkAddr)
}

// Maildir returns the Maildir into which the test Postfix delivers all mail
// to @example.com and @example.org: one file in new/ per recipient, with that
// recipient in a Delivered-To header on top (see WaitForDelivery).
func Maildir(t testing.TB) string {
	t.Helper()
	return env(t, EnvPostfixMaildir)
}

// Marker returns a string unique to this call, usable in a Message-ID or as a
// mailbox local part: the test's name (sanitized, lower case) and 8 random
// bytes in hex.
func Marker(t testing.TB) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return strings.ToLower(name) + "-" + hex.EncodeToString(b[:])
}

// WaitForMessage polls maildir (a Maildir, or a directory above Maildirs)
// until a delivered message (a file in some new/ or cur/) contains marker,
// and returns that file's content as delivered: with LF line endings and the
// headers Postfix adds (Return-Path, X-Original-To, Delivered-To, Received)
// on top. See CheckDelivered. It fails the test after timeout.
//
// A message to several recipients is delivered once per recipient; to get
// one recipient's copy use WaitForDelivery.
func WaitForMessage(t testing.TB, maildir, marker string, timeout time.Duration) []byte {
	t.Helper()
	return waitFor(t, maildir, marker, "", timeout)
}

// WaitForDelivery is WaitForMessage on Maildir(t) for the copy of the
// message delivered to rcpt: the one whose Delivered-To header, among those
// Postfix added, is rcpt (compared case-insensitively).
func WaitForDelivery(t testing.TB, rcpt, marker string, timeout time.Duration) []byte {
	t.Helper()
	return waitFor(t, Maildir(t), marker, rcpt, timeout)
}

// Delivered reports whether a message containing marker is in Maildir(t)
// now, for any recipient. It does not wait: to show that a message was not
// delivered, first wait for one sent after it (WaitForDelivery).
func Delivered(t testing.TB, marker string) bool {
	t.Helper()
	found, err := find(Maildir(t), marker, "", map[string]bool{})
	if err != nil {
		t.Fatalf("interop: reading %s: %v", Maildir(t), err)
	}
	return found != nil
}

func waitFor(t testing.TB, maildir, marker, rcpt string, timeout time.Duration) []byte {
	t.Helper()
	deadline := time.Now().Add(timeout)
	seen := map[string]bool{} // complete files that do not match
	for {
		found, err := find(maildir, marker, rcpt, seen)
		if err != nil {
			t.Fatalf("interop: reading %s: %v", maildir, err)
		}
		if found != nil {
			return found
		}
		if time.Now().After(deadline) {
			what := ""
			if rcpt != "" {
				what = " for " + rcpt
			}
			t.Fatalf("interop: no message containing %q delivered%s to %s within %v (Postfix log: %s)",
				marker, what, maildir, timeout, os.Getenv("RESMTP_POSTFIX_MAILLOG"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// find returns the first delivered message in maildir that contains marker
// (and, if rcpt is not empty, was delivered to rcpt), or nil; seen records
// the complete files that do not match, so that a poll reads each once.
func find(maildir, marker, rcpt string, seen map[string]bool) ([]byte, error) {
	needle := []byte(marker)
	var found []byte
	err := filepath.WalkDir(maildir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // Maildir not created yet
			}
			return err
		}
		if d.IsDir() {
			if d.Name() == "tmp" {
				return fs.SkipDir // deliveries in progress
			}
			return nil
		}
		if seen[path] {
			return nil
		}
		if dir := filepath.Base(filepath.Dir(path)); dir != "new" && dir != "cur" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				return nil // moved from new/ to cur/
			}
			return err
		}
		if bytes.Contains(data, needle) && (rcpt == "" || deliveredTo(data, rcpt)) {
			found = data
			return fs.SkipAll
		}
		seen[path] = true
		return nil
	})
	return found, err
}

// deliveredTo reports whether the headers that Postfix added on top of
// delivered include "Delivered-To: rcpt".
func deliveredTo(delivered []byte, rcpt string) bool {
	for _, line := range bytes.SplitAfter(addedPrefix(delivered), []byte("\n")) {
		name, value, ok := bytes.Cut(bytes.TrimRight(line, "\n"), []byte(":"))
		if ok && strings.EqualFold(string(name), "Delivered-To") &&
			strings.EqualFold(strings.TrimSpace(string(value)), rcpt) {
			return true
		}
	}
	return false
}

// ToLF returns msg with every CRLF replaced by LF: the form in which Postfix
// stores a message in a Maildir.
func ToLF(msg []byte) []byte {
	return bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
}

// addedHeader matches a header line that Postfix's smtpd, cleanup or virtual
// prepend on delivery, or a continuation line.
var addedHeader = regexp.MustCompile(`^(?:(?i:Return-Path|X-Original-To|Delivered-To|Received):|[ \t])`)

// addedPrefix returns the leading lines of delivered that look like headers
// added by Postfix.
func addedPrefix(delivered []byte) []byte {
	rest := delivered
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		if !addedHeader.Match(line) {
			break
		}
		rest = rest[len(line):]
	}
	return delivered[:len(delivered)-len(rest)]
}

// SplitDelivered splits a message as delivered into the header lines that
// Postfix put on top and the message as the client sent it, given that the
// sent message starts with a header named firstHeader (like "From").
func SplitDelivered(delivered []byte, firstHeader string) (added, original []byte, err error) {
	rest := delivered[len(addedPrefix(delivered)):]
	if !bytes.HasPrefix(bytes.ToLower(rest), []byte(strings.ToLower(firstHeader)+":")) {
		return nil, nil, fmt.Errorf("after the headers added by Postfix, found %q, want header %q",
			abbrev(rest, 80), firstHeader)
	}
	return delivered[:len(delivered)-len(rest)], rest, nil
}

// CheckDelivered fails the test unless delivered (from WaitForMessage) is
// exactly sent (the message given to Data, CRLF line endings, ending in CRLF)
// with LF line endings, preceded only by the header lines Postfix adds.
func CheckDelivered(t testing.TB, delivered, sent []byte) {
	t.Helper()
	want := ToLF(sent)
	if len(want) == 0 {
		t.Fatal("interop: CheckDelivered: empty sent message")
	}
	first, _, _ := bytes.Cut(want, []byte(":"))
	added, got, err := SplitDelivered(delivered, string(first))
	if err != nil {
		t.Fatalf("interop: delivered message: %v", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-60)
	t.Fatalf("interop: delivered message differs from the sent one (LF line endings) at byte %d of %d (sent %d):\n"+
		"added by Postfix:\n%s\ndelivered: %q\nsent:      %q",
		i, len(got), len(want), added, abbrev(got[lo:], 160), abbrev(want[lo:], 160))
}

func abbrev(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Dial connects to addr with a 10s timeout and sets a deadline of timeout on
// the connection, which is closed when the test ends. Use it with NewClient
// to bound a test in time.
func Dial(t testing.TB, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("interop: dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// Within runs f, failing the test if it has not returned after timeout (f is
// then left running). For calls that dial on their own, such as SendMail.
func Within(t testing.TB, timeout time.Duration, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("interop: still running after %v", timeout)
		return nil
	}
}

// WaitForAll waits until Maildir(t) holds want messages whose Message-ID
// starts with "<"+prefix, reading each file once, then waits settle more
// for any extra copy, and returns the messages by Message-ID (without the
// angle brackets): a Message-ID with two entries was delivered twice. It
// fails the test if fewer than want arrive within timeout.
func WaitForAll(t testing.TB, prefix string, want int, timeout, settle time.Duration) map[string][][]byte {
	t.Helper()
	maildir := Maildir(t)
	got := map[string][][]byte{}
	seen := map[string]bool{}
	n := 0
	scan := func() {
		err := filepath.WalkDir(maildir, func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil && os.IsNotExist(err):
				return nil
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "tmp":
				return fs.SkipDir
			case d.IsDir() || seen[path]:
				return nil
			}
			data, err := os.ReadFile(path)
			if os.IsNotExist(err) {
				return nil // moved from new/ to cur/: seen under its new name
			}
			if err != nil {
				return err
			}
			seen[path] = true
			if id := messageID(data); strings.HasPrefix(id, prefix) {
				got[id] = append(got[id], data)
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatalf("interop: reading %s: %v", maildir, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for scan(); n < want; scan() {
		if time.Now().After(deadline) {
			t.Fatalf("interop: %d of %d messages with Message-ID <%s...> delivered to %s within %v", n, want, prefix, maildir, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(settle)
	scan()
	return got
}

// messageID returns the value of the first Message-ID field in data,
// without its angle brackets, or "".
func messageID(data []byte) string {
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return "" // the end of the header
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(name), "Message-ID") {
			return strings.Trim(strings.TrimSpace(string(value)), "<>")
		}
	}
	return ""
}
