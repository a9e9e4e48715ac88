package smtp

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

func TestParsePath(t *testing.T) {
	valid := []struct {
		in   string
		want Path
	}{
		// RFC 821 §3.6, §4.1.1 and Examples 7 and 9.
		{"<@ONE,@TWO:JOE@THREE>", Path{Route: []string{"ONE", "TWO"}, Mailbox: "JOE@THREE"}},
		{"<@HOSTA.ARPA,@HOSTB.ARPA:USERC@HOSTD.ARPA>", Path{Route: []string{"HOSTA.ARPA", "HOSTB.ARPA"}, Mailbox: "USERC@HOSTD.ARPA"}},
		{"<@HOSTX.ARPA:JOE@HOSTW.ARPA>", Path{Route: []string{"HOSTX.ARPA"}, Mailbox: "JOE@HOSTW.ARPA"}},
		{"<@CHARLIE.ARPA,@BAKER.ARPA:JOE@ABLE.ARPA>", Path{Route: []string{"CHARLIE.ARPA", "BAKER.ARPA"}, Mailbox: "JOE@ABLE.ARPA"}},
		// RFC 5321 §4.1.1.3.
		{"<@hosta.int,@jkl.org:userc@d.bar.org>", Path{Route: []string{"hosta.int", "jkl.org"}, Mailbox: "userc@d.bar.org"}},
		{"@hosta.int,@jkl.org:userc@d.bar.org", Path{Route: []string{"hosta.int", "jkl.org"}, Mailbox: "userc@d.bar.org"}},
		{"<joe@C>", Path{Mailbox: "joe@C"}},
		{"joe@C", Path{Mailbox: "joe@C"}},
		{"<>", Path{}},
		{"", Path{}},
		{"<Postmaster>", Path{Mailbox: "Postmaster"}},
		{"postmaster", Path{Mailbox: "postmaster"}},
		// Address literals, in the route and the mailbox (RFC 5321 §4.1.3).
		{"<@[192.0.2.1],@[IPv6:2001:db8::1]:joe@[IPv6:::ffff:192.0.2.7]>", Path{Route: []string{"[192.0.2.1]", "[IPv6:2001:db8::1]"}, Mailbox: "joe@[IPv6:::ffff:192.0.2.7]"}},
		{"<joe@[x-tag:some-content]>", Path{Mailbox: "joe@[x-tag:some-content]"}},
		// Local parts.
		{`<"Joe Smith"@example.org>`, Path{Mailbox: `"Joe Smith"@example.org`}},
		{`<"a\"b@c"@example.org>`, Path{Mailbox: `"a\"b@c"@example.org`}},
		{`<Joe\,Smith@example.org>`, Path{Mailbox: `Joe\,Smith@example.org`}}, // RFC 821 §4.1.2
		{"<first.last+tag!#$%&'*/=?^_`{|}~-@a-1.b2.example>", Path{Mailbox: "first.last+tag!#$%&'*/=?^_`{|}~-@a-1.b2.example"}},
		{"<jörg@bücher.example>", Path{Mailbox: "jörg@bücher.example"}}, // RFC 6531
		{"<@1.2.3:x@123>", Path{Route: []string{"1.2.3"}, Mailbox: "x@123"}},
		// Angle brackets where RFC 5321 allows them: qtextSMTP (§4.1.2)
		// and dcontent (§4.1.3).
		{`<"jo<e"@C>`, Path{Mailbox: `"jo<e"@C`}},
		{`<"jo>e"@C>`, Path{Mailbox: `"jo>e"@C`}},
		{"<0@[0:<]>", Path{Mailbox: "0@[0:<]"}},
		{"<@[x:>]:joe@[y:<>]>", Path{Route: []string{"[x:>]"}, Mailbox: "joe@[y:<>]"}},
	}
	for _, tt := range valid {
		p, err := ParsePath(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, p, tt.in)
		want := tt.in
		if !strings.HasPrefix(want, "<") {
			want = "<" + want + ">"
		}
		assert.Equal(t, want, p.String(), "given back as given")
		assert.Equal(t, want[1:len(want)-1], p.Addr())
		assert.NoError(t, validateAddress(p.Addr()), "the Client takes it")
	}

	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b.", 93) + "ccc" // 254 octets
	invalid := []string{
		"<", ">", "<joe@C", "joe@C>", "<<joe@C>>",
		"<@ONE,@TWO:>",      // route without a mailbox
		"<@ONE,@TWO>",       // no ":"
		"<@ONE:@TWO:joe@C>", // ":" twice
		"<:joe@C>",          // empty route
		"<@:joe@C>",         // empty host
		"<@ONE,TWO:joe@C>",  // "," not followed by "@"
		"<@Y,@X,fubar@Z>",   // RFC 772's form, not RFC 821's
		"<@-a:joe@C>", "<@a-:joe@C>", "<@a..b:joe@C>", "<@a.:joe@C>", "<@a_b:joe@C>",
		"<@#123:joe@C>", // RFC 5321 F.4
		"<@" + strings.Repeat("a", 64) + ":joe@C>",
		"<@[1.2.3]:joe@C>", "<@[1.2.3.256]:joe@C>", "<@[1.2.3.4:joe@C>", "<@[IPv6:1.2.3.4]:joe@C>",
		"<@[IPv6:fe80::1%eth0]:joe@C>", "<joe@[tag-:x]>", "<joe@[:x]>", "<joe@[x:]>", "<joe@[x:a b]>",
		"<joe>", "<@A:Postmaster>", "<joe@>", "<@C>", "<.joe@C>", "<joe.@C>", "<jo..e@C>",
		"<jo e@C>", "<jo(e@C>", `<"joe@C>`, "<\"a\x01\"@C>", `<jo\>e@C>`, `<jo\<e@C>`,
		`<joe\`, "<joe@C D>", "<joe@C>x", "<joe@C:x>", "<joe@@C>",
		"<" + strings.Repeat("a", 65) + "@C>",
		"<" + long + "x>",
		"<joe@\xff>",
	}
	for _, in := range invalid {
		_, err := ParsePath(in)
		assert.ErrorIs(t, err, ErrInvalidPath, "%q", in)
	}
	_, err := ParsePath("<" + long + ">")
	assert.NoError(t, err, "256 octets with the brackets is the limit")
}

// FuzzParsePath: whatever ParsePath accepts, its String parses back to the
// same Path, and the Client can put it on a command line.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"<@ONE,@TWO:JOE@THREE>", "<>", "joe@C", `<"a b"@[IPv6:::1]>`, "<Postmaster>", `Joe\,Smith@x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidPath, "ParsePath(%q)", s)
			return
		}
		q, err := ParsePath(p.String())
		require.NoError(t, err, "ParsePath(%q) = %#v, whose String %q does not parse", s, p, p.String())
		require.Equal(t, p.String(), q.String(), "ParsePath(%q) = %#v, then %#v", s, p, q)
		require.Len(t, q.Route, len(p.Route), "ParsePath(%q) = %#v, then %#v", s, p, q)
		require.Equal(t, p.Mailbox, q.Mailbox, "ParsePath(%q) = %#v, then %#v", s, p, q)
		r, err := ParsePath(p.Addr())
		require.NoError(t, err, "ParsePath(Addr %q) = %#v", p.Addr(), r)
		require.Equal(t, p.String(), r.String(), "ParsePath(Addr %q) = %#v", p.Addr(), r)
		require.NoError(t, validateAddress(p.Addr()), "the Client refuses %q", p.Addr())
		require.LessOrEqual(t, len(p.String()), maxPathLen, "%q is longer than %d", p.String(), maxPathLen)
		require.Equal(t, strings.Trim(s, "<>"), p.Addr(), "ParsePath(%q).Addr() not as given", s)
	})
}

