// Package smtptest provides an in-process SMTP server for tests and demos.
//
// A Server listens on 127.0.0.1 on an ephemeral port and serves each
// connection on its own goroutine. It implements the server side of RFC 5321
// together with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME, DSN
// parameters, ENHANCEDSTATUSCODES (RFC 2034), CHUNKING/BINARYMIME (RFC 3030),
// CHECKPOINT (RFC 1845), STARTTLS (RFC 3207), AUTH PLAIN and LOGIN (RFC 4954)
// and SMTPUTF8 parameters. Received messages, per-connection transcripts and
// flush counts are recorded for inspection, and Faults inject misbehaviour.
// With Config.LMTP it speaks LMTP (RFC 2033) instead.
//
// Replies are buffered and flushed only when the server is about to block
// reading from the client (no complete command left in its input buffer), as
// real pipelining servers do, so the number of flushes equals the number of
// round trips a client needed.
//
// Pseudo-verbs: besides real command verbs, fault and override keys may name
// "GREETING" (the connection greeting), "." (the end of message data: the
// terminating dot of DATA, or the BDAT LAST chunk) and, in LMTP mode,
// "LMTP" (one recipient's reply after the end of message data).
//
// LMTP mode (Config.LMTP): the greeting reads "220 <host> LMTP smtptest";
// LHLO replaces EHLO (same reply and extension list), and EHLO and HELO are
// answered "500 5.5.1 this is an LMTP server, use LHLO". DATA without an
// accepted recipient fails with 503. After DATA's final "." and after BDAT
// LAST, the server sends one reply per recipient accepted at RCPT (250),
// in RCPT order, duplicates included (RFC 2033 sections 4.2 and 4.3):
//
//	250 2.1.5 <addr> delivered
//	452 4.2.2 <addr> mailbox full        (local part starts with "lmtpfail")
//	550 5.1.1 <addr> mailbox unavailable (local part starts with "lmtpreject")
//
// (enhanced codes only if ENHANCEDSTATUSCODES is advertised). The
// "LMTP" pseudo-verb overrides a recipient's reply: Config.Handler gets
// Command{Verb: "LMTP", Line: addr} for each recipient, then Faults.Reply["LMTP"]
// applies to all; the override text is the complete reply, and the
// recipient counts as delivered iff it starts with '2'. A BDAT LAST with no
// accepted recipient gets no reply at all (RFC 2033 section 4.3). Failures
// of the whole message after its data (size limit, a failed BDAT chunk
// answered by BDAT LAST) are repeated once per recipient. CHECKPOINT is not
// combined with LMTP: it is never advertised in LMTP mode, so MAIL TRANSID=
// gets 555.
//
// Historic commands (RFC 821, RFC 772), so that a client's use of them is a
// real conversation:
//
//   - SEND, SOML, SAML (RFC 821 §3.4) begin a transaction exactly as MAIL
//     does when Extensions lists the verb (which also advertises it, RFC
//     5321 F.6); otherwise 502. Message.Verb records the verb. With SEND,
//     a recipient whose local part starts with "away" gets 450 (not at a
//     terminal).
//   - EXPN (RFC 5321 §3.5) with Config.Lists: 250, one member per line;
//     252 for a list without members; 550 for an unknown list; 501 without
//     an argument; 502 when no lists are configured.
//   - HELP: a multi-line 214; "HELP <command>" gives its syntax (214), an
//     unknown topic 504.
//   - TURN (RFC 821 §3.8) with Config.Turn: 250, then the server becomes
//     the sender and runs the Turn script (see Turn and Server.TurnLog);
//     502 without a script, 503 before HELO or within a transaction.
//   - MRSQ and MRCP (RFC 772) with Config.MRSQ: "MRSQ" 200 (no scheme),
//     "MRSQ ?" "215 <preferred scheme> ...", "MRSQ R|T" 200 or 501, each
//     resetting the stored names and text. While a scheme is selected,
//     "MAIL FROM:<sender>" is RFC 772's: 354, then the text. Under R, MRCP
//     stores a name (200; 452 when Config.MRSQTable is full) and MAIL sends
//     the text to all of them (one Message, Via "MAIL", 550 "Null
//     recipient" if none); under T, MAIL stores the text and each MRCP
//     delivers it (250, one Message each, Via "MRCP"). MRCP without a
//     scheme gets 503. A name whose local part starts with "reject" gets
//     553, "temp" 450.
//   - Source routes (RFC 821 §3.6; RFC 772's "@A,@B,user@host" too) are
//     accepted in MAIL, RCPT and MRCP and recorded as given; the "reject",
//     "temp" and "away" conventions look at the mailbox after the route.
//
// Close stops the listener and every connection goroutine and waits for them.
package smtptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHostname is the name used when Config.Hostname is empty.
const DefaultHostname = "smtptest.local"

