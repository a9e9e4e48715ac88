// Package mx makes deliveries to mail exchangers as safe as the best
// MTAs': its Policy is an smtp.MXPolicy that applies DANE for SMTP (RFC
// 7672, package dane) where a host publishes DNSSEC-validated TLSA records,
// else the domain's MTA-STS policy (RFC 8461, package mtasts), else
// opportunistic TLS — DANE first, as RFC 8461 §2 says.
//
// It lives in a module of its own so that the core module's dependencies
// stay go-sasl and x/net: this one needs github.com/miekg/dns for the TLSA
// lookups that must reach a validating resolver.
package mx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/mx/dane"
	"github.com/resmtp/smtp/mx/mtasts"
	"github.com/resmtp/smtp/mx/tlsrpt"
)

// Mode is what a Policy applies.
type Mode int

const (
	// DANEThenMTASTS applies DANE where a host has usable, validated TLSA
	// records, else MTA-STS where the domain has a policy, else
	// opportunistic TLS: what the large MTAs do. The zero Mode.
	DANEThenMTASTS Mode = iota
	// DANEOnly applies DANE where it can, else opportunistic TLS.
	DANEOnly
	// MTASTSOnly applies MTA-STS where the domain has a policy, else
	// opportunistic TLS.
	MTASTSOnly
	// Opportunistic uses STARTTLS when offered, without authentication.
	Opportunistic
	// RequireTLS requires TLS with a certificate valid for the MX host's
	// name (WebPKI), whatever the domain publishes.
	RequireTLS
)

// A Policy is an smtp.MXPolicy. Its fields must not change after first
// use; it is safe for concurrent use.
type Policy struct {
	// Mode says what to apply.
	Mode Mode
	// Overrides gives the Mode of particular destination domains
	// (lower-case), such as RequireTLS for a partner whose certificate is
	// known to be good, or Opportunistic for one whose policy is broken.
	Overrides map[string]Mode
	// DANE looks up TLSA records through a validating resolver the caller
	// trusts (dane.Resolver); nil disables DANE.
	DANE *dane.Resolver
	// MTASTS fetches and caches MTA-STS policies; nil disables MTA-STS.
	MTASTS *mtasts.Fetcher
	// Roots verifies WebPKI certificates (MTA-STS, RequireTLS); nil means
	// the system's roots.
	Roots *x509.CertPool
	// Port is the port of the TLSA records, "_<port>._tcp.<host>"; zero
	// means 25.
	Port int
	// Report, if not nil, is told the outcome of every session under the
	// policy, and every failure to have a policy, in the terms of TLS
	// reporting (RFC 8460); a tlsrpt.Aggregator's Add makes reports of
	// them. It may be called concurrently.
	Report func(tlsrpt.Result)
	// now is the clock, for tests.
	now func() time.Time
}

var _ smtp.MXPolicy = (*Policy)(nil)

// Secure gives each target the Security the policy calls for, and drops the
// targets an MTA-STS policy in enforce mode does not list (RFC 8461 §4.1).
// A host whose TLSA lookup fails is dropped too: RFC 7672 §2.2 has the
// client defer rather than go on without DANE. It returns an error when
// no target is left and one was dropped for a failed lookup.
func (p *Policy) Secure(ctx context.Context, domain string, targets []smtp.Target) ([]smtp.Target, error) {
	mode := p.Mode
	if m, ok := p.Overrides[strings.ToLower(domain)]; ok {
		mode = m
	}
	var sts *mtasts.Policy
	if p.MTASTS != nil && (mode == DANEThenMTASTS || mode == MTASTSOnly) {
		var err error
		sts, err = p.MTASTS.Get(ctx, domain) // no policy: nothing to apply
		if sts == nil {
			p.reportFetch(domain, err)
		}
		if sts != nil && sts.Mode == mtasts.None {
			sts = nil
		}
	}
	useDANE := p.DANE != nil && (mode == DANEThenMTASTS || mode == DANEOnly)
	if useDANE {
		// RFC 7672 §2.2.1: only a validated MX RRset names hosts whose
		// TLSA records count (an attacker could name his own otherwise).
		secure, err := p.DANE.Secure(ctx, domain, dns.TypeMX)
		if err != nil {
			return nil, err
		}
		useDANE = secure
	}
	var out []smtp.Target
	var lookupErr error
	for _, t := range targets {
		sec, err := p.secure(ctx, domain, t, mode, sts, useDANE)
		switch {
		case err != nil:
			lookupErr = err
		case sec != nil:
			t.Security = sec
			out = append(out, t)
		}
	}
	if len(out) == 0 && lookupErr != nil {
		return nil, lookupErr
	}
	return out, nil
}

