package smtp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for the parts of the client that turn untrusted or
// caller-supplied text into protocol lines: the EHLO reply, the envelope
// (MAIL and RCPT with their parameters), xtext, and argument validation.
// The reply parser, the DotWriter and TRANSID have their own targets in
// reply_test.go, dotwriter_test.go and transid_test.go.

// fzConn is an in-memory net.Conn playing a scripted server: segment i of
// the script becomes readable once the client has made i writes, and a read
// past what is readable returns io.EOF, as if the server hung up. Nothing
// blocks, so every execution ends at once whatever the script.
type fzConn struct {
	mu     sync.Mutex
	segs   [][]byte
	seg    int
	writes int
	closed bool
	out    bytes.Buffer
}

func newFzConn(segs ...[]byte) *fzConn {
	c := &fzConn{}
	for _, s := range segs {
		c.segs = append(c.segs, bytes.Clone(s))
	}
	return c
}

func (c *fzConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	for c.seg < len(c.segs) && c.seg <= c.writes {
		if len(c.segs[c.seg]) > 0 {
			n := copy(p, c.segs[c.seg])
			c.segs[c.seg] = c.segs[c.seg][n:]
			return n, nil
		}
		c.seg++
	}
	return 0, io.EOF
}

func (c *fzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.writes++
	return c.out.Write(p)
}

func (c *fzConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *fzConn) written() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *fzConn) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 40000}
}
func (c *fzConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 25}
}
func (c *fzConn) SetDeadline(time.Time) error      { return nil }
func (c *fzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fzConn) SetWriteDeadline(time.Time) error { return nil }

const fzGreeting = "220 mx.example ESMTP\r\n"

// fzEHLOWant is what the client should make of an EHLO reply, worked out
// from the reply grammar alone.
type fzEHLOWant struct {
	err      error             // the reply reader's error (I/O or *protoError)
	code     int               // non-zero: an *Error with this code
	ext      map[string]string // the extension table after a 250 to EHLO
	helo     bool              // HELO is sent: EHLO got a 5yz (RFC 5321 §3.2)
	unsolict bool              // strict client: bytes after the 5yz reply to EHLO
}

// fzModelEHLO reads the fuzz bytes as the server's replies, EHLO's first and
// HELO's next, with the client's default limits and buffer size. With split,
// the server sends what follows the first reply only once it has read the
// next command; cut is where that part starts.
func fzModelEHLO(in []byte, strict, split bool) (w fzEHLOWant, cut int) {
	src := bytes.NewReader(in)
	br := bufio.NewReaderSize(src, max(readBufferSize, defaultMaxLineLength+2))
	rr := replyReader{r: br, maxLine: defaultMaxLineLength, maxReply: defaultMaxReplySize}
	var rep Reply
	if err := rr.read(&rep); err != nil {
		return fzEHLOWant{err: err}, len(in)
	}
	cut = len(in) - src.Len() - br.Buffered()
	return fzModelAfterEHLO(&rep, &rr, strict, !split && br.Buffered() > 0), cut
}

// fzModelAfterEHLO is the outcome once the reply to EHLO is rep; more says
// whether the client has more bytes buffered when it sends HELO.
func fzModelAfterEHLO(rep *Reply, rr *replyReader, strict, more bool) fzEHLOWant {
	switch {
	case strict && rep.Code/100 == 3:
		return fzEHLOWant{err: fzOutOfStep(rep, "EHLO")}
	case rep.Code == 250:
		return fzEHLOWant{ext: fzModelExt(rep.Lines[1:])}
	case strict && rep.Code/100 != 5:
		return fzEHLOWant{code: rep.Code} // 4yz and other positive codes: no HELO
	}
	// A 5yz, or for a Client from NewClient any reply but 250, as with
	// net/smtp: HELO next.
	if strict && more {
		return fzEHLOWant{unsolict: true}
	}
	w := fzEHLOWant{helo: true}
	if err := rr.read(rep); err != nil {
		w.err = err
	} else if strict && rep.Code/100 == 3 {
		w.err = fzOutOfStep(rep, "HELO")
	} else if rep.Code != 250 {
		w.code = rep.Code
	}
	return w
}

// fzOutOfStep is the error of a strict client for an intermediate reply to
// a command that has none: the replies have slipped.
func fzOutOfStep(rep *Reply, verb string) error {
	return protocolError("reply out of step with the commands: "+strconv.Itoa(rep.Code)+" to "+verb, []byte(rep.msg()), nil)
}

// fzModelExt is the extension table RFC 5321 §4.1.1.1 describes: one
// ehlo-line per line after the first, the keyword up to the first space,
// compared case-insensitively, the rest its parameters. A pre-RFC 2554
// "AUTH=mech ..." line gives AUTH's mechanisms unless an "AUTH" line does;
// among several AUTH= lines the first counts, among AUTH lines the last.
func fzModelExt(lines []string) map[string]string {
	ext := map[string]string{}
	legacy, haveLegacy := "", false
	for _, l := range lines {
		kw, param := l, ""
		if i := strings.IndexByte(l, ' '); i >= 0 {
			kw, param = l[:i], l[i+1:]
		}
		kw = strings.ToUpper(kw)
		if rest, ok := strings.CutPrefix(kw, "AUTH="); ok {
			if !haveLegacy {
				legacy, haveLegacy = strings.TrimSpace(rest+" "+param), true
			}
			continue
		}
		ext[kw] = param
	}
	if _, ok := ext["AUTH"]; !ok && haveLegacy {
		ext["AUTH"] = legacy
	}
	return ext
}

