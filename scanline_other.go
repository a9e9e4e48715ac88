//go:build !amd64 || purego

package smtp

import "encoding/binary"

// scanBlocks is scanWords where there is no assembly version.
func scanBlocks(p []byte, prev byte, dots bool) int { return scanWords(p, prev, dots) }

// haveDotCopy says whether dotCopy does anything here.
const haveDotCopy = true

const (
	// dotDense is the length of a clean run below which a DotWriter
	// copies text through its buffer with dotCopy instead of writing the
	// runs between insertions one by one. The portable dotCopy is slower
	// than the runs on clean text, so only dense text goes to it...
	dotDense = 32
	// ...and it gets a little at a time, so that the runs take over again
	// where the text becomes clean.
	dotSpan = 256
)

// dotCopy copies src to dst in canonical, dot-stuffed (with dots) form, 16
// octets at a time, while the block and the 16 octets after it lie in src
// and dst has room for 64 more octets; prev is the octet before src. It
// returns the octets written to dst and taken from src, and the dots it
// inserted (stuffing, which the canonical count leaves out).
//
// This is the portable version: it checks each 8 octets as scanWords
// does, copies them whole when nothing is to be inserted, and else
// converts them one by one.
func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int) {
	dotMask := uint64(0)
	if dots {
		dotMask = ^uint64(0)
	}
	for ns+32 <= len(src) && nd+64 <= len(dst) {
		for end := ns + 16; ns < end; ns += 8 {
			w := src[ns : ns+8]
			x := binary.LittleEndian.Uint64(w)
			cr, lf := octetsEqual(x, allCR), octetsEqual(x, allLF)
			var carryCR, carryLF uint64
			switch prev {
			case '\r':
				carryCR = 0x80
			case '\n':
				carryLF = 0x80
			}
			afterCR, afterLF := cr<<8|carryCR, lf<<8|carryLF
			if lf&^afterCR|afterCR&^lf|octetsEqual(x, allDots)&afterLF&dotMask == 0 {
				copy(dst[nd:nd+8], w)
				nd += 8
				prev = w[7]
				continue
			}
			out := dst[nd : nd+24]
			o := 0
			for _, c := range w {
				if prev == '\r' && c != '\n' {
					out[o] = '\n' // the LF of a bare CR
					o++
					prev = '\n'
				}
				if c == '\n' && prev != '\r' {
					out[o] = '\r'
					o++
				}
				if c == '.' && prev == '\n' && dots {
					out[o] = '.'
					o++
					stuffed++
				}
				out[o] = c
				o++
				prev = c
			}
			nd += o
		}
	}
	return nd, ns, stuffed
}
