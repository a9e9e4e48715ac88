package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"time"
)

// The test certificate is generated once per process and shared by every
// Server, so that a client configured for one server (for example before a
// simulated restart) also trusts the next one.
var testCert struct {
	once sync.Once
	cert tls.Certificate
	leaf *x509.Certificate
	err  error
}

// loadCert returns the shared self-signed ECDSA P-256 certificate for
// "localhost", 127.0.0.1 and ::1.
func loadCert() (tls.Certificate, *x509.Certificate, error) {
	testCert.once.Do(func() {
		testCert.cert, testCert.leaf, testCert.err = generateCert()
	})
	return testCert.cert, testCert.leaf, testCert.err
}

func generateCert() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"smtptest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// TLSConfigs returns a server configuration holding the shared test
// certificate and a client configuration that trusts it (ServerName
// "localhost"), for tests that run a TLS peer of their own. It returns the
// error of generating the certificate, if any.
func TLSConfigs() (server, client *tls.Config, err error) {
	cert, leaf, err := loadCert()
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{ServerName: "localhost", RootCAs: roots}, nil
}
