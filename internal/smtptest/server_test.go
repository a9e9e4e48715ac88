package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGreetingAndEHLOAdvertiseConfiguredExtensions(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"default set", Config{}, append([]string{DefaultHostname}, DefaultExtensions()...)},
		{"custom list in order", Config{Hostname: "mx.test", Extensions: []string{"SIZE 1000", "PIPELINING", "SMTPUTF8"}},
			[]string{"mx.test", "SIZE 1000", "PIPELINING", "SMTPUTF8"}},
		{"empty list", Config{Hostname: "bare.test", Extensions: []string{}}, []string{"bare.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			c := dial(t, s)
			host := tt.cfg.Hostname
			if host == "" {
				host = DefaultHostname
			}
			assert.Equal(t, host+" ESMTP smtptest", c.expect(220))
			c.cmd("EHLO client.example")
			assert.Equal(t, tt.want, strings.Split(c.expect(250), "\n"))
			c.cmd("HELO client.example")
			assert.Equal(t, host, c.expect(250))
			c.cmd("QUIT")
			bye := "Bye"
			if tt.cfg.Extensions == nil {
				bye = "2.0.0 Bye" // ENHANCEDSTATUSCODES is in the default set
			}
			assert.Equal(t, bye, c.expect(221))
			c.expectClosed()
			assert.Equal(t, 1, s.Conns())
		})
	}
}

func TestHELOOnlyServerRejectsEHLOAndParameters(t *testing.T) {
	s := newTestServer(t, Config{NoEHLO: true})
	c := dialGreeted(t, s)
	c.cmd("EHLO client.example")
	assert.Equal(t, "5.5.1 command not implemented", c.expect(502))
	c.cmd("HELO client.example")
	c.expect(250)
	c.cmd("MAIL FROM:<a@example.org> SIZE=10")
	c.expect(555)
	c.cmd("STARTTLS")
	c.expect(502)
	c.cmd("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("hi\r\n.\r\n")
	c.expect(250)
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "client.example", msgs[0].Helo)
}

func TestPipelinedCommandsGetRepliesInOrderWithOneFlush(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	assert.Equal(t, 2, s.Flushes(1), "greeting + EHLO")
	c.cmd("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>", "RCPT TO:<reject-me@example.org>", "RCPT TO:<c@example.org>", "DATA")
	assert.Equal(t, "2.1.0 Ok", c.expect(250))
	assert.Equal(t, "2.1.5 Ok", c.expect(250))
	c.expect(550)
	c.expect(250)
	c.expect(354)
	assert.Equal(t, 3, s.Flushes(1), "one turnaround for the whole group")
	c.write("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
	assert.Contains(t, c.expect(250), "2.0.0 Ok: queued as Q1")
	c.expect(221)
	c.expectClosed()
	assert.Equal(t, 4, s.Flushes(1))
	assert.Equal(t, 4, s.Flushes(0))

	tr := filter(s.Transcript(1), "C: ", "* flush")
	assert.Equal(t, []string{
		"* flush",
		"C: EHLO client.example",
		"* flush",
		"C: MAIL FROM:<a@example.org>",
		"C: RCPT TO:<b@example.org>",
		"C: RCPT TO:<reject-me@example.org>",
		"C: RCPT TO:<c@example.org>",
		"C: DATA",
		"* flush",
		"C: <data 23 octets>",
		"C: QUIT",
		"* flush",
	}, tr)
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, []string{"b@example.org", "c@example.org"}, msgs[0].To)
	assert.Equal(t, "Subject: x\r\n\r\nbody\r\n", string(msgs[0].Data))
	assert.Equal(t, "DATA", msgs[0].Via)
}

