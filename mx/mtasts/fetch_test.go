package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/mx/internal/dnstest"
)

// testCA makes a CA and returns it with a function that issues leaf
// certificates for names, signed by it (or by nothing: self-signed).
func testCA(t *testing.T) (*x509.CertPool, func(selfSigned bool, names ...string) tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serial := int64(1)
	issue := func(selfSigned bool, names ...string) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		parent, signer := ca, any(caKey)
		if selfSigned {
			parent, signer = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	return pool, issue
}

// policyServer is an HTTPS server over real TCP that serves a policy;
// every name the client asks for reaches it.
type policyServer struct {
	srv     *httptest.Server
	hits    atomic.Int32
	handler atomic.Value // http.HandlerFunc
	client  *http.Client
}

func newPolicyServer(t *testing.T, cert tls.Certificate, roots *x509.CertPool, h http.HandlerFunc) *policyServer {
	ps := &policyServer{}
	ps.handler.Store(h)
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.hits.Add(1)
		ps.handler.Load().(http.HandlerFunc)(w, r)
	}))
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	addr := ps.srv.Listener.Addr().String()
	ps.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	return ps
}

func servePolicy(body, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" || r.Host != "mta-sts.example.org" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write([]byte(body))
	}
}

const goodPolicy = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n"

// RFC 8461 §3.3: HTTPS with a certificate for mta-sts.<domain>, no
// redirect, status 200, text/plain, a bounded body.
func TestFetcher_Fetch(t *testing.T) {
	roots, issue := testCA(t)
	good := issue(false, "mta-sts.example.org")
	tests := []struct {
		name    string
		cert    tls.Certificate
		handler http.HandlerFunc
		want    error
	}{
		{"a good policy", good, servePolicy(goodPolicy, "text/plain; charset=utf-8"), nil},
		{"a redirect is not followed", good, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://mta-sts.example.org/other", http.StatusFound)
		}, ErrFetch},
		{"not found", good, http.NotFound, ErrFetch},
		{"the wrong media type", good, servePolicy(goodPolicy, "text/html"), ErrFetch},
		{"an oversized body", good, servePolicy(goodPolicy+strings.Repeat("x-pad: "+strings.Repeat("p", 100)+"\n", 700), "text/plain"), ErrFetch},
		{"bad syntax", good, servePolicy("version: STSv1\nmode: strict\n", "text/plain"), ErrSyntax},
		{"a certificate for another name", issue(false, "www.example.org"), servePolicy(goodPolicy, "text/plain"), ErrWebPKI},
		{"a self-signed certificate", issue(true, "mta-sts.example.org"), servePolicy(goodPolicy, "text/plain"), ErrWebPKI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := newPolicyServer(t, tt.cert, roots, tt.handler)
			f := &Fetcher{HTTP: ps.client}
			p, err := f.Fetch(context.Background(), "example.org")
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				assert.Nil(t, p)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Enforce, p.Mode)
			assert.True(t, p.Match("mx.example.org"))
		})
	}
}

// RFC 8461 §5.1: the TXT id decides whether to fetch again; a cached policy
// that has not expired survives a missing record and a failed fetch;
// without one, the domain has no policy.
func TestFetcher_Get(t *testing.T) {
	roots, issue := testCA(t)
	ps := newPolicyServer(t, issue(false, "mta-sts.example.org"), roots, servePolicy(goodPolicy, "text/plain"))
	dns := dnstest.New(t, `_mta-sts.example.org. 300 IN TXT "v=STSv1; id=one;"`)
	now := time.Now()
	cache := &MemoryCache{}
	f := &Fetcher{Resolver: dns.Resolver(), HTTP: ps.client, Cache: cache, now: func() time.Time { return now }}
	ctx := context.Background()

	p, err := f.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Equal(t, Enforce, p.Mode)
	assert.EqualValues(t, 1, ps.hits.Load())

	_, err = f.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.EqualValues(t, 1, ps.hits.Load(), "same id: the cached policy")

	ps.handler.Store(servePolicy("version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\n", "text/plain"))
	dns.Set(t, "_mta-sts.example.org.", 16, `_mta-sts.example.org. 300 IN TXT "v=STSv1; id=two;"`)
	p, err = f.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Equal(t, Testing, p.Mode, "a new id: fetched again")
	assert.EqualValues(t, 2, ps.hits.Load())

	ps.handler.Store(http.HandlerFunc(http.NotFound))
	dns.Set(t, "_mta-sts.example.org.", 16, `_mta-sts.example.org. 300 IN TXT "v=STSv1; id=three;"`)
	p, err = f.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Equal(t, Testing, p.Mode, "the fetch failed: the cached policy still holds")

	dns.Fail("_mta-sts.example.org.", 3) // NXDOMAIN: the record is gone
	p, err = f.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Equal(t, Testing, p.Mode, "no record: the cached policy still holds until it expires")

	now = now.Add(86401 * time.Second)
	p, err = f.Get(ctx, "example.org")
	require.ErrorIs(t, err, ErrNoRecord)
	assert.Nil(t, p, "expired, and no record: no policy")

	dns.Fail("_mta-sts.example.org.", 0)
	p, err = f.Get(ctx, "example.org")
	require.ErrorIs(t, err, ErrFetch, "a record, no cache, a failing fetch: no policy")
	assert.Nil(t, p)

	p, err = (&Fetcher{Resolver: dns.Resolver(), HTTP: ps.client}).Get(ctx, "no-policy.example")
	require.ErrorIs(t, err, ErrNoRecord)
	assert.Nil(t, p)
}

// A DirCache keeps policies across restarts.
func TestDirCache(t *testing.T) {
	ctx := context.Background()
	d := &DirCache{Dir: t.TempDir()}
	c, err := d.Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Nil(t, c)
	want := &Cached{Policy: Policy{Mode: Enforce, MX: []string{"mx.example.org"}, MaxAge: time.Hour}, ID: "one", Fetched: time.Unix(1700000000, 0).UTC()}
	require.NoError(t, d.Put(ctx, "Example.ORG", want))
	c, err = (&DirCache{Dir: d.Dir}).Get(ctx, "example.org")
	require.NoError(t, err)
	assert.Equal(t, want, c)
	assert.Equal(t, want.Fetched.Add(time.Hour), c.Expires())
	_, err = d.Get(ctx, "../etc")
	require.Error(t, err)
}
