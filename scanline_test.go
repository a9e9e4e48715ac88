package smtp

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// cleanRef is cleanPrefix octet by octet, looking at each octet and its
// neighbours: the model the block scans must agree with.
func cleanRef(p []byte, prev byte, dots bool) int {
	before := func(i int) byte {
		if i == 0 {
			return prev
		}
		return p[i-1]
	}
	for i := range p {
		bareLF := p[i] == '\n' && before(i) != '\r'
		bareCR := p[i] == '\r' && i+1 < len(p) && p[i+1] != '\n'
		lineDot := dots && p[i] == '.' && before(i) == '\n'
		if bareLF || bareCR || lineDot {
			return i
		}
	}
	return len(p)
}

// cleanWords is cleanPrefix with the portable block scan, the model
// finishing what the words leave: a CR ending them is bare if the next
// octet is not an LF.
func cleanWords(p []byte, prev byte, dots bool) int {
	i := scanWords(p, prev, dots)
	if i > 0 {
		prev = p[i-1]
	}
	if prev == '\r' && i < len(p) && p[i] != '\n' {
		return i - 1
	}
	return i + cleanRef(p[i:], prev, dots)
}

func checkClean(t *testing.T, p []byte, prev byte, dots bool) {
	t.Helper()
	want := cleanRef(p, prev, dots)
	require.Equal(t, want, cleanPrefix(p, prev, dots), "cleanPrefix(%q, %q, %v)", p, prev, dots)
	require.Equal(t, want, cleanWords(p, prev, dots), "portable scan of %q, %q, %v", p, prev, dots)
	require.Equal(t, want, cleanBlocks(p, prev, dots), "block scan of %q, %q, %v", p, prev, dots)
	withoutAVX2(func() {
		require.Equal(t, want, cleanBlocks(p, prev, dots), "block scan without AVX2 of %q, %q, %v", p, prev, dots)
	})
}

// The block scans (SSE2 on amd64, 8-octet words elsewhere) stop where the
// octet-by-octet model stops, at every position in a block and across
// block boundaries, for text dense in CR, LF and ".".
func TestCleanPrefix_AgreesWithTheModel(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "a.\r\n"
	for range 20000 {
		n := r.IntN(80)
		p := make([]byte, n)
		for i := range p {
			p[i] = alphabet[r.IntN(len(alphabet))]
		}
		checkClean(t, p, "\nx"[r.IntN(2)], r.IntN(2) == 0)
	}
	// Clean CRLF text with one fault placed at every offset.
	line := []byte("abc\r\ndefgh\r\nij\r\n.k\r\n")
	var base []byte
	for len(base) < 96 {
		base = append(base, line...)
	}
	for at := range base {
		for _, c := range []byte{'\r', '\n', '.'} {
			p := append([]byte(nil), base...)
			p[at] = c
			checkClean(t, p, '\n', true)
			checkClean(t, p, 'x', false)
		}
	}
}

// The same on long lines, where cleanPrefix hops from LF to LF before the
// block scan: a fault anywhere, after lines long and short.
func TestCleanPrefix_LongLines(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 3000 {
		var p []byte
		for len(p) < 1500 {
			n := 1 + r.IntN(300)
			for range n {
				p = append(p, 'a'+byte(r.IntN(26)))
			}
			p = append(p, '\r', '\n')
		}
		if r.IntN(4) > 0 {
			p[r.IntN(len(p))] = "\r\n."[r.IntN(3)]
		}
		checkClean(t, p, "\nx"[r.IntN(2)], r.IntN(2) == 0)
	}
}

func FuzzCleanPrefix(f *testing.F) {
	f.Add(bytes.Repeat([]byte("a long line of text, longer than the hop length of one hundred and twenty-eight octets, which makes cleanPrefix hop over it\r\n"), 3), byte('\n'), true)
	f.Add([]byte("line one\r\nline two\r\n.dot\r\n"), byte('\n'), true)
	f.Add([]byte("0123456789abcdef\r0123456789abcdef\n"), byte('x'), false)
	f.Add([]byte("0123456789abcde\r\n.123456789abcdef"), byte('\n'), true)
	f.Fuzz(func(t *testing.T, p []byte, prev byte, dots bool) {
		if prev == '\r' {
			prev = 'x' // never called after a CR
		}
		checkClean(t, p, prev, dots)
	})
}

