package smtp

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// BodyType is the value of the MAIL BODY parameter (RFC 6152, RFC 3030 §3).
type BodyType string

const (
	// Body7Bit declares 7-bit ASCII content.
	Body7Bit BodyType = "7BIT"
	// Body8BitMIME declares 8-bit content in lines (needs 8BITMIME).
	Body8BitMIME BodyType = "8BITMIME"
	// BodyBinaryMIME declares arbitrary octets (needs BINARYMIME and
	// CHUNKING). The message is sent as it is, without conversion to
	// canonical line endings.
	BodyBinaryMIME BodyType = "BINARYMIME"
)

// DSNReturn is the DSN RET parameter (RFC 3461 §4.3): what of the message
// a delivery status notification returns.
type DSNReturn string

const (
	// DSNReturnFull returns the whole message.
	DSNReturnFull DSNReturn = "FULL"
	// DSNReturnHeaders returns the headers only.
	DSNReturnHeaders DSNReturn = "HDRS"
)

// DSNNotify is a keyword of the DSN NOTIFY parameter (RFC 3461 §4.1): when
// to send a delivery status notification for a recipient.
type DSNNotify string

const (
	// DSNNever asks for no notification; it stands alone.
	DSNNever DSNNotify = "NEVER"
	// DSNSuccess asks for one on delivery.
	DSNSuccess DSNNotify = "SUCCESS"
	// DSNFailure asks for one on failure.
	DSNFailure DSNNotify = "FAILURE"
	// DSNDelay asks for one on a delay.
	DSNDelay DSNNotify = "DELAY"
)

// An Envelope is what a transaction sends besides the message itself: the
// sender, the recipients, and the MAIL and RCPT parameters.
//
// A parameter goes out only if the server offers its extension; asking for
// one it does not offer is an error that matches ErrExtensionNotOffered, and
// nothing is sent.
type Envelope struct {
	// From is the reverse-path, without angle brackets; "" sends the null
	// reverse-path "<>" (RFC 5321 §4.5.5).
	From string
	// To lists the recipients, in the order RCPT commands are sent.
	To []Recipient

	// Size is the message size in octets for the SIZE parameter (RFC 1870).
	// Zero means: the body's length when the reader reports it (Len, or
	// Stat for a file), which is exact for CRLF text and an underestimate,
	// which RFC 1870 §6.3 tolerates, for LF-only text. SIZE is declared
	// only when the server offers it, and a size over the server's limit is
	// refused before anything is sent (ErrMessageTooLarge).
	Size int64
	// Body is the BODY parameter. Empty means BODY=8BITMIME when the server
	// offers 8BITMIME (as net/smtp does) and no parameter otherwise.
	Body BodyType
	// SMTPUTF8 asks for the SMTPUTF8 parameter (RFC 6531 §3.4). It is also
	// sent, when offered, if an address is not ASCII; without the extension
	// such an address is an error.
	SMTPUTF8 bool
	// Ret is the DSN RET parameter (RFC 3461 §4.3); "" sends none.
	Ret DSNReturn
	// EnvID is the DSN ENVID parameter (RFC 3461 §4.4), sent as xtext.
	EnvID string
	// RequireTLS sends the REQUIRETLS parameter (RFC 8689); it needs the
	// extension and a TLS connection.
	RequireTLS bool
	// Verb is the command that starts the transaction: "" or "MAIL", or
	// one of RFC 821's "sending" commands (§3.4), "SEND" (deliver to the
	// recipients' terminals), "SOML" (terminal or mailbox) or "SAML"
	// (both), for a server that still offers them (RFC 5321 F.6 says
	// clients SHOULD NOT). These are sent without looking at the EHLO
	// reply, carry no MAIL parameters (any parameter asked for with one is
	// an error), and a server without them answers 500 or 502. Any other
	// value is an error.
	Verb string
	// TransID is the RFC 1845 TRANSID, with its angle brackets (see
	// NewTransID); it needs CHECKPOINT. A Courier sets it. A Batch never
	// sends anything that would end the server's hold on the transaction
	// (the next MAIL, RSET, QUIT) before the reply to its end of data has
	// been read, which costs a round trip per message in bulk.
	TransID string
}

