package rfc821

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/resmtp/smtp"
	"github.com/stretchr/testify/require"
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
		_, err := w.Write(msg)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		wire.WriteString("QUIT\r\n") // the next command, which must stay unread
		br := bufio.NewReaderSize(&wire, 16)
		d := &dotReader{r: br, deadline: func() {}, bol: true}
		got, err := io.ReadAll(d)
		require.NoError(t, err, "message %q", msg)
		require.Equal(t, string(canonical(msg)), string(got), "message %q", msg)
		rest, _ := io.ReadAll(br)
		require.Equal(t, "QUIT\r\n", string(rest), "message %q: what follows the data, the next command, must stay unread", msg)
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
			require.True(t, ok2, "cutPath(%q) = %q, %q; put back together as %q it does not parse", arg, path, params, again)
			require.Equal(t, path, p2, "cutPath(%q) = %q, %q; put back together as %q", arg, path, params, again)
			require.Equal(t, params, params2, "cutPath(%q) = %q, %q; put back together as %q", arg, path, params, again)
		}
	})
}