// DefaultMaxLineLength is the command line limit used when
// Config.MaxLineLength is zero.
const DefaultMaxLineLength = 64 << 10

// DefaultMaxMessageSize bounds stored message data when Config.MaxMessageSize
// is zero and no SIZE limit is advertised.
const DefaultMaxMessageSize = 64 << 20

// DefaultExtensions returns the EHLO keywords advertised when
// Config.Extensions is nil.
func DefaultExtensions() []string {
	return []string{
		"PIPELINING",
		"8BITMIME",
		"ENHANCEDSTATUSCODES",
		"SIZE 10485760",
		"DSN",
		"CHUNKING",
		"CHECKPOINT",
		"STARTTLS",
		"AUTH PLAIN LOGIN",
	}
}

// Config configures a Server. The zero value is usable.
type Config struct {
	// Certificate is the certificate STARTTLS presents; nil means the
	// shared test certificate for "localhost" and 127.0.0.1.
	Certificate *tls.Certificate
	// ListenAddr is the address to listen on; "" means "127.0.0.1:0". Any
	// loopback address serves, so that several servers can share a port
	// as mail exchangers of one domain do.
	ListenAddr string
	// Hostname is used in the greeting and the EHLO/HELO replies.
	// Default DefaultHostname.
	Hostname string
	// LMTP makes the server speak LMTP (RFC 2033) instead of SMTP: see the
	// package documentation. CHECKPOINT is dropped from Extensions. The
	// RFC 2033 section 5 requirement of PIPELINING and ENHANCEDSTATUSCODES
	// is not enforced: Extensions still decides.
	LMTP bool
	// Extensions lists the EHLO keywords advertised, in order, each with its
	// parameters (e.g. "SIZE 10485760", "AUTH PLAIN LOGIN"). Nil means
	// DefaultExtensions(); a non-nil empty slice advertises nothing. The
	// list also decides which commands and MAIL/RCPT parameters are
	// accepted, whether enhanced status codes are used (ENHANCEDSTATUSCODES)
	// and the SIZE limit. STARTTLS is not advertised once TLS is active.
	Extensions []string
	// NoEHLO makes EHLO fail with "502 5.5.1" (a HELO-only server). ESMTP
	// parameters and extension commands are then refused, since no
	// extension was advertised. In LMTP mode it makes LHLO fail likewise.
	NoEHLO bool
	// Users holds AUTH PLAIN/LOGIN credentials (user -> password).
	// Nil accepts nobody (535).
	Users map[string]string
	// RequireAuth makes MAIL fail with 530 5.7.0 until AUTH succeeded.
	RequireAuth bool
	// RequireTLS makes MAIL fail with 530 5.7.0 and AUTH with 538 5.7.11
	// until STARTTLS succeeded.
	RequireTLS bool
	// MaxLineLength bounds command lines (default DefaultMaxLineLength);
	// longer lines are discarded and answered "500 5.5.2 line too long".
	MaxLineLength int
	// MaxMessageSize bounds the stored message data. Default: the advertised
	// SIZE limit if any, else DefaultMaxMessageSize. Larger messages are
	// read and discarded and answered "552 5.3.4".
	MaxMessageSize int64
	// ReplyDelay is slept before every reply (latency emulation).
	ReplyDelay time.Duration
	// Faults applies to every connection without an entry in ConnFaults.
	Faults Faults
	// ConnFaults replaces Faults for the connection with the given 1-based
	// index (see Server.Conns), e.g. {1: {CloseAfterDataOctets: 1000}} cuts
	// the first connection and lets the reconnection succeed.
	ConnFaults map[int]Faults
	// Handler, if set, is consulted for every command and pseudo-verb before
	// Faults.Reply; returning ok overrides the reply exactly as an entry in
	// Faults.Reply would. It is called concurrently from connection
	// goroutines.
	Handler func(cmd Command) (reply string, ok bool)
	// Checkpoints is the RFC 1845 state store; nil gives the Server a new
	// private one. Share a store between Servers to survive a restart.
	Checkpoints *CheckpointStore
	// Logf, if set, receives every transcript line. It must remain usable
	// until Close returns (t.Logf qualifies if Close runs before the test
	// ends).
	Logf func(format string, args ...any)

	// Lists holds the mailing lists EXPN expands (RFC 821 §3.3, RFC 5321
	// §3.5): list name (matched case-insensitively) -> one reply line per
	// member, "Full Name <mailbox>" or "<mailbox>" or a bare mailbox. When
	// Lists is set, or "EXPN" is in Extensions, EXPN is implemented and
	// advertised in the EHLO reply (RFC 5321 §3.5.2); otherwise it is
	// answered 502. See the package documentation for the replies.
	Lists map[string][]string
	// Turn, if set, makes the server accept TURN (RFC 821 §3.8) and then
	// play the sender with this script; nil answers TURN with 502. "TURN"
	// is then advertised in the EHLO reply (RFC 1869 §5).
	Turn *Turn
	// MRSQ lists the RFC 772 MRSQ schemes the server implements, preferred
	// first: "R", "T", "RT" or "TR". Empty answers MRSQ and MRCP with 502.
	MRSQ string
	// MRSQTable, if > 0, is the size of the recipients-first (MRSQ R)
	// table: an MRCP beyond it is answered "452 Recipient table full"
	// (RFC 772).
	MRSQTable int
}