func TestDATARemovesDotStuffing(t *testing.T) {
	tests := []struct {
		name, wire, want string
	}{
		{"empty message", ".\r\n", ""},
		{"plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"stuffed leading dot", "..hidden\r\n.\r\n", ".hidden\r\n"},
		{"line of a single dot", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
		{"dot not at line start kept", "a.b\r\n x.\r\n.\r\n", "a.b\r\n x.\r\n"},
		{"bare LF is not a line end", "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n"},
		{"bare CR kept", "a\rb\r\r\n.\r\n", "a\rb\r\r\n"},
		{"dot CR X", "..\rX\r\n.\r\n", ".\rX\r\n"},
		{"binary octets", "\x00\xff\x80\r\n.\r\n", "\x00\xff\x80\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{})
			c := ehlo(t, s)
			c.cmd("MAIL FROM:<>", "RCPT TO:<b@example.org>", "DATA")
			c.expect(250)
			c.expect(250)
			c.expect(354)
			c.write(tt.wire)
			c.expect(250)
			msgs := s.Messages()
			require.Len(t, msgs, 1)
			assert.Equal(t, tt.want, string(msgs[0].Data))
			assert.Equal(t, "", msgs[0].From)
		})
	}
}

func TestDATAReassemblesDataSplitAcrossWrites(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	msg := testMessage(20000)
	wire := stuff(msg)
	for i := 0; i < len(wire); i += 7 {
		c.write(wire[i:min(i+7, len(wire))])
	}
	c.expect(250)
	require.Len(t, s.Messages(), 1)
	assert.Equal(t, msg, s.Messages()[0].Data)
}

func TestBDATChunksAreConcatenated(t *testing.T) {
	s := newTestServer(t, Config{Extensions: append(DefaultExtensions(), "BINARYMIME")})
	c := ehlo(t, s)
	chunk2 := "\r\n.\r\nnot the end\x00\r\n"
	c.write("MAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\n" +
		"BDAT 5\r\nhello" + fmt.Sprintf("BDAT %d\r\n%s", len(chunk2), chunk2) + "BDAT 0 LAST\r\n")
	c.expect(250)
	c.expect(250)
	assert.Equal(t, "2.0.0 5 octets received", c.expect(250))
	c.expect(250)
	assert.Contains(t, c.expect(250), "queued as")
	assert.Equal(t, 3, s.Flushes(1), "everything pipelined")
	msgs := s.Messages()
	require.Len(t, msgs, 1)
	assert.Equal(t, "hello"+chunk2, string(msgs[0].Data))
	assert.Equal(t, "BDAT", msgs[0].Via)
	assert.Equal(t, []string{"BODY=BINARYMIME"}, msgs[0].MailParams)

	// DATA is refused for BINARYMIME and after BDAT in the same transaction.
	c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME", "RCPT TO:<b@example.org>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(503)
	c.cmd("RSET", "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.org>")
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.write("BDAT 3\r\nabcDATA\r\n")
	c.expect(250)
	c.expect(503)
}

func TestBDATErrorsDiscardTheChunk(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		setup []string
		code  int
	}{
		{"no MAIL", Config{}, nil, 503},
		{"no valid recipients", Config{}, []string{"MAIL FROM:<a@x>", "RCPT TO:<reject@x>"}, 554},
		{"CHUNKING not advertised", Config{Extensions: []string{"PIPELINING"}}, []string{"MAIL FROM:<a@x>", "RCPT TO:<b@x>"}, 502},
		{"override rejects", Config{Faults: Faults{Reply: map[string]string{"bdat": "452 4.3.1 full"}}}, []string{"MAIL FROM:<a@x>", "RCPT TO:<b@x>"}, 452},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			c := ehlo(t, s)
			for _, l := range tt.setup {
				c.cmd(l)
				c.reply()
			}
			// The chunk looks like commands; it must be skipped, not parsed.
			c.write("BDAT 12 LAST\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
			c.expect(tt.code)
			c.expect(250)
			assert.Empty(t, s.Messages())
		})
	}
}

