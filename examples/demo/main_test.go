package main

import (
	"bytes"
	"strings"
	"testing"
)

// The demo's whole job, on a smaller large message: three messages arrive
// byte-identical over TLS, and the transcript never shows the password.
func TestDemo_SendsEveryMessageByteIdentical(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out, 1<<20, false); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	got := out.String()
	if n := strings.Count(got, "byte-identical: true"); n != 3 {
		t.Errorf("%d byte-identical messages, want 3:\n%s", n, got)
	}
	if strings.Contains(got, "correct horse") || strings.Contains(got, "AGRlbW8A") {
		t.Errorf("the transcript shows the credentials:\n%s", got)
	}
	if !strings.Contains(got, "AUTH PLAIN <redacted>") {
		t.Errorf("no redacted AUTH line in the transcript:\n%s", got)
	}
}
