package smtp

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Finding what a DotWriter must change: most text needs nothing inserted,
// and the scan that proves it hops from LF to LF over long lines and runs
// on whole blocks of octets over short ones (64 at a time on amd64, with
// AVX2 or SSE2; 8 in portable Go), whatever the line lengths.

// cleanPrefix returns the length of the longest prefix of p that a
// DotWriter passes on unchanged: every LF in it follows a CR, every CR in
// it is followed by an LF (a CR ending p is let through: its LF may come in
// the next Write) and, with dots, no line in it starts with ".". prev is
// the octet before p: '\n' at the start of a line, anything but CR inside
// one. The octet at the returned index, if any, is a bare LF, a bare CR or
// a line-initial ".".
func cleanPrefix(p []byte, prev byte, dots bool) int {
	i, stop := hopLines(p, prev, dots)
	if stop {
		return i
	}
	if i > 0 {
		prev = '\n'
	}
	return i + cleanBlocks(p[i:], prev, dots)
}

// hopLine is the line length from which hopping from LF to LF with
// bytes.IndexByte, which the runtime runs at the machine's full vector
// width, beats the block scan.
const hopLine = 128

// hopReach bounds the search for the next LF.
const hopReach = 4096

// hopLines goes over the long lines at the start of p, from LF to LF, and
// counts their CRs once at the end. It returns where it stopped and whether
// that is cleanPrefix's answer (an LF that does not follow a CR, or a "."
// that starts a line); if not, the block scan goes on from there, at a line
// start if it is not 0.
func hopLines(p []byte, prev byte, dots bool) (int, bool) {
	if dots && prev == '\n' && len(p) > 0 && p[0] == '.' {
		return 0, true
	}
	i, pairs := 0, 0
	for len(p)-i > hopLine {
		// Within hopReach: text without LFs (bare CRs) must not be
		// searched to its end again at every change.
		j := bytes.IndexByte(p[i:min(len(p), i+hopReach)], '\n')
		if j < hopLine {
			break // a short line, or none within reach: the block scan goes on
		}
		lf := i + j
		if p[lf-1] != '\r' {
			return settle(p, lf, pairs, true)
		}
		pairs++
		i = lf + 1
		if dots && i < len(p) && p[i] == '.' {
			return settle(p, i, pairs, true)
		}
	}
	return settle(p, i, pairs, false)
}

// settle checks that the pairs LFs hopped over in p[:i] are the only ones
// with a CR before them, so that there is no bare CR: then i is where
// hopLines stopped, with stop as it says. With a bare CR the block scan
// starts again from 0 to find it.
func settle(p []byte, i, pairs int, stop bool) (int, bool) {
	if bytes.Count(p[:i], crOctet) != pairs {
		return 0, false
	}
	return i, stop
}

var crOctet = []byte{'\r'}

// cleanBlocks is cleanPrefix with the block scan alone.
func cleanBlocks(p []byte, prev byte, dots bool) int {
	i := 0
	if len(p) >= 16 {
		i = scanBlocks(p, prev, dots)
		if i > 0 {
			prev = p[i-1]
		}
	}
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case prev == '\r' && c != '\n':
			return i - 1
		case c == '\n' && prev != '\r', c == '.' && prev == '\n' && dots:
			return i
		}
		prev = c
	}
	return len(p)
}

// SWAR constants: one octet value in every octet of a word.
const (
	lo7     = 0x7f7f7f7f7f7f7f7f
	hi1     = 0x8080808080808080
	allCR   = 0x0d0d0d0d0d0d0d0d
	allLF   = 0x0a0a0a0a0a0a0a0a
	allDots = 0x2e2e2e2e2e2e2e2e
)

// octetsEqual returns a word with 0x80 in each octet where x equals the
// octet of c (all of whose octets are the same), and 0 elsewhere.
func octetsEqual(x, c uint64) uint64 {
	v := x ^ c
	return ^((v&lo7 + lo7) | v | lo7)
}

// scanWords is scanBlocks in portable Go, 8 octets at a time: it returns
// the index of the first octet that cleanPrefix stops at (one before the
// first octet that follows a bare CR) within the whole words of p, or the
// length of those words if there is none. A CR ending the last word is
// left to the caller.
func scanWords(p []byte, prev byte, dots bool) int {
	var carryCR, carryLF uint64 // 0x80 if the octet before the word is CR, LF
	switch prev {
	case '\r':
		carryCR = 0x80
	case '\n':
		carryLF = 0x80
	}
	dotMask := uint64(0)
	if dots {
		dotMask = ^uint64(0)
	}
	end := len(p) &^ 7
	for i := 0; i < end; i += 8 {
		x := binary.LittleEndian.Uint64(p[i:])
		cr, lf := octetsEqual(x, allCR), octetsEqual(x, allLF)
		afterCR := cr<<8 | carryCR // 0x80 in each octet whose predecessor is CR
		afterLF := lf<<8 | carryLF
		bad := lf&^afterCR | octetsEqual(x, allDots)&afterLF&dotMask
		bareCR := afterCR &^ lf // the octet after a bare CR
		if bad|bareCR != 0 {
			at := bits.TrailingZeros64(bad) / 8 // 8 if none
			if bareCR != 0 {
				at = min(at, bits.TrailingZeros64(bareCR)/8-1)
			}
			return i + at
		}
		carryCR, carryLF = cr>>56, lf>>56
	}
	return end
}
