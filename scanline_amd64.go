//go:build amd64 && !purego

package smtp

import "math/bits"

// useAVX2 says whether scanBlocks and dotCopy may use AVX2 (64 octets in
// two 32-octet registers); it is set once, from the processor, and never
// changed.
var useAVX2 = hasAVX2()

// useSSSE3 says whether dotCopy may insert octets with PSHUFB; it is set
// once, from the processor, and never changed.
var useSSSE3 = hasSSSE3()

// hasAVX2 reports whether the processor has AVX2 and POPCNT and the
// operating system saves the AVX registers.
func hasAVX2() bool

// hasSSSE3 reports whether the processor has SSSE3 (PSHUFB).
func hasSSSE3() bool

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

const (
	// dotDense is the length of a clean run below which a DotWriter
	// copies text through its buffer with dotCopy instead of writing the
	// runs between insertions one by one. A run that short would be
	// copied into the buffer anyway (dotDirect), and dotCopy converts as
	// it copies.
	dotDense = dotDirect
	// dotSpan bounds the text given to one dotCopy: none here.
	dotSpan = 1 << 30
)

// dotCopy copies src to dst in canonical, dot-stuffed (with dots) form, in
// whole 16-octet blocks (64 at a time with AVX2), while the block and the
// 16 octets after it lie in src and dst has room for 64 more octets; prev
// is the octet before src. It returns the octets written to dst and taken
// from src, and the dots it inserted (stuffing, which the canonical count
// leaves out).
//
//go:noescape
func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int)

// expandTab holds, for each set m of the 8 octets of a half block, the
// PSHUFB control with which dotCopy inserts an octet before each octet in
// m: at 16*m, which of 16 input octets goes to each of 16 output
// positions, where the input is the 8 octets and then the same 8 with
// their LFs made CRs. An octet in m is taken from the second 8 (a CR
// before an LF, a "." before a ".") and then from the first. At 4096+m: 8
// plus the number of octets in m, the length of the output. It is
// computed once and never changed.
//
//lint:ignore U1000 used by dotCopy in scanline_amd64.s
var expandTab = func() (t [256*16 + 256]byte) {
	for m := range 256 {
		e := t[16*m : 16*m+16]
		o := 0
		for i := range 8 {
			if m&(1<<i) != 0 {
				e[o] = byte(8 + i)
				o++
			}
			e[o] = byte(i)
			o++
		}
		for ; o < 16; o++ {
			e[o] = 0x80 // a zero octet, overwritten by the next store
		}
		t[4096+m] = byte(8 + bits.OnesCount8(uint8(m)))
	}
	return t
}()
