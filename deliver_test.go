package smtp

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// mxServers starts a server on each of the loopback addresses, all on one
// port, as the mail exchangers of a domain listen on port 25, and returns
// them and the port.
func mxServers(t *testing.T, cfgs map[string]smtptest.Config) (map[string]*smtptest.Server, string) {
	t.Helper()
	servers := map[string]*smtptest.Server{}
	port := "0"
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		cfg, ok := cfgs[ip]
		if !ok {
			continue
		}
		cfg.ListenAddr = net.JoinHostPort(ip, port)
		srv := newTestServer(t, cfg)
		_, port, _ = net.SplitHostPort(srv.Addr)
		servers[ip] = srv
	}
	return servers, port
}

// deliverDNS: a.example and b.example share mx1 (127.0.0.2, preference
// 10); a.example has mx2 (127.0.0.3, 20) too; down.example's MX has an
// address nothing listens on, then mx2; null.example has a null MX.
func deliverDNS() *resFakeDNS {
	mx := func(host string, pref uint16) *net.MX { return &net.MX{Host: host, Pref: pref} }
	return &resFakeDNS{
		mx: map[string]resMX{
			"a.example.":    {records: []*net.MX{mx("mx2.example.", 20), mx("mx1.example.", 10)}},
			"b.example.":    {records: []*net.MX{mx("mx1.example.", 10)}},
			"down.example.": {records: []*net.MX{mx("dead.example.", 10), mx("mx2.example.", 20)}},
			"null.example.": {records: []*net.MX{mx(".", 0)}},
		},
		ip: map[string]resIP{
			"mx1.example.":  {addrs: resIPs("127.0.0.2")},
			"mx2.example.":  {addrs: resIPs("127.0.0.3")},
			"dead.example.": {addrs: resIPs("127.0.0.4")},
		},
	}
}

// Deliver groups the recipients by domain, sends each domain its own
// transaction at its most preferred MX, shares the connection of an MX
// host between the domains it serves, and reports every recipient in
// order.
func TestPool_Deliver_ByDomainOverSharedMX(t *testing.T) {
	servers, port := mxServers(t, map[string]smtptest.Config{"127.0.0.2": {Extensions: extPipelining}, "127.0.0.3": {Extensions: extPipelining}})
	p := newTestPool(t, &Pool{Resolver: &Resolver{DNS: deliverDNS(), Port: port}})
	env := &Envelope{From: "s@example.org", To: Recipients("x@a.example", "y@B.example", "z@a.example")}
	res, err := p.Deliver(context.Background(), env, strings.NewReader("Subject: hi\r\n\r\nhello\r\n"))
	require.NoError(t, err)
	require.Len(t, res.Recipients, 3)
	for i, want := range []string{"x@a.example", "y@B.example", "z@a.example"} {
		assert.Equal(t, want, res.Recipients[i].Addr)
		assert.Equal(t, Delivered, res.Recipients[i].Status())
	}
	mx1 := servers["127.0.0.2"]
	msgs := mx1.Messages()
	require.Len(t, msgs, 2, "one transaction per domain")
	var to []string
	for _, m := range msgs {
		to = append(to, strings.Join(m.To, ","))
	}
	assert.ElementsMatch(t, []string{"x@a.example,z@a.example", "y@B.example"}, to)
	// A connection opened for a.example carries b.example's message: the
	// Pool keys connections by the MX, not by the domain. (Counted by the
	// Pool itself: the server's count can still be catching up with a
	// connection the first Pool dialed for its second queued domain.)
	p2 := newTestPool(t, &Pool{Resolver: &Resolver{DNS: deliverDNS(), Port: port}})
	for _, to := range []string{"v@a.example", "w@b.example"} {
		_, err = p2.Deliver(context.Background(), &Envelope{From: "s@example.org", To: Recipients(to)}, strings.NewReader("again\r\n"))
		require.NoError(t, err)
	}
	var dials int64
	for _, st := range p2.Stats() {
		dials += st.Dials
	}
	assert.Equal(t, int64(1), dials, "one connection of p2 for both domains")
	assert.Len(t, mx1.Messages(), 4)
	assert.Empty(t, servers["127.0.0.3"].Messages(), "the less preferred MX is not used")
}

// A domain's transaction goes to its next MX after a refused connection or
// a 421, not after another refusal.
func TestPool_Deliver_NextMX(t *testing.T) {
	servers, port := mxServers(t, map[string]smtptest.Config{
		"127.0.0.2": {Extensions: extPipelining, Faults: smtptest.Faults{Reply: map[string]string{"MAIL": "421 4.3.2 shutting down"}}},
		"127.0.0.3": {Extensions: extPipelining},
	})
	p := newTestPool(t, &Pool{Resolver: &Resolver{DNS: deliverDNS(), Port: port}})
	env := &Envelope{From: "s@example.org", To: Recipients("x@a.example", "w@down.example", "y@b.example")}
	res, err := p.Deliver(context.Background(), env, strings.NewReader("hello\r\n"))
	var re *RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, Delivered, res.Recipients[0].Status(), "a.example: 421 at mx1, then mx2")
	assert.Equal(t, Delivered, res.Recipients[1].Status(), "down.example: nothing at its first MX, then mx2")
	assert.Equal(t, Deferred, res.Recipients[2].Status(), "b.example has no other MX: the 421 stands")
	var e *Error
	require.ErrorAs(t, res.Recipients[2].Err, &e)
	assert.Equal(t, 421, e.Code)
	assert.Len(t, servers["127.0.0.3"].Messages(), 2)
	assert.Empty(t, servers["127.0.0.2"].Messages())
}

// Each recipient is classified for the caller's queue: refused for good,
// refused for now, or a domain that takes no mail.
func TestPool_Deliver_Classifies(t *testing.T) {
	_, port := mxServers(t, map[string]smtptest.Config{"127.0.0.2": {Extensions: extPipelining}})
	p := newTestPool(t, &Pool{Resolver: &Resolver{DNS: deliverDNS(), Port: port}})
	env := &Envelope{From: "s@example.org", To: Recipients("ok@b.example", "reject@b.example", "temp@b.example", "n@null.example", "u@unknown.example")}
	res, err := p.Deliver(context.Background(), env, strings.NewReader("hello\r\n"))
	var re *RecipientsError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 1, re.Accepted)
	want := []Status{Delivered, Bounced, Deferred, Bounced, Bounced}
	for i, w := range want {
		assert.Equal(t, w, res.Recipients[i].Status(), "%s: %v", res.Recipients[i].Addr, res.Recipients[i].Err)
	}
	assert.True(t, errors.Is(res.Recipients[3].Err, ErrNullMX))
	assert.Equal(t, "bounced", Bounced.String())

	_, err = p.Deliver(context.Background(), &Envelope{From: "s@example.org"}, strings.NewReader("x"))
	require.Error(t, err)
	id, err := NewTransID("client.example")
	require.NoError(t, err)
	_, err = p.Deliver(context.Background(), &Envelope{From: "s@example.org", To: Recipients("a@a.example", "b@b.example"), TransID: id}, strings.NewReader("x"))
	require.Error(t, err, "one TRANSID, two transactions")
}
