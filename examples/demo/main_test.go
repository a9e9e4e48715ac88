package main

import (
	"bytes"
	"strings"
	"testing"
)

// The demo's whole job on a smaller large message: the pipelined messages
// and the cut-and-resumed one all arrive byte-identical, the resume sends
// less than the whole message again, and the transcript never shows the
// password.
func TestDemo_ResumesAndDeliversEveryMessageOnce(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 2<<20, 0.6, false); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	got := out.String()
	if n := strings.Count(got, "byte-identical: true"); n != 4 {
		t.Errorf("%d byte-identical messages, want 4:\n%s", n, got)
	}
	for _, want := range []string{"AUTH PLAIN <redacted>", "connection lost", "the server holds", "1 restart(s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "correct horse") || strings.Contains(got, "AGRlbW8A") {
		t.Errorf("the transcript shows the credentials:\n%s", got)
	}
}
