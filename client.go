package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// A Client represents a client connection to an SMTP server.
//
// A Client is not safe for concurrent use: one goroutine at a time may call
// its methods (a context's cancellation may come from anywhere).
//
// The methods named as in net/smtp behave as there, write the same bytes and
// return the same errors: a *textproto.Error for a refusal, the network's
// own error (io.EOF, a *net.OpError) for a broken connection, a
// textproto.ProtocolError for a malformed reply; EnhancedCodeOf reads the
// enhanced status code of such a refusal. After a failure of the
// connection or a malformed reply, the Client stops: later calls write
// nothing and return the same error, or, once the connection is closed, the
// error of writing to it, as net/smtp's would. Each has a Context variant that returns this package's richer
// errors (*Error, ErrProtocol, connection errors that say what the
// Client was doing) and ends the call when the context is done;
// cancelling a call closes the connection and leaves the Client unusable:
// later calls return an error that matches ErrClosed and the context's error
// with errors.Is. Every call is also bounded by the Client's Timeouts,
// except on a Client from NewClient, whose connection's deadlines are the
// caller's.
type Client struct {
	// Text is the textproto.Conn used by the Client. It is exported to allow
	// for clients to add extensions. It shares the Client's buffered reader
	// and writer, so lines written through it and commands written by the
	// Client go out in order. It is replaced by StartTLS.
	Text *textproto.Conn

	clientConfig // the settings it was made with

	conn       net.Conn // the connection in use, TLS or not
	raw        net.Conn // the underlying network connection, closed on cancel
	tls        bool
	serverName string
	localName  string // the name to use in HELO/EHLO
	ext        extensions
	extFacts   extFacts // what every MAIL needs from ext, worked out once (setExt)
	auth       []string
	didHello   bool
	helloError error

	rr           replyReader
	bw           *bufio.Writer
	pending      cmdFIFO       // written, reply still due, oldest first
	unhanded     int           // the newest of pending, not yet given to the pump (handoff)
	readAhead    int           // the oldest of pending, seen read by the pump (ready)
	cmds         []Cmd         // a slab of fresh Cmds for the transaction being sent (newCmd)
	spare        *pump         // the stopped pump, started again by the next Batch
	pump         *pump         // reads replies concurrently while a group or Batch runs
	writeTimeout time.Duration // refreshes the write deadline on each write when > 0
	opDeadline   time.Time     // the context deadline of the call in progress
	trace        *ClientTrace  // the hooks in force: clientConfig.trace, or a call's composed with it
	callTrace    bool          // trace holds a call's trace (WithClientTrace)
	dot          *DotWriter
	canon        *DotWriter   // canonical form for BDAT
	feedBuf      []byte       // message input buffer
	chunkOut     appendWriter // BDAT chunk being built
	feeder       feeder       // feed's state, kept here so that feed does not allocate
	chunker      chunker      // writeChunks' state, likewise
	lineBuf      []byte       // a command line being built (BDAT)
	batch        *Batch       // the Batch in progress, if any
	openData     *DataWriter  // the data phase in progress, if any
	hijacked     bool         // the connection is the caller's (Hijack)
	needRset     bool         // the server may hold a failed transaction: RSET first

	connClosed bool // the Client closed the connection after a failure

	err     error  // set once the connection is unusable; every call returns it
	closing *Error // a 421 reply: the server is closing the connection (RFC 5321 §3.8)

	mu     sync.Mutex // guards cancel, written by a context's AfterFunc
	cancel error
}

const (
	readBufferSize  = 16 << 10
	writeBufferSize = 64 << 10 // half the write calls of 32 KiB: 9 % less CPU per message with BDAT (bench: BenchmarkClientAllocs)
)

// Dial returns a new Client connected to an SMTP server at addr.
// The addr must include a port, as in "mail.example.com:smtp".
//
// Dial returns the dial error, or net/smtp's error for a failed greeting (a
// *textproto.Error if it is not 220). The Client owns the connection, so,
// unlike net/smtp's, it bounds every step with the default Timeouts (RFC
// 5321 §4.5.3.2: five minutes for most replies): a stalled server ends the
// call with a *net.OpError whose Timeout() is true instead of blocking it
// forever. Use a Dialer to choose the Timeouts.
func Dial(addr string) (*Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return newCompatClient(conn, host, false)
}