// fzASCIILower lowers A-Z only.
func fzASCIILower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// fzIsTarget returns the sentinel that errors.Is should find for the reply
// reader's error err: io.ErrUnexpectedEOF for a truncated reply.
func fzIsTarget(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// fzCheckHelloErr checks the error of the hello exchange against the model.
func fzCheckHelloErr(t *testing.T, how string, in []byte, err error, want fzEHLOWant) {
	t.Helper()
	switch {
	case want.unsolict:
		var pe *protoError
		require.ErrorAs(t, err, &pe, "%s: reply %q: want an unsolicited-reply *protoError", how, in)
		require.Equal(t, "reply received when none was due", pe.reason, "%s: reply %q: want an unsolicited-reply *protoError, got %v", how, in, err)
	case want.err != nil:
		var wpe, pe *protoError
		if errors.As(want.err, &wpe) {
			require.ErrorAs(t, err, &pe, "%s: reply %q: want *protoError %v", how, in, wpe)
			require.Equal(t, wpe.reason, pe.reason, "%s: reply %q: want *protoError %v, got %v", how, in, wpe, err)
			require.Equal(t, wpe.line, pe.line, "%s: reply %q: want *protoError %v, got %v", how, in, wpe, err)
			require.Equal(t, wpe.err, pe.err, "%s: reply %q: want *protoError %v, got %v", how, in, wpe, err)
		} else {
			require.ErrorIs(t, err, fzIsTarget(want.err), "%s: reply %q", how, in)
		}
	case want.code != 0:
		var e *Error
		require.ErrorAs(t, err, &e, "%s: reply %q: want *Error %d", how, in, want.code)
		require.Equal(t, want.code, e.Code, "%s: reply %q: want *Error %d, got %v", how, in, want.code, err)
	default:
		require.NoError(t, err, "%s: reply %q", how, in)
	}
	if err != nil {
		// Whatever the reply, the error is one of the documented kinds.
		var pe *protoError
		var e *Error
		typed := errors.As(err, &pe) || errors.As(err, &e) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		require.True(t, typed, "%s: reply %q: untyped error %T: %v", how, in, err, err)
	}
}

// fzCheckExt checks the Client's extension table after a hello that
// succeeded.
func fzCheckExt(t *testing.T, how string, in []byte, c *Client, want fzEHLOWant) {
	t.Helper()
	if want.helo {
		require.Nil(t, c.ext, "%s: reply %q: extensions after HELO", how, in)
		for _, k := range []string{"SIZE", "PIPELINING", "AUTH", "8BITMIME", ""} {
			ok, v := c.Extension(k)
			require.False(t, ok, "%s: reply %q: Extension(%q) = %v, %q after HELO", how, in, k, ok, v)
			require.Empty(t, v, "%s: reply %q: Extension(%q) = %v, %q after HELO", how, in, k, ok, v)
		}
		return
	}
	require.Equal(t, want.ext, map[string]string(c.ext), "%s: reply %q: extensions", how, in)
	for k, v := range c.ext {
		require.Equal(t, strings.ToUpper(k), k, "%s: reply %q: keyword %q is not upper case", how, in, k)
		require.False(t, strings.ContainsAny(k, " \r\n\x00"), "%s: reply %q: keyword %q holds a space, CR, LF or NUL", how, in, k)
		require.False(t, strings.ContainsAny(v, "\r\n\x00"), "%s: reply %q: keyword %q: parameters %q hold a CR, LF or NUL", how, in, k, v)
		for _, q := range []string{k, fzASCIILower(k), strings.ToUpper(fzASCIILower(k))} {
			ok, got := c.Extension(q)
			require.True(t, ok, "%s: reply %q: Extension(%q) = %v, %q; want true, %q", how, in, q, ok, got, v)
			require.Equal(t, v, got, "%s: reply %q: Extension(%q)", how, in, q)
		}
	}
	if mechs, ok := c.ext["AUTH"]; ok {
		require.Equal(t, strings.Split(mechs, " "), c.auth, "%s: reply %q: mechanisms", how, in)
	} else {
		require.Nil(t, c.auth, "%s: reply %q: mechanisms without AUTH", how, in)
	}
	// A keyword the server did not list is not offered, in any case.
	if _, listed := c.ext["X-NOT-LISTED"]; !listed {
		ok, _ := c.Extension("x-Not-Listed")
		require.False(t, ok, "%s: reply %q: unlisted extension reported", how, in)
	}
}

// FuzzEHLO sends arbitrary bytes as the reply to EHLO (and what follows as
// the reply to HELO) to a real Client, both one from NewClient, which does
// not look for unsolicited or out-of-step replies, and one from a Dialer,
// which does. With split, what follows the first reply arrives only after
// the client's next command, as from a server that waits for it. The
// outcome must be what the reply grammar says: the extension table of a
// 250 reply, a HELO after a 5yz, an *Error for any other code, and the
// reader's own typed error for a malformed or truncated reply.
func FuzzEHLO(f *testing.F) {
	for _, s := range []string{
		"250-mx.example greets client.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8\r\n",
		"250-mx.example\r\n250-AUTH=LOGIN PLAIN\r\n250-AUTH CRAM-MD5\r\n250 HELP\r\n",
		"250-mx.example\r\n250-AUTH LOGIN\r\n250-auth=plain\r\n250 DSN\r\n",
		"250-mx.example\r\n250-AUTH=\r\n250 AUTH=LOGIN\r\n",
		"250-mx.example\r\n250-\r\n250 \r\n",
		"250-mx.example\r\n250- SIZE 100\r\n250  \r\n",
		"250-mx.example\r\n250-size   \r\n250 8bitmime  \r\n",
		"250 mx.example   \r\n",
		"250\r\n",
		"250-mx.example\n250-Chunking\n250 BinaryMIME\n",
		"250-mx.example\r\n250 SIZE\r\n250 extra\r\n",
		"250-mx.example\r\n250_SIZE\r\n",
		"250-mx.example\r\n251 SIZE\r\n",
		"250-mx.example\r\n250-SIZE\r\n",
		"250-mx.example\r\n250 SIZE",
		"250-mx.example\r\n250-X\rY\r\n250 Z\r\n",
		"250-mx.example\r\n250-X\x00Y\r\n250 Z\r\n",
		"250-mx.example\r\n250-X\tY\r\n250 \xff\xfe\r\n",
		"250-mx.example\r\n250-\xc3\x9f\r\n250 \xe2\x84\xaa\r\n",
		"502 5.5.1 EHLO not implemented\r\n250 mx.example\r\n",
		"500 what\r\n",
		"500 what\r\n250 mx.example\r\n250 trailing\r\n",
		"554 no\r\n554 still no\r\n",
		"421 4.3.2 shutting down\r\n",
		"220 again\r\n",
		"354 odd\r\n",
		"",
		"25",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, split bool) {
		for _, strict := range []bool{false, true} {
			how := "NewClient"
			if strict {
				how = "Dialer"
			}
			if split {
				how += " (split)"
			}
			want, cut := fzModelEHLO(in, strict, split)
			conn := newFzConn([]byte(fzGreeting), in)
			if split {
				conn = newFzConn([]byte(fzGreeting), in[:cut], in[cut:])
			}
			var c *Client
			var err error
			if strict {
				d := &Dialer{
					LocalName: "client.example",
					TLSPolicy: TLSDisabled,
					Timeouts:  Timeouts{Greeting: 200 * time.Millisecond, Command: 200 * time.Millisecond},
				}
				c, err = d.NewClient(context.Background(), conn, "mx.example")
				if err != nil {
					require.Nil(t, c, "%s: reply %q: a client with error %v", how, in, err)
				} else {
					require.NotNil(t, c, "%s: reply %q: neither a client nor an error", how, in)
				}
			} else {
				c, err = NewClient(conn, "mx.example")
				require.NoError(t, err, "%s: greeting", how)
				err = c.HelloContext(context.Background(), "client.example")
			}
			fzCheckHelloErr(t, how, in, err, want)

			sent := "EHLO client.example\r\n"
			if want.helo {
				sent += "HELO client.example\r\n"
			}
			require.Equal(t, sent, conn.written(), "%s: reply %q: what the client wrote", how, in)
			if err != nil {
				if c != nil {
					ok, v := c.Extension("SIZE")
					require.False(t, ok, "%s: reply %q: Extension after a failed hello = %v, %q", how, in, ok, v)
					require.Empty(t, v, "%s: reply %q: Extension after a failed hello = %v, %q", how, in, ok, v)
					c.Close()
				}
				continue
			}
			fzCheckExt(t, how, in, c, want)
			c.Close()
		}
	})
}