// Turn is the transaction the server sends after accepting TURN (RFC 821
// §3.8): it waits for the client's 220 greeting, then sends HELO, the
// Commands, MAIL FROM, one RCPT TO per recipient, DATA, the dot-stuffed
// Data and QUIT, waiting for each reply (see Server.TurnLog). A refused
// MAIL, no accepted recipient, or a DATA not answered 354 skips to QUIT;
// a greeting other than 220 ends the connection without a word. The
// connection is closed after the reply to QUIT.
type Turn struct {
	// Helo is the HELO argument; default Config.Hostname.
	Helo string
	// Commands are raw command lines sent after HELO and before MAIL,
	// each answered before the next (e.g. "NOOP", "TURN", "XYZZY").
	Commands []string
	// From is the reverse-path without angle brackets ("" for <>).
	From string
	// To lists the forward-paths; empty sends no transaction at all.
	To []string
	// Data is the message; lines should end in CRLF (a missing final
	// CRLF is added). It is dot-stuffed on the wire.
	Data string
}

// TurnStep is one exchange of the server-as-sender after TURN.
type TurnStep struct {
	// Command is the line the server sent: "" for the client's greeting,
	// "." for the end of the message data.
	Command string
	// Reply is the client's reply, its lines joined by "\n", or "" if
	// none was read (the connection ended).
	Reply string
}

// Command describes a command (or pseudo-verb) passed to Config.Handler.
type Command struct {
	// Conn is the 1-based connection index.
	Conn int
	// Verb is the upper-cased command verb, or "GREETING", "." or "LMTP".
	Verb string
	// Line is the command line as received, without CRLF ("" for
	// GREETING, "." for the end of message data, the recipient address
	// without angle brackets for LMTP).
	Line string
}

