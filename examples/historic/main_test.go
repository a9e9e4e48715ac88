package main

import (
	"bytes"
	"strings"
	"testing"
)

// The example's whole run: every historic command gets its answer, the
// refused recipient is refused in both MRSQ schemes and only there, and
// the message received after TURN arrives un-stuffed.
func TestHistoric_RunsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("example failed: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"S: 214 2.0.0 MRSQ [R | T | ?]",
		"-- members: Postel@USC-ISIF.ARPA, @USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA, xyz@bar-unix.ARPA",
		"-- refused: 550",
		"C: SAML FROM:<>",
		"C: RCPT TO:<@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA>",
		"S: 215 T Text first, please",
		"-- MRSQ R: delivered to 3 of 4; <reject.Raboof@Y> refused: 553",
		"-- MRSQ T: delivered to 3 of 4; <reject.Raboof@Y> refused: 553",
		"C: AUTH PLAIN <redacted>",
		"S: 250 2.0.0 OK, changing roles",
		"     | .this line starts with a dot\n",
		"C: 220 client.historic.example Service ready",
		"C: 550 5.7.1 not a domain of mine",
		"C: 221 client.historic.example Service closing transmission channel",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, password) {
		t.Errorf("the output shows the password:\n%s", got)
	}
}
