package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/proxy"
)

// TLSPolicy says what a Dialer does about STARTTLS (RFC 3207).
type TLSPolicy int

const (
	// TLSOpportunistic, the default, uses STARTTLS when the server offers
	// it and goes on in cleartext when it does not or when it answers 454.
	// A failed handshake is an error: the connection is gone by then.
	TLSOpportunistic TLSPolicy = iota
	// TLSRequired refuses to go on without TLS: a server that does not
	// offer STARTTLS, or refuses it, gets QUIT and Dial returns an error
	// that matches ErrTLSRequired, before any MAIL or AUTH is sent.
	TLSRequired
	// TLSDisabled never sends STARTTLS.
	TLSDisabled
)

// ErrTLSRequired is matched (errors.Is) by the error a Dialer with
// TLSRequired returns when the server does not offer STARTTLS or refuses it.
var ErrTLSRequired = errors.New("smtp: server does not offer STARTTLS and TLS is required")

// A Dialer holds options for connecting to an SMTP server. The zero value
// is ready to use: it connects over TCP, introduces itself with the host's
// fully qualified name, uses STARTTLS when offered, and applies the RFC 5321
// §4.5.3.2 timeouts.
type Dialer struct {
	// LocalName is the name sent with EHLO or HELO. If empty, the host name
	// is used when it is fully qualified (it contains a dot); otherwise the
	// address literal of the connection's local address, such as
	// "[192.0.2.1]" (RFC 5321 §4.1.4). Servers often reject "localhost".
	// A name in Unicode is sent in its A-label (Punycode) form.
	LocalName string

	// Timeouts bounds connecting (Timeouts.Connect) and every later step;
	// a context deadline that comes sooner wins. See Timeouts.
	Timeouts Timeouts

	// NetDialer opens the connection; nil means a *net.Dialer. Anything
	// with a DialContext method fits, such as the SOCKS5 dialer of
	// golang.org/x/net/proxy (proxy.SOCKS5 returns a proxy.ContextDialer).
	NetDialer proxy.ContextDialer

	// TLSConfig is used for implicit TLS and STARTTLS. If nil, or if its
	// ServerName is empty, the host part of the address is the server name.
	TLSConfig *tls.Config

	// ImplicitTLS starts TLS as soon as the connection is open, before the
	// greeting, as on the submissions port 465 (RFC 8314 §3.3).
	ImplicitTLS bool

	// TLSPolicy says whether to use STARTTLS; ignored with ImplicitTLS.
	TLSPolicy TLSPolicy

	// Trace, if not nil, receives the Client's events.
	Trace *ClientTrace

	// MaxReplySize bounds a whole reply in octets, and each of its lines
	// to MaxReplySize or 16 KiB, whichever is less, but at least 2 KiB
	// (the reader's buffer holds a line, so a line limit costs memory on
	// every connection). Zero means 64 KiB. RFC 5321 §4.5.3.1.5 allows 512
	// octets a line, RFC 4954 §4 12288 for AUTH; real servers send longer.
	MaxReplySize int

	// LMTP speaks RFC 2033's Local Mail Transfer Protocol instead of SMTP:
	// LHLO instead of EHLO (with no HELO fallback), and after the data one
	// reply per accepted recipient, reported in RcptResult.Delivery. LMTP
	// messages go with DATA, not BDAT. Use it with a Dialer whose NetDialer
	// reaches the delivery agent (often a Unix socket or port 24).
	LMTP bool

	// DisablePipelining sends every command alone even when the server
	// offers PIPELINING (RFC 2920).
	DisablePipelining bool
	// DisableChunking uses DATA even when the server offers CHUNKING
	// (RFC 3030). BINARYMIME needs CHUNKING and fails without it.
	DisableChunking bool
	// ChunkSize is the size of a BDAT chunk in octets; zero means
	// 1 MiB.
	ChunkSize int
	// MaxInFlight bounds the transactions a Batch keeps in flight with
	// CHUNKING and PIPELINING before it waits for their replies, and
	// MaxInFlightOctets the message octets not yet acknowledged; zero
	// means 64 and 16 MiB.
	MaxInFlight       int
	MaxInFlightOctets int64
}

