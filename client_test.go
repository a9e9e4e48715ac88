package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const ehloReply = "S: 250-mx.example.com at your service\r\n250-SIZE 35651584\r\n250-AUTH LOGIN PLAIN\r\n250 8BITMIME"

// The net/smtp-compatible calls write what net/smtp writes (RFC 5321 §4.1).
func TestCompat_CommandsAreByteForByte(t *testing.T) {
	tests := []struct {
		name   string
		script []string
		run    func(c *Client) error
	}{
		{
			name:   "Quit after EHLO",
			script: []string{"S: 220 hello", "C: EHLO localhost", ehloReply, "C: QUIT", "S: 221 bye"},
			run:    func(c *Client) error { return c.Quit() },
		},
		{
			name:   "HELO after EHLO is not recognised",
			script: []string{"S: 220 hello", "C: EHLO localhost", "S: 502 EH?", "C: HELO localhost", "S: 250 ok", "C: NOOP", "S: 250 ok"},
			run:    func(c *Client) error { return c.Noop() },
		},
		{
			name: "Mail adds BODY=8BITMIME and SMTPUTF8 when offered",
			script: []string{"S: 220 hello", "C: EHLO localhost", "S: 250-x\r\n250-8BITMIME\r\n250 SMTPUTF8",
				"C: MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8", "S: 250 ok"},
			run: func(c *Client) error { return c.Mail("a@example.com") },
		},
		{
			name: "Hello with a custom name",
			script: []string{"S: 220 hello", "C: EHLO client.example.org", "S: 250 x",
				"C: VRFY joe", "S: 250 Joe <joe@example.com>"},
			run: func(c *Client) error {
				if err := c.Hello("client.example.org"); err != nil {
					return err
				}
				return c.Verify("joe")
			},
		},
		{
			name: "Rcpt accepts 251, Reset sends RSET",
			script: []string{"S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: MAIL FROM:<a@b>", "S: 250 ok",
				"C: RCPT TO:<c@d>", "S: 251 will forward", "C: RSET", "S: 250 ok"},
			run: func(c *Client) error {
				if err := c.Mail("a@b"); err != nil {
					return err
				}
				if err := c.Rcpt("c@d"); err != nil {
					return err
				}
				return c.Reset()
			},
		},
		{
			name: "Data dot-stuffs and ends with CRLF . CRLF",
			script: []string{"S: 220 hello", "C: EHLO localhost", "S: 250 x", "C: DATA", "S: 354 go ahead",
				"C: Subject: hi", "C: ", "C: ..leading dot", "C: no newline at end", "C: .", "S: 250 queued"},
			run: func(c *Client) error {
				if err := c.hello(context.Background()); err != nil {
					return err
				}
				w, err := c.Data()
				if err != nil {
					return err
				}
				if _, err := io.WriteString(w, "Subject: hi\n\n.leading dot\r\nno newline at end"); err != nil {
					return err
				}
				return w.Close()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := dialScript(t, tt.script...)
			require.NoError(t, tt.run(c))
			c.Close()
			var want []string
			for _, step := range tt.script {
				if strings.HasPrefix(step, "C: ") {
					want = append(want, step[3:])
				}
			}
			assert.Equal(t, want, s.Received())
		})
	}
}

// RFC 5321 §3.2: a server that does not know EHLO refuses it with a 5yz; a
// transient 4yz is not a reason to try HELO. A Dialer's Client follows the
// RFC; a Client from Dial or NewClient tries HELO after any failure of EHLO,
// as net/smtp's does (the drop-in promise).
func TestHello_FallsBackToHELO(t *testing.T) {
	tests := []struct {
		code       string
		dialerHELO bool
	}{
		{"500 unknown", true}, {"502 not implemented", true}, {"554 no", true},
		{"421 closing", false}, {"450 busy", false},
	}
	for _, tt := range tests {
		for _, compat := range []bool{false, true} {
			wantHELO := tt.dialerHELO || compat
			t.Run(fmt.Sprintf("%s/compat=%v", tt.code, compat), func(t *testing.T) {
				script := []string{"S: 220 hi", "C: EHLO localhost", "S: " + tt.code}
				if wantHELO {
					script = append(script, "C: HELO localhost", "S: 250 ok", "C: NOOP", "S: 250 ok")
				}
				s := newScriptServer(t, script...)
				var err error
				if compat {
					var c *Client
					c, err = Dial(s.Addr)
					require.NoError(t, err)
					err = c.NoopContext(context.Background()) // the first call says hello
					c.Close()
				} else {
					var c *Client
					c, err = (&Dialer{LocalName: "localhost", TLSPolicy: TLSDisabled}).Dial(context.Background(), s.Addr)
					if err == nil { // a Dialer says hello as it dials
						err = c.NoopContext(context.Background())
						c.Close()
					}
				}
				got := s.Received()
				if wantHELO {
					require.NoError(t, err)
					assert.Equal(t, []string{"EHLO localhost", "HELO localhost", "NOOP"}, got)
				} else {
					var e *Error
					require.ErrorAs(t, err, &e)
					assert.Equal(t, []string{"EHLO localhost"}, got)
				}
			})
		}
	}
}