// NewClient returns a new Client using an existing connection and host as a
// server name to be used when authenticating. It reads the server's 220
// greeting; if that fails, it closes conn and returns net/smtp's error (a
// *textproto.Error for a greeting other than 220).
//
// The connection's deadlines belong to the caller, as with net/smtp: the
// Client never sets or clears them, so a deadline set on conn bounds every
// call made through the Client, and without one a stalled server blocks a
// call until the connection ends. (The Context methods are bounded by their
// context: when it ends, the connection is closed.)
//
// The Client introduces itself as "localhost", as net/smtp's does; use a
// Dialer or Hello to give a real name, which many servers require.
func NewClient(conn net.Conn, host string) (*Client, error) {
	return newCompatClient(conn, host, true)
}

// newCompatClient makes the Client of Dial and NewClient and reads the
// greeting.
func newCompatClient(conn net.Conn, host string, callerConn bool) (*Client, error) {
	cfg := &clientConfig{callerConn: callerConn}
	if callerConn {
		cfg.timeouts = noTimeouts()
	}
	c := newClient(conn, host, "localhost", cfg)
	if err := c.greet(context.Background()); err != nil {
		c.Text.Close()
		return nil, c.compatErr(err)
	}
	return c, nil
}

// clientConfig is what a Dialer passes to a new Client.
// clientConfig holds a Client's settings: from its Dialer, or net/smtp's
// for one from Dial or NewClient.
type clientConfig struct {
	timeouts     Timeouts
	trace        *ClientTrace
	maxReplySize int
	strict       bool // made by a Dialer: replies nobody asked for are an error
	callerConn   bool // made by NewClient: the conn's deadlines are the caller's
	lmtp         bool // speaks LMTP (RFC 2033)
	noPipelining bool
	noChunking   bool
	chunkSize    int
	window       int   // transactions in flight at most (CHUNKING + PIPELINING)
	windowOctets int64 // unacknowledged message octets at most
}

func newClient(conn net.Conn, host, localName string, cfg *clientConfig) *Client {
	c := &Client{clientConfig: *cfg, serverName: host, localName: localName, trace: cfg.trace, raw: conn}
	c.timeouts = cfg.timeouts.withDefaults()
	if c.chunkSize <= 0 {
		c.chunkSize = defaultChunkSize
	}
	if c.window <= 0 {
		c.window = defaultMaxInFlight
	}
	if c.windowOctets <= 0 {
		c.windowOctets = defaultMaxInFlightOctets
	}
	c.rr.maxLine, c.rr.maxReply = defaultMaxLineLength, defaultMaxReplySize
	if cfg.maxReplySize > 0 {
		c.rr.maxLine = max(min(cfg.maxReplySize, defaultMaxLineLength), minMaxLineLength)
		c.rr.maxReply = max(cfg.maxReplySize, c.rr.maxLine)
	}
	if tc, ok := conn.(*tls.Conn); ok {
		c.tls = true
		c.raw = tc.NetConn()
	}
	c.setConn(conn)
	return c
}

// setConn makes conn the connection in use, with a new Text sharing the
// engine's buffered reader and writer.
func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	dc := &deadlineConn{Conn: conn, c: c}
	c.Text = textproto.NewConn(dc)
	c.Text.Reader.R = bufio.NewReaderSize(dc, max(readBufferSize, c.rr.maxLine+2))
	c.Text.Writer.W = bufio.NewWriterSize(dc, writeBufferSize)
	c.rr.r = c.Text.Reader.R
	c.bw = c.Text.Writer.W
}

