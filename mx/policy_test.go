package mx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/resmtp/smtp/mx/dane"
	"github.com/resmtp/smtp/mx/internal/dnstest"
	"github.com/resmtp/smtp/mx/mtasts"
	"github.com/resmtp/smtp/mx/tlsrpt"
)

// pki is a test CA that issues server certificates.
type pki struct {
	t     *testing.T
	roots *x509.CertPool
	ca    *x509.Certificate
	key   *ecdsa.PrivateKey
	n     int64
}

func newPKI(t *testing.T) *pki {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &pki{t: t, roots: roots, ca: ca, key: key, n: 1}
}

func (p *pki) issue(name string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(p.t, err)
	p.n++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.n), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	require.NoError(p.t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(p.t, err)
	return tls.Certificate{Certificate: [][]byte{der, p.ca.Raw}, PrivateKey: key, Leaf: leaf}
}

// world is example.org's mail exchanger mx.example.org on 127.0.0.2, its
// DNS, and an MTA-STS policy host, all on loopback.
type world struct {
	pki    *pki
	srv    *smtptest.Server
	port   int
	dns    *dnstest.Server
	policy string // the MTA-STS policy served, "" for none
	https  *http.Client
}

func newWorld(t *testing.T, cert tls.Certificate, pk *pki, ext []string) *world {
	w := &world{pki: pk}
	srv, err := smtptest.NewServer(smtptest.Config{ListenAddr: "127.0.0.2:0", Extensions: ext, Certificate: &cert, Logf: t.Logf})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	w.srv = srv
	_, p, _ := net.SplitHostPort(srv.Addr)
	fmt.Sscan(p, &w.port)
	w.dns = dnstest.New(t, "example.org. 300 IN MX 10 mx.example.org.", "mx.example.org. 300 IN A 127.0.0.2")
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.policy == "" {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "text/plain")
		rw.Write([]byte(w.policy))
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{pk.issue("mta-sts.example.org")}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	w.https = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pk.roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, hs.Listener.Addr().String())
		}}}
	return w
}

// tlsa publishes a DANE-EE SPKI SHA-256 record for cert, validated or not.
func (w *world) tlsa(t *testing.T, cert tls.Certificate, secure bool, usage int) {
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	name := fmt.Sprintf("_%d._tcp.mx.example.org.", w.port)
	w.dns.Add(t, fmt.Sprintf("%s 300 IN TLSA %d 1 1 %s", name, usage, hex.EncodeToString(sum[:])))
	w.dns.Secure(name, secure)
	w.dns.Secure("example.org.", true) // the MX RRset (RFC 7672 §2.2.1)
}

// sts publishes an MTA-STS policy with mode and mx.
func (w *world) sts(t *testing.T, mode, mx string) {
	w.dns.Add(t, `_mta-sts.example.org. 300 IN TXT "v=STSv1; id=1;"`)
	w.policy = fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n", mode, mx)
}

// deliver sends one message to example.org with a Courier under p.
func (w *world) deliver(p *Policy) error {
	p.DANE = &dane.Resolver{Server: w.dns.Addr}
	p.MTASTS = &mtasts.Fetcher{Resolver: w.dns.Resolver(), HTTP: w.https}
	p.Roots, p.Port = w.pki.roots, w.port
	k := &smtp.Courier{
		Dialer:   &smtp.Dialer{LocalName: "client.example"},
		Resolver: &smtp.Resolver{DNS: w.dns.Resolver(), Port: fmt.Sprint(w.port)},
		MXPolicy: p, Attempts: 1,
	}
	_, err := k.Deliver(context.Background(), "example.org", &smtp.Envelope{From: "a@client.example", To: smtp.Recipients("b@example.org")}, strings.NewReader("hello\r\n"))
	return err
}

var withTLS = []string{"STARTTLS", "PIPELINING", "8BITMIME"}

