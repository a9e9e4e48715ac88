package dane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/mx/internal/dnstest"
)

// certs issues a CA and leaves under it, generated for the test.
type certs struct {
	t     testing.TB
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	n     int64
}

func newCerts(t testing.TB) *certs {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "TA"}, NotBefore: time.Now().Add(-48 * time.Hour),
		NotAfter: time.Now().Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &certs{t: t, ca: ca, caKey: key, n: 1}
}

// leaf issues a certificate for name valid from notBefore to notAfter.
func (c *certs) leaf(name string, notBefore, notAfter time.Time) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(c.t, err)
	c.n++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(c.n), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca, &key.PublicKey, c.caKey)
	require.NoError(c.t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(c.t, err)
	return cert
}

// record returns the TLSA record of the given kind for cert.
func record(usage, selector, mtype uint8, cert *x509.Certificate) TLSA {
	data := cert.Raw
	if selector == SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch mtype {
	case MatchSHA256:
		s := sha256.Sum256(data)
		data = s[:]
	case MatchSHA512:
		s := sha512.Sum512(data)
		data = s[:]
	}
	return TLSA{Usage: usage, Selector: selector, MatchingType: mtype, Data: append([]byte(nil), data...)}
}

// The TLSA matrix of RFC 7672 §3: usages 2 and 3, selectors 0 and 1,
// matching types 0, 1 and 2; DANE-EE ignores names and dates, DANE-TA
// checks them; PKIX usages are unusable.
func TestVerify(t *testing.T) {
	c := newCerts(t)
	now := time.Now()
	good := c.leaf("mx.example.org", now.Add(-time.Hour), now.Add(time.Hour))
	expired := c.leaf("mx.example.org", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	wrongName := c.leaf("other.example.net", now.Add(-time.Hour), now.Add(time.Hour))
	names := []string{"mx.example.org", "example.org"}
	wrongDigest := record(UsageDANEEE, SelectorSPKI, MatchSHA256, good)
	wrongDigest.Data[0] ^= 0xff

	type tc struct {
		name    string
		records []TLSA
		chain   []*x509.Certificate
		want    error
	}
	var tests []tc
	for _, sel := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchExact, MatchSHA256, MatchSHA512} {
			tests = append(tests,
				tc{fmt.Sprintf("3 %d %d matches the leaf", sel, mt), []TLSA{record(3, sel, mt, good)}, []*x509.Certificate{good}, nil},
				tc{fmt.Sprintf("2 %d %d matches the CA in the chain", sel, mt), []TLSA{record(2, sel, mt, c.ca)}, []*x509.Certificate{good, c.ca}, nil},
			)
		}
	}
	tests = append(tests,
		tc{"DANE-EE accepts an expired certificate", []TLSA{record(3, 1, 1, expired)}, []*x509.Certificate{expired}, nil},
		tc{"DANE-EE accepts a certificate for another name", []TLSA{record(3, 1, 1, wrongName)}, []*x509.Certificate{wrongName}, nil},
		tc{"DANE-TA refuses an expired leaf", []TLSA{record(2, 0, 1, c.ca)}, []*x509.Certificate{expired, c.ca}, ErrNoMatch},
		tc{"DANE-TA refuses a leaf for another name", []TLSA{record(2, 0, 1, c.ca)}, []*x509.Certificate{wrongName, c.ca}, ErrNoMatch},
		tc{"DANE-TA whose anchor the server did not send", []TLSA{record(2, 0, 1, c.ca)}, []*x509.Certificate{good}, ErrNoMatch},
		tc{"a wrong digest", []TLSA{wrongDigest}, []*x509.Certificate{good}, ErrNoMatch},
		tc{"another certificate's record", []TLSA{record(3, 0, 1, wrongName)}, []*x509.Certificate{good}, ErrNoMatch},
		tc{"one of several records matches", []TLSA{wrongDigest, record(0, 0, 1, good), record(3, 0, 2, good)}, []*x509.Certificate{good}, nil},
		tc{"PKIX-TA and PKIX-EE are unusable", []TLSA{record(0, 0, 1, c.ca), record(1, 1, 1, good)}, []*x509.Certificate{good, c.ca}, ErrNoUsable},
		tc{"a digest of the wrong length is unusable", []TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2, 3}}}, []*x509.Certificate{good}, ErrNoUsable},
		tc{"an unknown matching type is unusable", []TLSA{{Usage: 3, Selector: 1, MatchingType: 9, Data: good.RawSubjectPublicKeyInfo}}, []*x509.Certificate{good}, ErrNoUsable},
		tc{"no certificate at all", []TLSA{record(3, 1, 1, good)}, nil, ErrNoMatch},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.records, tt.chain, names, now)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
			}
		})
	}
}

// LookupTLSA reports the records and whether the trusted resolver
// validated them (AD); a failing resolver is an error, not an absence.
func TestResolver_LookupTLSA(t *testing.T) {
	c := newCerts(t)
	leaf := c.leaf("mx.example.org", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	r := record(3, 1, 1, leaf)
	srv := dnstest.New(t,
		fmt.Sprintf("_25._tcp.mx.example.org. 300 IN TLSA 3 1 1 %s", hex.EncodeToString(r.Data)),
		"_25._tcp.plain.example.net. 300 IN TLSA 3 1 1 "+hex.EncodeToString(r.Data),
		"mx.example.org. 300 IN A 192.0.2.1",
	)
	srv.Secure("_25._tcp.mx.example.org.", true)
	res := &Resolver{Server: srv.Addr}
	ctx := context.Background()

	got, secure, err := res.LookupTLSA(ctx, "mx.example.org", 25)
	require.NoError(t, err)
	assert.True(t, secure)
	require.Len(t, got, 1)
	assert.Equal(t, r, got[0])
	require.NoError(t, Verify(got, []*x509.Certificate{leaf}, []string{"mx.example.org"}, time.Now()))

	got, secure, err = res.LookupTLSA(ctx, "plain.example.net", 25)
	require.NoError(t, err)
	assert.False(t, secure, "no AD: DANE does not apply")
	assert.Len(t, got, 1)

	got, _, err = res.LookupTLSA(ctx, "none.example.org", 25)
	require.NoError(t, err)
	assert.Empty(t, got)

	srv.Fail("_25._tcp.broken.example.org.", dns.RcodeServerFailure)
	_, _, err = res.LookupTLSA(ctx, "broken.example.org", 25)
	require.ErrorIs(t, err, ErrLookup)
}

func FuzzVerify(f *testing.F) {
	f.Add(uint8(3), uint8(1), uint8(1), make([]byte, 32))
	f.Add(uint8(2), uint8(0), uint8(0), []byte{0x30, 0x03})
	c := newCerts(f)
	leaf := c.leaf("mx.example.org", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	f.Fuzz(func(t *testing.T, usage, selector, mtype uint8, data []byte) {
		r := TLSA{Usage: usage, Selector: selector, MatchingType: mtype, Data: data}
		err := Verify([]TLSA{r}, []*x509.Certificate{leaf, c.ca}, []string{"mx.example.org"}, time.Now())
		if !r.Usable() {
			require.ErrorIs(t, err, ErrNoUsable)
		} else if err != nil {
			require.ErrorIs(t, err, ErrNoMatch)
		}
	})
}