// deadlineConn refreshes the write deadline before each write while the
// Client is writing message data, so a stalled server is detected per block
// (RFC 5321 §4.5.3.2.5) rather than per message.
type deadlineConn struct {
	net.Conn
	c *Client
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	d.c.handoff() // the replies to what goes out now may come back at once
	// Every write gets a deadline of its own: the command timeout unless
	// message data is being written. A write outside flush (a pipelined
	// group or a Text line that fills the buffer) must neither block
	// forever on a peer that stopped reading nor inherit a deadline set
	// long before (RFC 5321 §4.5.3.2).
	if !d.c.callerConn {
		t := d.c.writeTimeout
		if t == 0 {
			t = d.c.timeouts.Command
		}
		d.Conn.SetWriteDeadline(d.c.deadline(t))
	}
	return d.Conn.Write(p)
}

// deadline returns now+timeout, or the call's context deadline if sooner;
// the zero time when neither applies.
func (c *Client) deadline(timeout time.Duration) time.Time {
	var d time.Time
	if timeout > 0 {
		d = time.Now().Add(timeout)
	}
	if !c.opDeadline.IsZero() && (d.IsZero() || c.opDeadline.Before(d)) {
		d = c.opDeadline
	}
	return d
}

// setReadDeadline bounds the next read, unless the connection's deadlines
// are the caller's.
func (c *Client) setReadDeadline(timeout time.Duration) {
	if !c.callerConn {
		c.conn.SetReadDeadline(c.deadline(timeout))
	}
}

// begin starts a blocking call bounded by ctx. The returned end must be
// called with the call's error; it returns the error to report.
func (c *Client) begin(ctx context.Context) (end func(error) error, err error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.batch != nil {
		return nil, errors.New("smtp: a Batch is in progress on this Client")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
	}
	c.opDeadline, _ = ctx.Deadline()
	// A trace that came with the context runs for this call only, before
	// the Client's own (WithClientTrace). A call made within another
	// (hello within Mail) keeps the trace the outer call set.
	restoreTrace := false
	if ct := ContextClientTrace(ctx); ct != nil && !c.callTrace {
		c.trace, c.callTrace, restoreTrace = ct.compose(c.clientConfig.trace), true, true
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		raw := c.raw
		stop = context.AfterFunc(ctx, func() {
			c.mu.Lock()
			c.cancel = context.Cause(ctx)
			c.mu.Unlock()
			raw.Close()
		})
	}
	deadline := c.opDeadline
	return func(err error) error {
		stopped := stop()
		c.opDeadline = time.Time{}
		if restoreTrace {
			c.trace, c.callTrace = c.clientConfig.trace, false
		}
		// The network deadline may fire a moment before the context's own
		// timer: past the context's deadline, the context ended the call.
		expired := !deadline.IsZero() && !time.Now().Before(deadline)
		if !stopped || err != nil && c.err != nil && (ctx.Err() != nil || expired) {
			// The context ended the call: report that, not the I/O error
			// it caused.
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			c.mu.Lock()
			if c.cancel != nil {
				cause = c.cancel
			}
			c.mu.Unlock()
			cerr := fmt.Errorf("smtp: %w", cause)
			c.err = nil // record the cancellation, not the I/O error it caused
			c.fail(cerr)
			if err != nil {
				return cerr
			}
			return nil
		}
		if c.err == nil && !c.callerConn {
			c.conn.SetDeadline(time.Time{})
		}
		return err
	}, nil
}

// fail makes the Client unusable after an I/O or protocol error: the
// connection is closed and every later call returns an error that wraps both
// ErrClosed and err. It returns err.
func (c *Client) fail(err error) error {
	c.mu.Lock()
	cause := c.cancel
	c.mu.Unlock()
	if cause != nil {
		// A context closed the connection: that is the reason, not the
		// I/O error it caused.
		err = fmt.Errorf("smtp: %w", cause)
	} else if c.closing != nil && !errors.Is(err, c.closing) {
		// RFC 5321 §3.8: the server said 421 and closed; its reply says
		// why the connection ended better than the EOF or reset after it.
		err = fmt.Errorf("%w (after %w)", err, c.closing)
	}
	if c.err == nil {
		c.err = fmt.Errorf("%w: %w", ErrClosed, err)
		// A Client from NewClient or Dial leaves the connection open, as
		// net/smtp's does, until Close or Quit; one from a Dialer closes
		// it now. A pump still reading needs the close to stop.
		if c.strict || c.pump != nil {
			c.connClosed = true
			c.raw.Close()
			c.conn.Close()
		}
	}
	return err
}