// net/smtp calls after the first hello cannot change the name.
func TestHello_AfterOtherMethodsIsAnError(t *testing.T) {
	c, _ := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250 x", "C: NOOP", "S: 250 ok")
	require.NoError(t, c.Noop())
	require.EqualError(t, c.Hello("late.example"), "smtp: Hello called after other methods")
}

// RFC 5321 §2.4: extension keywords are case-insensitive.
func TestExtension_IsCaseInsensitiveAndKeepsParameters(t *testing.T) {
	c, _ := dialScript(t, "S: 220 hi", "C: EHLO localhost",
		"S: 250-mx\r\n250-size 1000\r\n250-AUTH=LOGIN\r\n250-Auth PLAIN CRAM-MD5\r\n250 pipelining")
	ok, p := c.Extension("SIZE")
	assert.True(t, ok)
	assert.Equal(t, "1000", p)
	ok, _ = c.Extension("PipeLining")
	assert.True(t, ok)
	ok, p = c.Extension("auth")
	assert.True(t, ok)
	assert.Equal(t, "PLAIN CRAM-MD5", p, "the RFC 4954 AUTH line wins over AUTH=")
	ok, _ = c.Extension("DSN")
	assert.False(t, ok)
}

// CR, LF or NUL in an argument is refused before anything is written.
func TestArguments_WithLineBreaksAreRefusedBeforeWriting(t *testing.T) {
	bad := []string{"a@b\r\nRCPT TO:<x@y>", "a@b\n", "a@b\r", "a@b\x00"}
	for _, arg := range bad {
		t.Run(textproto.TrimString(arg), func(t *testing.T) {
			c, s := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250 x", "C: NOOP", "S: 250 ok")
			require.NoError(t, c.Noop())
			for name, call := range map[string]func() error{
				"Mail":   func() error { return c.Mail(arg) },
				"Rcpt":   func() error { return c.Rcpt(arg) },
				"Verify": func() error { return c.Verify(arg) },
			} {
				err := call()
				require.Error(t, err, name)
				assert.True(t, errors.Is(err, ErrCRLF) || errors.Is(err, ErrNUL), name)
			}
			c.Close()
			assert.Equal(t, []string{"EHLO localhost", "NOOP"}, s.Received())
		})
	}
}

func TestSendMail_RefusesInjectionBeforeDialing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	err = SendMail(ln.Addr().String(), nil, "a@example.com", []string{"b@example.com>\r\nDATA"}, []byte("x"))
	require.ErrorIs(t, err, ErrCRLF)
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
	_, err = ln.Accept()
	require.Error(t, err, "SendMail must not connect")
}

func TestSendMail_WritesTheNetSMTPConversation(t *testing.T) {
	s := newScriptServer(t, "S: 220 hi", "C: EHLO localhost", "S: 250 mx", "C: MAIL FROM:<a@example.com>", "S: 250 ok",
		"C: RCPT TO:<b@example.com>", "S: 250 ok", "C: RCPT TO:<c@example.com>", "S: 250 ok", "C: DATA", "S: 354 go",
		"C: Subject: x", "C: ", "C: body", "C: .", "S: 250 queued", "C: QUIT", "S: 221 bye")
	err := SendMail(s.Addr, nil, "a@example.com", []string{"b@example.com", "c@example.com"}, []byte("Subject: x\r\n\r\nbody\r\n"))
	require.NoError(t, err)
	assert.Len(t, s.Received(), 10)
}

// net/smtp's SendMail returns this exact error when AUTH is asked for and
// the server lists extensions without AUTH.
func TestSendMail_AuthWithoutServerSupport(t *testing.T) {
	s := newScriptServer(t, "S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250 8BITMIME")
	err := SendMail(s.Addr, PlainAuth("", "u", "p", "127.0.0.1"), "a@b", []string{"c@d"}, []byte("x"))
	require.EqualError(t, err, "smtp: server doesn't support AUTH")
}