// Offered-extension bits for FuzzEnvelope.
const (
	fzExtPipelining = 1 << iota
	fzExtSize
	fzExt8BitMIME
	fzExtBinaryMIME
	fzExtChunking
	fzExtSMTPUTF8
	fzExtDSN
	fzExtRequireTLS
	fzExtCheckpoint
)

// Flag bits for FuzzEnvelope.
const (
	fzFlagSMTPUTF8   = 1 << iota // Envelope.SMTPUTF8
	fzFlagRequireTLS             // Envelope.RequireTLS
	fzFlagTLS                    // the connection is TLS
	fzFlagNoChunking             // Dialer.DisableChunking
	// bits 4-5: the number of recipients, 0 to 3
)

// fzEnvInput is one FuzzEnvelope input.
type fzEnvInput struct {
	from, to1, to2, to3, notify, orcpt, ret, envid, body, transid, sizeParam, verb string
	size                                                                           int64
	exts                                                                           uint16
	flags                                                                          uint8
}

func (in fzEnvInput) client() *Client {
	c := &Client{}
	ext := extensions{}
	for bit, kw := range []string{"PIPELINING", "SIZE", "8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8", "DSN", "REQUIRETLS", "CHECKPOINT"} {
		if in.exts&(1<<bit) != 0 {
			ext[kw] = ""
		}
	}
	if in.exts&fzExtSize != 0 {
		ext["SIZE"] = in.sizeParam
	}
	c.setExt(ext)
	c.tls = in.flags&fzFlagTLS != 0
	c.noChunking = in.flags&fzFlagNoChunking != 0
	return c
}

