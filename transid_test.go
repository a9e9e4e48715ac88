package smtp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// transIDAtomRef and transIDRef are the RFC 1845 §2 grammar written out as a regexp, kept apart
// from the hand-written validator: an atom character is any printable ASCII
// character but SPACE, the RFC 2045 tspecials and ".", listed one by one.
const transIDAtomRef = "[!#$%&'*+\\-0-9A-Z^_`a-z{|}~]"

var (
	transIDTokenRef = transIDAtomRef + "+(?:\\." + transIDAtomRef + "+)*"
	transIDRef      = regexp.MustCompile(`\A<` + transIDTokenRef + `@` + transIDTokenRef + `>\z`)
	transIDDomRef   = regexp.MustCompile(`\A` + transIDTokenRef + `\z`)
)

func refValidTransID(v string) bool { return len(v) <= 80 && transIDRef.MatchString(v) }

func TestValidateTransIDValid(t *testing.T) {
	for _, v := range []string{
		"<12345@claremont.edu>", // RFC 1845 §5
		"<a@b>",
		"<a.b.c@d.e.f>",
		"<ABC@Example.COM>",
		"<!#$%&'*+-^_`{|}~@x>",
		"<0@0>",
		"<" + strings.Repeat("a", 76) + "@b>", // 80 characters
		"<" + strings.Repeat("a.", 37) + "a@b>",
	} {
		require.NoError(t, ValidateTransID(v), "%q", v)
		require.True(t, refValidTransID(v), "reference rejects %q", v)
	}
	require.Len(t, "<"+strings.Repeat("a", 76)+"@b>", 80)
}

func TestValidateTransIDInvalid(t *testing.T) {
	type bad struct {
		v      string
		index  int
		reason string
	}
	cases := []bad{
		{"<" + strings.Repeat("a", 77) + "@b>", -1, "81 characters, more than 80"},
		{strings.Repeat("x", 1000), -1, "1000 characters, more than 80"},
		{"", -1, "empty"},
		{"a@b", 0, `does not start with "<"`},
		{" <a@b>", 0, `does not start with "<"`},
		{"<a@b", 3, `does not end with ">"`},
		{"<a@b> ", 5, `does not end with ">"`},
		{"<a@b>\r\n", 6, `does not end with ">"`},
		{"<", 0, `does not end with ">"`},
		{">", 0, `does not start with "<"`},
		{"<>", 1, "nothing between the angle brackets"},
		{"<ab>", -1, `no "@"`},
		{"<a b>", 2, "space"},
		{"<a@b@c>", 4, `a second "@"`},
		{"<@@>", 1, "empty transid-local"},
		{"<a@@b>", 3, `a second "@"`},
		{"<@b>", 1, "empty transid-local"},
		{"<a@>", 3, "empty transid-domain"},
		{"<@>", 1, "empty transid-local"},
		{"<.a@b>", 1, `transid-local starts with "."`},
		{"<a.@b>", 2, `transid-local ends with "."`},
		{"<a..b@c>", 3, `empty atom between two "."`},
		{"<.@b>", 1, `transid-local starts with "."`},
		{"<a@.b>", 3, `transid-domain starts with "."`},
		{"<a@b.>", 4, `transid-domain ends with "."`},
		{"<a@b..c>", 5, `empty atom between two "."`},
		{"<a b@c>", 2, "space"},
		{"<a@b c>", 4, "space"},
		{"<a\tb@c>", 2, "control character 0x09"},
		{"<a\x00@c>", 2, "control character 0x00"},
		{"<a@c\r>", 4, "control character 0x0d"},
		{"<a\x7f@c>", 2, "control character 0x7f"},
		{"<\u00e9@c>", 1, "non-ASCII octet 0xc3"},
		{"<a@\xff>", 3, "non-ASCII octet 0xff"},
		{"<a@b.c\x80>", 6, "non-ASCII octet 0x80"},
	}
	for _, c := range `()<>,;:\"/[]?=` {
		s := string(c)
		cases = append(cases,
			bad{"<a" + s + "b@c>", 2, "tspecial " + quoteRune(c)},
			bad{"<a@b" + s + "c>", 4, "tspecial " + quoteRune(c)},
			bad{"<" + s + "@c>", 1, "tspecial " + quoteRune(c)},
		)
	}
	for _, c := range cases {
		err := ValidateTransID(c.v)
		require.Error(t, err, "%q", c.v)
		require.False(t, refValidTransID(c.v), "reference accepts %q", c.v)
		var te *transIDError
		require.True(t, errors.As(err, &te), "%q: %T", c.v, err)
		require.Equal(t, c.v, te.Value)
		require.False(t, te.Domain)
		require.Equal(t, c.index, te.Index, "%q: %v", c.v, err)
		require.Equal(t, c.reason, te.Reason, "%q", c.v)
		require.Contains(t, err.Error(), c.reason)
		require.Contains(t, err.Error(), "RFC 1845")
	}
}

