package smtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// The whole session of RFC 5321 §3 with STARTTLS (RFC 3207) verified
// against the server's certificate and AUTH LOGIN through go-sasl.
func TestSession_DialerSendsOverVerifiedTLSWithAuth(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Users: map[string]string{"joe": "pw"}, RequireTLS: true, RequireAuth: true})
	d := &Dialer{LocalName: "client.example.org", TLSPolicy: TLSRequired, TLSConfig: srv.ClientTLSConfig()}
	ctx := context.Background()
	c, err := d.Dial(ctx, srv.Addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.AuthContext(ctx, SASLAuth(sasl.NewLoginClient("joe", "pw"))))
	body := "Subject: t\r\n\r\n.dot\r\nline\r\n"
	require.NoError(t, sendOne(ctx, c, "joe@example.org", []string{"a@example.com", "b@example.com"}, body))
	require.NoError(t, c.QuitContext(ctx))

	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, body, string(m.Data))
	assert.Equal(t, []string{"a@example.com", "b@example.com"}, m.To)
	assert.True(t, m.TLS)
	assert.Equal(t, "joe", m.AuthUser)
	assert.Equal(t, "client.example.org", m.Helo)
}

// net/smtp's SendMail against a real server: one message arrives intact.
func TestSession_SendMailDelivers(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"8BITMIME", "PIPELINING"}})
	body := "From: a@example.org\r\nSubject: x\r\n\r\n..\r\n.\r\nend"
	require.NoError(t, SendMail(srv.Addr, nil, "a@example.org", []string{"b@example.com"}, []byte(body)))
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, body+"\r\n", string(msgs[0].Data))
	assert.Equal(t, []string{"BODY=8BITMIME"}, msgs[0].MailParams)
}

// RFC 5321 §4.1.1.1: a server that answers EHLO with 502 is spoken to with
// HELO, and no extension is assumed.
func TestSession_HELOOnlyServer(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{NoEHLO: true})
	c, err := (&Dialer{LocalName: "client.example"}).Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	ok, _ := c.Extension("8BITMIME")
	assert.False(t, ok)
	require.NoError(t, sendOne(context.Background(), c, "a@b.example", []string{"c@d.example"}, "hi\r\n"))
	require.NoError(t, c.Quit())
	require.Len(t, srv.Messages(), 1)
	assert.Empty(t, srv.Messages()[0].MailParams)
}

// RFC 5321 §3.1 and §4.5.3.2.1: a refusing, closing or missing greeting.
func TestSession_GreetingFailures(t *testing.T) {
	tests := []struct {
		name   string
		faults smtptest.Faults
		check  func(t *testing.T, err error)
	}{
		{"554 refusal", smtptest.Faults{Reply: map[string]string{"GREETING": "554 5.3.2 no service"}}, func(t *testing.T, err error) {
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, 554, e.Code)
		}},
		{"421 then close", smtptest.Faults{Reply: map[string]string{"GREETING": "421 4.3.2 busy"}}, func(t *testing.T, err error) {
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.True(t, e.Temporary())
		}},
		{"never greets", smtptest.Faults{Stall: "GREETING"}, func(t *testing.T, err error) {
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout())
		}},
		{"hangs up", smtptest.Faults{CloseAfterCommand: "GREETING"}, func(t *testing.T, err error) {
			require.ErrorIs(t, err, io.EOF)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Faults: tt.faults})
			d := &Dialer{LocalName: "client.example", Timeouts: Timeouts{Greeting: 200 * time.Millisecond}}
			start := time.Now()
			c, err := d.Dial(context.Background(), srv.Addr)
			require.Nil(t, c)
			require.Error(t, err)
			assert.Less(t, time.Since(start), 3*time.Second)
			tt.check(t, err)
		})
	}
}

// Replies that break RFC 5321 §4.2 end the call with a *protoError and
// close the connection; nothing more is sent on it.
func TestSession_MalformedRepliesCloseTheConnection(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		limit error
	}{
		{"code changes mid-reply", "250-first\r\n550 second", nil},
		{"not a code", "abc hello", nil},
		{"NUL byte", "250 o\x00k", nil},
		{"invalid code", "199 what", nil},
		{"100 KiB line", "250 " + strings.Repeat("x", 100<<10), ErrReplyTooLong},
		{"endless continuation", strings.Repeat("250-more\r\n", 20000) + "250 end", ErrReplyTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{Reply: map[string]string{"NOOP": tt.reply}}})
			c, err := (&Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}).Dial(context.Background(), srv.Addr)
			require.NoError(t, err)
			err = c.NoopContext(context.Background())
			var pe *protoError
			require.ErrorAs(t, err, &pe)
			if tt.limit != nil {
				require.ErrorIs(t, err, tt.limit)
			}
			require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
			// The net/smtp-named call says what net/smtp's would on the
			// connection the Client closed: the error of writing to it.
			require.ErrorIs(t, c.Noop(), net.ErrClosed)
		})
	}
}

// RFC 3207 §6: a server (or a man in the middle) that sends lines after the
// 220 to STARTTLS is refused before the handshake.
func TestSession_STARTTLSResponseInjection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{InjectAfterSTARTTLS: "250-injected\r\n250 AUTH PLAIN\r\n"}})
	_, err := (&Dialer{LocalName: "client.example", TLSConfig: srv.ClientTLSConfig()}).Dial(context.Background(), srv.Addr)
	var pe *protoError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.reason, "injection")
}

// DataProgress reports canonical octets as they are written, and the total
// at the end.
func TestSession_DataProgress(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	var calls [][2]int64
	d := &Dialer{LocalName: "client.example", TLSConfig: srv.ClientTLSConfig(),
		Trace: &ClientTrace{DataProgress: func(w, total int64) { calls = append(calls, [2]int64{w, total}) }}}
	c, err := d.Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	body := strings.Repeat("0123456789012345678901234567890123456789012345678901234567890123456789012345\n", 10000) // LF only
	require.NoError(t, sendOne(context.Background(), c, "a@b.example", []string{"c@d.example"}, body))
	canonical := int64(len(body) + 10000) // each LF became CRLF
	require.Greater(t, len(calls), 5)
	for i := 1; i < len(calls); i++ {
		assert.Greater(t, calls[i][0], calls[i-1][0], "progress must grow")
	}
	assert.Equal(t, [2]int64{canonical, canonical}, calls[len(calls)-1])
	assert.Equal(t, canonical, int64(len(srv.Messages()[0].Data)))
}

// Cancelling the context while the server withholds the reply to the final
// "." ends the call promptly, closes the connection, and poisons the Client.
func TestSession_CancelDuringDataTermination(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Faults: smtptest.Faults{Stall: "."}})
	c, err := (&Dialer{LocalName: "client.example", TLSConfig: srv.ClientTLSConfig()}).Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, c.MailContext(ctx, "a@b.example"))
	require.NoError(t, c.RcptContext(ctx, "c@d.example"))
	w, err := c.DataContext(ctx)
	require.NoError(t, err)
	_, err = io.Copy(w, bytes.NewReader(bytes.Repeat([]byte("line\r\n"), 1000)))
	require.NoError(t, err)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err = w.Close()
	assert.Less(t, time.Since(start), 100*time.Millisecond+50*time.Millisecond)
	require.ErrorIs(t, err, context.Canceled)
	err = c.NoopContext(context.Background())
	require.True(t, errors.Is(err, ErrClosed) && errors.Is(err, context.Canceled), "%v", err)
}
