package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
)

// startServer starts an smtptest server and returns it with the flags that
// reach it: -server, and -ca with the server's certificate so that
// opportunistic STARTTLS (offered by the default extensions) succeeds.
func startServer(t *testing.T, cfg smtptest.Config) (*smtptest.Server, []string) {
	t.Helper()
	srv, err := smtptest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, p, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, []string{"-server", srv.Addr, "-ca", ca, "-local-name", "client.test.example"}
}

// writeMessage writes a message of about size octets with CRLF line ends,
// its own canonical form, some lines starting with ".".
func writeMessage(t *testing.T, size int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("From: ops@example.org\r\nTo: archive@example.net\r\nSubject: large\r\n\r\n")
	for n := 0; b.Len() < size; n++ {
		if n%40 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "line %08d of a large message sent through a flaky link, resumed with CHECKPOINT\r\n", n)
	}
	path := filepath.Join(t.TempDir(), "message.eml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b.Bytes()
}

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

var sentLine = regexp.MustCompile(`^sent (\d+) octets for a (\d+)-octet message \([0-9.]+ %\), (\d+) restarts?$`)

// The case: a 3 MiB message through a connection cut at 2 MiB. The
// second connection resumes where the server's copy ends, the server's
// copy is byte-identical, and far less than the message is sent twice.
func TestSendfile_ResumesAfterCut(t *testing.T) {
	srv, flags := startServer(t, smtptest.Config{
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 2 << 20}},
	})
	path, data := writeMessage(t, 3<<20)
	code, out, errs := runArgs(t, append(flags, "-from", "ops@example.org", "-to", "archive@example.net",
		"-file", path, "-retry-delay", "10ms", "-tls", "required")...)
	if code != 0 {
		t.Fatalf("exit status %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	t.Logf("stderr:\n%s\nstdout:\n%s", errs, out)
	last := lastLine(out)
	m := sentLine.FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("last line %q is not the summary\nstderr:\n%s", last, errs)
	}
	sent, _ := strconv.ParseInt(m[1], 10, 64)
	size, _ := strconv.ParseInt(m[2], 10, 64)
	if size != int64(len(data)) {
		t.Errorf("message size %d, want %d", size, len(data))
	}
	if sent >= size*3/2 {
		t.Errorf("sent %d octets for a %d-octet message: the restart sent too much again", sent, size)
	}
	if !strings.HasSuffix(last, ", 1 restart") {
		t.Errorf("last line %q does not say 1 restart", last)
	}
	for _, want := range []string{"connection to " + srv.Addr + " lost", "reconnecting in 10ms (attempt 2 of 5)", "resumed at offset"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("the server has %d messages, want 1", len(msgs))
	}
	if !bytes.Equal(msgs[0].Data, data) {
		t.Errorf("the server's copy (%d octets) differs from the file (%d octets)", len(msgs[0].Data), len(data))
	}
	if len(msgs[0].ResumedAt) == 0 || !msgs[0].TLS {
		t.Errorf("resumed at %v, TLS %v: want a resumed transaction over TLS", msgs[0].ResumedAt, msgs[0].TLS)
	}
}

// Every connection loses the reply to the message, and the server has no
// CHECKPOINT: after -attempts connections sendfile fails and never claims
// success.
func TestSendfile_GivesUpWithoutTheReply(t *testing.T) {
	srv, flags := startServer(t, smtptest.Config{
		Extensions: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 10485760", "STARTTLS"},
		Faults:     smtptest.Faults{CloseBeforeReply: "."},
	})
	path, _ := writeMessage(t, 64<<10)
	code, out, errs := runArgs(t, append(flags, "-from", "ops@example.org", "-to", "archive@example.net",
		"-file", path, "-retry-delay", "10ms", "-attempts", "2")...)
	if code == 0 {
		t.Fatalf("exit status 0 without the server's reply\nstdout:\n%s\nstderr:\n%s", out, errs)
	}
	if strings.Contains(out, "sent") || strings.Contains(errs, "\nsent ") {
		t.Errorf("a sent line after a failure:\nstdout:\n%s\nstderr:\n%s", out, errs)
	}
	if !strings.Contains(errs, "not delivered") || !strings.Contains(errs, "1 restart") {
		t.Errorf("stderr does not report the failure after one restart:\n%s", errs)
	}
	t.Logf("stderr:\n%s", errs)
	if n := srv.Conns(); n != 2 {
		t.Errorf("%d connections, want 2 (-attempts 2)", n)
	}
}