func TestBDATAfterFailedChunkIsDiscarded(t *testing.T) {
	s := newTestServer(t, Config{MaxMessageSize: 10})
	c := ehlo(t, s)
	c.write("MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nBDAT 20\r\n01234567890123456789BDAT 4 LAST\r\nQUITRSET\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(552)
	c.expect(503)
	c.expect(250)
	assert.Empty(t, s.Messages())
}

func TestSTARTTLSHandshakeVerifiesAgainstServerCertificate(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		_, err := s.Certificate().Verify(x509.VerifyOptions{DNSName: name, Roots: s.RootCAs()})
		assert.NoError(t, err, name)
	}

	c := ehlo(t, s)
	c.cmd("STARTTLS")
	assert.Equal(t, "2.0.0 Ready to start TLS", c.expect(220))
	require.NoError(t, c.startTLS(s.ClientTLSConfig()))
	c.cmd("MAIL FROM:<a@x>")
	c.expect(503) // session was reset: EHLO again
	c.cmd("EHLO client.example")
	ext := c.expect(250)
	assert.NotContains(t, ext, "STARTTLS")
	assert.Contains(t, ext, "AUTH PLAIN LOGIN")
	c.cmd("STARTTLS")
	c.expect(503)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("secret\r\n.\r\n")
	c.expect(250)
	require.Len(t, s.Messages(), 1)
	assert.True(t, s.Messages()[0].TLS)
	assert.Contains(t, s.Transcript(1), "* tls TLS 1.3")

	// A client without the server's CA must fail verification.
	c2 := ehlo(t, s)
	c2.cmd("STARTTLS")
	c2.expect(220)
	err := c2.startTLS(&tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool()})
	var uerr x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &uerr)
}

func TestSTARTTLSResponseInjectionFault(t *testing.T) {
	s := newTestServer(t, Config{Faults: Faults{InjectAfterSTARTTLS: "250 injected\r\n"}})
	c := ehlo(t, s)
	c.cmd("STARTTLS")
	c.expect(220)
	// The injected reply arrived in the same packet, before the handshake.
	assert.Equal(t, len("250 injected\r\n"), c.tp.R.Buffered())
	line, err := c.tp.ReadLine()
	require.NoError(t, err)
	assert.Equal(t, "250 injected", line)
	require.NoError(t, c.startTLS(s.ClientTLSConfig()))
	c.cmd("EHLO client.example")
	c.expect(250)
}

func TestSTARTTLSDiscardsPlaintextPipelinedAfterIt(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	c.cmd("STARTTLS", "MAIL FROM:<injected@evil>")
	c.expect(220)
	require.NoError(t, c.startTLS(s.ClientTLSConfig()))
	c.cmd("EHLO client.example", "MAIL FROM:<a@x>")
	c.expect(250)
	c.expect(250) // not 503 "nested MAIL": the injected MAIL was dropped
	assert.Contains(t, s.Transcript(1), "* discarded 27 plaintext octets after STARTTLS")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAUTH(t *testing.T) {
	users := map[string]string{"alice": "wonderland"}
	type step struct {
		send string
		code int
	}
	tests := []struct {
		name  string
		steps []step
		user  string
	}{
		{"PLAIN initial response", []step{{"AUTH PLAIN " + b64("\x00alice\x00wonderland"), 235}}, "alice"},
		{"PLAIN with authzid equal to user", []step{{"AUTH PLAIN " + b64("alice\x00alice\x00wonderland"), 235}}, "alice"},
		{"PLAIN after empty challenge", []step{{"AUTH PLAIN", 334}, {b64("\x00alice\x00wonderland"), 235}}, "alice"},
		{"PLAIN wrong password", []step{{"AUTH PLAIN " + b64("\x00alice\x00rabbit"), 535}}, ""},
		{"PLAIN foreign authzid", []step{{"AUTH PLAIN " + b64("bob\x00alice\x00wonderland"), 535}}, ""},
		{"PLAIN empty initial response", []step{{"AUTH PLAIN =", 535}}, ""},
		{"PLAIN cancelled", []step{{"AUTH PLAIN", 334}, {"*", 501}}, ""},
		{"PLAIN bad base64", []step{{"AUTH PLAIN !!!", 501}}, ""},
		{"LOGIN", []step{{"AUTH LOGIN", 334}, {b64("alice"), 334}, {b64("wonderland"), 235}}, "alice"},
		{"LOGIN initial response", []step{{"AUTH LOGIN " + b64("alice"), 334}, {b64("wonderland"), 235}}, "alice"},
		{"LOGIN wrong password", []step{{"AUTH LOGIN", 334}, {b64("alice"), 334}, {b64("x"), 535}}, ""},
		{"LOGIN cancelled", []step{{"AUTH LOGIN", 334}, {"*", 501}}, ""},
		{"unknown mechanism", []step{{"AUTH CRAM-MD5", 504}}, ""},
		{"no mechanism", []step{{"AUTH", 501}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{Users: users, RequireAuth: true})
			c := ehlo(t, s)
			for _, st := range tt.steps {
				c.cmd(st.send)
				msg := c.expect(st.code)
				switch st.code {
				case 235:
					assert.Equal(t, "2.7.0 Authentication successful", msg)
				case 535:
					assert.Equal(t, "5.7.8 Authentication credentials invalid", msg)
				}
			}
			c.cmd("MAIL FROM:<a@x>")
			if tt.user == "" {
				assert.Equal(t, "5.7.0 Authentication required", c.expect(530))
				return
			}
			c.expect(250)
			c.cmd("RCPT TO:<b@x>", "DATA")
			c.expect(250)
			c.expect(354)
			c.write(".\r\n")
			c.expect(250)
			require.Len(t, s.Messages(), 1)
			assert.Equal(t, tt.user, s.Messages()[0].AuthUser)
			// The transcript keeps what the client sent, verbatim.
			assert.Contains(t, s.Transcript(1), "C: "+tt.steps[0].send)
			c.cmd("AUTH PLAIN " + b64("\x00alice\x00wonderland"))
			c.expect(503)
		})
	}
}