// secure returns the Security of one target, nil to drop it, or the error
// of its TLSA lookup.
func (p *Policy) secure(ctx context.Context, domain string, t smtp.Target, mode Mode, sts *mtasts.Policy, useDANE bool) (*smtp.Security, error) {
	switch mode {
	case Opportunistic:
		return p.opportunistic(domain, t), nil
	case RequireTLS:
		return p.webPKI("tls-required", t.Host), nil
	}
	if useDANE {
		sec, err := p.dane(ctx, domain, t)
		if err != nil || sec != nil {
			return sec, err
		}
	}
	if sts != nil {
		text := stsText(sts)
		if sts.Mode == mtasts.Testing {
			// Delivered whatever happens; the report says what would
			// have failed (RFC 8461 §5).
			check := p.webPKI("", t.Host).Verify
			if !sts.Match(t.Host) {
				check = func(tls.ConnectionState) error {
					return fmt.Errorf("%w: %s is not an MX of the policy", smtp.ErrPolicy, t.Host)
				}
			}
			return &smtp.Security{Mode: "mta-sts testing", Done: p.done(domain, t, tlsrpt.PolicySTS, text, "", check)}, nil
		}
		if !sts.Match(t.Host) {
			p.report(tlsrpt.Result{Domain: domain, PolicyType: tlsrpt.PolicySTS, Policy: text, MXHost: t.Host,
				ResultType: tlsrpt.ValidationFailure, Reason: t.Host + " is not an MX of the policy"})
			return nil, nil // RFC 8461 §4.1: not an MX of the policy
		}
		sec := p.webPKI("mta-sts", t.Host)
		sec.Done = p.done(domain, t, tlsrpt.PolicySTS, text, "", nil)
		return sec, nil
	}
	return p.opportunistic(domain, t), nil
}

// opportunistic is STARTTLS when offered, without authentication.
func (p *Policy) opportunistic(domain string, t smtp.Target) *smtp.Security {
	return &smtp.Security{Mode: "opportunistic", Done: p.done(domain, t, tlsrpt.PolicyNotFound, nil, "", nil)}
}

// dane returns the DANE Security of t, or nil when DANE does not apply to
// it (no TLSA records, or an insecure answer).
func (p *Policy) dane(ctx context.Context, domain string, t smtp.Target) (*smtp.Security, error) {
	port := p.Port
	if port == 0 {
		port = 25
	}
	records, secure, err := p.DANE.LookupTLSA(ctx, t.Host, port)
	if err != nil {
		p.report(tlsrpt.Result{Domain: domain, PolicyType: tlsrpt.PolicyTLSA, MXHost: t.Host, ResultType: tlsrpt.DNSSECInvalid, Reason: err.Error()})
		return nil, err
	}
	if !secure || len(records) == 0 {
		return nil, nil
	}
	usable := false
	for _, r := range records {
		usable = usable || r.Usable()
	}
	text := tlsaText(t.Host, port, records)
	if !usable {
		// RFC 7672 §2.2: TLS stays mandatory, without authentication.
		return &smtp.Security{Mode: "dane (no usable TLSA record)", RequireTLS: true,
			Done: p.done(domain, t, tlsrpt.PolicyTLSA, text, tlsrpt.TLSAInvalid, nil)}, nil
	}
	names := []string{t.Host, domain}
	return &smtp.Security{Mode: "dane", RequireTLS: true, Verify: func(cs tls.ConnectionState) error {
		return dane.Verify(records, cs.PeerCertificates, names, p.clock())
	}, Done: p.done(domain, t, tlsrpt.PolicyTLSA, text, "", nil)}, nil
}

// webPKI requires TLS with a certificate that chains to Roots and carries
// host's name.
func (p *Policy) webPKI(mode, host string) *smtp.Security {
	return &smtp.Security{Mode: mode, RequireTLS: true, Verify: func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: p.Roots, Intermediates: inter, CurrentTime: p.clock()})
		if err != nil {
			return fmt.Errorf("certificate for %s: %w", host, err)
		}
		return nil
	}}
}

func (p *Policy) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// String names the mode.
func (m Mode) String() string {
	switch m {
	case DANEThenMTASTS:
		return "dane, else mta-sts"
	case DANEOnly:
		return "dane"
	case MTASTSOnly:
		return "mta-sts"
	case Opportunistic:
		return "opportunistic"
	case RequireTLS:
		return "tls-required"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}