func quoteRune(c rune) string {
	switch c {
	case '\'':
		return `'\''`
	case '\\':
		return `'\\'`
	}
	return "'" + string(c) + "'"
}

func TestTransIDError_Message(t *testing.T) {
	err := ValidateTransID("<a b@c>")
	require.EqualError(t, err, `smtp: invalid TRANSID "<a b@c>": space at index 2 (RFC 1845 §2)`)
	err = ValidateTransID("<ab>")
	require.EqualError(t, err, `smtp: invalid TRANSID "<ab>": no "@" (RFC 1845 §2)`)
	// A huge value is cut in the message.
	err = ValidateTransID(strings.Repeat("x", 10000))
	require.Less(t, len(err.Error()), 200)
	_, err = NewTransID("[192.0.2.1]")
	require.ErrorContains(t, err, `smtp: invalid transid-domain "[192.0.2.1]": an address literal`)
}

func TestNewTransIDDeterministic(t *testing.T) {
	zero := func() io.Reader { return bytes.NewReader(make([]byte, 12)) }
	id, err := newTransID("example.com", time.Unix(0, 0), zero())
	require.NoError(t, err)
	require.Equal(t, "<0000000000000.00000000000000000000@example.com>", id)

	ff := bytes.Repeat([]byte{0xff}, 12)
	id, err = newTransID("a", time.Unix(0, math.MaxInt64), bytes.NewReader(ff))
	require.NoError(t, err)
	// 96 bits are 19.2 base32 digits: the last carries 4 bits and 1 zero.
	require.Equal(t, "<1y2p0ij32e8e7.vvvvvvvvvvvvvvvvvvvg@a>", id)

	// Before 1970 the nanoseconds wrap as a uint64, still 13 digits.
	id, err = newTransID("a", time.Unix(0, -1), zero())
	require.NoError(t, err)
	require.Equal(t, "<3w5e11264sgsf.00000000000000000000@a>", id)

	// Later times sort after earlier ones in the time field.
	a, _ := newTransID("a", time.Unix(1700000000, 0), zero())
	b, _ := newTransID("a", time.Unix(1700000000, 1), zero())
	require.Less(t, a, b)

	for _, now := range []time.Time{time.Unix(0, 0), time.Unix(0, math.MaxInt64), time.Unix(0, math.MinInt64), time.Now()} {
		id, err := newTransID("client.example", now, nil)
		require.NoError(t, err)
		require.NoError(t, ValidateTransID(id))
		require.Len(t, id, len("<@client.example>")+transIDLocalLen)
	}
}

