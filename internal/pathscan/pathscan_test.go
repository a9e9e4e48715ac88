package pathscan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCut(t *testing.T) {
	tests := []struct {
		arg, prefix, path, rest string
		ok                      bool
	}{
		{"FROM:<a@b>", "FROM:", "a@b", "", true},
		{"from:  <a@b> SIZE=10", "FROM:", "a@b", " SIZE=10", true},
		{`TO:<"x>y"@b> NOTIFY=NEVER`, "TO:", `"x>y"@b`, " NOTIFY=NEVER", true},
		{`TO:<a\>b@c>`, "TO:", `a\>b@c`, "", true},
		{"TO:<>", "TO:", "", "", true},
		{"TO:<a@b>x", "TO:", "", "", false},
		{"TO:a@b", "TO:", "", "", false},
		{"TO:<a@b", "TO:", "", "", false},
		{`TO:<"a@b>`, "TO:", "", "", false},
		{"FROM:<a@b>", "TO:", "", "", false},
		{"FR", "FROM:", "", "", false},
	}
	for _, tt := range tests {
		path, rest, ok := Cut(tt.arg, tt.prefix)
		assert.Equal(t, tt.path, path, "Cut(%q, %q): path", tt.arg, tt.prefix)
		assert.Equal(t, tt.rest, rest, "Cut(%q, %q): rest", tt.arg, tt.prefix)
		assert.Equal(t, tt.ok, ok, "Cut(%q, %q): ok", tt.arg, tt.prefix)
	}
}

func TestLastBracketed(t *testing.T) {
	tests := []struct {
		line, want string
		ok         bool
	}{
		{"Joe Smith <joe@example.org>", "joe@example.org", true},
		{"<joe@example.org>", "joe@example.org", true},
		{`"Smith, <J>" <joe@example.org>`, "joe@example.org", true},
		{`a <b> <c@d>`, "c@d", true},
		{`\<x> y>`, "", false},
		{"joe@example.org", "", false},
		{`"<joe@example.org>"`, "", false},
	}
	for _, tt := range tests {
		got, ok := LastBracketed(tt.line)
		assert.Equal(t, tt.want, got, "LastBracketed(%q)", tt.line)
		assert.Equal(t, tt.ok, ok, "LastBracketed(%q): ok", tt.line)
	}
}
