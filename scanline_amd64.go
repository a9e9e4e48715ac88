//go:build amd64 && !purego

package smtp

// useAVX2 says whether scanBlocks may use AVX2 (64 octets in two 32-octet
// registers); it is set once, from the processor, and never changed.
var useAVX2 = hasAVX2()

// hasAVX2 reports whether the processor has AVX2 and the operating system
// saves its registers.
func hasAVX2() bool

// scanBlocks returns the index of the first octet that cleanPrefix stops at
// (one before the first octet that follows a bare CR) within the whole
// 16-octet blocks of p, or the length of those blocks if there is none. A
// CR ending the last block is left to the caller. It uses AVX2 where the
// processor has it (useAVX2), else SSE2, which every amd64 processor has.
//
//go:noescape
func scanBlocks(p []byte, prev byte, dots bool) int

// haveDotCopy says whether dotCopy does anything here.
const haveDotCopy = true

// dotCopy copies src to dst in canonical, dot-stuffed (with dots) form, 16
// octets at a time, while the block and the 16 octets after it lie in src
// and dst has room for 64 more octets; prev is the octet before src. It
// returns the octets written to dst and taken from src, and the dots it
// inserted (stuffing, which the canonical count leaves out).
//
//go:noescape
func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int)
