package smtptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resmtp/smtp/internal/pathscan"
)

// errClose ends a connection.
var errClose = errors.New("smtptest: close connection")

// errLineTooLong reports a command line over the limit (already discarded).
var errLineTooLong = errors.New("smtptest: line too long")

type conn struct {
	s     *Server
	idx   int
	token uint64
	raw   net.Conn
	nc    net.Conn // raw, or the TLS connection
	r     *bufio.Reader
	w     *bufio.Writer
	f     Faults

	kill     chan struct{}
	killOnce sync.Once
	finished atomic.Bool // serve has returned

	pending map[string]string // verb -> override replacing its next reply

	greetingRejected bool
	greeted          bool // HELO, EHLO or LHLO accepted
	ehlo             bool
	helo             string
	sessExt          map[string]string // advertised in this session: keyword -> params
	tls              bool
	authUser         string
	authed           bool

	idleArmed bool // a message was just accepted (IdleCloseAfterMessage)

	tx       *transaction
	cpKey    string // TRANSID of a checkpoint entry this connection owns
	dataWire int64  // data octets of the current transaction (fault counter)

	mrsq      string       // RFC 772 scheme selected: "", "R" or "T"
	mrsqRcpts []string     // MRSQ R: names stored by MRCP
	mrsqText  *transaction // MRSQ T: the stored message text
}

type transaction struct {
	verb         string // MAIL, SEND, SOML or SAML
	scheme       string // RFC 772 MRSQ scheme, or ""
	from         string
	mailParams   []string
	to           []string
	rcptParams   [][]string
	body         string
	smtputf8     bool
	transID      string
	rcptAttempts int
	data         []byte
	via          string
	bdat         bool // BDAT used in this transaction on this connection
	failed       bool // a BDAT failed; later chunks are discarded
	tooBig       bool // data exceeded the size limit
	complete     bool // resumed a transaction that had already completed
	queueID      string
	extra        int64 // octets received for a complete transaction
	resumedAt    []int64
}

func newConn(s *Server, nc net.Conn, idx int, f Faults) *conn {
	c := &conn{
		s:       s,
		idx:     idx,
		token:   tokenSeq.Add(1),
		raw:     nc,
		nc:      nc,
		f:       normalizeFaults(f),
		kill:    make(chan struct{}),
		pending: make(map[string]string),
	}
	c.r = bufio.NewReaderSize(flushReader{c}, 4096)
	c.w = bufio.NewWriterSize(nc, 64<<10)
	return c
}

func normalizeFaults(f Faults) Faults {
	f.CloseAfterCommand = strings.ToUpper(f.CloseAfterCommand)
	f.CloseBeforeReply = strings.ToUpper(f.CloseBeforeReply)
	f.Stall = strings.ToUpper(f.Stall)
	if f.Delay != nil {
		d := make(map[string]time.Duration, len(f.Delay))
		for k, v := range f.Delay {
			d[strings.ToUpper(k)] = v
		}
		f.Delay = d
	}
	if f.Reply != nil {
		r := make(map[string]string, len(f.Reply))
		for k, v := range f.Reply {
			r[strings.ToUpper(k)] = v
		}
		f.Reply = r
	}
	return f
}

// flushReader flushes pending replies before every read from the network,
// i.e. exactly when the server is about to block waiting for input.
type flushReader struct{ c *conn }

func (fr flushReader) Read(p []byte) (int, error) {
	if err := fr.c.flush(); err != nil {
		return 0, err
	}
	n, err := fr.c.nc.Read(p)
	if n > 0 {
		fr.c.s.noteInput(fr.c.idx)
	}
	return n, err
}

func (c *conn) flush() error {
	if c.w.Buffered() == 0 {
		return nil
	}
	c.record("* flush")
	c.s.noteFlush(c.idx)
	return c.w.Flush()
}

func (c *conn) record(line string) { c.s.record(c.idx, line) }

// abort closes the connection from another goroutine (checkpoint takeover).
func (c *conn) abort() {
	c.killOnce.Do(func() {
		if !c.finished.Load() {
			c.s.noteAborted(c.idx)
		}
		close(c.kill)
		c.raw.Close()
	})
}