// The Context methods return an *Error with the enhanced status code (RFC
// 2034, RFC 3463 §2) that code written for net/smtp also finds as a
// *textproto.Error; the net/smtp-named methods return the *textproto.Error
// itself, whose enhanced code EnhancedCodeOf parses.
func TestError_IsFoundAsBothErrorTypes(t *testing.T) {
	c, _ := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250 ENHANCEDSTATUSCODES",
		"C: MAIL FROM:<a@b>", "S: 250 2.1.0 ok", "C: RCPT TO:<nobody@b>", "S: 550-5.1.1 no such user\r\n550 5.1.1 really",
		"C: RCPT TO:<nobody@b>", "S: 550-5.1.1 no such user\r\n550 5.1.1 really")
	require.NoError(t, c.Mail("a@b"))
	compatErr := c.Rcpt("nobody@b")
	ct, ok := compatErr.(*textproto.Error)
	require.True(t, ok, "Rcpt returned %T, want *textproto.Error", compatErr)
	assert.Equal(t, &textproto.Error{Code: 550, Msg: "5.1.1 no such user\n5.1.1 really"}, ct)
	assert.Equal(t, EnhancedCode{5, 1, 1}, EnhancedCodeOf(compatErr))
	err := c.RcptContext(context.Background(), "nobody@b")
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 550, e.Code)
	assert.Equal(t, EnhancedCode{5, 1, 1}, e.Enhanced)
	assert.False(t, e.Temporary())
	var te *textproto.Error
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 550, te.Code)
	assert.Equal(t, "5.1.1 no such user\n5.1.1 really", te.Msg)
	assert.Equal(t, te.Error(), err.Error(), "same text as net/smtp's error")
}

