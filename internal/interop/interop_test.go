package interop

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, err)
	assert.Equal(t, "From: <sender@example.com>\nSubject: x\n\n..body\n", string(original), "original")
	assert.True(t, strings.HasPrefix(string(added), "Return-Path:"), "added = %q", added)
	assert.True(t, strings.HasSuffix(string(added), "(UTC)\n"), "added = %q", added)
	_, _, err = SplitDelivered([]byte(delivered), "Subject")
	assert.Error(t, err, "SplitDelivered with the wrong first header")
}

func TestDeliveredTo(t *testing.T) {
	for rcpt, want := range map[string]bool{
		"bob@example.com":    true,
		"BOB@Example.COM":    true,
		"sender@example.com": false,
		"bo@example.com":     false,
	} {
		assert.Equal(t, want, deliveredTo([]byte(delivered), rcpt), "deliveredTo(%q)", rcpt)
	}
}

func TestCheckDelivered(t *testing.T) {
	CheckDelivered(t, []byte(delivered), []byte("From: <sender@example.com>\r\nSubject: x\r\n\r\n..body\r\n"))
}

func TestToLF(t *testing.T) {
	assert.Equal(t, "a\nb\rc\n\n", string(ToLF([]byte("a\r\nb\rc\n\r\n"))), "ToLF")
}
