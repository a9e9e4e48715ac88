package mtasts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 8461 §3.2: the policy's syntax, strictly.
func TestParse(t *testing.T) {
	good := []struct {
		name string
		body string
		want Policy
	}{
		{"the RFC's example", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
			Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800 * time.Second}},
		{"CRLF, no final line end, spaces", "version: STSv1\r\nmode:testing\r\nmx:   MX1.Example.COM.  \r\nmax_age: 0",
			Policy{Mode: Testing, MX: []string{"mx1.example.com"}, MaxAge: 0}},
		{"mode none needs no mx", "version: STSv1\nmode: none\nmax_age: 31557600\n", Policy{Mode: None, MaxAge: MaxAge}},
		{"unknown fields are ignored", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nx-future_field: some.value\n",
			Policy{Mode: Enforce, MX: []string{"a.example"}, MaxAge: 86400 * time.Second}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.body))
			require.NoError(t, err)
			assert.Equal(t, tt.want, *p)
		})
	}
	bad := []struct{ name, body string }{
		{"empty", ""},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n"},
		{"version STSv2", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n"},
		{"mode unknown", "version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n"},
		{"mode twice", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\n"},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n"},
		{"max_age over a year", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n"},
		{"max_age of 11 digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n"},
		{"max_age negative", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n"},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n"},
		{"mx an IP address literal", "version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 1\n"},
		{"mx wildcard in the middle", "version: STSv1\nmode: enforce\nmx: mail.*.example\nmax_age: 1\n"},
		{"mx wildcard alone over a TLD", "version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 1\n"},
		{"a line that is not a field", "version: STSv1\nmode: enforce\nmx a.example\nmax_age: 1\n"},
		{"an empty line", "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n"},
		{"a bare CR line end", "version: STSv1\rmode: enforce\nmx: a.example\nmax_age: 1\n"},
		{"HTML", "<html><body>not found</body></html>\n"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.body))
			require.ErrorIs(t, err, ErrSyntax)
			assert.Nil(t, p)
		})
	}
}

// RFC 8461 §4.1: an MX host matches a name exactly, or a wildcard with one
// label more, case-insensitively.
func TestPolicy_Match(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for mx, want := range map[string]bool{
		"mail.example.com":      true,
		"MAIL.Example.COM.":     true,
		"mx1.example.net":       true,
		"example.net":           false,
		"a.b.example.net":       false,
		"other.example.com":     false,
		"mail.example.com.evil": false,
		".example.net":          false,
	} {
		assert.Equal(t, want, p.Match(mx), mx)
	}
}

// RFC 8461 §3.1: exactly one record beginning with "v=STSv1;", with an id.
func TestParseRecords(t *testing.T) {
	ok := map[string][]string{
		"20160831085700Z": {"v=STSv1; id=20160831085700Z;"},
		"abc":             {"v=spf1 -all", "v=STSv1;id=abc"},
		"x1":              {"v=STSv1; id=x1; ext=value;"},
	}
	for want, txts := range ok {
		id, err := ParseRecords(txts)
		require.NoError(t, err, txts)
		assert.Equal(t, want, id)
	}
	for _, txts := range [][]string{
		nil,
		{"v=spf1 -all"},
		{"v=STSv1; id=a;", "v=STSv1; id=b;"},
		{"v=STSv1;"},
		{"v=STSv1; id=;"},
		{"v=STSv1; id=" + strings.Repeat("a", 33) + ";"},
		{"v=STSv1; id=a-b;"},
		{"v=STSv1; id=a; id=b;"},
		{"v=STSv1; id=a; bad field;"},
		{"v=STSv2; id=a;"},
	} {
		_, err := ParseRecords(txts)
		assert.True(t, errors.Is(err, ErrNoRecord), "%q: %v", txts, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 604800\n"))
	f.Add([]byte("version: STSv1\r\nmode: none\r\nmax_age: 0"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Parse(body)
		if err != nil {
			require.ErrorIs(t, err, ErrSyntax)
			require.Nil(t, p)
			return
		}
		require.LessOrEqual(t, p.MaxAge, MaxAge)
		require.Contains(t, []Mode{Enforce, Testing, None}, p.Mode)
		if p.Mode != None {
			require.NotEmpty(t, p.MX)
		}
		for _, mx := range p.MX {
			require.True(t, validPattern(mx), mx)
			require.Equal(t, strings.ToLower(mx), mx)
			if !strings.HasPrefix(mx, "*.") {
				require.True(t, p.Match(mx), "a policy matches its own host names")
			}
		}
	})
}

func FuzzParseRecords(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;", "v=spf1 -all")
	f.Add("v=STSv1;id=a;x=y", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		id, err := ParseRecords([]string{a, b})
		if err != nil {
			require.ErrorIs(t, err, ErrNoRecord)
			return
		}
		require.NotEmpty(t, id)
		require.LessOrEqual(t, len(id), 32)
	})
}
