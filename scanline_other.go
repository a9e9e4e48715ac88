//go:build !amd64 || purego

package smtp

// scanBlocks is scanWords where there is no assembly version.
func scanBlocks(p []byte, prev byte, dots bool) int { return scanWords(p, prev, dots) }

// haveDotCopy says whether dotCopy does anything here: it has no portable
// version (an octet-by-octet one was slower than the DotWriter's runs on
// all but the shortest LF-only lines), and the DotWriter goes on without it.
const haveDotCopy = false

func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int) { return 0, 0, 0 }
