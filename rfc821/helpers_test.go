package rfc821

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/scriptpeer"
	"github.com/resmtp/smtp/internal/smtptest"
)

// The helpers of package smtp's tests that these tests need, copied: a test
// server, a Client from a Dialer, the server's transcript, and a scripted
// peer.

func newTestServer(t *testing.T, cfg smtptest.Config) *smtptest.Server {
	t.Helper()
	cfg.Logf = t.Logf
	s, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func dialTest(t *testing.T, srv *smtptest.Server, d *smtp.Dialer) *smtp.Client {
	t.Helper()
	if d == nil {
		d = &smtp.Dialer{}
	}
	d.LocalName = "client.example"
	d.TLSPolicy = smtp.TLSDisabled
	c, err := d.Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func historicCode(t *testing.T, err error) int {
	t.Helper()
	var e *smtp.Error
	require.ErrorAs(t, err, &e)
	return e.Code
}

// dialScript connects a net/smtp-compatible Client to a script server.
func dialScript(t *testing.T, script ...string) (*smtp.Client, *scriptServer) {
	t.Helper()
	s := newScriptServer(t, script...)
	c, err := smtp.Dial(s.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, s
}

// scriptServer is the scripted raw peer of internal/scriptpeer.
type scriptServer = scriptpeer.Server

// newScriptServer starts a scripted raw peer (no TLS step).
func newScriptServer(t testing.TB, script ...string) *scriptServer {
	t.Helper()
	return scriptpeer.New(t, nil, script...)
}
