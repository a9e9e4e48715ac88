//go:build amd64 && !purego

package smtp

// withoutAVX2 runs f with the SSE2 block scan, if the processor would
// otherwise use AVX2, and reports whether it did.
func withoutAVX2(f func()) bool {
	if !useAVX2 {
		return false
	}
	useAVX2 = false
	defer func() { useAVX2 = true }()
	f()
	return true
}

// withoutSSSE3 runs f with dotCopy inserting octets one by one, if the
// processor would otherwise use PSHUFB, and reports whether it did.
func withoutSSSE3(f func()) bool {
	if !useSSSE3 {
		return false
	}
	useSSSE3 = false
	defer func() { useSSSE3 = true }()
	f()
	return true
}
