package smtp

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// SlogTrace logs every command and reply as a structured record, and never
// the credentials of AUTH.
func TestSlogTrace_LogsWithoutCredentials(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "AUTH PLAIN LOGIN"}, Users: map[string]string{"joe": "s3cret-pw"}})
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dialTest(t, srv, &Dialer{Trace: SlogTrace(l)})
	require.NoError(t, c.Auth(PlainAuth("", "joe", "s3cret-pw", "127.0.0.1")))
	_, err := c.Send(context.Background(), &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("hi\r\n"))
	require.NoError(t, err)
	logged := buf.String()
	assert.NotContains(t, logged, "s3cret-pw")
	assert.NotContains(t, logged, "AGpvZQBzM2NyZXQtcHc", "not even base64")
	var commands, replies int
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		switch rec["msg"] {
		case "smtp command":
			commands++
			assert.NotEmpty(t, rec["line"])
		case "smtp reply":
			replies++
			assert.NotZero(t, rec["code"])
		}
	}
	assert.GreaterOrEqual(t, commands, 4, "AUTH, MAIL, RCPT, DATA")
	assert.GreaterOrEqual(t, replies, commands)
}
