package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
)

// An MXPolicy decides how a delivery to a domain's mail exchangers must
// protect its connections: which MX hosts may be used, whether TLS is
// required, and how the server's certificate is checked. The Courier's and
// the Pool's Deliver ask it once they have resolved the domain, and before
// every connection, so that a policy's answer is never older than the
// delivery that uses it.
//
// The module github.com/resmtp/smtp/mx has one: DANE (RFC 7672), else
// MTA-STS (RFC 8461), else opportunistic TLS, as the large MTAs do. Without
// an MXPolicy, MX deliveries use opportunistic STARTTLS without
// authentication (RFC 7435), since an MX host's certificate cannot be
// checked against anything without one.
type MXPolicy interface {
	// Secure returns the targets of domain that may be used, in the order
	// to try them, each with its Security set. An error defers the whole
	// domain (a temporary failure): a policy that cannot be evaluated is
	// not a reason to deliver without it.
	Secure(ctx context.Context, domain string, targets []Target) ([]Target, error)
}

// Security is how a delivery must protect the connection to a Target.
type Security struct {
	// Mode names what applies, for reports and errors: for instance
	// "dane", "mta-sts", "mta-sts testing", "opportunistic".
	Mode string
	// RequireTLS refuses to go on without TLS: a server that does not
	// offer STARTTLS, or refuses it, fails the attempt with a temporary
	// error that matches ErrTLSRequired, before MAIL is sent.
	RequireTLS bool
	// Verify, if not nil, checks the TLS connection (the server's chain is
	// in PeerCertificates) and returns why it is not acceptable; the
	// handshake then fails. Nil accepts any certificate: encryption
	// without authentication.
	Verify func(cs tls.ConnectionState) error
	// Done, if not nil, is told how each connection set up under this
	// Security went, for reporting (RFC 8460): the TLS state when TLS was
	// negotiated (nil for a session in clear), and the error that ended the
	// set-up, if any.
	Done func(state *tls.ConnectionState, err error)
}

// reportTLS tells sec how the set-up of c went.
func reportTLS(sec *Security, c *Client, err error) {
	if sec == nil || sec.Done == nil {
		return
	}
	if err != nil {
		sec.Done(nil, err)
		return
	}
	if state, ok := c.TLSConnectionState(); ok {
		sec.Done(&state, nil)
		return
	}
	sec.Done(nil, nil)
}

// ErrPolicy is matched by the error of a delivery that a Security refused:
// no TLS where it was required, or a certificate that Verify refused. It is
// temporary: the message is deferred, never sent in clear or to a server
// that could not prove who it is.
var ErrPolicy = errors.New("smtp: the MX security policy was not met")

// secureDialer returns a copy of d that applies sec to one connection.
func secureDialer(d Dialer, sec *Security) Dialer {
	if sec == nil {
		return d
	}
	var cfg *tls.Config
	if d.TLSConfig != nil {
		cfg = d.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	// The name is checked by Verify, if at all: an MX host's address was
	// dialed, and the policy knows which names the certificate may carry.
	cfg.InsecureSkipVerify = true
	if verify := sec.Verify; verify != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verify(cs); err != nil {
				return fmt.Errorf("%w (%s): %w", ErrPolicy, sec.Mode, err)
			}
			return nil
		}
	}
	d.TLSConfig = cfg
	if sec.RequireTLS {
		d.TLSPolicy = TLSRequired
	}
	return d
}

// policyError marks err, the failure of a connection under sec, as a
// policy failure when it is one.
func policyError(sec *Security, err error) error {
	if sec != nil && sec.RequireTLS && errors.Is(err, ErrTLSRequired) && !errors.Is(err, ErrPolicy) {
		return fmt.Errorf("%w (%s): %w", ErrPolicy, sec.Mode, err)
	}
	return err
}

// secureTargets resolves domain and applies policy to its mail exchangers:
// without a policy, each gets opportunistic TLS without authentication.
func secureTargets(ctx context.Context, r *Resolver, policy MXPolicy, domain string) ([]Target, error) {
	ts, err := r.Resolve(ctx, domain)
	if err != nil {
		return nil, err
	}
	if policy == nil {
		for i := range ts {
			ts[i].Security = &Security{Mode: "opportunistic"} // each its own: a Security may be changed
		}
		return ts, nil
	}
	ts, err = policy.Secure(ctx, domain, ts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrPolicy, domain, err)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: %s: no mail exchanger may be used", ErrPolicy, domain)
	}
	return ts, nil
}
