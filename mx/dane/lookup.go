package dane

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/miekg/dns"
)

// A Resolver looks TLSA records up through one validating resolver that
// the caller trusts to set the AD bit only on answers it validated with
// DNSSEC (RFC 7672 §2.1): usually one on the loopback interface, as
// Postfix requires, since the bit is not protected on the way.
type Resolver struct {
	// Server is the trusted resolver's address, "127.0.0.1:53".
	Server string
	// Client sends the queries; nil means UDP with a fallback to TCP for
	// truncated answers.
	Client *dns.Client
}

// ErrLookup is matched by the error of a TLSA lookup that failed
// (SERVFAIL, a timeout, a bogus answer): RFC 7672 §2.2 has the client
// defer delivery to that host rather than go on without DANE.
var ErrLookup = errors.New("dane: TLSA lookup failed")

// LookupTLSA returns the TLSA records of "_<port>._tcp.<host>" and whether
// the answer was secure (AD). An insecure answer means DANE does not apply
// to the host (RFC 7672 §2.2): its records must not be used. A name
// without TLSA records returns none, secure or not. It returns an error
// matching ErrLookup when the resolver fails.
func (r *Resolver) LookupTLSA(ctx context.Context, host string, port int) (records []TLSA, secure bool, err error) {
	in, err := r.query(ctx, "_"+strconv.Itoa(port)+"._tcp."+host, dns.TypeTLSA)
	if err != nil {
		return nil, false, err
	}
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			data, err := hex.DecodeString(t.Certificate)
			if err != nil {
				continue // malformed: unusable
			}
			records = append(records, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
		}
	}
	return records, in.AuthenticatedData, nil
}

// Secure reports whether the trusted resolver validated the answer for
// name and qtype (such as dns.TypeMX): RFC 7672 §2.2.1 has DANE apply
// only to MX hosts that a secure MX RRset names. It returns an error
// matching ErrLookup when the resolver fails (a bogus answer is a SERVFAIL
// from a validating resolver).
func (r *Resolver) Secure(ctx context.Context, name string, qtype uint16) (bool, error) {
	in, err := r.query(ctx, name, qtype)
	if err != nil {
		return false, err
	}
	return in.AuthenticatedData, nil
}

// query asks the trusted resolver for name and qtype with the DO and AD
// bits, over TCP again when the UDP answer is truncated; an answer other
// than NOERROR or NXDOMAIN is an error matching ErrLookup.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(4096, true) // DO: ask for DNSSEC processing
	m.AuthenticatedData = true
	c := r.Client
	if c == nil {
		c = new(dns.Client)
	}
	in, _, err := c.ExchangeContext(ctx, m, r.Server)
	if err == nil && in.Truncated && c.Net == "" {
		tc := *c
		tc.Net = "tcp"
		in, _, err = tc.ExchangeContext(ctx, m, r.Server)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLookup, name, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%w: %s: %s", ErrLookup, name, dns.RcodeToString[in.Rcode])
	}
	return in, nil
}
