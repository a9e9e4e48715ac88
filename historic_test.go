package smtp

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

func historicCode(t *testing.T, err error) int {
	t.Helper()
	var e *Error
	require.ErrorAs(t, err, &e)
	return e.Code
}

// RFC 821 §3.3 Example 4: the multi-line reply is parsed into addresses,
// one per line; the errors are *Error.
func TestExpand_Lists(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{
		Extensions: []string{"PIPELINING", "ENHANCEDSTATUSCODES"},
		Lists: map[string][]string{
			"Example-People": {
				"Jon Postel <Postel@USC-ISIF.ARPA>",
				"Fred Fonebone <Fonebone@USC-ISIQ.ARPA>",
				"Sam Q. Smith <SQSmith@USC-ISIQ.ARPA>",
				"Quincy Smith <@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA>",
				"<joe@foo-unix.ARPA>",
				"<xyz@bar-unix.ARPA>",
			},
			"odd":                     {`"Smith, <Joe>" <"j>s"@example.org>`, "  bare@example.org  ", "Postmaster"},
			"Executive-Washroom-List": {},
		},
	})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	ok, _ := c.Extension("EXPN")
	assert.True(t, ok, "RFC 5321 §3.5.2: a server that implements EXPN lists it")

	got, err := c.Expand(ctx, "Example-People")
	require.NoError(t, err)
	assert.Equal(t, []string{"Postel@USC-ISIF.ARPA", "Fonebone@USC-ISIQ.ARPA", "SQSmith@USC-ISIQ.ARPA",
		"@USC-ISIF.ARPA:Q-Smith@ISI-VAXA.ARPA", "joe@foo-unix.ARPA", "xyz@bar-unix.ARPA"}, got)
	got, err = c.Expand(ctx, "odd")
	require.NoError(t, err)
	assert.Equal(t, []string{`"j>s"@example.org`, "bare@example.org", "Postmaster"}, got)

	_, err = c.Expand(ctx, "nobody")
	assert.Equal(t, 550, historicCode(t, err))
	_, err = c.Expand(ctx, "Executive-Washroom-List")
	assert.Equal(t, 252, historicCode(t, err), "cannot expand: 252 is not a list")
	_, err = c.Expand(ctx, "")
	assert.Error(t, err)
	_, err = c.Expand(ctx, "a\r\nRSET")
	assert.ErrorIs(t, err, ErrCRLF)
	require.NoError(t, c.NoopContext(ctx), "the session goes on")

	// A server without EXPN: 502.
	c2 := dialTest(t, newTestServer(t, smtptest.Config{}), nil)
	_, err = c2.Expand(ctx, "Example-People")
	assert.Equal(t, 502, historicCode(t, err))
	var te interface{ Temporary() bool }
	require.ErrorAs(t, err, &te)
	assert.False(t, te.Temporary())
}

func TestHelp_Topics(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{})
	c := dialTest(t, srv, nil)
	ctx := context.Background()
	text, err := c.Help(ctx, "")
	require.NoError(t, err)
	lines := strings.Split(text, "\n")
	require.Len(t, lines, 3)
	assert.Equal(t, "smtptest: see RFC 5321", lines[0], "enhanced codes removed")
	text, err = c.Help(ctx, "MRCP")
	require.NoError(t, err)
	assert.Equal(t, "MRCP TO:<path>", text)
	_, err = c.Help(ctx, "FROB")
	assert.Equal(t, 504, historicCode(t, err))
	_, err = c.Help(ctx, "x\x00")
	assert.ErrorIs(t, err, ErrNUL)
	assert.Equal(t, []string{"EHLO client.example", "HELP", "HELP MRCP", "HELP FROB"}, srv.Commands(1))
}

// RFC 2920 §3.1: SEND, SOML and SAML may appear anywhere in a group; EXPN,
// HELP and TURN only last.
func TestPipeline_HistoricGroupRules(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{
		Extensions: []string{"PIPELINING", "SEND", "SOML", "SAML"},
		Lists:      map[string][]string{"staff": {"<a@example.org>"}},
	})
	c := dialTest(t, srv, nil)
	ctx := context.Background()

	before := srv.Flushes(1)
	p := c.Pipeline()
	send := p.Cmd(250, "SEND FROM:<a@example.org>")
	rset := p.Cmd(250, "RSET")
	soml := p.Cmd(250, "SOML FROM:<a@example.org>")
	p.Cmd(250, "RSET")
	saml := p.Cmd(250, "SAML FROM:<a@example.org>")
	rcpt := p.Cmd(25, "RCPT TO:<b@example.com>")
	expn := p.Cmd(250, "EXPN staff")
	require.NoError(t, p.Exec(ctx))
	for _, x := range []*Cmd{send, rset, soml, saml, rcpt, expn} {
		require.NoError(t, x.Err)
	}
	assert.Equal(t, "<a@example.org>", expn.Reply.msg())
	assert.Equal(t, 1, srv.Flushes(1)-before, "one round trip for the group")
	w, err := c.DataContext(ctx)
	require.NoError(t, err)
	io.WriteString(w, "x\r\n")
	require.NoError(t, w.Close())
	assert.Equal(t, "SAML", srv.Messages()[0].Verb)

	for _, last := range []string{"EXPN staff", "HELP", "TURN"} {
		p := c.Pipeline()
		p.Cmd(0, "%s", last)
		p.Cmd(250, "RSET")
		err := p.Exec(ctx)
		require.Error(t, err, last)
		assert.Contains(t, err.Error(), "cannot follow")
	}
	p = c.Pipeline()
	p.Cmd(250, "RSET")
	help := p.Cmd(214, "HELP")
	require.NoError(t, p.Exec(ctx))
	require.NoError(t, help.Err)
	require.NoError(t, c.NoopContext(ctx))
}

func TestExpnAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Jon Postel <Postel@USC-ISIF.ARPA>": "Postel@USC-ISIF.ARPA",
		"<joe@x>":                           "joe@x",
		"joe@x":                             "joe@x",
		"  joe@x ":                          "joe@x",
		`"a <b>" <c@d>`:                     "c@d",
		`<"x>y"@d>`:                         `"x>y"@d`,
		"no brackets>":                      "no brackets>",
		"":                                  "",
	} {
		assert.Equal(t, want, expnAddress(in), in)
	}
}

// Batch and Send start a transaction with SEND, SOML or SAML when the
// Envelope asks (RFC 821 §3.4), without parameters, in the pipelined group.
func TestSend_HistoricVerbs(t *testing.T) {
	for _, verb := range []string{"SEND", "SOML", "SAML"} {
		srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME", verb}})
		c := dialTest(t, srv, nil)
		_, err := c.Send(context.Background(), &Envelope{Verb: verb, From: "", To: Recipients("@relay.example:joe@example.com")}, strings.NewReader("hi\r\n"))
		require.NoError(t, err)
		msgs := srv.Messages()
		require.Len(t, msgs, 1)
		assert.Equal(t, verb, msgs[0].Verb)
		assert.Empty(t, msgs[0].MailParams)
		_, err = c.Send(context.Background(), &Envelope{Verb: verb, From: "a@b", To: Recipients("c@d"), Ret: "FULL"}, strings.NewReader("hi\r\n"))
		require.Error(t, err, "no parameters with %s", verb)
	}
}
