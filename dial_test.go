package smtp

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"
)

// RFC 3207 §4 and §4.1: what a Dialer does about STARTTLS under each policy.
func TestDialer_TLSPolicies(t *testing.T) {
	const name = "client.example.org"
	noTLS := []string{"S: 220 hi", "C: EHLO " + name, "S: 250-mx\r\n250 SIZE 10", "C: QUIT", "S: 221 bye"}
	refused := []string{"S: 220 hi", "C: EHLO " + name, "S: 250-mx\r\n250 STARTTLS", "C: STARTTLS", "S: 454 4.7.0 TLS not available", "C: QUIT", "S: 221 bye"}
	offered := []string{"S: 220 hi", "C: EHLO " + name, "S: 250-mx\r\n250 STARTTLS", "C: STARTTLS", "S: 220 go", "TLS",
		"C: EHLO " + name, "S: 250-mx\r\n250 SIZE 10", "C: QUIT", "S: 221 bye"}
	tests := []struct {
		name    string
		policy  TLSPolicy
		script  []string
		wantErr error
		wantTLS bool
		sent    []string
	}{
		{"opportunistic without STARTTLS goes on in clear", TLSOpportunistic, noTLS, nil, false, []string{"EHLO " + name, "QUIT"}},
		{"opportunistic with 454 goes on in clear", TLSOpportunistic, refused, nil, false, []string{"EHLO " + name, "STARTTLS", "QUIT"}},
		{"opportunistic with STARTTLS upgrades", TLSOpportunistic, offered, nil, true, []string{"EHLO " + name, "STARTTLS", "EHLO " + name, "QUIT"}},
		{"required without STARTTLS quits", TLSRequired, noTLS, ErrTLSRequired, false, []string{"EHLO " + name, "QUIT"}},
		{"required with 454 quits", TLSRequired, refused, ErrTLSRequired, false, []string{"EHLO " + name, "STARTTLS", "QUIT"}},
		{"required with STARTTLS upgrades", TLSRequired, offered, nil, true, []string{"EHLO " + name, "STARTTLS", "EHLO " + name, "QUIT"}},
		{"disabled never asks", TLSDisabled, append(offered[:3:3], "C: QUIT", "S: 221 bye"), nil, false, []string{"EHLO " + name, "QUIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScriptServer(t, tt.script...)
			d := &Dialer{LocalName: name, TLSPolicy: tt.policy, TLSConfig: testClientTLSConfig(t)}
			c, err := d.Dial(context.Background(), s.Addr)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				_, isTLS := c.TLSConnectionState()
				assert.Equal(t, tt.wantTLS, isTLS)
				c.Quit()
			}
			assert.Equal(t, tt.sent, s.Received())
		})
	}
}

// RFC 8314 §3.3: implicit TLS starts before the greeting.
func TestDialer_ImplicitTLS(t *testing.T) {
	s := newScriptServer(t, "TLS", "S: 220 hi", "C: EHLO client.example", "S: 250-mx\r\n250 AUTH PLAIN", "C: QUIT", "S: 221 bye")
	var handshakes int
	d := &Dialer{LocalName: "client.example", ImplicitTLS: true, TLSConfig: testClientTLSConfig(t),
		Trace: &ClientTrace{TLSHandshakeDone: func(tls.ConnectionState, error) { handshakes++ }}}
	c, err := d.Dial(context.Background(), s.Addr)
	require.NoError(t, err)
	state, ok := c.TLSConnectionState()
	require.True(t, ok)
	assert.True(t, state.HandshakeComplete)
	assert.Equal(t, 1, handshakes)
	ok, _ = c.Extension("AUTH")
	assert.True(t, ok)
	require.NoError(t, c.Quit())
}

// A certificate that does not verify ends the session; nothing is sent in
// the clear after the failed handshake.
func TestDialer_BadCertificateIsAnError(t *testing.T) {
	s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250-mx\r\n250 STARTTLS", "C: STARTTLS", "S: 220 go", "TLS")
	d := &Dialer{LocalName: "client.example", TLSConfig: &tls.Config{ServerName: "localhost"}} // system roots
	_, err := d.Dial(context.Background(), s.Addr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TLS handshake")
}

// The default EHLO name is the host's FQDN or the local address literal
// (RFC 5321 §4.1.3, §4.1.4), never "localhost"; Unicode names are sent as
// A-labels.
func TestDialer_LocalName(t *testing.T) {
	d := &Dialer{}
	got, err := d.localName(fakeAddrConn{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}})
	require.NoError(t, err)
	assert.True(t, strings.Contains(got, ".") && got != "localhost", got)

	assert.Equal(t, "[192.0.2.1]", addressLiteral(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}))
	assert.Equal(t, "[IPv6:2001:db8::1]", addressLiteral(&net.TCPAddr{IP: net.ParseIP("2001:db8::1")}))

	d = &Dialer{LocalName: "bücher.example"}
	got, err = d.localName(nil)
	require.NoError(t, err)
	assert.Equal(t, "xn--bcher-kva.example", got)

	d = &Dialer{LocalName: "evil\r\nMAIL FROM:<x>"}
	_, err = d.localName(nil)
	require.ErrorIs(t, err, ErrCRLF)
}

