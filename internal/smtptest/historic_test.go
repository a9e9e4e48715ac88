package smtptest

import (
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 821 §3.4: SEND, SOML and SAML begin a transaction as MAIL does; a
// server that implements them lists them in its EHLO reply (RFC 5321 F.6),
// and one that does not answers 502.
func TestSendSomlSaml(t *testing.T) {
	s := newTestServer(t, Config{Extensions: []string{"ENHANCEDSTATUSCODES", "SEND", "SOML", "SAML"}})
	c := dialGreeted(t, s)
	c.cmd("EHLO c")
	ehloText := c.expect(250)
	for _, kw := range []string{"SEND", "SOML", "SAML"} {
		assert.Contains(t, strings.Split(ehloText, "\n"), kw)
	}
	for _, verb := range []string{"SEND", "SOML", "SAML"} {
		c.cmd(verb+" FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
		c.expect(250)
		c.expect(250)
		c.expect(354)
		c.write(stuff([]byte("Subject: " + verb + "\r\n\r\nhi\r\n")))
		c.expect(250)
	}
	// RFC 821 §3.4: SEND to a user who is not at a terminal may get 450.
	c.cmd("SEND FROM:<a@x>", "RCPT TO:<away@x>", "RSET", "SOML FROM:<a@x>", "RCPT TO:<away@x>", "RSET", "SEND FROM:a@x")
	c.expect(250)
	assert.Equal(t, "4.2.1 <away@x>: user not active, cannot SEND to a terminal", c.expect(450))
	c.expect(250)
	c.expect(250)
	c.expect(250)
	c.expect(250)
	assert.Equal(t, "5.5.4 Syntax: SEND FROM:<address>", c.expect(501))

	msgs := s.Messages()
	require.Len(t, msgs, 3)
	for i, verb := range []string{"SEND", "SOML", "SAML"} {
		assert.Equal(t, verb, msgs[i].Verb)
		assert.Equal(t, "Subject: "+verb+"\r\n\r\nhi\r\n", string(msgs[i].Data))
	}

	// Not listed: 502. MAIL is recorded as MAIL.
	s2 := newTestServer(t, Config{})
	c2 := ehlo(t, s2)
	c2.cmd("SAML FROM:<a@x>", "SEND FROM:<a@x>", "SOML FROM:<a@x>")
	for range 3 {
		assert.Equal(t, "5.5.1 Error: command not implemented", c2.expect(502))
	}
	c2.cmd("MAIL FROM:<a@x>", "RCPT TO:<b@x>", "DATA")
	c2.expect(250)
	c2.expect(250)
	c2.expect(354)
	c2.write(stuff([]byte("x\r\n")))
	c2.expect(250)
	assert.Equal(t, "MAIL", s2.Messages()[0].Verb)
}

// An RFC 821 server implements SEND without EHLO: after HELO it works too.
func TestSendAfterHELO(t *testing.T) {
	s := newTestServer(t, Config{Extensions: []string{"SEND"}, NoEHLO: true})
	c := dialGreeted(t, s)
	c.cmd("HELO c", "SEND FROM:<>", "RCPT TO:<b@x>")
	c.expect(250)
	c.expect(250)
	c.expect(250)
}

// RFC 821 §3.3 Example 4, RFC 5321 §3.5.
func TestEXPN(t *testing.T) {
	members := []string{
		"Jon Postel <Postel@USC-ISIF.ARPA>",
		"Quincy Smith <@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA>",
		"<joe@foo-unix.ARPA>",
		"xyz@bar-unix.ARPA",
	}
	s := newTestServer(t, Config{Extensions: []string{"PIPELINING"}, Lists: map[string][]string{
		"Example-People": members,
		"Empty":          {},
	}})
	c := dialGreeted(t, s)
	c.cmd("EHLO c")
	assert.Contains(t, strings.Split(c.expect(250), "\n"), "EXPN", "RFC 5321 §3.5.2: EXPN MUST be advertised")
	c.cmd("EXPN example-people")
	assert.Equal(t, strings.Join(members, "\n"), c.expect(250))
	c.cmd("EXPN Executive-Washroom-List", "EXPN Empty", "EXPN")
	assert.Equal(t, "Error: no such mailing list", c.expect(550))
	c.expect(252)
	c.expect(501)

	// Without lists EXPN stays unimplemented, as before.
	c2 := ehlo(t, newTestServer(t, Config{}))
	c2.cmd("EXPN x")
	assert.Equal(t, "5.5.1 Error: command not implemented", c2.expect(502))
}

func TestHELP(t *testing.T) {
	c := ehlo(t, newTestServer(t, Config{}))
	c.cmd("HELP")
	lines := strings.Split(c.expect(214), "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "2.0.0 smtptest: see RFC 5321", lines[0])
	assert.Contains(t, lines[1], " TURN ")
	c.cmd("HELP mrsq", "HELP nothing")
	assert.Equal(t, "2.0.0 MRSQ [R | T | ?]", c.expect(214))
	assert.Equal(t, "5.5.4 HELP topic unknown", c.expect(504))
}

// RFC 821 §3.8 and §4.1.1: after 250 to TURN the client is the receiver: it
// sends the 220 greeting and answers the server's commands.
func TestTURN(t *testing.T) {
	turn := &Turn{
		Helo:     "relay.example",
		Commands: []string{"NOOP", "TURN"},
		From:     "@relay.example:joe@far.example",
		To:       []string{"a@here.example", "reject@here.example"},
		Data:     "Subject: turned\r\n\r\n.dot\r\n..two\r\nend", // no final CRLF
	}
	s := newTestServer(t, Config{Turn: turn})
	c := dialGreeted(t, s)
	c.cmd("EHLO c")
	assert.Contains(t, strings.Split(c.expect(250), "\n"), "TURN")
	c.cmd("MAIL FROM:<a@x>", "TURN", "RSET")
	c.expect(250)
	assert.Equal(t, "5.5.1 Error: mail transaction in progress", c.expect(503))
	c.expect(250)
	c.cmd("TURN")
	c.expect(250)

	// Now the client is the receiver.
	c.cmd("220 client.example Service ready")
	expectLine := func(want string, reply ...string) {
		t.Helper()
		got, err := c.tp.ReadLine()
		require.NoError(t, err)
		require.Equal(t, want, got)
		c.cmd(reply...)
	}
	expectLine("HELO relay.example", "250 client.example")
	expectLine("NOOP", "250 ok")
	expectLine("TURN", "502 no")
	expectLine("MAIL FROM:<@relay.example:joe@far.example>", "250 ok")
	expectLine("RCPT TO:<a@here.example>", "250 ok")
	expectLine("RCPT TO:<reject@here.example>", "550 no such user")
	expectLine("DATA", "354 go ahead")
	dr := textproto.NewReader(c.tp.R)
	var data []string
	for {
		l, err := dr.ReadLine()
		require.NoError(t, err)
		if l == "." {
			break
		}
		data = append(data, l)
	}
	assert.Equal(t, []string{"Subject: turned", "", "..dot", "...two", "end"}, data, "dot-stuffed on the wire")
	c.cmd("250-ok", "250 queued")
	expectLine("QUIT", "221 bye")
	drainUntilClosed(t, c)

	assert.Equal(t, []TurnStep{
		{"", "220 client.example Service ready"},
		{"HELO relay.example", "250 client.example"},
		{"NOOP", "250 ok"},
		{"TURN", "502 no"},
		{"MAIL FROM:<@relay.example:joe@far.example>", "250 ok"},
		{"RCPT TO:<a@here.example>", "250 ok"},
		{"RCPT TO:<reject@here.example>", "550 no such user"},
		{"DATA", "354 go ahead"},
		{".", "250-ok\n250 queued"},
		{"QUIT", "221 bye"},
	}, s.TurnLog(1))
	assert.Contains(t, s.Transcript(1), "* turn: roles reversed, the server is the sender now")
}

// The refusals: 502 without a script, 503 before HELO, 501 with an argument;
// a refused MAIL skips to QUIT; a greeting other than 220 ends it.
func TestTURNRefusalsAndShortScripts(t *testing.T) {
	c := ehlo(t, newTestServer(t, Config{}))
	c.cmd("TURN")
	assert.Equal(t, "5.5.1 Error: TURN not implemented", c.expect(502))

	s := newTestServer(t, Config{Turn: &Turn{From: "a@x", To: []string{"b@y"}}})
	c = dialGreeted(t, s)
	c.cmd("TURN", "HELO c", "TURN now", "TURN")
	c.expect(503)
	c.expect(250)
	c.expect(501)
	c.expect(250)
	c.cmd("220 ready")
	line, err := c.tp.ReadLine()
	require.NoError(t, err)
	assert.Equal(t, "HELO "+DefaultHostname, line)
	c.cmd("250 hi")
	line, _ = c.tp.ReadLine()
	assert.Equal(t, "MAIL FROM:<a@x>", line)
	c.cmd("451 not now")
	line, _ = c.tp.ReadLine()
	assert.Equal(t, "QUIT", line)
	c.cmd("221 bye")
	drainUntilClosed(t, c)

	s = newTestServer(t, Config{Turn: &Turn{}})
	c = ehlo(t, s)
	c.cmd("TURN")
	c.expect(250)
	c.cmd("554 no service")
	drainUntilClosed(t, c)
	assert.Equal(t, []TurnStep{{"", "554 no service"}}, s.TurnLog(1))
}

// RFC 772 Appendix A: MRSQ R.
func TestMRSQRecipientsFirst(t *testing.T) {
	s := newTestServer(t, Config{Extensions: []string{}, MRSQ: "RT"})
	c := dialGreeted(t, s)
	c.cmd("HELO c", "MRCP TO:<Foo@Y>", "MRSQ", "MRSQ R")
	c.expect(250)
	assert.Equal(t, "No scheme specified yet; use MRSQ", c.expect(503))
	assert.Equal(t, "OK, no scheme selected", c.expect(200))
	c.expect(200)
	c.cmd("MAIL FROM:<waldo@A>")
	assert.Equal(t, "Null recipient", c.expect(550), "RFC 772: MAIL before any MRCP")
	c.cmd("MRCP TO:<Foo@Y>", "MRCP TO:<Raboof@Y>", "MRCP TO:<reject.Raboof@Y>", "MRCP TO:<bar@Y>", "MRCP TO:<@Y,@X,fubar@Z>")
	c.expect(200)
	c.expect(200)
	assert.Equal(t, "<reject.Raboof@Y>: No such user here", c.expect(553))
	c.expect(200)
	c.expect(200)
	c.cmd("MAIL FROM:<waldo@A>")
	c.expect(354)
	c.write(stuff([]byte("Blah blah blah blah....etc. etc. etc.\r\n.\r\n")))
	c.expect(250)
	// The names were flushed: another MAIL has no recipient.
	c.cmd("MAIL FROM:<waldo@A>", "MRSQ", "MAIL FROM:<a@x>", "RCPT TO:<b@x>", "RSET")
	c.expect(550)
	c.expect(200)
	c.expect(250) // with no scheme, MAIL is SMTP's again
	c.expect(250)
	c.expect(250)

	msgs := s.Messages()
	require.Len(t, msgs, 1)
	m := msgs[0]
	assert.Equal(t, "R", m.Scheme)
	assert.Equal(t, "MAIL", m.Via)
	assert.Equal(t, "waldo@A", m.From)
	assert.Equal(t, []string{"Foo@Y", "Raboof@Y", "bar@Y", "@Y,@X,fubar@Z"}, m.To)
	assert.Equal(t, "Blah blah blah blah....etc. etc. etc.\r\n.\r\n", string(m.Data))
}

// RFC 772 Appendix B: MRSQ T, and "MRSQ ?" to reset.
func TestMRSQTextFirst(t *testing.T) {
	s := newTestServer(t, Config{MRSQ: "T"})
	c := ehlo(t, s)
	c.cmd("MRSQ ?", "MRSQ R", "MRSQ T", "MRCP TO:<Foo@Y>")
	assert.Equal(t, "T Text first, please", c.expect(215))
	assert.Equal(t, "5.5.4 I understand MRSQ but can't use that scheme", c.expect(501))
	c.expect(200)
	assert.Equal(t, "5.5.1 No message text stored; send MAIL first", c.expect(503))
	c.cmd("MAIL FROM:<WALDO@A>")
	c.expect(354)
	c.write(stuff([]byte("Blah\r\n")))
	assert.Equal(t, "2.0.0 Mail stored", c.expect(250))
	c.cmd("MRCP TO:<Foo@Y>", "MRCP TO:<reject@Y>", "MRCP TO:<temp@Y>", "MRCP TO:<bar@Y>", "MRSQ ?", "MRCP TO:<Foo@Y>", "MRSQ X")
	c.expect(250)
	c.expect(553)
	c.expect(450)
	c.expect(250)
	c.expect(215)
	c.expect(503) // the text was flushed by MRSQ ?
	c.expect(501)
	msgs := s.Messages()
	require.Len(t, msgs, 2)
	for i, to := range []string{"Foo@Y", "bar@Y"} {
		assert.Equal(t, []string{to}, msgs[i].To)
		assert.Equal(t, "T", msgs[i].Scheme)
		assert.Equal(t, "MRCP", msgs[i].Via)
		assert.Equal(t, "WALDO@A", msgs[i].From)
		assert.Equal(t, "Blah\r\n", string(msgs[i].Data))
	}
}

func TestMRSQTableFullAndUnimplemented(t *testing.T) {
	c := ehlo(t, newTestServer(t, Config{MRSQ: "R", MRSQTable: 1}))
	c.cmd("MRSQ R", "MRCP TO:<a@y>", "MRCP TO:<b@y>", "MRSQ ?")
	c.expect(200)
	c.expect(200)
	assert.Equal(t, "4.5.3 Recipient table full, this name not stored", c.expect(452))
	assert.Equal(t, "R Recipients first, please", c.expect(215))

	c = ehlo(t, newTestServer(t, Config{}))
	c.cmd("MRSQ", "MRSQ ?", "MRCP TO:<a@y>")
	c.expect(502)
	c.expect(502)
	c.expect(502)
}

// RFC 5321 §4.1.2, Appendix C: a source route is accepted and recorded as
// given; the recipient conventions look at the mailbox after it.
func TestSourceRoutes(t *testing.T) {
	s := newTestServer(t, Config{})
	c := ehlo(t, s)
	c.cmd("MAIL FROM:<@hosta.int,@[192.0.2.1]:userx@y.foo.org>",
		"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
		"RCPT TO:<@hosta.int:reject@d.bar.org>",
		"DATA")
	c.expect(250)
	c.expect(250)
	c.expect(550)
	c.expect(354)
	c.write(stuff([]byte("x\r\n")))
	c.expect(250)
	m := s.Messages()[0]
	assert.Equal(t, "@hosta.int,@[192.0.2.1]:userx@y.foo.org", m.From)
	assert.Equal(t, []string{"@hosta.int,@jkl.org:userc@d.bar.org"}, m.To)
}

func TestStripRoute(t *testing.T) {
	for in, want := range map[string]string{
		"joe@x":                    "joe@x",
		"@A,@B:joe@C":              "joe@C",
		"@A:joe@C":                 "joe@C",
		"@Y,@X,fubar@Z":            "fubar@Z",
		"@[IPv6:::1],@B:joe@C":     "joe@C",
		"@[IPv6:::1]:joe@C":        "joe@C",
		"@A":                       "@A",
		"@[x":                      "@[x",
		"@:joe":                    "@:joe",
		"":                         "",
		"\"@odd\"@x":               "\"@odd\"@x",
		"@A,@B:\"reject me\"@host": "\"reject me\"@host",
	} {
		assert.Equal(t, want, stripRoute(in), in)
	}
}
