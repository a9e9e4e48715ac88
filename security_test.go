package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// scriptedPolicy gives every target of a domain the same Security, or
// keeps only the targets keep allows.
type scriptedPolicy struct {
	sec  Security
	keep func(Target) bool
	err  error
}

func (p *scriptedPolicy) Secure(_ context.Context, _ string, ts []Target) ([]Target, error) {
	if p.err != nil {
		return nil, p.err
	}
	var out []Target
	for _, t := range ts {
		if p.keep == nil || p.keep(t) {
			sec := p.sec
			t.Security = &sec
			out = append(out, t)
		}
	}
	return out, nil
}

var (
	errUntrusted = errors.New("certificate not trusted by the policy")
	extStartTLS  = append([]string{"STARTTLS"}, extPipelining...)
)

// Downgrades against an MXPolicy, over real TCP: STARTTLS stripped, a
// certificate the policy refuses, an MX the policy excludes, a policy that
// cannot be evaluated; each defers the message (ErrPolicy), which is never
// sent in clear or to the wrong server. A policy met delivers over TLS;
// without a policy, opportunistic TLS takes any certificate.
func TestDeliver_MXPolicy(t *testing.T) {
	accept := func(tls.ConnectionState) error { return nil }
	refuse := func(tls.ConnectionState) error { return errUntrusted }
	tests := []struct {
		name     string
		ext      []string
		policy   MXPolicy
		tls      bool // delivered over TLS
		deferred bool
	}{
		{"policy met: TLS and an accepted certificate", extStartTLS, &scriptedPolicy{sec: Security{Mode: "test", RequireTLS: true, Verify: accept}}, true, false},
		{"STARTTLS stripped", extPipelining, &scriptedPolicy{sec: Security{Mode: "test", RequireTLS: true, Verify: accept}}, false, true},
		{"a certificate the policy refuses", extStartTLS, &scriptedPolicy{sec: Security{Mode: "test", RequireTLS: true, Verify: refuse}}, false, true},
		{"the MX is not in the policy", extStartTLS, &scriptedPolicy{keep: func(Target) bool { return false }}, false, true},
		{"the policy cannot be evaluated", extStartTLS, &scriptedPolicy{err: errors.New("TLSA lookup: SERVFAIL")}, false, true},
		{"testing mode: stripped STARTTLS is delivered in clear", extPipelining, &scriptedPolicy{sec: Security{Mode: "test testing"}}, false, false},
		{"no policy: opportunistic TLS takes an untrusted certificate", extStartTLS, nil, true, false},
	}
	for _, tt := range tests {
		for _, via := range []string{"Courier", "Pool"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				servers, port := mxServers(t, map[string]smtptest.Config{"127.0.0.2": {Extensions: tt.ext}})
				srv := servers["127.0.0.2"]
				r := &Resolver{DNS: deliverDNS(), Port: port}
				d := &Dialer{LocalName: "client.example"} // opportunistic, verifying as usual
				env := &Envelope{From: "s@example.org", To: Recipients("x@b.example")}
				var err error
				if via == "Courier" {
					k := &Courier{Dialer: d, Resolver: r, MXPolicy: tt.policy, Attempts: 1}
					_, err = k.Deliver(context.Background(), "b.example", env, strings.NewReader("hello\r\n"))
				} else {
					p := &Pool{Dialer: d, Resolver: r, MXPolicy: tt.policy}
					t.Cleanup(func() { p.Close() })
					var res *Result
					res, err = p.Deliver(context.Background(), env, strings.NewReader("hello\r\n"))
					if tt.deferred {
						require.NotNil(t, res)
						assert.Equal(t, Deferred, res.Recipients[0].Status(), "%v", res.Recipients[0].Err)
					}
				}
				if tt.deferred {
					require.ErrorIs(t, err, ErrPolicy)
					assert.Empty(t, srv.Messages(), "nothing delivered")
					return
				}
				require.NoError(t, err)
				msgs := srv.Messages()
				require.Len(t, msgs, 1)
				assert.Equal(t, tt.tls, msgs[0].TLS)
			})
		}
	}
}
