//go:build amd64 && !purego

package smtp

// scanBlocks returns the index of the first octet that cleanPrefix stops at
// (one before the first octet that follows a bare CR) within the whole
// 16-octet blocks of p, or the length of those blocks if there is none. A
// CR ending the last block is left to the caller. It uses SSE2, which
// every amd64 processor has.
//
//go:noescape
func scanBlocks(p []byte, prev byte, dots bool) int

// dotCopy copies src to dst in canonical, dot-stuffed (with dots) form, 16
// octets at a time, while the block and the 16 octets after it lie in src
// and dst has room for 64 more octets; prev is the octet before src. It
// returns the octets written to dst and taken from src, and the dots it
// inserted (stuffing, which the canonical count leaves out).
//
//go:noescape
func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int)
