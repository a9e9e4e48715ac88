package mx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/mx/dane"
	"github.com/resmtp/smtp/mx/mtasts"
	"github.com/resmtp/smtp/mx/tlsrpt"
)

// report hands r to the Policy's Report hook, if any.
func (p *Policy) report(r tlsrpt.Result) {
	if p.Report != nil {
		p.Report(r)
	}
}

// reportFetch reports why a domain's MTA-STS policy could not be had
// (RFC 8460 §4.3.2.2); a domain that publishes none is not a failure.
func (p *Policy) reportFetch(domain string, err error) {
	var rt string
	switch {
	case err == nil, errors.Is(err, mtasts.ErrNoRecord):
		return
	case errors.Is(err, mtasts.ErrWebPKI):
		rt = tlsrpt.STSWebPKIInvalid
	case errors.Is(err, mtasts.ErrSyntax):
		rt = tlsrpt.STSPolicyInvalid
	default:
		rt = tlsrpt.STSPolicyFetchError
	}
	p.report(tlsrpt.Result{Domain: domain, PolicyType: tlsrpt.PolicySTS, ResultType: rt, Reason: err.Error()})
}

// done returns the Security.Done hook that reports each session to t
// under the given policy type and text; check, if not nil, judges an
// established TLS session (for a policy that does not enforce).
func (p *Policy) done(domain string, t smtp.Target, typ string, text []string, invalid string, check func(cs tls.ConnectionState) error) func(*tls.ConnectionState, error) {
	if p.Report == nil {
		return nil
	}
	ip, _, _ := net.SplitHostPort(t.Addr)
	return func(state *tls.ConnectionState, err error) {
		r := tlsrpt.Result{Domain: domain, PolicyType: typ, Policy: text, MXHost: t.Host, ReceivingIP: ip}
		switch {
		case err != nil:
			if r.ResultType = resultType(err); r.ResultType == "" {
				return // not about TLS: a refused connection, a timeout
			}
			r.Reason = err.Error()
		case state == nil:
			r.ResultType = tlsrpt.StartTLSNotSupported
		case invalid != "":
			r.ResultType = invalid
		case check != nil:
			if cerr := check(*state); cerr != nil {
				r.ResultType, r.Reason = resultType(cerr), cerr.Error()
			}
		}
		p.report(r)
	}
}

// resultType classifies the failure of a session's TLS set-up (RFC 8460
// §4.3.1), or returns "" when err is not about TLS.
func resultType(err error) string {
	var (
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		unknown x509.UnknownAuthorityError
	)
	switch {
	case errors.Is(err, smtp.ErrTLSRequired):
		return tlsrpt.StartTLSNotSupported
	case errors.Is(err, dane.ErrNoMatch):
		return tlsrpt.ValidationFailure
	case errors.As(err, &host):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	case errors.As(err, &unknown):
		return tlsrpt.CertificateNotTrusted
	case errors.Is(err, smtp.ErrPolicy):
		return tlsrpt.ValidationFailure
	}
	return ""
}

// tlsaText returns TLSA records in presentation form, for a report.
func tlsaText(host string, port int, records []dane.TLSA) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = fmt.Sprintf("_%d._tcp.%s. IN TLSA %d %d %d %X", port, host, r.Usage, r.Selector, r.MatchingType, r.Data)
	}
	return out
}

// stsText returns a policy's lines, for a report.
func stsText(p *mtasts.Policy) []string {
	out := []string{"version: STSv1", "mode: " + string(p.Mode)}
	for _, mx := range p.MX {
		out = append(out, "mx: "+mx)
	}
	return append(out, fmt.Sprintf("max_age: %d", int64(p.MaxAge.Seconds())))
}
