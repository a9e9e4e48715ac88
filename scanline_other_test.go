//go:build !amd64 || purego

package smtp

// withoutAVX2 does nothing where there is no AVX2 scan.
func withoutAVX2(func()) bool { return false }

// withoutSSSE3 does nothing where dotCopy has no PSHUFB version.
func withoutSSSE3(func()) bool { return false }