type fakeAddrConn struct{ local net.Addr }

func (f fakeAddrConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (f fakeAddrConn) Write(p []byte) (int, error)      { return len(p), nil }
func (f fakeAddrConn) Close() error                     { return nil }
func (f fakeAddrConn) LocalAddr() net.Addr              { return f.local }
func (f fakeAddrConn) RemoteAddr() net.Addr             { return f.local }
func (f fakeAddrConn) SetDeadline(time.Time) error      { return nil }
func (f fakeAddrConn) SetReadDeadline(time.Time) error  { return nil }
func (f fakeAddrConn) SetWriteDeadline(time.Time) error { return nil }

// A golang.org/x/net/proxy SOCKS5 dialer plugs into Dialer.NetDialer.
func TestDialer_ThroughSOCKS5Proxy(t *testing.T) {
	s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250 mx", "C: QUIT", "S: 221 bye")
	socks, connects := startSOCKS5(t)
	pd, err := proxy.SOCKS5("tcp", socks, nil, proxy.Direct)
	require.NoError(t, err)
	d := &Dialer{LocalName: "client.example", NetDialer: pd.(proxy.ContextDialer)}
	c, err := d.Dial(context.Background(), s.Addr)
	require.NoError(t, err)
	require.NoError(t, c.Quit())
	assert.Equal(t, []string{s.Addr}, <-connects)
}

// startSOCKS5 runs a minimal RFC 1928 proxy (no authentication, CONNECT to
// an IPv4 address) for one connection and reports the address it connected
// to.
func startSOCKS5(t *testing.T) (string, <-chan []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	out := make(chan []string, 1)
	go func() {
		var targets []string
		defer func() { out <- targets }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		io.ReadFull(c, make([]byte, hdr[1]))
		c.Write([]byte{5, 0})
		req := make([]byte, 10) // VER CMD RSV ATYP(1) IPv4 PORT
		if _, err := io.ReadFull(c, req); err != nil || req[3] != 1 {
			return
		}
		target := net.JoinHostPort(net.IP(req[4:8]).String(), fmt.Sprint(binary.BigEndian.Uint16(req[8:10])))
		targets = append(targets, target)
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
			return
		}
		defer up.Close()
		c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
		go func() { io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
	}()
	return ln.Addr().String(), out
}

// No hook ever sees a credential: not the AUTH argument, not a response to
// a 334 challenge, not the challenge itself.
func TestTrace_NeverSeesCredentials(t *testing.T) {
	const password = "s3cr3t-Pa55"
	s := newScriptServer(t, "S: 220 hi", "C: EHLO client.example", "S: 250-mx\r\n250 AUTH PLAIN LOGIN",
		"C: AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00user\x00"+password)), "S: 334 "+base64.StdEncoding.EncodeToString([]byte(password)),
		"C: *", "S: 501 no", "C: QUIT", "S: 221 bye")
	var seen strings.Builder
	trace := &ClientTrace{
		CommandSent: func(line string) { seen.WriteString(line + "\n") },
		ReplyRead:   func(r *Reply) { fmt.Fprintf(&seen, "%d %s\n", r.Code, r.msg()) },
	}
	d := &Dialer{LocalName: "client.example", Trace: trace}
	c, err := d.Dial(context.Background(), s.Addr)
	require.NoError(t, err)
	require.Error(t, c.Auth(PlainAuth("", "user", password, "127.0.0.1")))
	s.Received()
	out := seen.String()
	assert.Contains(t, out, "AUTH PLAIN "+redacted)
	for _, secret := range []string{password, base64.StdEncoding.EncodeToString([]byte("\x00user\x00" + password)),
		base64.StdEncoding.EncodeToString([]byte(password))} {
		assert.NotContains(t, out, secret)
	}
}