// Faults describes misbehaviour to inject. Verb keys are case-insensitive
// and may be a command verb or a pseudo-verb ("GREETING", "."). Each fault
// that closes or stalls the connection fires at most once per connection by
// nature; use Config.ConnFaults to target particular connections.
type Faults struct {
	// CloseAfterCommand closes the connection as soon as a command with
	// this verb has been received, without executing or answering it.
	// Replies already buffered for earlier commands are flushed first.
	// "." closes after the whole message data was received but before it
	// is processed (all of it stays in the checkpoint store);
	// "GREETING" closes instead of greeting.
	CloseAfterCommand string
	// CloseBeforeReply executes the command with this verb completely
	// (state changes, message stored, checkpoint marked complete) but
	// closes the connection instead of sending its reply; earlier buffered
	// replies are flushed first. With "." this simulates a final 250 lost
	// in transit.
	CloseBeforeReply string
	// CloseAfterReply sends the reply to the command with this verb (its
	// normal reply or an override from Reply) and then closes the
	// connection, as a server does after a 421 (RFC 5321 §3.8).
	CloseAfterReply string
	// CloseAfterDataOctets, if > 0, closes the connection abruptly once
	// this many octets of message data of one transaction have been
	// received: counted on the wire (dot-stuffed, terminator included)
	// after DATA's 354, and as chunk payload octets for BDAT, summed over
	// the transaction's data commands on this connection. It does not fire
	// if the data ended within those octets. Data received up to the cut
	// stays in the checkpoint store when the transaction has a TRANSID.
	CloseAfterDataOctets int64
	// Stall makes the server never send the reply to this verb (flushing
	// earlier replies first) and block until Close; "GREETING" never
	// greets.
	Stall string
	// Delay is slept before every reply to the given verb (in addition to
	// Config.ReplyDelay); "GREETING" delays the greeting. "LMTP" delays
	// each per-recipient reply after the data; when it is set, replies
	// already queued are flushed before each such delay after the first
	// (RFC 2033 section 5), which adds to Server.Flushes.
	Delay map[string]time.Duration
	// Reply maps a verb to raw reply text sent instead of the normal reply
	// (CRLF is appended if the text does not end in "\n"; it may be
	// multi-line or malformed). If the override's first character is the
	// class of the command's normal success reply ('2'; '3' for DATA; '2'
	// or '3' for AUTH) the command is executed normally and only its first
	// reply's text is replaced; otherwise the command is not executed (a
	// BDAT chunk is still read and discarded, and fails the transaction).
	// An empty string sends nothing. For "GREETING", a 4xx override is
	// followed by closing, any other non-2xx puts the session in the RFC
	// 5321 section 3.1 state where everything but QUIT gets 503.
	Reply map[string]string
	// InjectAfterSTARTTLS is written in the same packet right after the
	// "220" reply to STARTTLS, before the TLS handshake (the RFC 3207
	// response-injection attack).
	InjectAfterSTARTTLS string
	// LMTPCloseAfterReplies, if > 0, closes the connection in LMTP mode
	// after this many of the per-recipient replies following the message
	// data, when there are more (the message is stored as usual: the
	// RFC 2033 section 5 partial-reply case).
	LMTPCloseAfterReplies int
	// IdleCloseAfterMessage, if > 0, makes the server close the connection
	// cleanly (FIN, as after QUIT) when the client sends nothing for this
	// long after the server flushed the 250 reply accepting a message (the
	// end of DATA, or BDAT LAST), as a server's idle timeout would. Any
	// input within the period disarms it until the next accepted message.
	// The close is recorded as "* close: fault IdleCloseAfterMessage".
	IdleCloseAfterMessage time.Duration
}

