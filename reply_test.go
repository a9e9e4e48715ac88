package smtp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readTestReply(input string, maxLine, maxReply int) (*Reply, error) {
	rr := replyReader{r: bufio.NewReaderSize(strings.NewReader(input), maxLine+2), maxLine: maxLine, maxReply: maxReply}
	rep := new(Reply)
	err := rr.read(rep)
	return rep, err
}

// RFC 5321 §4.2 reply syntax, RFC 2034 §4 enhanced codes, and the
// tolerance real MTAs show.
func TestReply_Parses(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		code     int
		enhanced EnhancedCode
		lines    []string
	}{
		{"single line", "250 OK\r\n", 250, EnhancedCode{}, []string{"OK"}},
		{"multi-line", "250-mx.example.com\r\n250-SIZE 100\r\n250 8BITMIME\r\n", 250, EnhancedCode{}, []string{"mx.example.com", "SIZE 100", "8BITMIME"}},
		{"code with no text", "250\r\n", 250, EnhancedCode{}, []string{""}},
		{"code and space", "354 \r\n", 354, EnhancedCode{}, []string{""}},
		{"bare LF line end", "221 bye\n", 221, EnhancedCode{}, []string{"bye"}},
		{"enhanced code", "550 5.1.1 no such user\r\n", 550, EnhancedCode{5, 1, 1}, []string{"5.1.1 no such user"}},
		{"enhanced code alone", "250 2.0.0\r\n", 250, EnhancedCode{2, 0, 0}, []string{"2.0.0"}},
		{"three-digit enhanced parts", "452 4.123.456 full\r\n", 452, EnhancedCode{4, 123, 456}, []string{"4.123.456 full"}},
		{"class disagreeing with code is not an enhanced code", "250 5.1.1 odd\r\n", 250, EnhancedCode{}, []string{"5.1.1 odd"}},
		{"version number is not an enhanced code", "220 mail 2.0.10a ready\r\n", 220, EnhancedCode{}, []string{"mail 2.0.10a ready"}},
		{"too many digits", "550 5.1234.1 x\r\n", 550, EnhancedCode{}, []string{"5.1234.1 x"}},
		{"8-bit text is kept", "250 Grüße\r\n", 250, EnhancedCode{}, []string{"Grüße"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := readTestReply(tt.in, defaultMaxLineLength, defaultMaxReplySize)
			require.NoError(t, err)
			assert.Equal(t, tt.code, rep.Code)
			assert.Equal(t, tt.enhanced, rep.Enhanced)
			assert.Equal(t, tt.lines, rep.Lines)
		})
	}
}

// Malformed and hostile replies end in a typed error, within the limits.
func TestReply_RejectsMalformedAndOversized(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		limit   error
		wantEOF bool
	}{
		{name: "short line", in: "25\r\n"},
		{name: "letters for a code", in: "abc hello\r\n"},
		{name: "code out of range", in: "600 what\r\n"},
		{name: "second digit out of range", in: "270 what\r\n"},
		{name: "1yz is not an SMTP reply", in: "150 ok\r\n"},
		{name: "bad separator", in: "250_ok\r\n"},
		{name: "NUL in text", in: "250 o\x00k\r\n"},
		{name: "bare CR in text", in: "250 o\rk\r\n"},
		{name: "code changes mid-reply", in: "250-first\r\n550 second\r\n"},
		{name: "line over the limit", in: "250 " + strings.Repeat("x", 3000) + "\r\n", limit: ErrReplyTooLong},
		{name: "reply over the limit", in: strings.Repeat("250-xxxxxxxxxxxxxxxxxxxx\r\n", 200) + "250 end\r\n", limit: ErrReplyTooLong},
		{name: "ends mid-reply", in: "250-more to come\r\n", wantEOF: true},
		{name: "ends mid-line", in: "250 no line end", wantEOF: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readTestReply(tt.in, 2048, 4096)
			require.Error(t, err)
			if tt.wantEOF {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF)
				return
			}
			var pe *protoError
			require.ErrorAs(t, err, &pe)
			if tt.limit != nil {
				require.ErrorIs(t, err, tt.limit)
			}
		})
	}
}

func TestReply_TextDropsEnhancedCodes(t *testing.T) {
	rep, err := readTestReply("550-5.1.1 no such\r\n550 5.1.1 user\r\n", defaultMaxLineLength, defaultMaxReplySize)
	require.NoError(t, err)
	assert.Equal(t, "no such\nuser", rep.Text())
	assert.Equal(t, "5.1.1 no such\n5.1.1 user", rep.msg())
}

// FuzzReply checks that any input parses into a reply that obeys the
// grammar, or into a typed error, without panicking or exceeding the
// limits.
func FuzzReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "250\r\n", "220 \n", "250-a\r\n251 b\r\n",
		"354 go\r\n", "999 x\r\n", "250 \x00\r\n", "452 4.3.1 full\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := readTestReply(string(in), 2048, 4096)
		if err != nil {
			var pe *protoError
			typed := errors.As(err, &pe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			require.True(t, typed, "untyped error %T: %v", err, err)
			return
		}
		require.GreaterOrEqual(t, rep.Code, 200, "bad reply %+v", rep)
		require.LessOrEqual(t, rep.Code, 559, "bad reply %+v", rep)
		require.NotEmpty(t, rep.Lines, "bad reply %+v", rep)
		total := 0
		for _, l := range rep.Lines {
			total += len(l)
			require.NotContains(t, l, "\r", "line holds a line break or NUL: %q", l)
			require.NotContains(t, l, "\n", "line holds a line break or NUL: %q", l)
			require.NotContains(t, l, "\x00", "line holds a line break or NUL: %q", l)
		}
		require.LessOrEqual(t, total, 4096, "reply of %d octets passed a 4096 limit", total)
		if rep.Enhanced != (EnhancedCode{}) {
			require.Equal(t, rep.Code/100, rep.Enhanced.Class, "enhanced class %d with code %d", rep.Enhanced.Class, rep.Code)
		}
	})
}

// Dialer.MaxReplySize bounds a reply and each of its lines (to 16 KiB at
// most, 2 KiB at least): a line over the bound, or a reply over it in
// several lines, is a *protoError that matches ErrReplyTooLong, and
// the Client closes the connection.
func TestDialer_MaxReplySize(t *testing.T) {
	long := func(n int) string { return "250 " + strings.Repeat("x", n-4) }
	tests := []struct {
		name    string
		max     int
		reply   string
		tooLong bool
	}{
		{"a line within the bound", 4096, long(4000), false},
		{"a line over the bound", 4096, long(5000), true},
		{"a line under 2 KiB is always allowed", 100, long(1500), false},
		{"a reply over the bound in short lines", 4096, strings.Repeat("250-"+strings.Repeat("y", 996)+"\r\n", 5) + "250 end", true},
		{"zero: 16 KiB lines", 0, long(16000), false},
		{"zero: no line over 16 KiB", 0, long(17000), true},
		{"lines stay within 16 KiB whatever the bound", 1 << 20, long(17000), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250 mx", "C: NOOP", "S: "+tt.reply)
			c, err := (&Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled, MaxReplySize: tt.max}).Dial(context.Background(), s.Addr)
			require.NoError(t, err)
			defer c.Close()
			err = c.NoopContext(context.Background())
			if !tt.tooLong {
				require.NoError(t, err)
				return
			}
			var pe *protoError
			require.ErrorAs(t, err, &pe)
			require.ErrorIs(t, err, ErrReplyTooLong)
			require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
		})
	}
}