// copyRef is dotCopy octet by octet: src in canonical, dot-stuffed form,
// a CR ending src left as it is (its LF, if any, is the next octet's).
func copyRef(src []byte, prev byte, dots bool) []byte {
	var out []byte
	for _, c := range src {
		lineStart := prev == '\n'
		if prev == '\r' && c != '\n' {
			out = append(out, '\n')
			lineStart = true
		}
		if c == '\n' && prev != '\r' {
			out = append(out, '\r')
		}
		if c == '.' && lineStart && dots {
			out = append(out, '.')
		}
		out = append(out, c)
		prev = c
	}
	return out
}

// dotCopy writes what the octet-by-octet model writes for the octets it
// takes, and takes whole blocks while there is room, whatever the density
// of CRs, LFs and dots.
func TestDotCopy_AgreesWithTheModel(t *testing.T) {
	if _, ns, _ := dotCopy(make([]byte, 256), make([]byte, 64), '\n', true); ns == 0 {
		t.Skip("no dotCopy on this architecture")
	}
	checkDotCopy(t)
	withoutAVX2(func() {
		checkDotCopy(t) // SSE2, PSHUFB
		withoutSSSE3(func() { checkDotCopy(t) })
	})
}

func checkDotCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabets := []string{"a.\r\n", "abc\n", "abcdefgh\r\n", "..\r", "abcdefghijklmnopqrstuvwxyz"}
	for i := range len(alphabets) + 1 {
		for range 3000 {
			// Each alphabet alone, then text whose density changes: up to
			// four stretches, each in an alphabet of its own.
			var src []byte
			for range 1 + r.IntN(4)*(i/len(alphabets)) {
				alphabet := alphabets[r.IntN(len(alphabets))]
				if i < len(alphabets) {
					alphabet = alphabets[i]
				}
				for range r.IntN(300) {
					src = append(src, alphabet[r.IntN(len(alphabet))])
				}
			}
			dst := make([]byte, r.IntN(2*len(src)+64))
			checkDotCopyOnce(t, dst, src, "\n\rx"[r.IntN(3)], r.IntN(2) == 0)
		}
	}
}

// checkDotCopyOnce checks one call of dotCopy against copyRef.
func checkDotCopyOnce(t *testing.T, dst, src []byte, prev byte, dots bool) {
	t.Helper()
	nd, ns, stuffed := dotCopy(dst, src, prev, dots)
	require.Zero(t, ns%16)
	require.LessOrEqual(t, ns+16, max(len(src), 16))
	want := copyRef(src[:ns], prev, dots)
	require.Equal(t, string(want), string(dst[:nd]), "src %q prev %q dots %v", src[:ns], prev, dots)
	require.Equal(t, bytes.Count(want, []byte("."))-bytes.Count(src[:ns], []byte(".")), stuffed)
	if len(src)-ns >= 32 {
		require.Greater(t, nd+64, len(dst), "stopped only for want of room")
	}
}

func FuzzDotCopy(f *testing.F) {
	f.Add([]byte("a\n.b\nc\r\n.d\r\nline\n.\n..\nabcdefghijklmnopqrstuvwxyz\r\n.a\nb\r\n"), byte('\n'), true, 200)
	f.Add([]byte("0123456789abcdef\r0123456789abcdef\n.0123456789abcdef\r\n"), byte('x'), false, 64)
	f.Add(bytes.Repeat([]byte(".a\n"), 100), byte('\r'), true, 1000)
	f.Fuzz(func(t *testing.T, src []byte, prev byte, dots bool, room int) {
		if room < 0 || room > 4*len(src)+64 {
			room = 2*len(src) + 64
		}
		dst := make([]byte, room)
		checkDotCopyOnce(t, dst, src, prev, dots)
		withoutAVX2(func() {
			checkDotCopyOnce(t, dst, src, prev, dots)
			withoutSSSE3(func() { checkDotCopyOnce(t, dst, src, prev, dots) })
		})
	})
}
