// Package dane authenticates SMTP servers with DNSSEC-validated TLSA
// records (DANE for SMTP, RFC 7672; TLSA, RFC 6698 and RFC 7671): it looks
// the records up through a validating resolver the caller trusts, decides
// which are usable, and matches a server's certificate chain against them.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Usages, selectors and matching types of a TLSA record (RFC 6698 §2.1).
const (
	UsagePKIXTA = 0 // unusable for SMTP (RFC 7672 §3.1.3)
	UsagePKIXEE = 1 // unusable for SMTP (RFC 7672 §3.1.3)
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0 // the full certificate
	SelectorSPKI = 1 // the SubjectPublicKeyInfo

	MatchExact  = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// A TLSA record.
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// Usable reports whether r can authenticate an SMTP server (RFC 7672
// §3.1): usage DANE-TA(2) or DANE-EE(3), a known selector, and a known
// matching type whose data has the digest's length.
func (r TLSA) Usable() bool {
	if r.Usage != UsageDANETA && r.Usage != UsageDANEEE || r.Selector > SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case MatchExact:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == sha256.Size
	case MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// matches reports whether cert is the one r names.
func (r TLSA) matches(cert *x509.Certificate) bool {
	data := cert.Raw
	if r.Selector == SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch r.MatchingType {
	case MatchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case MatchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return bytes.Equal(data, r.Data)
}

// Errors of Verify, in the terms of TLS reporting (RFC 8460 §4.3).
var (
	// ErrNoUsable: the records hold none that can authenticate (RFC 8460
	// "tlsa-invalid"). RFC 7672 §2.2 then still requires TLS, without
	// authentication.
	ErrNoUsable = errors.New("dane: no usable TLSA record")
	// ErrNoMatch: no usable record matches the server's chain (RFC 8460
	// "validation-failure").
	ErrNoMatch = errors.New("dane: the server's certificate matches no TLSA record")
)

// Verify checks the chain a server presented (leaf first) against the
// TLSA records of its MX host (RFC 7672 §3):
//   - a DANE-EE(3) record matches the leaf certificate or its key; its
//     names and validity dates are not checked (§3.1.1);
//   - a DANE-TA(2) record matches a certificate of the chain, which is then
//     the trust anchor: the leaf must chain to it, be valid at now, and
//     carry one of names, the MX host name or the TLSA base domain
//     (§3.2.2, §3.2.3).
//
// It returns nil when a usable record authenticates the chain, an error
// matching ErrNoUsable when no record is usable, and one matching ErrNoMatch
// (and saying why) otherwise.
func Verify(records []TLSA, chain []*x509.Certificate, names []string, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: the server sent no certificate", ErrNoMatch)
	}
	usable := false
	var why []string
	for _, r := range records {
		if !r.Usable() {
			continue
		}
		usable = true
		switch r.Usage {
		case UsageDANEEE:
			if r.matches(chain[0]) {
				return nil
			}
		case UsageDANETA:
			err := verifyTA(r, chain, names, now)
			if err == nil {
				return nil
			}
			if err != errNoAnchor {
				why = append(why, err.Error())
			}
		}
	}
	if !usable {
		return ErrNoUsable
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s", ErrNoMatch, strings.Join(why, "; "))
	}
	return ErrNoMatch
}

var errNoAnchor = errors.New("no certificate of the chain is the trust anchor")

// verifyTA checks the chain with the certificate r names as trust anchor.
func verifyTA(r TLSA, chain []*x509.Certificate, names []string, now time.Time) error {
	for i, ta := range chain {
		if !r.matches(ta) {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(ta)
		inter := x509.NewCertPool()
		for _, c := range chain[1:max(i, 1)] {
			inter.AddCert(c)
		}
		var last error
		for _, name := range names {
			_, err := chain[0].Verify(x509.VerifyOptions{DNSName: strings.TrimSuffix(name, "."), Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			if err == nil {
				return nil
			}
			last = err
		}
		if last == nil {
			last = errors.New("no name to check")
		}
		return fmt.Errorf("DANE-TA: %w", last)
	}
	return errNoAnchor
}