// greet reads the server's 220 greeting.
func (c *Client) greet(ctx context.Context) (err error) {
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	x := c.expect(command{verb: "greeting", expect: 220, timeout: c.timeouts.Greeting})
	if err := c.await(x); err != nil {
		return end(err)
	}
	return end(x.Err)
}

// Close closes the connection without sending QUIT. It returns the error of
// closing the connection, as net/smtp's does, or nil if the Client had
// already closed it after a failure or the connection was hijacked (see
// Hijack), which Close leaves open. A data phase in progress ends with it:
// its text is not delivered, as the final "." is never sent.
func (c *Client) Close() error {
	if w := c.openData; w != nil {
		c.openData = nil
		w.abandon()
	}
	if c.err == nil {
		c.err = ErrClosed
	}
	if c.connClosed || c.hijacked {
		return nil
	}
	return c.Text.Close()
}

// hello runs a hello exchange if needed.
func (c *Client) hello(ctx context.Context) error {
	if !c.didHello {
		c.didHello = true
		err := c.ehlo(ctx)
		if err != nil && !c.lmtp && (!c.strict || fallBackToHELO(err)) {
			// A Client from NewClient or Dial tries HELO after any
			// failure of EHLO, as net/smtp's does.
			err = c.helo(ctx)
		}
		c.helloError = err
	}
	return c.helloError
}

// fallBackToHELO reports whether an EHLO failure means the server does not
// know EHLO (RFC 5321 §3.2, RFC 1869 §4.5–4.7): any permanent negative reply.
// A transient reply (421) or a broken connection is returned as it is.
func fallBackToHELO(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code/100 == 5
}

// Hello sends a HELO or EHLO to the server as the given host name.
// Calling this method is only necessary if the client needs control
// over the host name used. The client will introduce itself as "localhost"
// automatically otherwise. If Hello is called, it must be called before
// any of the other methods.
//
// Hello returns ErrCRLF or ErrNUL for a bad name and an error if a hello was
// already sent; otherwise the error of the exchange, if both EHLO and HELO
// failed.
func (c *Client) Hello(localName string) error {
	return c.compatErr(c.HelloContext(context.Background(), localName))
}

// HelloContext is Hello bounded by ctx.
func (c *Client) HelloContext(ctx context.Context, localName string) error {
	if err := validateLine(localName); err != nil {
		return err
	}
	if c.didHello {
		return errors.New("smtp: Hello called after other methods")
	}
	c.localName = localName
	return c.hello(ctx)
}

// helo sends the HELO greeting to the server. It should be used only when the
// server does not support ehlo.
func (c *Client) helo(ctx context.Context) error {
	c.setExt(nil)
	_, err := c.simple(ctx, command{verb: "HELO", expect: 250}, "HELO %s", c.localName)
	return err
}

// ehlo sends the EHLO (extended hello) greeting to the server and records the
// extensions it lists (RFC 5321 §4.1.1.1), keywords in upper case.
func (c *Client) ehlo(ctx context.Context) error {
	verb := "EHLO"
	if c.lmtp {
		verb = "LHLO" // RFC 2033 §4.1
	}
	rep, err := c.simple(ctx, command{verb: verb, expect: 250}, verb+" %s", c.localName)
	if err != nil {
		return err
	}
	ext := parseEHLO(rep.Lines[1:])
	c.auth = nil
	if mechs, ok := ext["AUTH"]; ok {
		c.auth = strings.Split(mechs, " ")
	}
	c.setExt(ext)
	return nil
}

// simple runs one command alone as a blocking call bounded by ctx.
func (c *Client) simple(ctx context.Context, cmd command, format string, args ...any) (*Reply, error) {
	if cmd.timeout == 0 {
		cmd.timeout = c.timeouts.Command
	}
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := c.roundTrip(cmd, format, args...)
	return rep, end(err)
}