// RFC 4954 §4 and §6, with net/smtp's behaviour on failure: "*", then QUIT.
func TestAuth_Exchanges(t *testing.T) {
	tests := []struct {
		name    string
		auth    Auth
		script  []string
		wantErr string
	}{
		{
			name:   "PLAIN with initial response",
			auth:   PlainAuth("", "user", "pass", "127.0.0.1"),
			script: []string{"C: AUTH PLAIN AHVzZXIAcGFzcw==", "S: 235 2.7.0 ok"},
		},
		{
			name:    "PLAIN refused, then * and QUIT as net/smtp does",
			auth:    PlainAuth("", "user", "pass", "127.0.0.1"),
			script:  []string{"C: AUTH PLAIN AHVzZXIAcGFzcw==", "S: 535 5.7.8 bad credentials", "C: *", "S: 501 5.5.2 no", "C: QUIT", "S: 221 bye"},
			wantErr: `535 "5.7.8 bad credentials"`,
		},
		{
			name: "CRAM-MD5 challenge",
			auth: CRAMMD5Auth("user", "pass"),
			script: []string{"C: AUTH CRAM-MD5", "S: 334 PDEyMzQ1Ni4xMzIyODc2OTE0QHRlc3RzZXJ2ZXI+",
				"C: dXNlciAyODdlYjM1NTExNGNmNWM0NzFjMjZhODc1ZjFjYTRhZQ==", "S: 235 ok"},
		},
		{
			name:   "go-sasl LOGIN through the adapter",
			auth:   SASLAuth(sasl.NewLoginClient("user", "pass")),
			script: []string{"C: AUTH LOGIN dXNlcg==", "S: 334 UGFzc3dvcmQ6", "C: cGFzcw==", "S: 235 ok"},
		},
		{
			name:   "go-sasl EXTERNAL with an empty initial response sends =",
			auth:   SASLAuth(sasl.NewExternalClient("")),
			script: []string{"C: AUTH EXTERNAL =", "S: 235 ok"},
		},
		{
			name: "XOAUTH2 with a JSON error challenge",
			auth: SASLAuth(XOAuth2Client("u@example.com", "tok")),
			script: []string{"C: AUTH XOAUTH2 dXNlcj11QGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHRvawEB",
				"S: 334 eyJzdGF0dXMiOiI0MDEifQ==", "C: ", "S: 535 5.7.8 rejected", "C: *", "S: 501 no", "C: QUIT", "S: 221 bye"},
			wantErr: `535 "5.7.8 rejected"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := append([]string{"S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250 AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 EXTERNAL"}, tt.script...)
			c, s := dialScript(t, script...)
			err := c.Auth(tt.auth)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tt.wantErr)
			}
			c.Close()
			var want []string
			for _, step := range script {
				if strings.HasPrefix(step, "C: ") {
					want = append(want, step[3:])
				}
			}
			assert.Equal(t, want, s.Received())
		})
	}
}

// PlainAuth and the SASL adapter never send a password in the clear to a
// server that is not on this machine; nothing at all is written.
func TestAuth_RefusesCleartextCredentialsToRemoteHosts(t *testing.T) {
	for name, a := range map[string]Auth{
		"PlainAuth":  PlainAuth("", "u", "p", "mail.example.com"),
		"SASL PLAIN": SASLAuth(sasl.NewPlainClient("", "u", "p")),
		"SASL LOGIN": SASLAuth(sasl.NewLoginClient("u", "p")),
		"XOAUTH2":    SASLAuth(XOAuth2Client("u", "t")),
	} {
		t.Run(name, func(t *testing.T) {
			s := newScriptServer(t, "S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250 AUTH PLAIN LOGIN XOAUTH2", "C: QUIT", "S: 221 bye")
			conn, err := net.Dial("tcp", s.Addr)
			require.NoError(t, err)
			c, err := NewClient(conn, "mail.example.com")
			require.NoError(t, err)
			err = c.Auth(a)
			require.Error(t, err)
			for _, line := range s.Received() {
				assert.NotContains(t, line, "AUTH")
			}
		})
	}
}

// The Text field shares the engine's buffers: a raw command written through
// it and a Client call go out in order and read their own replies.
func TestText_SharesTheEngineBuffers(t *testing.T) {
	c, s := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250 mx", "C: NOOP", "S: 250 ok",
		"C: XCLIENT NAME=foo", "S: 220 fine", "C: RSET", "S: 250 ok")
	require.NoError(t, c.Noop())
	id, err := c.Text.Cmd("XCLIENT NAME=foo")
	require.NoError(t, err)
	c.Text.StartResponse(id)
	code, _, err := c.Text.ReadResponse(220)
	c.Text.EndResponse(id)
	require.NoError(t, err)
	assert.Equal(t, 220, code)
	require.NoError(t, c.Reset())
	c.Close()
	assert.Equal(t, []string{"EHLO localhost", "NOOP", "XCLIENT NAME=foo", "RSET"}, s.Received())
}

// Every call honours its context: cancelling closes the connection and
// the Client is unusable afterwards.
func TestContext_CancelClosesAndPoisonsTheClient(t *testing.T) {
	c, _ := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250 mx", "C: NOOP", "STALL")
	require.NoError(t, c.hello(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := c.NoopContext(ctx)
	assert.Less(t, time.Since(start), time.Second)
	require.ErrorIs(t, err, context.Canceled)
	err = c.NoopContext(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, err, context.Canceled)
}

// RFC 5321 §4.5.3.2: a stalled server ends the call at the timeout.
func TestTimeouts_StalledServerEndsTheCall(t *testing.T) {
	s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250 mx", "C: MAIL FROM:<a@b>", "STALL")
	d := &Dialer{LocalName: "client.example", Timeouts: Timeouts{Mail: 100 * time.Millisecond}}
	c, err := d.Dial(context.Background(), s.Addr)
	require.NoError(t, err)
	start := time.Now()
	err = c.Mail("a@b")
	assert.Less(t, time.Since(start), 2*time.Second)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
}

// RFC 3207 §6: lines sent after the 220 to STARTTLS and before the
// handshake would be read as if they came over TLS.
func TestStartTLS_RefusesResponseInjection(t *testing.T) {
	c, _ := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250 STARTTLS", "C: STARTTLS",
		"S: 220 go ahead\r\n250-injected\r\n250 AUTH PLAIN", "STALL")
	err := c.StartTLSContext(context.Background(), testClientTLSConfig(t))
	var pe *protoError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.line, "injected")
	require.ErrorIs(t, c.NoopContext(context.Background()), ErrClosed)
}

// RFC 3207 §4.2: after the handshake the client discards what it knew and
// says EHLO again; extensions come from the new reply only.
func TestStartTLS_ForgetsTheCleartextSession(t *testing.T) {
	c, s := dialScript(t, "S: 220 hi", "C: EHLO localhost", "S: 250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN",
		"C: STARTTLS", "S: 220 go ahead", "TLS", "C: EHLO localhost", "S: 250-mx\r\n250 SIZE 100")
	require.NoError(t, c.StartTLS(testClientTLSConfig(t)))
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok, "AUTH came from the cleartext EHLO")
	ok, p := c.Extension("SIZE")
	assert.True(t, ok)
	assert.Equal(t, "100", p)
	state, ok := c.TLSConnectionState()
	assert.True(t, ok)
	assert.True(t, state.HandshakeComplete)
	c.Close()
	assert.Equal(t, []string{"EHLO localhost", "STARTTLS", "EHLO localhost"}, s.Received())
}