// A Recipient is one RCPT of an Envelope.
type Recipient struct {
	// Addr is the forward-path, without angle brackets.
	Addr string
	// Notify is the DSN NOTIFY parameter (RFC 3461 §4.1): DSNNever alone,
	// or any of DSNSuccess, DSNFailure, DSNDelay; nil sends none.
	Notify []DSNNotify
	// ORCPT is the original recipient for the DSN ORCPT parameter (RFC 3461
	// §4.2), sent as "rfc822;" and the address in xtext.
	ORCPT string
}

// Recipients returns plain recipients for the given addresses.
func Recipients(addrs ...string) []Recipient {
	r := make([]Recipient, len(addrs))
	for i, a := range addrs {
		r[i].Addr = a
	}
	return r
}

var (
	// ErrExtensionNotOffered is matched by the error for an Envelope that
	// asks for a parameter whose extension the server did not offer.
	ErrExtensionNotOffered = errors.New("smtp: extension not offered by the server")
	// ErrMessageTooLarge is matched by the error for a message whose size
	// is over the server's SIZE limit (RFC 1870 §6.2), returned before
	// anything is sent.
	ErrMessageTooLarge = errors.New("smtp: message exceeds the server's size limit")
)

// envelopeLines holds the command lines of a transaction, built and checked
// before anything is written.
type envelopeLines struct {
	verb  string // MAIL, or SEND, SOML, SAML
	mail  string
	rcpts []string
	rcpt0 [4]string // storage for rcpts, for up to four recipients
}

// buildEnvelope checks env against the server's extensions and returns its
// MAIL and RCPT lines. size is the declared size, or -1 if unknown.
func (c *Client) buildEnvelope(env *Envelope, size int64) (*envelopeLines, error) {
	l := new(envelopeLines)
	if err := c.fillEnvelope(l, env, size); err != nil {
		return nil, err
	}
	return l, nil
}

// fillEnvelope is buildEnvelope into l.
func (c *Client) fillEnvelope(l *envelopeLines, env *Envelope, size int64) error {
	utf8, err := checkAddresses(env)
	if err != nil {
		return err
	}
	switch env.Verb {
	case "", "MAIL":
	case "SEND", "SOML", "SAML":
		h, err := historicLines(env, utf8)
		if err != nil {
			return err
		}
		*l = *h
		return nil
	default:
		return fmt.Errorf("smtp: invalid transaction verb %q", env.Verb)
	}
	l.verb = "MAIL"
	if l.mail, err = c.mailCommand(env, size, utf8); err != nil {
		return err
	}
	l.rcpts = l.rcpt0[:0]
	if len(env.To) > len(l.rcpt0) {
		l.rcpts = make([]string, 0, len(env.To))
	}
	if plainRcpts(l, env.To) {
		return nil
	}
	for _, r := range env.To {
		line, err := rcptCommand(c.ext, r)
		if err != nil {
			return err
		}
		l.rcpts = append(l.rcpts, line)
	}
	return nil
}

// plainRcpts appends to l the RCPT lines of to, if none has a parameter,
// all cut from one string: one allocation. It reports whether it did.
func plainRcpts(l *envelopeLines, to []Recipient) bool {
	const frame = len("RCPT TO:<>")
	n := 0
	for _, r := range to {
		if len(r.Notify) > 0 || r.ORCPT != "" || frame+len(r.Addr) > maxRcptLine {
			return false
		}
		n += frame + len(r.Addr)
	}
	var b strings.Builder
	b.Grow(n)
	for _, r := range to {
		b.WriteString("RCPT TO:<")
		b.WriteString(r.Addr)
		b.WriteByte('>')
	}
	all := b.String()
	for _, r := range to {
		k := frame + len(r.Addr)
		l.rcpts = append(l.rcpts, all[:k])
		all = all[k:]
	}
	return true
}