// StartTLS sends the STARTTLS command and encrypts all further communication.
// Only servers that advertise the STARTTLS extension support this function.
//
// After the handshake the Client forgets what it learned before, as RFC 3207
// §4.2 requires, and sends EHLO again. Bytes that arrive after the server's
// 220 and before the handshake are an attack (response injection): StartTLS
// then returns a textproto.ProtocolError (an error matching ErrProtocol from
// StartTLSContext) and the Client stops. A reply other than 220 returns a
// *textproto.Error (an *Error from StartTLSContext); a failed handshake
// returns the handshake's error and the Client stops.
func (c *Client) StartTLS(config *tls.Config) error {
	return c.compatErr(c.StartTLSContext(context.Background(), config))
}

// StartTLSContext is StartTLS bounded by ctx.
func (c *Client) StartTLSContext(ctx context.Context, config *tls.Config) error {
	if err := c.hello(ctx); err != nil {
		return err
	}
	if err := c.startTLS(ctx, config); err != nil {
		return err
	}
	return c.ehlo(ctx)
}

func (c *Client) startTLS(ctx context.Context, config *tls.Config) error {
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	return end(c.handshake(config))
}

func (c *Client) handshake(config *tls.Config) error {
	if _, err := c.roundTrip(command{verb: "STARTTLS", expect: 220, timeout: c.timeouts.Command}, "STARTTLS"); err != nil {
		return err
	}
	if n := c.rr.r.Buffered(); n > 0 {
		b, _ := c.rr.r.Peek(n)
		return c.fail(protocolError("data received after the STARTTLS 220 reply and before the TLS handshake (response injection, RFC 3207 §6)", b, nil))
	}
	tc := tls.Client(c.conn, config)
	if !c.callerConn {
		tc.SetDeadline(c.deadline(c.timeouts.Command))
	}
	err := tc.Handshake()
	if t := c.trace; t != nil && t.TLSHandshakeDone != nil {
		t.TLSHandshakeDone(tc.ConnectionState(), err)
	}
	if err != nil {
		return c.fail(netError("TLS handshake", err))
	}
	c.setConn(tc)
	c.tls = true
	c.setExt(nil)
	c.auth = nil
	return nil
}

// TLSConnectionState returns the client's TLS connection state.
// The return values are their zero values if [Client.StartTLS] did
// not succeed.
func (c *Client) TLSConnectionState() (state tls.ConnectionState, ok bool) {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return
	}
	return tc.ConnectionState(), true
}

// Verify checks the validity of an email address on the server.
// If Verify returns nil, the address is valid. A non-nil return
// does not necessarily indicate an invalid address. Many servers
// will not verify addresses for security reasons.
func (c *Client) Verify(addr string) error {
	return c.compatErr(c.VerifyContext(context.Background(), addr))
}

// VerifyContext is Verify bounded by ctx.
func (c *Client) VerifyContext(ctx context.Context, addr string) error {
	return c.addressCommand(ctx, addr, command{verb: "VRFY", expect: 250}, func() string { return "VRFY " + addr })
}

// addressCommand checks addr, says hello if need be, and sends the command
// line returns (built once the hello has told what the server offers).
func (c *Client) addressCommand(ctx context.Context, addr string, cmd command, line func() string) error {
	if err := validateLine(addr); err != nil {
		return err
	}
	if err := c.hello(ctx); err != nil {
		return err
	}
	_, err := c.simple(ctx, cmd, "%s", line())
	return err
}

// Mail issues a MAIL command to the server using the provided email address.
// If the server supports the 8BITMIME extension, Mail adds the BODY=8BITMIME
// parameter. If the server supports the SMTPUTF8 extension, Mail adds the
// SMTPUTF8 parameter.
// This initiates a mail transaction and is followed by one or more [Client.Rcpt] calls.
//
// Mail returns ErrCRLF or ErrNUL for a bad address, and a *textproto.Error
// if the server does not answer 250 (an *Error from MailContext).
func (c *Client) Mail(from string) error {
	return c.compatErr(c.MailContext(context.Background(), from))
}