func TestAUTHWithoutUsersRejectsEveryone(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	c.cmd("AUTH PLAIN " + b64("\x00alice\x00wonderland"))
	c.expect(535)
}

func TestRequireTLS(t *testing.T) {
	s := newTestServer(t, Config{RequireTLS: true, Users: map[string]string{"u": "p"}})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>")
	assert.Equal(t, "5.7.0 Must issue a STARTTLS command first", c.expect(530))
	c.cmd("AUTH PLAIN " + b64("\x00u\x00p"))
	c.expect(538)
	c.cmd("STARTTLS")
	c.expect(220)
	require.NoError(t, c.startTLS(s.ClientTLSConfig()))
	c.cmd("EHLO c", "AUTH PLAIN "+b64("\x00u\x00p"), "MAIL FROM:<a@x>")
	c.expect(250)
	c.expect(235)
	c.expect(250)
}

func TestRecipientLocalPartSelectsReply(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<ok@x>", "RCPT TO:<Reject.me@x>", "RCPT TO:<temp1@x>",
		"RCPT TO:<b@x> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@x", "DATA")
	c.expect(250)
	c.expect(250)
	assert.Equal(t, "5.1.1 <Reject.me@x>: no such user", c.expect(550))
	assert.Equal(t, "4.2.1 <temp1@x>: try later", c.expect(450))
	c.expect(250)
	c.expect(354)
	c.write(".\r\n")
	c.expect(250)
	m := s.Messages()[0]
	assert.Equal(t, []string{"ok@x", "b@x"}, m.To)
	assert.Equal(t, [][]string{nil, {"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;b@x"}}, m.RcptParams)
}