// -timeout bounds the whole send, the wait before reconnecting included.
func TestSendfile_Timeout(t *testing.T) {
	_, flags := startServer(t, smtptest.Config{
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 32 << 10}},
	})
	path, _ := writeMessage(t, 256<<10)
	start := time.Now()
	code, out, errs := runArgs(t, append(flags, "-from", "ops@example.org", "-to", "archive@example.net",
		"-file", path, "-retry-delay", "1h", "-timeout", "200ms")...)
	if code != 1 || out != "" || !strings.Contains(errs, "-timeout 200ms reached") {
		t.Errorf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v despite -timeout 200ms", d)
	}
}

// A refused recipient fails the run even though the message reached the
// others; every recipient refused fails it too.
func TestSendfile_RefusedRecipient(t *testing.T) {
	srv, flags := startServer(t, smtptest.Config{})
	path, _ := writeMessage(t, 4<<10)

	code, out, errs := runArgs(t, append(flags, "-from", "ops@example.org", "-to", "archive@example.net, rejectme@example.net",
		"-file", path, "-retry-delay", "10ms")...)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if out != "" {
		t.Errorf("stdout after a partial refusal:\n%s", out)
	}
	for _, want := range []string{"accepted for 1 of 2 recipients", "<rejectme@example.net>: 550", "250"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	t.Logf("stderr:\n%s", errs)
	if msgs := srv.Messages(); len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "archive@example.net" {
		t.Errorf("the server has %+v, want one message to archive@example.net", msgs)
	}

	code, out, errs = runArgs(t, append(flags, "-from", "ops@example.org", "-to", "rejectme@example.net",
		"-file", path, "-retry-delay", "10ms")...)
	if code != 1 || out != "" || !strings.Contains(errs, "every recipient was refused") {
		t.Errorf("every recipient refused: exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the server has %d messages, want still 1", n)
	}
}

// Bad command lines exit 2 with the usage, before connecting anywhere.
func TestSendfile_UsageErrors(t *testing.T) {
	path, _ := writeMessage(t, 100)
	ok := []string{"-server", "127.0.0.1:1", "-from", "a@example.org", "-to", "b@example.net", "-file", path}
	with := func(extra ...string) []string { return append(append([]string(nil), ok...), extra...) }
	without := func(name string) []string {
		var args []string
		for i := 0; i < len(ok); i += 2 {
			if ok[i] != name {
				args = append(args, ok[i], ok[i+1])
			}
		}
		return args
	}
	for name, args := range map[string][]string{
		"no flags":          nil,
		"-h":                {"-h"},
		"unknown flag":      with("-insecure-skip-verify"),
		"positional":        with("extra"),
		"no -server":        without("-server"),
		"no -from":          without("-from"),
		"no -to":            without("-to"),
		"no -file":          without("-file"),
		"server no port":    with("-server", "mx.example.net"),
		"empty recipient":   with("-to", "c@example.net,,d@example.net"),
		"zero retry delay":  with("-retry-delay", "0s"),
		"bad retry delay":   with("-retry-delay", "soon"),
		"zero attempts":     with("-attempts", "0"),
		"negative timeout":  with("-timeout", "-1s"),
		"bad tls":           with("-tls", "maybe"),
		"ca with tls none":  with("-tls", "none", "-ca", path),
		"bad attempts type": with("-attempts", "many"),
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errs := runArgs(t, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2\nstderr:\n%s", code, errs)
			}
			if out != "" || !strings.Contains(errs, "usage: sendfile -server host:port") {
				t.Errorf("want the usage on stderr only\nstdout:\n%s\nstderr:\n%s", out, errs)
			}
		})
	}
}

// A file that cannot be read is a failure, not a usage error.
func TestSendfile_MissingFile(t *testing.T) {
	code, out, errs := runArgs(t, "-server", "127.0.0.1:1", "-from", "a@example.org", "-to", "b@example.net",
		"-file", filepath.Join(t.TempDir(), "nonexistent.eml"))
	if code != 1 || out != "" || !strings.Contains(errs, "nonexistent.eml") {
		t.Errorf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
