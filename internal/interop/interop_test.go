package interop

import (
	"strings"
	"testing"
)

// A message as Postfix's virtual(8) writes it into the Maildir.
const delivered = "Return-Path: <sender@example.com>\n" +
	"X-Original-To: bob@example.com\n" +
	"Delivered-To: bob@example.com\n" +
	"Received: from client.resmtp.test (unknown [127.0.0.1])\n" +
	"\tby mx.resmtp.test (Postfix) with ESMTP id 8A4959848FF\n" +
	"\tfor <bob@example.com>; Sun, 22 Nov 2026 09:34:16 +0000 (UTC)\n" +
	"From: <sender@example.com>\n" +
	"Subject: x\n" +
	"\n" +
	"..body\n"

func TestSplitDelivered(t *testing.T) {
	added, original, err := SplitDelivered([]byte(delivered), "From")
	if err != nil {
		t.Fatal(err)
	}
	if want := "From: <sender@example.com>\nSubject: x\n\n..body\n"; string(original) != want {
		t.Errorf("original = %q, want %q", original, want)
	}
	if !strings.HasPrefix(string(added), "Return-Path:") || !strings.HasSuffix(string(added), "(UTC)\n") {
		t.Errorf("added = %q", added)
	}
	if _, _, err := SplitDelivered([]byte(delivered), "Subject"); err == nil {
		t.Error("SplitDelivered with the wrong first header: no error")
	}
}

func TestDeliveredTo(t *testing.T) {
	for rcpt, want := range map[string]bool{
		"bob@example.com":    true,
		"BOB@Example.COM":    true,
		"sender@example.com": false,
		"bo@example.com":     false,
	} {
		if got := deliveredTo([]byte(delivered), rcpt); got != want {
			t.Errorf("deliveredTo(%q) = %v, want %v", rcpt, got, want)
		}
	}
}

func TestCheckDelivered(t *testing.T) {
	CheckDelivered(t, []byte(delivered), []byte("From: <sender@example.com>\r\nSubject: x\r\n\r\n..body\r\n"))
}

func TestToLF(t *testing.T) {
	if got := string(ToLF([]byte("a\r\nb\rc\n\r\n"))); got != "a\nb\rc\n\n" {
		t.Errorf("ToLF = %q", got)
	}
}