func TestNewTransIDDomain(t *testing.T) {
	long := strings.Repeat("d", maxTransIDDomainLen)
	require.Equal(t, 43, maxTransIDDomainLen)
	for _, d := range []string{"localhost", "ymir.claremont.edu", "a", "Mixed.Case.Example", "xn--bcher-kva.example", long, "a_b-c.d"} {
		id, err := NewTransID(d)
		require.NoError(t, err, d)
		require.NoError(t, ValidateTransID(id))
		require.True(t, strings.HasSuffix(id, "@"+d+">"), id)
		require.LessOrEqual(t, len(id), maxTransIDLen)
	}
	id, err := NewTransID(long)
	require.NoError(t, err)
	require.Len(t, id, maxTransIDLen)

	for _, c := range []struct{ d, reason string }{
		{"", "empty domain"},
		{"[192.0.2.1]", "an address literal"},
		{"[IPv6:2001:db8::1]", "an address literal"},
		{long + "d", "44 octets, longer than the 43"},
		{"example.com.", `domain ends with "."`},
		{".example.com", `domain starts with "."`},
		{"a..b", `empty atom between two "."`},
		{"exa mple", "space"},
		{"a@b", `tspecial '@'`},
		{"b\xc3\xbccher.de", "non-ASCII octet 0xc3"},
		{"host:25", `tspecial ':'`},
		{"a\r\nb", "control character 0x0d"},
	} {
		id, err := NewTransID(c.d)
		require.Error(t, err, c.d)
		require.Empty(t, id)
		var te *transIDError
		require.True(t, errors.As(err, &te))
		require.True(t, te.Domain)
		require.Equal(t, c.d, te.Value)
		require.Contains(t, te.Reason, c.reason, c.d)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestNewTransIDRandomFailure(t *testing.T) {
	boom := errors.New("boom")
	_, err := newTransID("a", time.Now(), errReader{boom})
	require.ErrorIs(t, err, boom)
	_, err = newTransID("a", time.Now(), bytes.NewReader(make([]byte, 11)))
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
}

func TestNewTransIDUnique(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		id, err := NewTransID("client.example")
		require.NoError(t, err)
		require.NoError(t, ValidateTransID(id))
		require.True(t, refValidTransID(id), id)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
	// Same clock reading: the random bits alone keep them apart.
	now := time.Now()
	seen = make(map[string]bool, n)
	for range n {
		id, err := newTransID("client.example", now, nil)
		require.NoError(t, err)
		require.False(t, seen[id], "duplicate %s", id)
		seen[id] = true
	}
}

func FuzzTransID(f *testing.F) {
	for _, s := range []string{
		"<12345@claremont.edu>", "<a@b>", "<a..b@c>", "<a@b@c>", "<>", "",
		"[192.0.2.1]", "example.com", "<\xff@b>", "<a b@c>",
	} {
		f.Add(s)
	}
	zero := make([]byte, transIDRandBytes)
	f.Fuzz(func(t *testing.T, v string) {
		err := ValidateTransID(v)
		want := refValidTransID(v)
		if want {
			require.NoError(t, err, "ValidateTransID(%q): the reference says valid", v)
		} else {
			require.Error(t, err, "ValidateTransID(%q): the reference says invalid", v)
		}
		if err != nil {
			var te *transIDError
			require.ErrorAs(t, err, &te, "ValidateTransID(%q)", v)
			require.Equal(t, v, te.Value, "ValidateTransID(%q): bad error %+v", v, te)
			require.NotEmpty(t, te.Reason, "ValidateTransID(%q): bad error %+v", v, te)
			require.GreaterOrEqual(t, te.Index, -1, "ValidateTransID(%q): bad error %+v", v, te)
			require.Less(t, te.Index, len(v), "ValidateTransID(%q): bad error %+v", v, te)
			require.False(t, te.Domain, "ValidateTransID(%q): bad error %+v", v, te)
			_ = err.Error()
		}

		// v as the client domain of a new TRANSID.
		id, err := newTransID(v, time.Unix(0, int64(len(v))), bytes.NewReader(zero))
		wantDom := len(v) <= maxTransIDDomainLen && transIDDomRef.MatchString(v)
		if wantDom {
			require.NoError(t, err, "newTransID(%q) = %q; the reference says valid", v, id)
		} else {
			require.Error(t, err, "newTransID(%q) = %q; the reference says invalid", v, id)
		}
		if err != nil {
			var te *transIDError
			require.ErrorAs(t, err, &te, "newTransID(%q)", v)
			require.True(t, te.Domain, "newTransID(%q): bad error %#v", v, err)
			require.Equal(t, v, te.Value, "newTransID(%q): bad error %#v", v, err)
			require.GreaterOrEqual(t, te.Index, -1, "newTransID(%q): bad error %#v", v, err)
			require.Less(t, te.Index, len(v), "newTransID(%q): bad error %#v", v, err)
			return
		}
		require.NoError(t, ValidateTransID(id), "newTransID(%q) = %q, which does not validate", v, id)
		require.True(t, strings.HasSuffix(id, "@"+v+">"), "newTransID(%q) = %q, without the domain at its end", v, id)
		require.LessOrEqual(t, len(id), maxTransIDLen, "newTransID(%q) = %q", v, id)
	})
}
