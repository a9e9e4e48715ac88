//go:build !amd64 || purego

package smtp

// scanBlocks is scanWords where there is no assembly version.
func scanBlocks(p []byte, prev byte, dots bool) int { return scanWords(p, prev, dots) }

// dotCopy has no portable version: the DotWriter goes on without it.
func dotCopy(dst, src []byte, prev byte, dots bool) (nd, ns, stuffed int) { return 0, 0, 0 }