// sleep waits d, returning false if the server or connection is closing.
func (c *conn) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.done:
		return false
	case <-c.kill:
		return false
	}
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	c.s.connOpened()
	defer c.s.connClosed()
	defer c.raw.Close()
	defer c.finished.Store(true)
	c.record("* connect " + c.raw.RemoteAddr().String())
	err := c.greet()
	for err == nil {
		var line string
		line, err = c.readCommand()
		if err == errLineTooLong {
			c.record("C: <line too long, discarded>")
			err = c.reply("", 500, "5.5.2", "Error: line too long")
			continue
		}
		if err != nil {
			break
		}
		c.record("C: " + line)
		err = c.dispatch(line)
		clear(c.pending)
	}
	if err != errClose {
		c.record("* close: " + err.Error())
	}
}

// readCommand reads the next command line like readLine, first applying
// Faults.IdleCloseAfterMessage if a message was just accepted.
func (c *conn) readCommand() (string, error) {
	idle := c.f.IdleCloseAfterMessage
	if !c.idleArmed || idle <= 0 {
		return c.readLine()
	}
	c.idleArmed = false
	if c.r.Buffered() > 0 {
		return c.readLine() // the client has already sent more
	}
	if err := c.flush(); err != nil {
		return "", err
	}
	if err := c.nc.SetReadDeadline(time.Now().Add(idle)); err != nil {
		return "", err
	}
	_, err := c.r.Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.record(fmt.Sprintf("* close: fault IdleCloseAfterMessage (idle %v)", idle))
		return "", errClose
	}
	if err != nil {
		return "", err
	}
	if err := c.nc.SetReadDeadline(time.Time{}); err != nil {
		return "", err
	}
	return c.readLine()
}

