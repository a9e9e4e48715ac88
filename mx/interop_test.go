package mx

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/interop"
	"github.com/resmtp/smtp/mx/dane"
	"github.com/resmtp/smtp/mx/tlsrpt"
)

// DANE against real servers, as .ci/run starts them (.ci/dns-up.sh): NSD
// serves example.com signed at run time, Unbound validates it with the
// zone's key as trust anchor, and the private Postfix's certificate
// matches the TLSA record of mx.example.com; the one of mxbad.example.com
// has a wrong digest. The delivery to example.com goes over TLS
// authenticated by DANE; the one to bad.example.com is deferred, nothing
// sent. It skips without the servers, except in CI.
func TestInteropDANE(t *testing.T) {
	resolver, port := os.Getenv("RESMTP_DNS_RESOLVER"), os.Getenv("RESMTP_DANE_PORT")
	if resolver == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("RESMTP_DNS_RESOLVER is not set: .ci/run must start .ci/dns-up.sh")
		}
		t.Skip("no validating resolver (source .ci/postfix-up.sh and .ci/dns-up.sh, then resmtp_dns_up)")
	}
	interop.Postfix(t) // the Postfix that the TLSA record names
	dnsClient := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, resolver)
	}}
	var mu sync.Mutex
	var results []tlsrpt.Result
	policy := &Policy{DANE: &dane.Resolver{Server: resolver}, Port: atoi(t, port), Report: func(r tlsrpt.Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}}
	k := &smtp.Courier{
		Dialer:   &smtp.Dialer{LocalName: "client.resmtp.test"},
		Resolver: &smtp.Resolver{DNS: dnsClient, Port: port},
		MXPolicy: policy,
		Attempts: 1,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	marker := interop.Marker(t) + "-dane"
	msg := fmt.Sprintf("From: <a@client.resmtp.test>\r\nTo: <alice@example.com>\r\nSubject: DANE\r\nMessage-ID: <%s@resmtp.test>\r\n\r\nover DANE\r\n", marker)
	_, err := k.Deliver(ctx, "example.com", &smtp.Envelope{From: "a@client.resmtp.test", To: smtp.Recipients("alice@example.com")}, strings.NewReader(msg))
	require.NoError(t, err)
	got := interop.WaitForDelivery(t, "alice@example.com", marker, 30*time.Second)
	assert.Contains(t, string(got), "over DANE")
	assert.Contains(t, string(got), "(using TLS", "Postfix's Received header says TLS")

	_, err = k.Deliver(ctx, "bad.example.com", &smtp.Envelope{From: "a@client.resmtp.test", To: smtp.Recipients("bob@bad.example.com")}, strings.NewReader("Subject: x\r\n\r\nnot sent\r\n"))
	require.ErrorIs(t, err, smtp.ErrPolicy)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, results, 2)
	assert.Equal(t, tlsrpt.Result{Domain: "example.com", PolicyType: tlsrpt.PolicyTLSA, Policy: results[0].Policy, MXHost: "mx.example.com", ReceivingIP: "127.0.0.1"}, results[0])
	assert.Equal(t, tlsrpt.ValidationFailure, results[1].ResultType)
	assert.Equal(t, "mxbad.example.com", results[1].MXHost)
}

func atoi(t *testing.T, s string) int {
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err)
	return n
}