// Modes × attacks × outcome, over real TCP: DANE (RFC 7672), MTA-STS (RFC
// 8461), and what applies when a domain publishes both or neither.
func TestPolicy_ModesAndAttacks(t *testing.T) {
	pk := newPKI(t)
	good := pk.issue("mx.example.org")
	wrongName := pk.issue("other.example.net")
	selfSigned := func() tls.Certificate { // not from the CA
		other := newPKI(t)
		return other.issue("mx.example.org")
	}()
	tests := []struct {
		name    string
		cert    tls.Certificate
		ext     []string
		publish func(t *testing.T, w *world)
		mode    Mode
		outcome string // "tls", "clear", "deferred" or "deferred by the DNS"
		report  string // the TLS-RPT result: "success", a result type, or "" for none
	}{
		{"DANE: matching TLSA", good, withTLS, func(t *testing.T, w *world) { w.tlsa(t, good, true, 3) }, DANEThenMTASTS, "tls", "success"},
		{"DANE: the certificate does not match", selfSigned, withTLS, func(t *testing.T, w *world) { w.tlsa(t, good, true, 3) }, DANEThenMTASTS, "deferred", tlsrpt.ValidationFailure},
		{"DANE: STARTTLS stripped", good, withTLS[1:], func(t *testing.T, w *world) { w.tlsa(t, good, true, 3) }, DANEThenMTASTS, "deferred", tlsrpt.StartTLSNotSupported},
		{"DANE-EE: another name is fine", wrongName, withTLS, func(t *testing.T, w *world) { w.tlsa(t, wrongName, true, 3) }, DANEThenMTASTS, "tls", "success"},
		{"DANE: only unusable records: TLS without authentication", selfSigned, withTLS, func(t *testing.T, w *world) { w.tlsa(t, good, true, 1) }, DANEThenMTASTS, "tls", tlsrpt.TLSAInvalid},
		{"DANE: unusable records and STARTTLS stripped", good, withTLS[1:], func(t *testing.T, w *world) { w.tlsa(t, good, true, 1) }, DANEThenMTASTS, "deferred", tlsrpt.StartTLSNotSupported},
		{"TLSA not validated (no AD): DANE does not apply", selfSigned, withTLS[1:], func(t *testing.T, w *world) { w.tlsa(t, good, false, 3) }, DANEThenMTASTS, "clear", tlsrpt.StartTLSNotSupported},
		{"MX RRset not validated: DANE does not apply", selfSigned, withTLS[1:], func(t *testing.T, w *world) {
			w.tlsa(t, good, true, 3)
			w.dns.Secure("example.org.", false)
		}, DANEThenMTASTS, "clear", tlsrpt.StartTLSNotSupported},
		{"MX RRset bogus (SERVFAIL): deferred", good, withTLS, func(t *testing.T, w *world) {
			w.tlsa(t, good, true, 3)
			w.dns.Fail("example.org.", dns.RcodeServerFailure)
		}, DANEThenMTASTS, "deferred by the DNS", ""},
		{"MTA-STS enforce: a valid certificate", good, withTLS, func(t *testing.T, w *world) { w.sts(t, "enforce", "mx.example.org") }, DANEThenMTASTS, "tls", "success"},
		{"MTA-STS enforce: a certificate for another name", wrongName, withTLS, func(t *testing.T, w *world) { w.sts(t, "enforce", "mx.example.org") }, DANEThenMTASTS, "deferred", tlsrpt.CertificateHostMismatch},
		{"MTA-STS enforce: a self-signed certificate", selfSigned, withTLS, func(t *testing.T, w *world) { w.sts(t, "enforce", "mx.example.org") }, DANEThenMTASTS, "deferred", tlsrpt.CertificateNotTrusted},
		{"MTA-STS enforce: STARTTLS stripped", good, withTLS[1:], func(t *testing.T, w *world) { w.sts(t, "enforce", "mx.example.org") }, DANEThenMTASTS, "deferred", tlsrpt.StartTLSNotSupported},
		{"MTA-STS enforce: the MX is not in the policy", good, withTLS, func(t *testing.T, w *world) { w.sts(t, "enforce", "*.example.com") }, DANEThenMTASTS, "deferred", tlsrpt.ValidationFailure},
		{"MTA-STS testing: STARTTLS stripped, still delivered", good, withTLS[1:], func(t *testing.T, w *world) { w.sts(t, "testing", "mx.example.org") }, DANEThenMTASTS, "clear", tlsrpt.StartTLSNotSupported},
		{"both published: DANE takes precedence", selfSigned, withTLS, func(t *testing.T, w *world) {
			w.tlsa(t, selfSigned, true, 3)
			w.sts(t, "enforce", "mx.example.org") // which the self-signed certificate would fail
		}, DANEThenMTASTS, "tls", "success"},
		{"MTA-STS only: the TLSA record is not looked at", selfSigned, withTLS, func(t *testing.T, w *world) {
			w.tlsa(t, selfSigned, true, 3)
			w.sts(t, "enforce", "mx.example.org")
		}, MTASTSOnly, "deferred", tlsrpt.CertificateNotTrusted},
		{"neither: opportunistic, any certificate", selfSigned, withTLS, func(*testing.T, *world) {}, DANEThenMTASTS, "tls", "success"},
		{"neither: opportunistic, in clear without STARTTLS", good, withTLS[1:], func(*testing.T, *world) {}, DANEThenMTASTS, "clear", tlsrpt.StartTLSNotSupported},
		{"RequireTLS: a self-signed certificate", selfSigned, withTLS, func(*testing.T, *world) {}, RequireTLS, "deferred", ""},
		{"RequireTLS: a valid certificate", good, withTLS, func(*testing.T, *world) {}, RequireTLS, "tls", ""},
		{"an override: opportunistic for a domain whose DANE is broken", selfSigned, withTLS, func(t *testing.T, w *world) { w.tlsa(t, good, true, 3) }, -1, "tls", "success"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.cert, pk, tt.ext)
			tt.publish(t, w)
			var mu sync.Mutex
			var results []string
			pol := &Policy{Mode: tt.mode}
			if tt.mode == -1 {
				pol = &Policy{Overrides: map[string]Mode{"example.org": Opportunistic}}
			}
			pol.Report = func(r tlsrpt.Result) {
				mu.Lock()
				defer mu.Unlock()
				rt := r.ResultType
				if rt == "" {
					rt = "success"
				}
				results = append(results, rt)
			}
			err := w.deliver(pol)
			mu.Lock()
			if tt.report == "" {
				assert.Empty(t, results, "TLS-RPT results")
			} else {
				assert.Equal(t, []string{tt.report}, results, "TLS-RPT results")
			}
			mu.Unlock()
			if tt.outcome == "deferred by the DNS" {
				var re *smtp.ResolveError
				require.ErrorAs(t, err, &re)
				assert.True(t, re.Temporary())
				assert.Empty(t, w.srv.Messages(), "nothing delivered")
				return
			}
			if tt.outcome == "deferred" {
				require.ErrorIs(t, err, smtp.ErrPolicy)
				assert.Empty(t, w.srv.Messages(), "nothing delivered")
				return
			}
			require.NoError(t, err)
			msgs := w.srv.Messages()
			require.Len(t, msgs, 1)
			assert.Equal(t, tt.outcome == "tls", msgs[0].TLS)
		})
	}
}
