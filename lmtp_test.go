package smtp

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// RFC 2033 §4.1–4.2: LHLO, then one reply per accepted recipient after the
// data; a recipient that fails there is refused without failing the others.
func TestLMTP_ReplyPerRecipient(t *testing.T) {
	for _, ext := range [][]string{{"PIPELINING", "ENHANCEDSTATUSCODES", "CHUNKING"}, {"ENHANCEDSTATUSCODES"}} {
		srv := newTestServer(t, smtptest.Config{LMTP: true, Extensions: ext})
		c := dialTest(t, srv, &Dialer{LMTP: true})
		res, err := c.Send(context.Background(), &Envelope{From: "a@example.org",
			To: Recipients("b@example.com", "reject@example.com", "lmtpfail@example.com", "c@example.com")},
			strings.NewReader("Subject: lmtp\r\n\r\nhi\r\n"))
		var re *RecipientsError
		require.ErrorAs(t, err, &re)
		require.Len(t, re.Refused, 2)
		assert.Equal(t, "reject@example.com", re.Refused[0].Addr)
		assert.Equal(t, "lmtpfail@example.com", re.Refused[1].Addr)
		assert.Equal(t, 452, re.Refused[1].Delivery.Code, "refused after the data")
		assert.Equal(t, 2, re.Accepted)
		require.NotNil(t, res.Reply)
		assert.Equal(t, 250, res.Recipients[3].Delivery.Code)
		msgs := srv.Messages()
		require.Len(t, msgs, 1)
		assert.Equal(t, []string{"b@example.com", "c@example.com"}, msgs[0].To)
		assert.Equal(t, "DATA", msgs[0].Via, "LMTP messages go with DATA")
		require.NoError(t, c.Quit())
	}
}

// RFC 2033 §4.1: an LMTP client does not fall back to HELO.
func TestLMTP_NoHELOFallback(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	_, err := (&Dialer{LocalName: "client.example", LMTP: true}).Dial(context.Background(), srv.Addr)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 500, e.Code)
	for _, l := range srv.Transcript(1) {
		assert.NotContains(t, l, "HELO")
	}
}