// Dial connects to the SMTP server at addr ("host:port"), reads its
// greeting, sends EHLO (HELO if the server does not know EHLO), and applies
// the TLS policy. The returned Client is ready for Auth or a mail
// transaction.
//
// Dial returns the network error, an *Error for a refusing greeting or
// hello, or an error matching ErrTLSRequired. If ctx is done before Dial
// returns, the connection is closed and Dial returns the context's error.
func (d *Dialer) Dial(ctx context.Context, addr string) (*Client, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	dctx, cancel := d.connectContext(ctx)
	defer cancel()
	nd := d.NetDialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	conn, err := nd.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtp: dial %s: %w", addr, err)
	}
	return d.NewClient(ctx, conn, host)
}

// NewClient is Dial on a connection that is already open; host is the
// server's name, for TLS verification and authentication. On error the
// connection is closed.
func (d *Dialer) NewClient(ctx context.Context, conn net.Conn, host string) (*Client, error) {
	localName, err := d.localName(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if d.ImplicitTLS {
		tc := tls.Client(conn, d.tlsConfig(host))
		hctx, cancel := d.connectContext(ctx)
		err := tc.HandshakeContext(hctx)
		cancel()
		if tr := ContextClientTrace(ctx).compose(d.Trace); tr != nil && tr.TLSHandshakeDone != nil {
			tr.TLSHandshakeDone(tc.ConnectionState(), err)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("smtp: TLS handshake: %w", err)
		}
		conn = tc
	}
	c := newClient(conn, host, localName, d.config())
	if err := c.session(ctx, d); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// config returns the settings of a Client made by d.
func (d *Dialer) config() *clientConfig {
	return &clientConfig{
		timeouts:     d.Timeouts,
		trace:        d.Trace,
		maxReplySize: d.MaxReplySize,
		strict:       true,
		lmtp:         d.LMTP,
		noPipelining: d.DisablePipelining,
		noChunking:   d.DisableChunking,
		chunkSize:    d.ChunkSize,
		window:       d.MaxInFlight,
		windowOctets: d.MaxInFlightOctets,
	}
}

// session reads the greeting, says hello and applies the TLS policy.
func (c *Client) session(ctx context.Context, d *Dialer) error {
	if err := c.greet(ctx); err != nil {
		return err
	}
	if err := c.hello(ctx); err != nil {
		return err
	}
	if c.tls || d.TLSPolicy == TLSDisabled {
		return nil
	}
	if !c.ext.has("STARTTLS") {
		if d.TLSPolicy == TLSRequired {
			c.QuitContext(ctx)
			return ErrTLSRequired
		}
		return nil
	}
	err := c.startTLS(ctx, d.tlsConfig(c.serverName))
	var e *Error
	if errors.As(err, &e) && c.err == nil {
		// The server refused STARTTLS (454) and the session goes on in
		// the clear, unless TLS is required.
		if d.TLSPolicy == TLSRequired {
			c.QuitContext(ctx)
			return fmt.Errorf("%w: %w", ErrTLSRequired, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return c.ehlo(ctx)
}

// connectContext returns ctx bounded by the connect timeout, unless that is
// negative (no limit).
func (d *Dialer) connectContext(ctx context.Context) (context.Context, context.CancelFunc) {
	t := d.Timeouts.withDefaults().Connect
	if t < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, t)
}

func (d *Dialer) tlsConfig(host string) *tls.Config {
	var cfg *tls.Config
	if d.TLSConfig != nil {
		cfg = d.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

// localName returns the EHLO name: Dialer.LocalName in A-label form, the
// host's fully qualified name, or the local address literal.
func (d *Dialer) localName(conn net.Conn) (string, error) {
	if name := d.LocalName; name != "" {
		if err := validateLine(name); err != nil {
			return "", err
		}
		if strings.HasPrefix(name, "[") {
			return name, nil
		}
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("smtp: invalid local name %q: %w", name, err)
		}
		return ascii, nil
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(strings.Trim(h, "."), ".") {
		if ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(h, ".")); err == nil {
			return ascii, nil
		}
	}
	return addressLiteral(conn.LocalAddr()), nil
}

// addressLiteral returns the RFC 5321 §4.1.3 address literal of addr:
// "[192.0.2.1]" or "[IPv6:2001:db8::1]". Without an IP address it returns
// "localhost".
func addressLiteral(addr net.Addr) string {
	var ip net.IP
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	if ip == nil {
		return "localhost"
	}
	if ip4 := ip.To4(); ip4 != nil {
		return "[" + ip4.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}