// MailContext is Mail bounded by ctx.
func (c *Client) MailContext(ctx context.Context, from string) error {
	return c.addressCommand(ctx, from, command{verb: "MAIL", expect: 250, timeout: c.timeouts.Mail}, func() string { return c.mailLine(from) })
}

// mailLine returns net/smtp's MAIL command for from: with BODY=8BITMIME and
// SMTPUTF8 when the server offers them.
func (c *Client) mailLine(from string) string {
	line, _ := c.mailCommand(&Envelope{From: from}, -1, c.ext.has("SMTPUTF8"))
	return line
}

// Rcpt issues a RCPT command to the server using the provided email address.
// A call to Rcpt must be preceded by a call to [Client.Mail] and may be followed by
// a [Client.Data] call or another Rcpt call.
//
// Rcpt returns ErrCRLF or ErrNUL for a bad address, and a *textproto.Error
// unless the server answers 250 or 251 (an *Error from RcptContext).
func (c *Client) Rcpt(to string) error {
	return c.compatErr(c.RcptContext(context.Background(), to))
}

// RcptContext is Rcpt bounded by ctx.
func (c *Client) RcptContext(ctx context.Context, to string) error {
	if err := validateLine(to); err != nil {
		return err
	}
	line, _ := rcptCommand(c.ext, Recipient{Addr: to}) // no parameters: no error
	_, err := c.simple(ctx, command{verb: "RCPT", expect: 25, timeout: c.timeouts.Rcpt}, "%s", line)
	return err
}

// Reset sends the RSET command to the server, aborting the current mail
// transaction. It returns a *textproto.Error unless the server answers 250
// (an *Error from ResetContext).
func (c *Client) Reset() error {
	return c.compatErr(c.ResetContext(context.Background()))
}

// ResetContext is Reset bounded by ctx.
func (c *Client) ResetContext(ctx context.Context) error {
	if err := c.hello(ctx); err != nil {
		return err
	}
	_, err := c.simple(ctx, command{verb: "RSET", expect: 250}, "RSET")
	if err == nil {
		c.needRset = false
	}
	return err
}

// Noop sends the NOOP command to the server. It does nothing but check
// that the connection to the server is okay. It returns a *textproto.Error
// unless the server answers 250 (an *Error from NoopContext).
func (c *Client) Noop() error {
	return c.compatErr(c.NoopContext(context.Background()))
}

// NoopContext is Noop bounded by ctx.
func (c *Client) NoopContext(ctx context.Context) error {
	if err := c.hello(ctx); err != nil {
		return err
	}
	_, err := c.simple(ctx, command{verb: "NOOP", expect: 250}, "NOOP")
	return err
}

// Quit sends the QUIT command and closes the connection to the server.
// It returns a *textproto.Error unless the server answers 221 (an *Error
// from QuitContext); the connection is closed only after a 221, so call
// Close after an error, as with net/smtp.
func (c *Client) Quit() error {
	return c.compatErr(c.QuitContext(context.Background()))
}

// QuitContext is Quit bounded by ctx.
func (c *Client) QuitContext(ctx context.Context) error {
	c.hello(ctx) // ignore error; we're quitting anyhow
	if _, err := c.simple(ctx, command{verb: "QUIT", expect: 221}, "QUIT"); err != nil {
		return err
	}
	if c.err == nil {
		c.err = ErrClosed
	}
	return c.Text.Close()
}

// Extension reports whether an extension is support by the server.
// The extension name is case-insensitive. If the extension is supported,
// Extension also returns a string that contains any parameters the
// server specifies for the extension.
//
// On a Client from NewClient or Dial, Extension sends the hello first if it
// has not been sent; a Client from a Dialer has already sent it.
func (c *Client) Extension(ext string) (bool, string) {
	if err := c.hello(context.Background()); err != nil {
		return false, ""
	}
	if c.ext == nil {
		return false, ""
	}
	ext = strings.ToUpper(ext)
	param, ok := c.ext[ext]
	return ok, param
}
