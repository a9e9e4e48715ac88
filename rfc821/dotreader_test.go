package rfc821

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/resmtp/smtp"
)

// FuzzDotReader: whatever the core's DotWriter makes of a message (canonical
// line ends, dot-stuffing, the final "."), the Receiver's dotReader gives
// back the canonical message, stops at the final ".", and leaves what
// follows it unread.
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{"", "a", "a\r\n", ".\r\n", "..\r\n", "a\r\n.\r\nb", "\r", "\n.", "x\r.\r\n", ".a\n.b\r\n..\r\n", strings.Repeat("y", 5000) + "\n."} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var wire bytes.Buffer
		w := smtp.NewDotWriter(&wire)
		if _, err := w.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		wire.WriteString("QUIT\r\n") // the next command, which must stay unread
		br := bufio.NewReaderSize(&wire, 16)
		d := &dotReader{r: br, deadline: func() {}, bol: true}
		got, err := io.ReadAll(d)
		if err != nil {
			t.Fatalf("message %q: %v", msg, err)
		}
		if want := canonical(msg); !bytes.Equal(got, want) {
			t.Fatalf("message %q: read %q, want %q", msg, got, want)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "QUIT\r\n" {
			t.Fatalf("message %q: left %q after the data, want the next command", msg, rest)
		}
	})
}

// canonical is the message with every line ending (CRLF, bare LF, bare CR)
// made CRLF and a final CRLF added if missing (RFC 5321 §2.3.8, §4.5.2).
func canonical(msg []byte) []byte {
	s := strings.ReplaceAll(string(msg), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// FuzzCutPath: the Receiver's MAIL/RCPT argument parser never panics, and
// what it accepts it gives back: the path, without the brackets, and the
// parameters, which put back together parse the same again.
func FuzzCutPath(f *testing.F) {
	for _, s := range []string{"FROM:<a@b>", "TO:<>", "from: <a@b> SIZE=1", "FROM:<\"x>y\"@b>", "FROM:<a@b>x", "FROM:a@b", "TO:<a\\>b@c>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, prefix := range []string{"FROM:", "TO:"} {
			path, params, ok := cutPath(arg, prefix)
			if !ok {
				continue
			}
			again := prefix + "<" + path + ">"
			if params != "" {
				again += " " + params
			}
			p2, params2, ok2 := cutPath(again, prefix)
			if !ok2 || p2 != path || params2 != params {
				t.Fatalf("cutPath(%q) = %q, %q; put back together as %q it gives %q, %q, %v", arg, path, params, again, p2, params2, ok2)
			}
		}
	})
}