// Message is a message accepted by the server (final 250 sent or about to
// be).
type Message struct {
	// From is the reverse-path without angle brackets ("" for <>).
	From string
	// To holds the accepted forward-paths without angle brackets. In LMTP
	// mode only those whose reply after the data was 2xx.
	To []string
	// MailParams holds the MAIL parameters as sent ("SIZE=123", "SMTPUTF8").
	MailParams []string
	// RcptParams[i] holds the RCPT parameters of To[i].
	RcptParams [][]string
	// Data is the message content: for DATA un-stuffed, without the
	// terminating ".\r\n" (the final line's CRLF is kept); for BDAT the
	// concatenated chunks. A resumed transaction's data includes the
	// octets stored before the interruption.
	Data []byte
	// Via is the command that transferred the final part of the data:
	// "DATA" or "BDAT"; with MRSQ (RFC 772), "MAIL" for the text of the
	// recipients-first scheme and "MRCP" for the text-first scheme.
	Via string
	// TransID is the MAIL TRANSID value as sent (with angle brackets), or "".
	TransID string
	// ResumedAt lists the octet offsets announced in 355 replies while the
	// transaction was resumed (empty if it never was).
	ResumedAt []int64
	// QueueID is the id in the final reply ("Q1", "Q2", ...); LMTP
	// replies do not show it.
	QueueID string
	// At is when the server accepted it.
	At time.Time
	// ConnIndex is the 1-based index of the connection that completed it.
	ConnIndex int
	// Helo is the EHLO/HELO (LHLO) argument of that connection.
	Helo string
	// TLS reports whether that connection was using TLS.
	TLS bool
	// AuthUser is the authenticated user on that connection, or "".
	AuthUser string
	// Verb is the command that began the transaction: "MAIL", or "SEND",
	// "SOML" or "SAML" (RFC 821 §3.4).
	Verb string
	// Scheme is the RFC 772 MRSQ scheme that delivered the message, "R"
	// (recipients first: To holds every name stored by MRCP) or "T" (text
	// first: one Message per accepted MRCP, Via "MRCP"); "" otherwise.
	Scheme string
	// LMTPReplies holds, in LMTP mode, the reply sent after the data for
	// each recipient accepted at RCPT, in RCPT order, without the final
	// CRLF (e.g. "250 2.1.5 <a@example.org> delivered"). An LMTP message
	// is stored only if at least one of them was 2xx.
	LMTPReplies []string
}

// Server is a running test SMTP server.
type Server struct {
	// Addr is the "127.0.0.1:port" address the server listens on.
	Addr string

	cfg      Config
	ext      []string
	enh      bool
	sizeMax  int64
	maxMsg   int64
	maxLine  int
	store    *CheckpointStore
	ln       net.Listener
	tlsCert  tls.Certificate
	done     chan struct{}
	wg       sync.WaitGroup
	queueSeq atomic.Int64

	mu       sync.Mutex
	closed   bool
	faults   Faults
	conns    []*connRecord
	spans    []Span
	messages []Message
	open     int // connections being served now
	maxOpen  int // the most open at once
}

type connRecord struct {
	span       int // 1 + the index in spans of its latest transaction, or 0
	raw        net.Conn
	transcript []string
	flushes    int
	turn       []TurnStep
}

var tokenSeq atomic.Uint64

// setExtensions sets the EHLO keywords from the Config: its Extensions or
// the defaults, without CHECKPOINT for LMTP, with EXPN and TURN when the
// server has lists or a TURN script.
func (s *Server) setExtensions() {
	s.ext = s.cfg.Extensions
	if s.ext == nil {
		s.ext = DefaultExtensions()
	}
	s.ext = append([]string(nil), s.ext...)
	if s.cfg.LMTP {
		// CHECKPOINT is not combined with LMTP.
		s.ext = slices.DeleteFunc(s.ext, func(e string) bool {
			kw, _, _ := strings.Cut(e, " ")
			return strings.EqualFold(kw, "CHECKPOINT")
		})
	}
	advertise := func(kw string) {
		if !slices.ContainsFunc(s.ext, func(e string) bool {
			k, _, _ := strings.Cut(e, " ")
			return strings.EqualFold(k, kw)
		}) {
			s.ext = append(s.ext, kw)
		}
	}
	if s.cfg.Lists != nil {
		advertise("EXPN")
	}
	if s.cfg.Turn != nil {
		advertise("TURN")
	}
}