func (in fzEnvInput) envelope() *Envelope {
	env := &Envelope{
		From:       in.from,
		Body:       BodyType(in.body),
		SMTPUTF8:   in.flags&fzFlagSMTPUTF8 != 0,
		Ret:        DSNReturn(in.ret),
		EnvID:      in.envid,
		RequireTLS: in.flags&fzFlagRequireTLS != 0,
		TransID:    in.transid,
		Verb:       in.verb,
	}
	var notify []DSNNotify
	if in.notify != "" {
		for _, k := range strings.Split(in.notify, ",") {
			notify = append(notify, DSNNotify(k))
		}
	}
	tos := []string{in.to1, in.to2, in.to3}
	for i := range int(in.flags>>4) & 3 {
		r := Recipient{Addr: tos[i]}
		if i != 2 {
			r.Notify = notify
		}
		if i != 1 {
			r.ORCPT = in.orcpt
		}
		env.To = append(env.To, r)
	}
	return env
}

// fzValidAddr is validateAddress's contract: no CR, LF or NUL, at most 254
// octets, so that the path fits in RFC 5321 §4.5.3.1.3's 256, and, if it
// holds an angle or square bracket, a double quote or a backslash, a path that
// ParsePath accepts, with brackets only inside a quoted local part or an
// address literal (RFC 5321 §4.1.2, §4.1.3).
func fzValidAddr(a string) bool {
	if strings.ContainsAny(a, "\r\n\x00") || len(a) > 254 {
		return false
	}
	if !strings.ContainsAny(a, `<>"\[]`) {
		return true
	}
	_, err := ParsePath("<" + a + ">")
	return err == nil && fzBracketsEnclosed(a)
}

// fzBracketsEnclosed reports whether every angle bracket in a stands inside
// a quoted string or an address literal ("[...]").
func fzBracketsEnclosed(a string) bool {
	ok := true
	fzOutside(a, func(_ int, c byte) bool {
		ok = c != '<' && c != '>'
		return ok
	})
	return ok
}

// fzOutside calls visit with each octet of s that stands outside a quoted
// string and an address literal, in order, until visit returns false.
func fzOutside(s string, visit func(i int, c byte) bool) {
	quoted, literal := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"' && !literal:
			quoted = !quoted
		case c == '[' && !quoted:
			literal = true
		case c == ']' && !quoted:
			literal = false
		case !quoted && !literal:
			if !visit(i, c) {
				return
			}
		}
	}
}

func fzPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func fzASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// fzEnvelopeOK says whether buildEnvelope should accept the input, from the
// RFCs and the Envelope documentation: every parameter asked for needs its
// extension and a valid value.
func fzEnvelopeOK(c *Client, env *Envelope, size int64) bool {
	has := func(kw string) bool { _, ok := c.ext[kw]; return ok }
	if len(env.To) == 0 || !fzValidAddr(env.From) {
		return false
	}
	utf8 := env.SMTPUTF8 || !fzASCII(env.From)
	for _, r := range env.To {
		if r.Addr == "" || !fzValidAddr(r.Addr) {
			return false
		}
		utf8 = utf8 || !fzASCII(r.Addr)
		if len(r.Notify) > 0 {
			if !has("DSN") {
				return false
			}
			for _, k := range r.Notify {
				switch strings.ToUpper(string(k)) {
				case "SUCCESS", "FAILURE", "DELAY":
				case "NEVER":
					if len(r.Notify) > 1 {
						return false
					}
				default:
					return false
				}
			}
		}
		if r.ORCPT != "" && (!has("DSN") || !fzPrintable(r.ORCPT)) {
			return false
		}
	}
	if v, ok := c.ext["SIZE"]; ok && size > 0 {
		if limit, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && limit > 0 && size > limit {
			return false
		}
	}
	switch env.Body {
	case "", Body7Bit:
	case Body8BitMIME:
		if !has("8BITMIME") {
			return false
		}
	case BodyBinaryMIME:
		if !has("BINARYMIME") || !has("CHUNKING") || c.noChunking {
			return false
		}
	default:
		return false
	}
	if utf8 && !has("SMTPUTF8") {
		return false
	}
	if env.Ret != "" {
		if r := strings.ToUpper(string(env.Ret)); r != "FULL" && r != "HDRS" || !has("DSN") {
			return false
		}
	}
	if env.EnvID != "" && (!has("DSN") || len(env.EnvID) > 100 || !fzPrintable(env.EnvID)) {
		return false
	}
	if env.TransID != "" && (!has("CHECKPOINT") || ValidateTransID(env.TransID) != nil) {
		return false
	}
	if env.RequireTLS && (!has("REQUIRETLS") || !c.tls) {
		return false
	}
	return true
}

// fzRcptTooLong reports whether a RCPT line of env would be over
// fzMaxRcptLine, or repeat a NOTIFY keyword, which would let it grow
// without bound.
func fzRcptTooLong(env *Envelope) bool {
	for _, r := range env.To {
		n := len("RCPT TO:<>") + len(r.Addr)
		if len(r.Notify) > 0 {
			n += len(" NOTIFY=") + len(r.Notify) - 1
			seen := map[string]bool{}
			for _, kw := range r.Notify {
				k := strings.ToUpper(string(kw))
				if seen[k] {
					return true
				}
				seen[k] = true
				n += len(k)
			}
		}
		if r.ORCPT != "" {
			n += len(" ORCPT=rfc822;")
			for i := 0; i < len(r.ORCPT); i++ {
				if c := r.ORCPT[i]; c >= '!' && c <= '~' && c != '+' && c != '=' {
					n++
				} else {
					n += 3
				}
			}
		}
		if n > fzMaxRcptLine {
			return true
		}
	}
	return false
}