// checkAddresses checks the envelope's paths (validateAddress) and reports
// whether any of them is not ASCII or SMTPUTF8 was asked for.
func checkAddresses(env *Envelope) (utf8 bool, err error) {
	if len(env.To) == 0 {
		return false, errors.New("smtp: no recipients")
	}
	utf8, err = scanAddress(env.From)
	if err != nil {
		return false, err
	}
	utf8 = utf8 || env.SMTPUTF8
	for _, r := range env.To {
		if r.Addr == "" {
			return false, errors.New("smtp: empty recipient address")
		}
		nonASCII, err := scanAddress(r.Addr)
		if err != nil {
			return false, err
		}
		utf8 = utf8 || nonASCII
	}
	return utf8, nil
}

// historicLines returns the lines of a SEND, SOML or SAML transaction (RFC
// 821 §3.4), which carries no parameters.
func historicLines(env *Envelope, utf8 bool) (*envelopeLines, error) {
	if env.Body != "" || env.SMTPUTF8 || env.Ret != "" || env.EnvID != "" || env.RequireTLS || env.TransID != "" {
		return nil, fmt.Errorf("smtp: %s FROM takes no MAIL parameters", env.Verb)
	}
	if utf8 {
		// A non-ASCII address needs SMTPUTF8 (RFC 6531 §3.4), a MAIL
		// parameter.
		return nil, fmt.Errorf("smtp: %s FROM cannot carry a non-ASCII address", env.Verb)
	}
	l := &envelopeLines{verb: env.Verb, mail: env.Verb + " FROM:<" + env.From + ">"}
	for _, r := range env.To {
		if len(r.Notify) > 0 || r.ORCPT != "" {
			return nil, fmt.Errorf("smtp: %s FROM takes no RCPT parameters (NOTIFY, ORCPT)", env.Verb)
		}
		l.rcpts = append(l.rcpts, "RCPT TO:<"+r.Addr+">")
	}
	return l, nil
}

// A mailParam writes one MAIL parameter (" KEYWORD=value") to b if the
// transaction calls for it, or returns the error that refuses it.
type mailParam func(b *strings.Builder, c *Client, env *Envelope, size int64, utf8 bool) error

// mailParams are the MAIL parameters, in the order they are sent.
var mailParams = []mailParam{sizeParam, bodyParam, smtputf8Param, retParam, envidParam, transidParam, requiretlsParam}