// NewServer starts a server listening on Config.ListenAddr, 127.0.0.1:0 by
// default.
func NewServer(cfg Config) (*Server, error) {
	cert, _, err := loadCert()
	if err != nil {
		return nil, fmt.Errorf("smtptest: generating certificate: %w", err)
	}
	if cfg.Certificate != nil {
		cert = *cfg.Certificate
	}
	if cfg.Hostname == "" {
		cfg.Hostname = DefaultHostname
	}
	s := &Server{
		cfg:     cfg,
		ext:     cfg.Extensions,
		maxLine: cfg.MaxLineLength,
		store:   cfg.Checkpoints,
		tlsCert: cert,
		done:    make(chan struct{}),
		faults:  cfg.Faults,
	}
	s.setExtensions()
	if s.maxLine <= 0 {
		s.maxLine = DefaultMaxLineLength
	}
	if s.store == nil {
		s.store = NewCheckpointStore()
	}
	for _, e := range s.ext {
		kw, param, _ := strings.Cut(e, " ")
		switch strings.ToUpper(kw) {
		case "ENHANCEDSTATUSCODES":
			s.enh = true
		case "SIZE":
			if n, err := strconv.ParseInt(strings.TrimSpace(param), 10, 64); err == nil && n > 0 {
				s.sizeMax = n
			}
		}
	}
	s.maxMsg = cfg.MaxMessageSize
	if s.maxMsg <= 0 {
		s.maxMsg = s.sizeMax
	}
	if s.maxMsg <= 0 {
		s.maxMsg = DefaultMaxMessageSize
	}
	listen := cfg.ListenAddr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("smtptest: %w", err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns = append(s.conns, &connRecord{raw: nc})
		idx := len(s.conns)
		f, ok := s.cfg.ConnFaults[idx]
		if !ok {
			f = s.faults
		}
		s.wg.Add(1)
		s.mu.Unlock()
		c := newConn(s, nc, idx, f)
		go c.serve()
	}
}

// Close stops the listener, closes every connection (ending stalls and
// delays) and waits for all server goroutines to exit. It is safe to call
// more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for _, r := range s.conns {
		r.raw.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// SetFaults replaces Config.Faults for connections accepted from now on
// (entries in Config.ConnFaults still take precedence).
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Messages returns a copy of the completed messages, in completion order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		out[i] = m.clone()
	}
	return out
}

func (m Message) clone() Message {
	m.To = append([]string(nil), m.To...)
	m.MailParams = append([]string(nil), m.MailParams...)
	rp := make([][]string, len(m.RcptParams))
	for i, p := range m.RcptParams {
		rp[i] = append([]string(nil), p...)
	}
	m.RcptParams = rp
	m.Data = append([]byte(nil), m.Data...)
	m.ResumedAt = append([]int64(nil), m.ResumedAt...)
	m.LMTPReplies = append([]string(nil), m.LMTPReplies...)
	return m
}

// Conns returns the number of connections accepted so far. Connections are
// numbered from 1 in accept order; the count includes a connection before
// its greeting is sent.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Transcript returns the transcript of connection conn (1-based), or nil if
// there is no such connection. Lines are prefixed "C: " (a command line as
// received, AUTH responses included verbatim), "S: " (one reply line as
// queued for sending) or "* " (an event: "* flush", "* tls ...",
// "* close ..." and the like). Message data is summarized as
// "C: <data N octets>" or "C: <chunk N octets>" (wire octets).
func (s *Server) Transcript(conn int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn < 1 || conn > len(s.conns) {
		return nil
	}
	return append([]string(nil), s.conns[conn-1].transcript...)
}

// Commands returns what the client sent on connection conn (1-based), in
// order: the "C: " lines of its Transcript without the prefix, message data
// summarized as "<data N octets>" or "<chunk N octets>".
func (s *Server) Commands(conn int) []string {
	var out []string
	for _, l := range s.Transcript(conn) {
		if c, ok := strings.CutPrefix(l, "C: "); ok {
			out = append(out, c)
		}
	}
	return out
}

// Flushes returns how many times the server flushed buffered replies to
// connection conn (1-based), i.e. the number of server-to-client turnarounds
// including the greeting; conn 0 returns the total over all connections.
// Only flushes that wrote something are counted.
func (s *Server) Flushes(conn int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn == 0 {
		n := 0
		for _, r := range s.conns {
			n += r.flushes
		}
		return n
	}
	if conn < 1 || conn > len(s.conns) {
		return 0
	}
	return s.conns[conn-1].flushes
}