// RFC 5321 §4.1.2 and Appendix C: a source route is sent as given, and the
// null reverse-path "<>" works with every way of sending.
func TestSourceRoutesOnTheWire(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "ENHANCEDSTATUSCODES", "SEND"}})
	ctx := context.Background()
	c := dialTest(t, srv, nil)
	route, err := ParsePath("<@hosta.int,@jkl.org:userc@d.bar.org>")
	require.NoError(t, err)

	// Lockstep calls.
	require.NoError(t, c.MailContext(ctx, ""))
	require.NoError(t, c.RcptContext(ctx, route.Addr()))
	w, err := c.DataContext(ctx)
	require.NoError(t, err)
	_, err = w.Write([]byte("Subject: 1\r\n\r\nx\r\n"))
	require.NoError(t, err)
	require.NoError(t, w.Close())

	// Send (a Batch) and SEND FROM (from a Pipeline, as the rfc821 package
	// sends it).
	_, err = c.Send(ctx, &Envelope{From: "", To: Recipients("@HOSTX.ARPA:JOE@HOSTW.ARPA", "plain@example.org")}, strings.NewReader("Subject: 2\r\n\r\nx\r\n"))
	require.NoError(t, err)
	p := c.Pipeline()
	send := p.Cmd(250, "SEND FROM:<%s>", "@relay.example:joe@example.org")
	require.NoError(t, p.Exec(ctx))
	require.NoError(t, send.Err)
	var e *Error
	require.ErrorAs(t, c.RcptContext(ctx, "@a.example,@b.example:reject@example.org"), &e)
	assert.Equal(t, 550, e.Code, "the server looks at the mailbox after the route")
	require.NoError(t, c.ResetContext(ctx))
	require.NoError(t, c.QuitContext(ctx))

	msgs := srv.Messages()
	require.Len(t, msgs, 2)
	assert.Equal(t, "", msgs[0].From)
	assert.Equal(t, []string{"@hosta.int,@jkl.org:userc@d.bar.org"}, msgs[0].To)
	assert.Equal(t, "", msgs[1].From)
	assert.Equal(t, []string{"@HOSTX.ARPA:JOE@HOSTW.ARPA", "plain@example.org"}, msgs[1].To)
	sent := srv.Commands(1)
	for _, want := range []string{
		"MAIL FROM:<>",
		"RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>",
		"RCPT TO:<@HOSTX.ARPA:JOE@HOSTW.ARPA>",
		"SEND FROM:<@relay.example:joe@example.org>",
		"RCPT TO:<@a.example,@b.example:reject@example.org>",
	} {
		assert.Contains(t, sent, want)
	}
	assert.Equal(t, 2, strings.Count(strings.Join(sent, "\n"), "MAIL FROM:<>\n"), "Mail and Send both send the null reverse-path")
}