// fzIsKeyword reports whether s is an esmtp-keyword (RFC 5321 §4.1.2):
// (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func fzIsKeyword(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '-') {
			return false
		}
	}
	return true
}

// fzIsValue reports whether s is an esmtp-value (RFC 5321 §4.1.2):
// 1*(%d33-60 / %d62-126).
func fzIsValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == '=' {
			return false
		}
	}
	return true
}

// fzParseCommand splits a MAIL or RCPT line into its path and parameters,
// checking the shape every line must have.
func fzParseCommand(t *testing.T, line, prefix, addr string) map[string]string {
	t.Helper()
	require.False(t, strings.ContainsAny(line, "\r\n\x00"), "line %q holds CR, LF or NUL", line)
	rest, ok := strings.CutPrefix(line, prefix+"<")
	require.True(t, ok, "line %q does not start with %q", line, prefix+"<")
	// The path ends at the first ">" outside a quoted local part or an
	// address literal, where RFC 5321 allows brackets.
	end := -1
	fzOutside(rest, func(i int, c byte) bool {
		if c == '>' {
			end = i
		}
		return end < 0
	})
	require.GreaterOrEqual(t, end, 0, "line %q: the path does not end, want <%s>", line, addr)
	require.Equal(t, addr, rest[:end], "line %q: path ends at %d, want <%s>", line, end, addr)
	require.True(t, fzBracketsEnclosed(addr), "line %q: path ends at %d, want <%s>", line, end, addr)
	rest = rest[end+1:]
	params := map[string]string{}
	if rest == "" {
		return params
	}
	require.Equal(t, byte(' '), rest[0], "line %q: no space after the path", line)
	for _, p := range strings.Split(rest[1:], " ") {
		kw, v, hasValue := strings.Cut(p, "=")
		require.True(t, fzIsKeyword(kw), "line %q: parameter %q is not esmtp-keyword[=esmtp-value] (RFC 5321 §4.1.2)", line, p)
		if hasValue {
			require.True(t, fzIsValue(v), "line %q: parameter %q is not esmtp-keyword[=esmtp-value] (RFC 5321 §4.1.2)", line, p)
		}
		kw = strings.ToUpper(kw)
		require.NotContains(t, params, kw, "line %q: parameter %s twice", line, kw)
		if !hasValue {
			v = "\x00" // no value, told apart from any value
		}
		params[kw] = v
	}
	return params
}

const fzHex = "0123456789ABCDEF"

// fzXtextDecode decodes RFC 3461 §4 xtext strictly: "+" must be followed by
// two upper-case hex digits, and a character that could stand for itself
// must not be encoded.
func fzXtextDecode(s string) (string, bool) {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := strings.IndexByte(fzHex, s[i+1]), strings.IndexByte(fzHex, s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			d := byte(hi<<4 | lo)
			if d >= '!' && d <= '~' && d != '+' && d != '=' {
				return "", false // not the shortest encoding
			}
			b = append(b, d)
			i += 2
		case c >= '!' && c <= '~' && c != '=':
			b = append(b, c)
		default:
			return "", false
		}
	}
	return string(b), true
}

// Line lengths: RFC 5321 §4.5.3.1.4 allows 512 octets with the CRLF, and
// RFC 3461 §4 500 more on RCPT for NOTIFY and ORCPT. A MAIL line holds
// bounded parts only: the path, SIZE (at most 19 digits), BODY, SMTPUTF8,
// RET, ENVID (100 printable octets, at most 300 as xtext), TRANSID (80) and
// REQUIRETLS.
const (
	fzMaxRcptLine = 512 - 2 + 500
	fzMaxMailLine = len("MAIL FROM:<>") + 254 + len(" SIZE=9223372036854775807") + len(" BODY=BINARYMIME") +
		len(" SMTPUTF8") + len(" RET=HDRS") + len(" ENVID=") + 300 + len(" TRANSID=") + maxTransIDLen + len(" REQUIRETLS")
)