// mailCommand returns the MAIL line for env: its reverse-path and every
// parameter that env asks for or that the server's extensions call for.
func (c *Client) mailCommand(env *Envelope, size int64, utf8 bool) (string, error) {
	var b strings.Builder
	b.Grow(len("MAIL FROM:<> SIZE=12345678 BODY=8BITMIME SMTPUTF8") + len(env.From))
	b.WriteString("MAIL FROM:<")
	b.WriteString(env.From)
	b.WriteByte('>')
	for _, p := range mailParams {
		if err := p(&b, c, env, size, utf8); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// sizeParam declares the size where SIZE is offered, refusing a message
// over the server's limit (RFC 1870 §6.2).
func sizeParam(b *strings.Builder, c *Client, _ *Envelope, size int64, _ bool) error {
	limit, ok := c.extFacts.sizeLimit, c.extFacts.size
	if !ok || size <= 0 {
		return nil
	}
	if limit > 0 && size > limit {
		return fmt.Errorf("%w: %d octets, limit %d (RFC 1870)", ErrMessageTooLarge, size, limit)
	}
	b.WriteString(" SIZE=")
	var digits [20]byte
	b.Write(strconv.AppendInt(digits[:0], size, 10))
	return nil
}

// bodyParam gives BODY (RFC 6152, RFC 3030 §3).
func bodyParam(b *strings.Builder, c *Client, env *Envelope, _ int64, _ bool) error {
	switch env.Body {
	case "":
		if c.extFacts.eightBitMIME {
			b.WriteString(" BODY=8BITMIME") // as net/smtp does
		}
		return nil
	case Body7Bit:
		// BODY is a parameter of 8BITMIME (RFC 6152 §3) and BINARYMIME
		// (RFC 3030 §3); without them 7BIT is the default and goes unsaid.
		if c.ext.has("8BITMIME") || c.ext.has("BINARYMIME") {
			b.WriteString(" BODY=7BIT")
		}
		return nil
	case Body8BitMIME:
		b.WriteString(" BODY=8BITMIME")
		return c.ext.need("8BITMIME", "BODY=8BITMIME")
	case BodyBinaryMIME:
		if err := c.ext.need("BINARYMIME", "BODY=BINARYMIME"); err != nil {
			return err
		}
		if !c.chunking() {
			return fmt.Errorf("%w: BODY=BINARYMIME needs CHUNKING (RFC 3030 §3)", ErrExtensionNotOffered)
		}
		b.WriteString(" BODY=BINARYMIME")
		return nil
	}
	return fmt.Errorf("smtp: invalid BODY %q", env.Body)
}

// smtputf8Param gives SMTPUTF8 for a non-ASCII address or when asked for
// (RFC 6531 §3.4).
func smtputf8Param(b *strings.Builder, c *Client, _ *Envelope, _ int64, utf8 bool) error {
	if !utf8 {
		return nil
	}
	b.WriteString(" SMTPUTF8")
	return c.ext.need("SMTPUTF8", "a non-ASCII address or SMTPUTF8")
}

// retParam gives the DSN RET parameter (RFC 3461 §4.3).
func retParam(b *strings.Builder, c *Client, env *Envelope, _ int64, _ bool) error {
	if env.Ret == "" {
		return nil
	}
	ret := DSNReturn(strings.ToUpper(string(env.Ret)))
	if ret != DSNReturnFull && ret != DSNReturnHeaders {
		return fmt.Errorf("smtp: invalid RET %q (RFC 3461 §4.3)", env.Ret)
	}
	b.WriteString(" RET=")
	b.WriteString(string(ret))
	return c.ext.need("DSN", "RET")
}

// envidParam gives the DSN ENVID parameter as xtext (RFC 3461 §4.4).
func envidParam(b *strings.Builder, c *Client, env *Envelope, _ int64, _ bool) error {
	if env.EnvID == "" {
		return nil
	}
	if err := c.ext.need("DSN", "ENVID"); err != nil {
		return err
	}
	if len(env.EnvID) > 100 || !isPrintableASCII(env.EnvID) {
		return fmt.Errorf("smtp: invalid ENVID %q (RFC 3461 §4.4: printable ASCII, 100 characters)", env.EnvID)
	}
	b.WriteString(" ENVID=")
	b.WriteString(xtext(env.EnvID))
	return nil
}

// transidParam gives the RFC 1845 TRANSID.
func transidParam(b *strings.Builder, c *Client, env *Envelope, _ int64, _ bool) error {
	if env.TransID == "" {
		return nil
	}
	if err := c.ext.need("CHECKPOINT", "TRANSID"); err != nil {
		return err
	}
	b.WriteString(" TRANSID=")
	b.WriteString(env.TransID)
	return ValidateTransID(env.TransID)
}

// requiretlsParam gives REQUIRETLS, which also needs TLS (RFC 8689).
func requiretlsParam(b *strings.Builder, c *Client, env *Envelope, _ int64, _ bool) error {
	if !env.RequireTLS {
		return nil
	}
	if err := c.ext.need("REQUIRETLS", "REQUIRETLS"); err != nil {
		return err
	}
	if !c.tls {
		return errors.New("smtp: REQUIRETLS needs a TLS connection (RFC 8689)")
	}
	b.WriteString(" REQUIRETLS")
	return nil
}

// rcptCommand returns the RCPT line for r, with the DSN parameters it asks
// for (RFC 3461 §4.1, §4.2).
func rcptCommand(ext extensions, r Recipient) (string, error) {
	line := "RCPT TO:<" + r.Addr + ">"
	if len(r.Notify) > 0 {
		if err := ext.need("DSN", "NOTIFY"); err != nil {
			return "", err
		}
		v, err := notifyValue(r.Notify)
		if err != nil {
			return "", err
		}
		line += " NOTIFY=" + v
	}
	if r.ORCPT != "" {
		if err := ext.need("DSN", "ORCPT"); err != nil {
			return "", err
		}
		if !isPrintableASCII(r.ORCPT) {
			return "", fmt.Errorf("smtp: invalid ORCPT %q (RFC 3461 §4.2: printable ASCII)", r.ORCPT)
		}
		line += " ORCPT=rfc822;" + xtext(r.ORCPT)
	}
	if len(line) > maxRcptLine {
		return "", fmt.Errorf("smtp: RCPT line of %d octets for %q is longer than the %d RFC 3461 §4 allows (ORCPT too long)", len(line), r.Addr, maxRcptLine)
	}
	return line, nil
}

// maxRcptLine is the longest RCPT line, CRLF excluded: RFC 5321
// §4.5.3.1.4's 512 octets with the CRLF, and 500 more for NOTIFY and ORCPT
// (RFC 3461 §4).
const maxRcptLine = 512 - 2 + 500

func (c *Client) chunking() bool {
	return c.ext.has("CHUNKING") && !c.noChunking
}

// notifyValue checks and joins NOTIFY keywords (RFC 3461 §4.1).
func notifyValue(v []DSNNotify) (string, error) {
	up := make([]string, len(v))
	for i, k := range v {
		up[i] = strings.ToUpper(string(k))
		if slices.Contains(up[:i], up[i]) {
			return "", fmt.Errorf("smtp: NOTIFY keyword %q given twice (RFC 3461 §4.1)", k)
		}
		switch up[i] {
		case "SUCCESS", "FAILURE", "DELAY":
		case "NEVER":
			if len(v) > 1 {
				return "", errors.New("smtp: NOTIFY=NEVER must stand alone (RFC 3461 §4.1)")
			}
		default:
			return "", fmt.Errorf("smtp: invalid NOTIFY keyword %q", k)
		}
	}
	return strings.Join(up, ","), nil
}

// validateAddress rejects an address that would break the command line or
// its path: CR, LF, NUL, or more than the 256 octets of a path (RFC 5321
// §4.5.3.1.3). An address with an angle or square bracket, a double quote
// or a backslash must also be a path ParsePath accepts: angle brackets then
// stand only inside a quoted local part or an address literal (RFC 5321
// §4.1.2, §4.1.3), and every quoted string and address literal ends before
// the path does, so that no parser, strict or naive, can read the path as
// ending anywhere but at its closing bracket.
func validateAddress(addr string) error {
	_, err := scanAddress(addr)
	return err
}

// Classes of octets in an address, for scanAddress.
const (
	addrBreak    = 1 << iota // CR, LF or NUL: validateLine says which
	addrSpecial              // < > " \ [ ]: the address must parse as a path
	addrNonASCII             // the address needs SMTPUTF8
)

// addrClasses holds the class of each octet; it is never changed.
var addrClasses = func() (t [256]uint8) {
	for _, c := range "\r\n\x00" {
		t[c] = addrBreak
	}
	for _, c := range `<>"\[]` {
		t[c] = addrSpecial
	}
	for c := 0x80; c < 0x100; c++ {
		t[c] = addrNonASCII
	}
	return t
}()

// scanAddress is validateAddress, in one pass over addr that also reports
// whether addr has non-ASCII octets.
func scanAddress(addr string) (nonASCII bool, err error) {
	var class uint8
	for i := 0; i < len(addr); i++ {
		class |= addrClasses[addr[i]]
	}
	if class&addrBreak != 0 {
		return false, validateLine(addr)
	}
	if class&addrSpecial != 0 {
		if addr[0] == '<' || addr[len(addr)-1] == '>' {
			return false, fmt.Errorf("smtp: invalid address %q: give it without angle brackets", addr)
		}
		if _, err := ParsePath("<" + addr + ">"); err != nil {
			return false, err // matches ErrInvalidPath and says why
		}
	}
	if len(addr) > 254 {
		return false, fmt.Errorf("smtp: address of %d octets is longer than a path may be (RFC 5321 §4.5.3.1.3)", len(addr))
	}
	return class&addrNonASCII != 0, nil
}

// xtext encodes s as RFC 3461 §4 xtext: "!" to "~" except "+" and "=" stand
// for themselves, any other octet is "+" and two upper-case hex digits.
func xtext(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('+')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// bodySize returns the length of the unread part of r when r can tell it
// without being read, or -1.
func bodySize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return fi.Size() - off
	}
	return -1
}
