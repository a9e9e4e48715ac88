package rfc821

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// RFC 821 §3.4: SEND, SOML and SAML in place of MAIL.
func TestSendSomlSaml(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"ENHANCEDSTATUSCODES", "8BITMIME", "SEND", "SOML", "SAML"}})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	for _, verb := range []string{"SEND", "SOML", "SAML", "MAIL"} {
		from := "a@example.org"
		if verb == "SAML" {
			from = ""
		}
		require.NoError(t, StartMail(ctx, c, verb, from), verb)
		require.NoError(t, c.RcptContext(ctx, "b@example.com"))
		w, err := c.DataContext(ctx)
		require.NoError(t, err)
		_, err = io.WriteString(w, "Subject: "+verb+"\r\n\r\nhi\r\n")
		require.NoError(t, err)
		require.NoError(t, w.Close())
	}
	msgs := srv.Messages()
	require.Len(t, msgs, 4)
	for i, verb := range []string{"SEND", "SOML", "SAML", "MAIL"} {
		assert.Equal(t, verb, msgs[i].Verb)
	}
	assert.Equal(t, "", msgs[2].From)
	sent := srv.Commands(1)
	assert.Contains(t, sent, "SEND FROM:<a@example.org>", "no parameters on SEND")
	assert.Contains(t, sent, "SAML FROM:<>")
	assert.Contains(t, sent, "MAIL FROM:<a@example.org> BODY=8BITMIME", "MAIL as MailContext sends it")

	// RFC 821 §3.4: a SEND recipient who is not at a terminal: 450.
	require.NoError(t, StartMail(ctx, c, "SEND", "a@example.org"))
	err := c.RcptContext(ctx, "away@example.com")
	assert.Equal(t, 450, historicCode(t, err))
	require.NoError(t, c.ResetContext(ctx))

	assert.Error(t, StartMail(ctx, c, "XSND", "a@example.org"))
	assert.ErrorIs(t, StartMail(ctx, c, "SAML", "a\r\n@x"), smtp.ErrCRLF)
	assert.Error(t, StartMail(ctx, c, "SOML", "<a@x>"))

	// A server that does not implement them: 502.
	c2 := dialTest(t, newTestServer(t, smtptest.Config{}), nil)
	for _, verb := range []string{"SEND", "SOML", "SAML"} {
		assert.Equal(t, 502, historicCode(t, StartMail(ctx, c2, verb, "a@example.org")))
	}
}