// TurnLog returns the exchanges of connection conn (1-based) after the
// server accepted TURN and became the sender, in order; nil if it never did.
func (s *Server) TurnLog(conn int) []TurnStep {
	s.mu.Lock()
	defer s.mu.Unlock()
	if conn < 1 || conn > len(s.conns) {
		return nil
	}
	return append([]TurnStep(nil), s.conns[conn-1].turn...)
}

func (s *Server) addTurnStep(conn int, st TurnStep) {
	s.mu.Lock()
	s.conns[conn-1].turn = append(s.conns[conn-1].turn, st)
	s.mu.Unlock()
}

// Checkpoints returns the CHECKPOINT state store in use.
func (s *Server) Checkpoints() *CheckpointStore { return s.store }

// Certificate returns the server's self-signed certificate (valid for
// "localhost", 127.0.0.1 and ::1; shared by all Servers in the process).
func (s *Server) Certificate() *x509.Certificate { return s.tlsCert.Leaf }

// RootCAs returns a new pool containing the server's certificate.
func (s *Server) RootCAs() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.tlsCert.Leaf)
	return p
}

// ClientTLSConfig returns a client configuration that trusts the server's
// certificate, with ServerName "localhost".
func (s *Server) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

func (s *Server) record(conn int, line string) {
	s.mu.Lock()
	s.conns[conn-1].transcript = append(s.conns[conn-1].transcript, line)
	s.mu.Unlock()
	if s.cfg.Logf != nil {
		s.cfg.Logf("smtptest[%d] %s", conn, line)
	}
}

// A Span is the time one connection worked on one transaction, as the
// server saw it: from its MAIL to the last input the connection sent before
// its next MAIL or its end.
type Span struct {
	Conn       int    // the connection's 1-based index
	TransID    string // the MAIL TRANSID, or ""
	Start, End time.Time
	// Aborted reports that the server cut the connection, still open,
	// because another connection took its TRANSID over (RFC 1845 §3): two
	// clients were on one transaction at once.
	Aborted bool
}

// Spans returns every transaction's span, in the order their MAIL came.
func (s *Server) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}

// beginSpan starts the span of a transaction the connection's MAIL began.
func (s *Server) beginSpan(conn int, transID string) {
	now := time.Now()
	s.mu.Lock()
	s.spans = append(s.spans, Span{Conn: conn, TransID: transID, Start: now, End: now})
	s.conns[conn-1].span = len(s.spans)
	s.mu.Unlock()
}

// noteAborted marks the connection's current span aborted.
func (s *Server) noteAborted(conn int) {
	s.mu.Lock()
	if i := s.conns[conn-1].span; i > 0 {
		s.spans[i-1].Aborted = true
	}
	s.mu.Unlock()
}

// noteInput extends the connection's current span to now.
func (s *Server) noteInput(conn int) {
	now := time.Now()
	s.mu.Lock()
	if i := s.conns[conn-1].span; i > 0 {
		s.spans[i-1].End = now
	}
	s.mu.Unlock()
}

func (s *Server) noteFlush(conn int) {
	s.mu.Lock()
	s.conns[conn-1].flushes++
	s.mu.Unlock()
}

func (s *Server) addMessage(m Message) {
	s.mu.Lock()
	m.At = time.Now() // under the lock: the messages stay in time order
	s.messages = append(s.messages, m)
	s.mu.Unlock()
}

// connOpened and connClosed count the connections being served.
func (s *Server) connOpened() {
	s.mu.Lock()
	s.open++
	s.maxOpen = max(s.maxOpen, s.open)
	s.mu.Unlock()
}

func (s *Server) connClosed() {
	s.mu.Lock()
	s.open--
	s.mu.Unlock()
}

// MaxOpen returns the most connections the server has served at once.
func (s *Server) MaxOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxOpen
}

// MaxPerSecond returns the most messages the server accepted within any
// one second (a sliding window over the accept times).
func (s *Server) MaxPerSecond() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	most, j := 0, 0
	for i, m := range s.messages {
		for m.At.Sub(s.messages[j].At) >= time.Second {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