func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		ehlo  bool
		lines []string
		code  int
		text  string
	}{
		{"MAIL before EHLO", Config{}, false, []string{"MAIL FROM:<a@x>"}, 503, "5.5.1 Error: send HELO/EHLO first"},
		{"RCPT before MAIL", Config{}, true, []string{"RCPT TO:<a@x>"}, 503, "5.5.1 Error: need MAIL command"},
		{"DATA before MAIL", Config{}, true, []string{"DATA"}, 503, ""},
		{"DATA without RCPT", Config{}, true, []string{"MAIL FROM:<a@x>", "DATA"}, 503, ""},
		{"DATA with no valid recipients", Config{}, true, []string{"MAIL FROM:<a@x>", "RCPT TO:<reject@x>", "DATA"}, 554, ""},
		{"nested MAIL", Config{}, true, []string{"MAIL FROM:<a@x>", "MAIL FROM:<a@x>"}, 503, "5.5.1 Error: nested MAIL command"},
		{"unknown command", Config{}, true, []string{"XYZZY"}, 500, "5.5.2 Error: command not recognized"},
		{"empty line", Config{}, true, []string{""}, 500, ""},
		{"MAIL syntax", Config{}, true, []string{"MAIL FROM:a@x"}, 501, ""},
		{"RCPT null path", Config{}, true, []string{"MAIL FROM:<a@x>", "RCPT TO:<>"}, 501, ""},
		{"unknown MAIL parameter", Config{}, true, []string{"MAIL FROM:<a@x> FOO=1"}, 555, ""},
		{"parameter of unadvertised extension", Config{Extensions: []string{"PIPELINING"}}, true, []string{"MAIL FROM:<a@x> BODY=8BITMIME"}, 555, ""},
		{"SIZE over the limit", Config{}, true, []string{"MAIL FROM:<a@x> SIZE=10485761"}, 552, "5.3.4 Message size exceeds fixed maximum message size"},
		{"SIZE at the limit", Config{}, true, []string{"MAIL FROM:<a@x> SIZE=10485760"}, 250, ""},
		{"bad TRANSID", Config{}, true, []string{"MAIL FROM:<a@x> TRANSID=nobrackets"}, 501, ""},
		{"non-ASCII without SMTPUTF8", Config{}, true, []string{"MAIL FROM:<ü@x>"}, 553, ""},
		{"SMTPUTF8", Config{Extensions: []string{"SMTPUTF8"}}, true, []string{"MAIL FROM:<ü@x> SMTPUTF8", "RCPT TO:<ö@x>"}, 250, ""},
		{"DATA with argument", Config{}, true, []string{"DATA x"}, 501, ""},
		{"VRFY", Config{}, true, []string{"VRFY a"}, 252, ""},
		{"HELP", Config{}, true, []string{"HELP"}, 214, ""},
		{"NOOP", Config{}, true, []string{"NOOP"}, 250, "2.0.0 Ok"},
		{"no enhanced codes unless advertised", Config{Extensions: []string{"PIPELINING"}}, true, []string{"XYZZY"}, 500, "Error: command not recognized"},
		{"line too long", Config{MaxLineLength: 100}, true, []string{"NOOP " + strings.Repeat("x", 5000)}, 500, "5.5.2 Error: line too long"},
		{"BDAT syntax", Config{}, true, []string{"BDAT x"}, 501, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			c := dialGreeted(t, s)
			if tt.ehlo {
				c.cmd("EHLO c")
				c.expect(250)
			}
			c.cmd(tt.lines...)
			for range tt.lines[1:] {
				c.reply()
			}
			msg := c.expect(tt.code)
			if tt.text != "" {
				assert.Equal(t, tt.text, msg)
			}
			c.cmd("NOOP") // the session goes on
			c.expect(250)
		})
	}
}

func TestMessageLargerThanLimitIsRejected(t *testing.T) {
	s := newTestServer(t, Config{MaxMessageSize: 100})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write(stuff(testMessage(1000)))
	assert.Equal(t, "5.3.4 Error: message exceeds fixed maximum message size", c.expect(552))
	assert.Empty(t, s.Messages())
}

func TestCloseStopsEveryConnection(t *testing.T) {
	checkNoGoroutineLeak(t)
	s, err := NewServer(Config{Faults: Faults{Stall: "NOOP", Delay: map[string]time.Duration{"RSET": time.Hour}}})
	require.NoError(t, err)
	idle := ehlo(t, s)
	stalled := ehlo(t, s)
	stalled.cmd("NOOP")
	delayed := ehlo(t, s)
	delayed.cmd("RSET")
	inData := ehlo(t, s)
	inData.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	inData.expect(250)
	inData.expect(250)
	inData.expect(354)
	inData.write("partial line")
	inTLS := ehlo(t, s)
	inTLS.cmd("STARTTLS")
	inTLS.expect(220)                   // the server now waits for a ClientHello
	raw, err := net.Dial("tcp", s.Addr) // connected, greeting unread
	require.NoError(t, err)
	defer raw.Close()
	time.Sleep(50 * time.Millisecond)

	done := make(chan error)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, c := range []*tclient{idle, stalled, delayed, inData, inTLS} {
		drainUntilClosed(t, c)
	}
	require.NoError(t, s.Close(), "second Close")
	_, err = net.DialTimeout("tcp", s.Addr, time.Second)
	assert.Error(t, err, "listener closed")
}