// readLine reads one command line, without its line ending.
func (c *conn) readLine() (string, error) {
	var buf []byte
	tooLong := false
	for {
		frag, err := c.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(frag) > c.s.maxLine+2 {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if tooLong {
		return "", errLineTooLong
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	if len(buf) > c.s.maxLine {
		return "", errLineTooLong
	}
	return string(buf), nil
}

// --- hooks -------------------------------------------------------------

// received applies CloseAfterCommand for verb.
func (c *conn) received(verb string) error {
	if c.f.CloseAfterCommand != "" && c.f.CloseAfterCommand == verb {
		c.flush()
		c.record("* close: fault CloseAfterCommand " + verb)
		return errClose
	}
	return nil
}

// override returns the raw override reply for verb, if any.
func (c *conn) override(verb, line string) (string, bool) {
	if h := c.s.cfg.Handler; h != nil {
		if r, ok := h(Command{Conn: c.idx, Verb: verb, Line: line}); ok {
			return r, true
		}
	}
	r, ok := c.f.Reply[verb]
	return r, ok
}

// checkOverride applies an override for verb. It returns handled=true if
// the command must not be executed (the override was sent). Otherwise an
// override, if any, is queued to replace the command's first reply.
func (c *conn) checkOverride(verb, line, classes string) (handled bool, err error) {
	raw, ok := c.override(verb, line)
	if !ok {
		return false, nil
	}
	if raw != "" && strings.IndexByte(classes, raw[0]) >= 0 {
		c.pending[verb] = raw
		return false, nil
	}
	c.record("* override " + verb)
	return true, c.sendRaw(raw, verb)
}

func successClasses(verb string) string {
	switch verb {
	case "DATA":
		return "3"
	case "AUTH":
		return "23"
	}
	return "2"
}

// sendRaw queues raw (a complete reply) for sending, applying overrides,
// Stall, Delay and CloseBeforeReply for the given verbs.
func (c *conn) sendRaw(raw string, verbs ...string) error {
	for _, v := range verbs {
		if p, ok := c.pending[v]; ok {
			delete(c.pending, v)
			c.record("* override " + v)
			raw = p
			break
		}
	}
	d := c.s.cfg.ReplyDelay
	for _, v := range verbs {
		d += c.f.Delay[v]
	}
	for _, v := range verbs {
		if v != "" && c.f.Stall == v {
			c.flush()
			c.record("* stall " + v)
			select {
			case <-c.s.done:
			case <-c.kill:
			}
			return errClose
		}
	}
	if !c.sleep(d) {
		return errClose
	}
	for _, v := range verbs {
		if v != "" && c.f.CloseBeforeReply == v {
			c.flush()
			c.record("* close: fault CloseBeforeReply " + v)
			return errClose
		}
	}
	if raw != "" && !strings.HasSuffix(raw, "\n") {
		raw += "\r\n"
	}
	c.w.WriteString(raw)
	for _, l := range strings.SplitAfter(raw, "\n") {
		if l != "" {
			c.record("S: " + strings.TrimRight(l, "\r\n"))
		}
	}
	for _, v := range verbs {
		if v != "" && c.f.CloseAfterReply == v {
			c.flush()
			c.record("* close: fault CloseAfterReply " + v)
			return errClose
		}
	}
	return nil
}

// reply sends a single-line reply; enh is the enhanced status code, used
// only for 2xx/4xx/5xx when ENHANCEDSTATUSCODES is advertised.
func (c *conn) reply(verb string, code int, enh, text string) error {
	return c.replyLines(verb, code, enh, []string{text})
}

func (c *conn) replyLines(verb string, code int, enh string, lines []string) error {
	return c.sendRaw(c.format(code, enh, lines...), verb)
}

// format renders a reply.
func (c *conn) format(code int, enh string, lines ...string) string {
	var b strings.Builder
	useEnh := c.s.enh && enh != "" && code/100 != 3
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString(strconv.Itoa(code))
		b.WriteString(sep)
		if useEnh {
			b.WriteString(enh)
			b.WriteByte(' ')
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return b.String()
}

// --- session -----------------------------------------------------------

func (c *conn) greet() error {
	if err := c.received("GREETING"); err != nil {
		return err
	}
	raw, ok := c.override("GREETING", "")
	if ok && (raw == "" || raw[0] != '2') {
		c.record("* override GREETING")
		if err := c.sendRaw(raw, "GREETING"); err != nil {
			return err
		}
		if raw != "" && raw[0] == '4' {
			c.flush()
			c.record("* close: greeting " + raw[:1] + "xx")
			return errClose
		}
		c.greetingRejected = true
		return nil
	}
	if ok {
		c.pending["GREETING"] = raw
	}
	proto := " ESMTP smtptest"
	if c.s.cfg.LMTP {
		proto = " LMTP smtptest"
	}
	return c.reply("GREETING", 220, "", c.s.cfg.Hostname+proto)
}

func splitVerb(line string) (verb, arg string) {
	verb, arg, _ = strings.Cut(line, " ")
	return strings.ToUpper(verb), strings.TrimLeft(arg, " ")
}

func (c *conn) dispatch(line string) error {
	verb, arg := splitVerb(line)
	if err := c.received(verb); err != nil {
		return err
	}
	if verb == "BDAT" {
		// BDAT applies overrides itself, after reading its chunk.
		return c.cmdBDAT(line, arg)
	}
	if handled, err := c.checkOverride(verb, line, successClasses(verb)); handled || err != nil {
		return err
	}
	if c.greetingRejected && verb != "QUIT" {
		return c.reply(verb, 503, "5.5.1", "Error: bad sequence of commands")
	}
	switch verb {
	case "EHLO", "HELO":
		if c.s.cfg.LMTP {
			// RFC 2033 section 4.1: LHLO replaces them.
			return c.reply(verb, 500, "5.5.1", "this is an LMTP server, use LHLO")
		}
		if verb == "EHLO" {
			return c.cmdEHLO(verb, arg)
		}
		return c.cmdHELO(arg)
	case "LHLO":
		if c.s.cfg.LMTP {
			return c.cmdEHLO(verb, arg)
		}
		// Not an SMTP command: "not recognized" below.
	case "MAIL":
		if c.mrsq != "" {
			return c.cmdMTPMail(arg)
		}
		return c.cmdMAIL(verb, arg)
	case "SEND", "SOML", "SAML":
		return c.cmdSendMail(verb, arg)
	case "RCPT":
		return c.cmdRCPT(arg)
	case "DATA":
		return c.cmdDATA(arg)
	case "RSET":
		c.resetTx()
		c.mrsqReset()
		return c.reply(verb, 250, "2.0.0", "Ok")
	case "NOOP":
		return c.reply(verb, 250, "2.0.0", "Ok")
	case "QUIT":
		c.resetTx()
		if err := c.reply(verb, 221, "2.0.0", "Bye"); err != nil {
			return err
		}
		c.flush()
		c.record("* close: QUIT")
		return errClose
	case "VRFY":
		if arg == "" {
			return c.reply(verb, 501, "5.5.4", "Syntax: VRFY address")
		}
		return c.reply(verb, 252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "EXPN":
		return c.cmdEXPN(arg)
	case "HELP":
		return c.cmdHELP(arg)
	case "TURN":
		return c.cmdTURN(arg)
	case "MRSQ":
		return c.cmdMRSQ(arg)
	case "MRCP":
		return c.cmdMRCP(arg)
	case "STARTTLS":
		return c.cmdSTARTTLS(arg)
	case "AUTH":
		return c.cmdAUTH(arg)
	}
	return c.reply(verb, 500, "5.5.2", "Error: command not recognized")
}

// resetTx ends the current transaction (client-side completion in the RFC
// 1845 sense) and releases an owned checkpoint entry.
func (c *conn) resetTx() {
	c.tx = nil
	c.dataWire = 0
	if c.cpKey != "" {
		c.s.store.release(c.cpKey, c.token)
		c.cpKey = ""
	}
}

func (c *conn) hasConfigExt(kw string) (string, bool) {
	for _, e := range c.s.ext {
		k, p, _ := strings.Cut(e, " ")
		if strings.EqualFold(k, kw) {
			return p, true
		}
	}
	return "", false
}

// cmdEHLO handles EHLO, and LHLO in LMTP mode (verb says which).
func (c *conn) cmdEHLO(verb, arg string) error {
	if c.s.cfg.NoEHLO {
		return c.reply(verb, 502, "5.5.1", "command not implemented")
	}
	if arg == "" {
		return c.reply(verb, 501, "5.5.4", "Syntax: "+verb+" hostname")
	}
	c.resetTx()
	c.mrsq = ""
	c.mrsqReset()
	c.greeted, c.ehlo, c.helo = true, true, arg
	c.sessExt = make(map[string]string)
	lines := []string{c.s.cfg.Hostname}
	for _, e := range c.s.ext {
		k, p, _ := strings.Cut(e, " ")
		k = strings.ToUpper(k)
		if k == "STARTTLS" && c.tls {
			continue
		}
		c.sessExt[k] = p
		lines = append(lines, e)
	}
	return c.replyLines(verb, 250, "", lines)
}

// ehloVerb names the extended greeting command of the protocol spoken.
func (c *conn) ehloVerb() string {
	if c.s.cfg.LMTP {
		return "LHLO"
	}
	return "EHLO"
}

func (c *conn) cmdHELO(arg string) error {
	if arg == "" {
		return c.reply("HELO", 501, "5.5.4", "Syntax: HELO hostname")
	}
	c.resetTx()
	c.mrsq = ""
	c.mrsqReset()
	c.greeted, c.ehlo, c.helo = true, false, arg
	c.sessExt = nil
	return c.replyLines("HELO", 250, "", []string{c.s.cfg.Hostname})
}

// extCommand checks that extension kw may be used now; if not it replies
// and returns ok=false.
func (c *conn) extCommand(verb, kw string) (bool, error) {
	if _, ok := c.sessExt[kw]; ok {
		return true, nil
	}
	if _, ok := c.hasConfigExt(kw); !ok || c.s.cfg.NoEHLO || (kw == "STARTTLS" && c.tls) {
		if kw == "STARTTLS" && c.tls {
			return false, c.reply(verb, 503, "5.5.1", "Error: TLS already active")
		}
		return false, c.reply(verb, 502, "5.5.1", "Error: command not implemented")
	}
	return false, c.reply(verb, 503, "5.5.1", "Error: send "+c.ehloVerb()+" first")
}

func (c *conn) cmdSTARTTLS(arg string) error {
	if ok, err := c.extCommand("STARTTLS", "STARTTLS"); !ok {
		return err
	}
	if arg != "" {
		return c.reply("STARTTLS", 501, "5.5.4", "Syntax: STARTTLS")
	}
	if c.tx != nil {
		return c.reply("STARTTLS", 503, "5.5.1", "Error: mail transaction in progress")
	}
	if err := c.reply("STARTTLS", 220, "2.0.0", "Ready to start TLS"); err != nil {
		return err
	}
	if inj := c.f.InjectAfterSTARTTLS; inj != "" {
		c.w.WriteString(inj)
		c.record(fmt.Sprintf("* injected %d octets after STARTTLS reply: %q", len(inj), inj))
	}
	if err := c.flush(); err != nil {
		return err
	}
	if n := c.r.Buffered(); n > 0 {
		// Plaintext pipelined after STARTTLS (command injection): discard.
		c.r.Discard(n)
		c.record(fmt.Sprintf("* discarded %d plaintext octets after STARTTLS", n))
	}
	tc := tls.Server(c.raw, &tls.Config{
		Certificates: []tls.Certificate{c.s.tlsCert},
		MinVersion:   tls.VersionTLS12,
	})
	if err := tc.Handshake(); err != nil {
		c.record("* close: TLS handshake failed: " + err.Error())
		return errClose
	}
	c.nc = tc
	c.r = bufio.NewReaderSize(flushReader{c}, 4096)
	c.w = bufio.NewWriterSize(tc, 64<<10)
	c.tls = true
	// RFC 3207 section 4.2: discard knowledge obtained from the client.
	c.resetTx()
	c.greeted, c.ehlo, c.helo, c.sessExt = false, false, "", nil
	c.authed, c.authUser = false, ""
	c.record("* tls " + tls.VersionName(tc.ConnectionState().Version))
	return nil
}

// --- MAIL / RCPT ---------------------------------------------------------

// parsePath parses `PREFIX<path> params...` (prefix matched
// case-insensitively, spaces after it tolerated).
func parsePath(arg, prefix string) (path string, params []string, ok bool) {
	path, rest, ok := pathscan.Cut(arg, prefix)
	return path, strings.Fields(rest), ok
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validTransID checks RFC 1845 transid-value syntax.
func validTransID(v string) bool {
	if len(v) > 80 || len(v) < 5 || v[0] != '<' || v[len(v)-1] != '>' {
		return false
	}
	local, domain, ok := strings.Cut(v[1:len(v)-1], "@")
	return ok && validTransToken(local) && validTransToken(domain)
}

func validTransToken(s string) bool {
	for _, atom := range strings.Split(s, ".") {
		if atom == "" {
			return false
		}
		for i := 0; i < len(atom); i++ {
			ch := atom[i]
			if ch <= ' ' || ch >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, ch) >= 0 {
				return false
			}
		}
	}
	return true
}

// cmdMAIL handles MAIL, and SEND, SOML and SAML (RFC 821 §3.4), which
// begin a transaction the same way; v is the verb.
func (c *conn) cmdMAIL(v, arg string) error {
	switch {
	case !c.greeted:
		first := "HELO/EHLO"
		if c.s.cfg.LMTP {
			first = "LHLO"
		}
		return c.reply(v, 503, "5.5.1", "Error: send "+first+" first")
	case c.tx != nil:
		return c.reply(v, 503, "5.5.1", "Error: nested MAIL command")
	case c.s.cfg.RequireTLS && !c.tls:
		return c.reply(v, 530, "5.7.0", "Must issue a STARTTLS command first")
	case c.s.cfg.RequireAuth && !c.authed:
		return c.reply(v, 530, "5.7.0", "Authentication required")
	}
	path, params, ok := parsePath(arg, "FROM:")
	if !ok {
		return c.reply(v, 501, "5.5.4", "Syntax: "+v+" FROM:<address>")
	}
	t := &transaction{verb: v, from: path, mailParams: params}
	for _, p := range params {
		if code, enh, text := c.mailParam(t, p); code != 0 {
			return c.reply(v, code, enh, text)
		}
	}
	if !t.smtputf8 && !isASCII(path) {
		return c.reply(v, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
	}
	// A new transaction: the previous one is complete from the client's
	// perspective.
	c.resetTx()
	c.tx = t
	c.s.beginSpan(c.idx, t.transID)
	if t.transID == "" {
		return c.reply(v, 250, "2.1.0", "Ok")
	}
	c.cpKey = t.transID
	kind, cp := c.s.store.claim(t.transID, c.token, c.abort, t.from, t.mailParams)
	if kind == claimFresh {
		return c.reply(v, 250, "2.1.0", "Ok, TRANSID accepted")
	}
	off := t.restore(cp, kind)
	return c.sendRaw(fmt.Sprintf("355 %d octet-offset is the transaction offset\r\n", off), v)
}

// mailParam checks one MAIL parameter against the session's extensions,
// recording what it says in t; it returns the refusal's code, enhanced
// code and text, or code 0 if the parameter is good.
func (c *conn) mailParam(t *transaction, p string) (int, string, string) {
	key, val, hasVal := strings.Cut(p, "=")
	key = strings.ToUpper(key)
	need := ""
	bad := false
	switch key {
	case "SIZE":
		need = "SIZE"
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 {
			bad = true
		} else if c.s.sizeMax > 0 && n > c.s.sizeMax {
			if _, ok := c.sessExt["SIZE"]; ok {
				return 552, "5.3.4", "Message size exceeds fixed maximum message size"
			}
		}
	case "BODY":
		t.body = strings.ToUpper(val)
		switch t.body {
		case "7BIT", "8BITMIME":
			need = "8BITMIME"
		case "BINARYMIME":
			need = "BINARYMIME"
		default:
			bad = true
		}
	case "SMTPUTF8":
		need, bad, t.smtputf8 = "SMTPUTF8", hasVal, true
	case "RET", "ENVID":
		need = "DSN"
		bad = !hasVal
	case "AUTH":
		need = "AUTH"
		bad = !hasVal
	case "TRANSID":
		need = "CHECKPOINT"
		if t.transID != "" || !validTransID(val) {
			bad = true
		}
		t.transID = val
	default:
		return 555, "5.5.4", "Unsupported parameter " + key
	}
	if _, ok := c.sessExt[need]; !ok {
		return 555, "5.5.4", "Unsupported parameter " + key
	}
	if bad {
		return 501, "5.5.4", "Bad parameter value " + p
	}
	return 0, "", ""
}

// restore makes t the transaction the store holds as cp (a restart, RFC
// 1845 §3) and returns the offset to announce: the octets held.
func (t *transaction) restore(cp Checkpoint, kind int) int64 {
	t.from, t.mailParams, t.to, t.rcptParams = cp.From, cp.MailParams, cp.To, cp.RcptParams
	t.via = cp.Via
	t.body = ""
	t.smtputf8 = false
	for _, p := range t.mailParams {
		key, val, _ := strings.Cut(p, "=")
		switch strings.ToUpper(key) {
		case "BODY":
			t.body = strings.ToUpper(val)
		case "SMTPUTF8":
			t.smtputf8 = true
		}
	}
	if kind == claimComplete {
		t.complete, t.queueID = true, cp.QueueID
	} else {
		t.data = cp.Data
	}
	t.resumedAt = cp.ResumedAt
	return int64(len(cp.Data))
}

func (c *conn) cmdRCPT(arg string) error {
	const v = "RCPT"
	t := c.tx
	if t == nil {
		return c.reply(v, 503, "5.5.1", "Error: need MAIL command")
	}
	if t.bdat {
		return c.reply(v, 503, "5.5.1", "Error: RCPT after BDAT")
	}
	path, params, ok := parsePath(arg, "TO:")
	if !ok || path == "" {
		return c.reply(v, 501, "5.1.3", "Syntax: RCPT TO:<address>")
	}
	for _, p := range params {
		key, val, _ := strings.Cut(p, "=")
		switch strings.ToUpper(key) {
		case "NOTIFY", "ORCPT":
			if _, ok := c.sessExt["DSN"]; !ok {
				return c.reply(v, 555, "5.5.4", "Unsupported parameter "+key)
			}
			if val == "" {
				return c.reply(v, 501, "5.5.4", "Bad parameter value "+p)
			}
		default:
			return c.reply(v, 555, "5.5.4", "Unsupported parameter "+key)
		}
	}
	if !t.smtputf8 && !isASCII(path) {
		return c.reply(v, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
	}
	t.rcptAttempts++
	switch local := localPart(path); {
	case strings.HasPrefix(local, "reject"):
		return c.reply(v, 550, "5.1.1", "<"+path+">: no such user")
	case strings.HasPrefix(local, "temp"):
		return c.reply(v, 450, "4.2.1", "<"+path+">: try later")
	case t.verb == "SEND" && strings.HasPrefix(local, "away"):
		// RFC 821 §3.4: SEND needs the user at a terminal.
		return c.reply(v, 450, "4.2.1", "<"+path+">: user not active, cannot SEND to a terminal")
	}
	// A resumed envelope already has it; LMTP (never resumed) needs one
	// reply per successful RCPT, duplicates included.
	if c.s.cfg.LMTP || !slices.Contains(t.to, path) {
		t.to = append(t.to, path)
		t.rcptParams = append(t.rcptParams, params)
	}
	return c.reply(v, 250, "2.1.5", "Ok")
}

// localPart returns the lower-cased local part of path, quotes trimmed and
// a source route (RFC 821 "@A,@B:", or RFC 772 "@A,@B,") skipped.
func localPart(path string) string {
	path = stripRoute(path)
	if i := strings.LastIndexByte(path, '@'); i >= 0 {
		path = path[:i]
	}
	return strings.ToLower(strings.Trim(path, `"`))
}

// --- AUTH ----------------------------------------------------------------

// authStep obtains one client response of an AUTH exchange: the initial
// response if ir is not nil, otherwise the answer to a 334 challenge. It
// returns false, with the error of the reply it sent (or of the
// connection), when the exchange ends there.
func (c *conn) authStep(challenge string, ir *string) ([]byte, bool, error) {
	const v = "AUTH"
	var line string
	if ir != nil {
		line = *ir
	} else {
		if err := c.sendRaw("334 "+challenge+"\r\n", v); err != nil {
			return nil, false, err
		}
		var err error
		line, err = c.readLine()
		if err == errLineTooLong {
			c.record("C: <line too long, discarded>")
			return nil, false, c.reply(v, 500, "5.5.2", "Error: line too long")
		}
		if err != nil {
			return nil, false, err
		}
		c.record("C: " + line)
	}
	switch line {
	case "*":
		return nil, false, c.reply(v, 501, "5.7.0", "Authentication aborted")
	case "=":
		return []byte{}, true, nil
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, false, c.reply(v, 501, "5.5.2", "Cannot decode response")
	}
	return b, true, nil
}

func (c *conn) cmdAUTH(arg string) error {
	const v = "AUTH"
	if ok, err := c.extCommand(v, "AUTH"); !ok {
		return err
	}
	switch {
	case c.authed:
		return c.reply(v, 503, "5.5.1", "Error: already authenticated")
	case c.tx != nil:
		return c.reply(v, 503, "5.5.1", "Error: MAIL transaction in progress")
	case c.s.cfg.RequireTLS && !c.tls:
		return c.reply(v, 538, "5.7.11", "Encryption required for requested authentication mechanism")
	}
	fields := strings.Fields(arg)
	if len(fields) == 0 || len(fields) > 2 {
		return c.reply(v, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
	}
	mech := strings.ToUpper(fields[0])
	if !slices.Contains(strings.Fields(strings.ToUpper(c.sessExt["AUTH"])), mech) {
		return c.reply(v, 504, "5.5.4", "Unrecognized authentication type")
	}
	var ir *string
	if len(fields) == 2 {
		ir = &fields[1]
	}
	var user, pass, authz string
	switch mech {
	case "PLAIN":
		b, ok, err := c.authStep("", ir)
		if !ok {
			return err
		}
		parts := strings.Split(string(b), "\x00")
		if len(parts) == 3 {
			authz, user, pass = parts[0], parts[1], parts[2]
		} else {
			user, pass = "", "\x00" // malformed: fails below
		}
	case "LOGIN":
		b, ok, err := c.authStep("VXNlcm5hbWU6", ir)
		if !ok {
			return err
		}
		user = string(b)
		b, ok, err = c.authStep("UGFzc3dvcmQ6", nil)
		if !ok {
			return err
		}
		pass = string(b)
	}
	want, known := c.s.cfg.Users[user]
	if !known || want != pass || (authz != "" && authz != user) {
		return c.reply(v, 535, "5.7.8", "Authentication credentials invalid")
	}
	c.authed, c.authUser = true, user
	return c.reply(v, 235, "2.7.0", "Authentication successful")
}