func fzCheckEnvelope(t *testing.T, in fzEnvInput) {
	c := in.client()
	env := in.envelope()
	l, err := c.buildEnvelope(env, in.size)
	historic := env.Verb == "SEND" || env.Verb == "SOML" || env.Verb == "SAML"
	basicOK := len(env.To) > 0 && fzValidAddr(env.From)
	for _, r := range env.To {
		basicOK = basicOK && r.Addr != "" && fzValidAddr(r.Addr)
	}
	var wantOK bool
	switch {
	case historic:
		// RFC 821 §3.4 verbs, which take no parameters (RFC 1869 defines
		// them for MAIL and RCPT only).
		wantOK = basicOK && env.Body == "" && !env.SMTPUTF8 && env.Ret == "" && env.EnvID == "" && !env.RequireTLS && env.TransID == ""
		// Nor DSN parameters, nor non-ASCII addresses (no SMTPUTF8).
		ascii := fzASCII(env.From)
		for _, r := range env.To {
			ascii = ascii && fzASCII(r.Addr)
			wantOK = wantOK && len(r.Notify) == 0 && r.ORCPT == ""
		}
		wantOK = wantOK && ascii
	case env.Verb != "" && env.Verb != "MAIL":
		wantOK = false
	default:
		wantOK = fzEnvelopeOK(c, env, in.size)
	}
	if wantOK && err != nil && !historic && fzRcptTooLong(env) {
		return // refusing a RCPT line over the limit is right
	}
	if wantOK && err != nil && env.Body == Body7Bit && !historic && errors.Is(err, ErrExtensionNotOffered) {
		_, has8 := c.ext["8BITMIME"]
		_, hasBin := c.ext["BINARYMIME"]
		if !has8 && !hasBin {
			return // refusing BODY=7BIT without 8BITMIME is right too
		}
	}
	if wantOK {
		require.NoError(t, err, "input %+v", in)
	} else {
		require.Error(t, err, "input %+v: want an error", in)
	}
	if err != nil {
		require.Nil(t, l, "lines %+v with error %v", l, err)
		return
	}
	require.Len(t, l.rcpts, len(env.To), "RCPT lines for %d recipients", len(env.To))
	if historic {
		require.Equal(t, string(env.Verb), l.verb, "verb %s: line %q (verb %q)", env.Verb, l.mail, l.verb)
		require.Equal(t, string(env.Verb)+" FROM:<"+env.From+">", l.mail, "verb %s: line %q (verb %q)", env.Verb, l.mail, l.verb)
		for i, line := range l.rcpts {
			require.Equal(t, "RCPT TO:<"+env.To[i].Addr+">", line, "verb %s: RCPT line", env.Verb)
		}
		return
	}
	require.Equal(t, "MAIL", l.verb, "verb for Verb %q", env.Verb)
	has := func(kw string) bool { _, ok := c.ext[kw]; return ok }
	mail := fzParseCommand(t, l.mail, "MAIL FROM:", env.From)
	require.LessOrEqual(t, len(l.mail), fzMaxMailLine, "MAIL line of %d octets: %q", len(l.mail), l.mail)
	for kw, v := range mail {
		switch kw {
		case "SIZE":
			msg := []any{"MAIL line %q: SIZE=%s with size %d, SIZE offered %v", l.mail, v, in.size, has("SIZE")}
			require.True(t, has("SIZE"), msg...)
			require.Positive(t, in.size, msg...)
			require.Equal(t, strconv.FormatInt(in.size, 10), v, msg...)
		case "BODY":
			switch v {
			case "8BITMIME":
				msg := []any{"MAIL line %q: BODY=8BITMIME for Body %q, 8BITMIME offered %v", l.mail, env.Body, has("8BITMIME")}
				require.True(t, has("8BITMIME"), msg...)
				if env.Body != "" {
					require.Equal(t, Body8BitMIME, env.Body, msg...)
				}
			case "7BIT":
				// BODY is 8BITMIME's parameter (RFC 6152 §3; RFC 3030 §3
				// adds BINARYMIME): without either, a server need not know it.
				msg := []any{"MAIL line %q: BODY=7BIT for Body %q, 8BITMIME offered %v", l.mail, env.Body, has("8BITMIME")}
				require.Equal(t, Body7Bit, env.Body, msg...)
				require.True(t, has("8BITMIME") || has("BINARYMIME"), msg...)
			case "BINARYMIME":
				msg := []any{"MAIL line %q: BODY=BINARYMIME without BINARYMIME and CHUNKING", l.mail}
				require.Equal(t, BodyBinaryMIME, env.Body, msg...)
				require.True(t, has("BINARYMIME"), msg...)
				require.True(t, has("CHUNKING"), msg...)
				require.False(t, c.noChunking, msg...)
			default:
				require.Failf(t, "unknown BODY", "MAIL line %q: BODY=%s", l.mail, v)
			}
		case "SMTPUTF8":
			require.Equal(t, "\x00", v, "MAIL line %q: SMTPUTF8 with a value", l.mail)
			require.True(t, has("SMTPUTF8"), "MAIL line %q: SMTPUTF8 not offered", l.mail)
		case "RET":
			msg := []any{"MAIL line %q: RET=%s for Ret %q, DSN offered %v", l.mail, v, env.Ret, has("DSN")}
			require.True(t, has("DSN"), msg...)
			require.Equal(t, strings.ToUpper(string(env.Ret)), v, msg...)
			require.Contains(t, []string{"FULL", "HDRS"}, v, msg...)
		case "ENVID":
			d, ok := fzXtextDecode(v)
			msg := []any{"MAIL line %q: ENVID=%s decodes to %q, want %q, DSN offered %v", l.mail, v, d, env.EnvID, has("DSN")}
			require.True(t, has("DSN"), msg...)
			require.True(t, ok, msg...)
			require.Equal(t, env.EnvID, d, msg...)
		case "TRANSID":
			msg := []any{"MAIL line %q: TRANSID=%s for %q, CHECKPOINT offered %v", l.mail, v, env.TransID, has("CHECKPOINT")}
			require.True(t, has("CHECKPOINT"), msg...)
			require.Equal(t, env.TransID, v, msg...)
			require.NoError(t, ValidateTransID(v), msg...)
		case "REQUIRETLS":
			msg := []any{"MAIL line %q: REQUIRETLS unasked, not offered or without TLS", l.mail}
			require.Equal(t, "\x00", v, msg...)
			require.True(t, has("REQUIRETLS"), msg...)
			require.True(t, c.tls, msg...)
			require.True(t, env.RequireTLS, msg...)
		default:
			require.Failf(t, "unexpected parameter", "MAIL line %q: unexpected parameter %s", l.mail, kw)
		}
	}
	// What was asked for went out.
	if has("SIZE") && in.size > 0 {
		require.Contains(t, mail, "SIZE", "MAIL line %q: no SIZE for size %d", l.mail, in.size)
	}
	switch {
	case env.Body == "" && has("8BITMIME"):
		require.Equal(t, "8BITMIME", mail["BODY"], "MAIL line %q: BODY for Body %q", l.mail, env.Body)
	case env.Body == Body7Bit && !has("8BITMIME") && !has("BINARYMIME"):
		// BODY=7BIT may be left out then.
		require.Contains(t, []string{"", string(Body7Bit)}, mail["BODY"], "MAIL line %q: BODY for Body %q", l.mail, env.Body)
	case env.Body != "":
		require.Equal(t, string(env.Body), mail["BODY"], "MAIL line %q: BODY for Body %q", l.mail, env.Body)
	}
	utf8 := env.SMTPUTF8 || !fzASCII(env.From)
	for _, r := range env.To {
		utf8 = utf8 || !fzASCII(r.Addr)
	}
	_, ok := mail["SMTPUTF8"]
	require.Equal(t, utf8, ok, "MAIL line %q: SMTPUTF8 present, asked %v", l.mail, utf8)
	for _, p := range []struct {
		kw  string
		set bool
	}{{"RET", env.Ret != ""}, {"ENVID", env.EnvID != ""}, {"TRANSID", env.TransID != ""}, {"REQUIRETLS", env.RequireTLS}} {
		_, ok := mail[p.kw]
		require.Equal(t, p.set, ok, "MAIL line %q: %s present, asked %v", l.mail, p.kw, p.set)
	}

	for i, line := range l.rcpts {
		r := env.To[i]
		rcpt := fzParseCommand(t, line, "RCPT TO:", r.Addr)
		require.LessOrEqual(t, len(line), fzMaxRcptLine, "RCPT line of %d octets: %q", len(line), line)
		for kw, v := range rcpt {
			switch kw {
			case "NOTIFY":
				require.True(t, has("DSN"), "RCPT line %q: NOTIFY without DSN", line)
				require.NotEmpty(t, r.Notify, "RCPT line %q: NOTIFY unasked", line)
				got := strings.Split(v, ",")
				require.Len(t, got, len(r.Notify), "RCPT line %q: NOTIFY=%s for %q", line, v, r.Notify)
				seen := map[string]bool{}
				for j, k := range got {
					require.Equal(t, strings.ToUpper(string(r.Notify[j])), k, "RCPT line %q: NOTIFY=%s for %q", line, v, r.Notify)
					require.False(t, seen[k], "RCPT line %q: NOTIFY=%s repeats %s", line, v, k)
					seen[k] = true
				}
			case "ORCPT":
				xt, ok := strings.CutPrefix(v, "rfc822;")
				d, dok := fzXtextDecode(xt)
				msg := []any{"RCPT line %q: ORCPT=%s for %q", line, v, r.ORCPT}
				require.True(t, has("DSN"), msg...)
				require.True(t, ok, msg...)
				require.True(t, dok, msg...)
				require.Equal(t, r.ORCPT, d, msg...)
			default:
				require.Failf(t, "unexpected parameter", "RCPT line %q: unexpected parameter %s", line, kw)
			}
		}
		_, ok := rcpt["NOTIFY"]
		require.Equal(t, len(r.Notify) > 0, ok, "RCPT line %q: NOTIFY present for %q", line, r.Notify)
		_, ok = rcpt["ORCPT"]
		require.Equal(t, r.ORCPT != "", ok, "RCPT line %q: ORCPT present for %q", line, r.ORCPT)
	}
}

