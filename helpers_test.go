package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/scriptpeer"
	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/require"
)

// The helpers the package's tests share: servers, clients and messages.

// dialTest connects a Client of d (a zero Dialer if nil) to srv, as
// client.example and without TLS; it is closed when the test ends.
func dialTest(t *testing.T, srv *smtptest.Server, d *Dialer) *Client {
	t.Helper()
	if d == nil {
		d = &Dialer{}
	}
	d.LocalName = "client.example"
	d.TLSPolicy = TLSDisabled
	c, err := d.Dial(context.Background(), srv.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// testMessage is the i-th message of a bulk test, with a leading dot to stuff.
func testMessage(i int) string {
	return fmt.Sprintf("From: a@example.org\r\nSubject: message %d\r\n\r\n.leading dot %d\r\nbody\r\n", i, i)
}

// scriptServer is the scripted raw peer of internal/scriptpeer.
type scriptServer = scriptpeer.Server

// newScriptServer starts a scripted raw peer whose "TLS" step uses the
// test certificate.
func newScriptServer(t testing.TB, script ...string) *scriptServer {
	t.Helper()
	return scriptpeer.New(t, testServerTLSConfig(t), script...)
}

// dialScript connects a net/smtp-compatible Client to a script server.
func dialScript(t *testing.T, script ...string) (*Client, *scriptServer) {
	t.Helper()
	s := newScriptServer(t, script...)
	c, err := Dial(s.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, s
}

// newTestServer starts an internal/smtptest server that logs to t and
// stops when the test ends.
func newTestServer(t *testing.T, cfg smtptest.Config) *smtptest.Server {
	t.Helper()
	cfg.Logf = t.Logf
	s, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// sendOne sends body with the lockstep calls: Mail, Rcpt for each of to,
// Data.
func sendOne(ctx context.Context, c *Client, from string, to []string, body string) error {
	if err := c.MailContext(ctx, from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.RcptContext(ctx, r); err != nil {
			return err
		}
	}
	w, err := c.DataContext(ctx)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	return w.Close()
}

// bigText returns about n octets of text with CRLF lines, some starting
// with a dot.
func bigText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		if i%7 == 0 {
			b.WriteString(".")
		}
		fmt.Fprintf(&b, "line %06d of the message, with some words to make it longer\r\n", i)
	}
	return b.Bytes()
}

// onlyReader hides every method but Read, so the message cannot seek.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// testCourier returns a Courier of d (a zero Dialer if nil) that retries
// at once, four times.
func testCourier(d *Dialer) *Courier {
	if d == nil {
		d = &Dialer{}
	}
	d.LocalName, d.TLSPolicy = "client.example", TLSDisabled
	return &Courier{Dialer: d, RetryDelay: time.Millisecond, Attempts: 4}
}

// testServerTLSConfig returns a server config with smtptest's certificate
// for "localhost" and 127.0.0.1.
func testServerTLSConfig(t testing.TB) *tls.Config {
	server, _, err := smtptest.TLSConfigs()
	require.NoError(t, err)
	return server
}

// testClientTLSConfig trusts the certificate of testServerTLSConfig.
func testClientTLSConfig(t testing.TB) *tls.Config {
	_, client, err := smtptest.TLSConfigs()
	require.NoError(t, err)
	return client
}

// memStore is the simplest CheckpointStore, for the Courier's tests: the
// stores of package store import this package, so its tests cannot use
// them (store/dir_test.go runs the Courier on a real Dir).
type memStore struct {
	mu sync.Mutex
	m  map[string]Checkpoint
}

func (s *memStore) Save(_ context.Context, cp *Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]Checkpoint)
	}
	c := *cp
	c.Points = slices.Clone(cp.Points)
	s.m[cp.TransID] = c
	return nil
}

func (s *memStore) Load(_ context.Context, transID string) (*Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.m[transID]
	if !ok {
		return nil, ErrNoCheckpoint
	}
	return &cp, nil
}

func (s *memStore) Delete(_ context.Context, transID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, transID)
	return nil
}

func (s *memStore) List(context.Context) ([]*Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cps []*Checkpoint
	for _, cp := range s.m {
		cps = append(cps, &cp)
	}
	return cps, nil
}