// FuzzEnvelope builds MAIL and RCPT lines from an arbitrary Envelope against
// an arbitrary set of offered extensions and checks that whatever it
// accepts is well-formed RFC 5321 with only parameters the server offers,
// and that it refuses exactly what it should.
func FuzzEnvelope(f *testing.F) {
	add := func(in fzEnvInput) {
		f.Add(in.from, in.to1, in.to2, in.to3, in.notify, in.orcpt, in.ret, in.envid, in.body, in.transid, in.sizeParam, in.verb, in.size, in.exts, in.flags)
	}
	const all = fzExtPipelining | fzExtSize | fzExt8BitMIME | fzExtBinaryMIME | fzExtChunking | fzExtSMTPUTF8 | fzExtDSN | fzExtRequireTLS | fzExtCheckpoint
	one, two, three := uint8(1<<4), uint8(2<<4), uint8(3<<4)
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", size: -1, flags: one})
	add(fzEnvInput{from: "", to1: "postmaster", size: 0, exts: fzExt8BitMIME | fzExtSMTPUTF8, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", to2: "c@example.net", to3: "d@example.net",
		notify: "SUCCESS,failure", orcpt: "b+x=y@example.com", ret: "hdrs", envid: "id+=1 2", body: "8BITMIME",
		transid: "<12345@claremont.edu>", sizeParam: "10240000", size: 1234, exts: all, flags: three | fzFlagRequireTLS | fzFlagTLS})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", body: "BINARYMIME", size: 5, exts: fzExtBinaryMIME | fzExtChunking, flags: one | fzFlagNoChunking})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", body: "BINARYMIME", size: 5, exts: fzExtBinaryMIME | fzExtChunking, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", body: "7BIT", size: 5, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", sizeParam: "100", size: 101, exts: fzExtSize, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", sizeParam: " 0 ", size: 1 << 62, exts: fzExtSize, flags: one})
	add(fzEnvInput{from: "\"a b\"@example.org", to1: "\"<x>\"@example.com", flags: one})
	add(fzEnvInput{from: "jöran@bücher.de", to1: "用户@例子.广告", exts: fzExtSMTPUTF8, flags: two})
	add(fzEnvInput{from: "jöran@bücher.de", to1: "b@example.com", flags: one})
	add(fzEnvInput{from: "a@example.org\r\nRCPT TO:<evil@example.com>", to1: "b@example.com", flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com> NOTIFY=NEVER", exts: fzExtDSN, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", notify: "NEVER,SUCCESS", exts: fzExtDSN, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", notify: "SUCCESS,FAILURE,DELAY", orcpt: "b@example.com", exts: fzExtDSN, flags: two})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", orcpt: "b\xff@example.com", exts: fzExtDSN, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", envid: strings.Repeat("+", 100), ret: "FULL", exts: fzExtDSN, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", transid: "<a=b@c>", exts: fzExtCheckpoint, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", flags: one | fzFlagRequireTLS, exts: fzExtRequireTLS})
	add(fzEnvInput{from: strings.Repeat("x", 254), to1: strings.Repeat("y", 255), flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "", flags: one})
	add(fzEnvInput{from: "a@example.org", flags: 0})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", verb: "SEND", sizeParam: "100", size: 50, exts: fzExtSize | fzExt8BitMIME, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", verb: "SAML", body: "8BITMIME", exts: fzExt8BitMIME, flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", verb: "SOML", notify: "SUCCESS", orcpt: "b@example.com", exts: fzExtDSN, flags: one})
	add(fzEnvInput{from: "jöran@bücher.de", to1: "b@example.com", verb: "SEND", flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", verb: "mail", flags: one})
	add(fzEnvInput{from: "a@example.org", to1: "b@example.com", verb: "MAIL", exts: fzExt8BitMIME, flags: one})
	f.Fuzz(func(t *testing.T, from, to1, to2, to3, notify, orcpt, ret, envid, body, transid, sizeParam, verb string, size int64, exts uint16, flags uint8) {
		in := fzEnvInput{from, to1, to2, to3, notify, orcpt, ret, envid, body, transid, sizeParam, verb, size, exts, flags}
		fzCheckEnvelope(t, in)
	})
}

// FuzzXtext checks xtext (RFC 3461 §4): only "!" to "~" without "=", "+"
// only in "+HH" with upper-case hex, the shortest encoding, and a strict
// decoder gets the input back.
func FuzzXtext(f *testing.F) {
	for _, s := range []string{"", "abc", "a+b", "a=b", "a b", "+", "=", "~!", "\x00\x7f\x80\xff", "rfc822;user@example.com", "Grüße"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x := xtext(s)
		for i := 0; i < len(x); i++ {
			c := x[i]
			require.True(t, c >= '!' && c <= '~' && c != '=', "xtext(%q) = %q: octet %q at %d", s, x, c, i)
		}
		d, ok := fzXtextDecode(x)
		require.True(t, ok, "xtext(%q) = %q does not decode", s, x)
		require.Equal(t, s, d, "xtext(%q) = %q, decoded", s, x)
		if s != "" {
			require.True(t, fzIsValue(x), "xtext(%q) = %q is not an esmtp-value", s, x)
		}
		require.LessOrEqual(t, len(x), 3*len(s), "xtext(%q) = %q: longer than 3 octets per octet", s, x)
	})
}

// FuzzValidateLine checks validateLine and validateAddress against their
// contracts: a line argument may hold anything but CR, LF and NUL (ErrCRLF,
// ErrNUL, for the first one found); an address none of those, at most 254
// octets, and angle brackets only inside a quoted local part or an address
// literal.
func FuzzValidateLine(f *testing.F) {
	for _, s := range []string{
		"", "a@example.org", "a\r\nb", "a\rb", "a\nb", "a\x00b", "\x00\r", "\r\x00", "<a@b>", "a>b", "\"a b\"@c", "0@[0:<]", "\"a>b\"@c", "a@b> SIZE=1", "\"a\"@b>",
		"jöran@bücher.de", "[192.0.2.1]", strings.Repeat("x", 254), strings.Repeat("x", 255), "\xff\xfe", "\t\x7f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want error
		if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
			want = ErrCRLF
			if s[i] == 0 {
				want = ErrNUL
			}
		}
		require.Equal(t, want, validateLine(s), "validateLine(%q)", s)
		err := validateAddress(s)
		if fzValidAddr(s) {
			require.NoError(t, err, "validateAddress(%q)", s)
		} else {
			require.Error(t, err, "validateAddress(%q)", s)
		}
		if want != nil {
			require.ErrorIs(t, err, want, "validateAddress(%q)", s)
		}
	})
}
