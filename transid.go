package smtp

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// maxTransIDLen is the longest a TRANSID may be, angle brackets included
// (RFC 1845 §2).
const maxTransIDLen = 80

// ErrInvalidTransID is matched (errors.Is) by the errors of NewTransID and
// ValidateTransID for a value that cannot be, or be in, a TRANSID.
var ErrInvalidTransID = errors.New("smtp: invalid TRANSID")

const (
	// transIDTimeLen is the width of the time field of a generated
	// transid-local: unix nanoseconds in base 36, zero-padded to the width
	// of the largest uint64, so that every generated local part has the
	// same length.
	transIDTimeLen = 13
	// transIDRandBytes is the number of random octets in a generated
	// transid-local: 96 bits, 20 base32 digits.
	transIDRandBytes = 12
	// transIDLocalLen is the length of a generated transid-local.
	transIDLocalLen = transIDTimeLen + 1 + (transIDRandBytes*8+4)/5
)

// maxTransIDDomainLen is the longest client domain NewTransID accepts (43):
// what maxTransIDLen leaves after the brackets, the "@" and the generated
// transid-local.
const maxTransIDDomainLen = maxTransIDLen - len("<@>") - transIDLocalLen

// transIDEncoding spells the random bits of a generated TRANSID: lower-case
// base32 ("0"-"9", "a"-"v"), all of them transid-atom characters.
var transIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// A transIDError reports a value that is not a valid TRANSID (RFC 1845 §2)
// or a client domain that cannot be a transid-domain. It matches
// ErrInvalidTransID.
type transIDError struct {
	// Value is the rejected value.
	Value string
	// Index is the byte offset in Value of the first offending octet, or
	// -1 when the problem is not at one place (the length, a missing "@").
	Index int
	// Reason says what is wrong, e.g. `tspecial '['` or `a second "@"`.
	Reason string
	// Domain is set when Value was given to NewTransID as the client
	// domain rather than as a whole TRANSID.
	Domain bool
}

// Error returns the value, quoted and cut to 100 octets, the reason and,
// when there is one, the index.
func (e *transIDError) Is(target error) bool { return target == ErrInvalidTransID }

func (e *transIDError) Error() string {
	v := e.Value
	if len(v) > 100 {
		v = v[:100] + "..."
	}
	what := "TRANSID"
	if e.Domain {
		what = "transid-domain"
	}
	s := "smtp: invalid " + what + " " + strconv.Quote(v) + ": " + e.Reason
	if e.Index >= 0 {
		s += " at index " + strconv.Itoa(e.Index)
	}
	return s + " (RFC 1845 §2)"
}

// NewTransID returns a new TRANSID, "<local@domain>" with the angle
// brackets, for a client that names itself domain. It is meant to be
// globally unique: the local part is the current time (unix nanoseconds,
// base 36) and 96 bits from crypto/rand, in base32, joined by ".".
//
// domain goes into the TRANSID as it is, and RFC 1845 §3 wants a domain
// name that identifies the client; it is usually the EHLO name. It must be
// a valid transid-domain: ASCII atoms separated by single dots, without
// SPACE, controls or the MIME tspecials, and at most 43
// octets so that the TRANSID fits in 80 characters. Anything else,
// including an address literal such as "[192.0.2.1]" (its brackets are
// tspecials), an internationalized name not in A-label form, or a name with
// a trailing dot, is refused with an error that matches ErrInvalidTransID
// and says why; NewTransID does not
// substitute a name of its own. A client that greets with an address
// literal should pass a name for itself instead, for example its host
// name: the random bits, not the domain, make the TRANSID unique.
//
// The error is also non-nil if crypto/rand fails.
func NewTransID(domain string) (string, error) {
	return newTransID(domain, time.Now(), nil)
}

// newTransID is NewTransID with the clock and the random source given;
// rnd nil means crypto/rand.
func newTransID(domain string, now time.Time, rnd io.Reader) (string, error) {
	if err := validateTransIDDomain(domain); err != nil {
		return "", err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var buf [transIDRandBytes]byte
	if _, err := io.ReadFull(rnd, buf[:]); err != nil {
		return "", fmt.Errorf("smtp: reading random bits for a TRANSID: %w", err)
	}
	ts := strconv.FormatUint(uint64(now.UnixNano()), 36)
	var b strings.Builder
	b.Grow(len("<@>") + transIDLocalLen + len(domain))
	b.WriteByte('<')
	for range transIDTimeLen - len(ts) {
		b.WriteByte('0')
	}
	b.WriteString(ts)
	b.WriteByte('.')
	b.WriteString(transIDEncoding.EncodeToString(buf[:]))
	b.WriteByte('@')
	b.WriteString(domain)
	b.WriteByte('>')
	return b.String(), nil
}

// validateTransIDDomain checks that domain can be the transid-domain of a
// TRANSID made by NewTransID.
func validateTransIDDomain(domain string) error {
	if domain == "" {
		return &transIDError{Value: domain, Index: -1, Reason: "empty domain", Domain: true}
	}
	if strings.HasPrefix(domain, "[") {
		return &transIDError{Value: domain, Index: 0, Domain: true,
			Reason: "an address literal cannot be a transid-domain, its brackets are tspecials; pass a domain name"}
	}
	if idx, reason := checkTransIDToken(domain, 0, "domain", false); reason != "" {
		return &transIDError{Value: domain, Index: idx, Reason: reason, Domain: true}
	}
	if len(domain) > maxTransIDDomainLen {
		return &transIDError{Value: domain, Index: -1, Domain: true,
			Reason: fmt.Sprintf("%d octets, longer than the %d that fit in a TRANSID of %d characters", len(domain), maxTransIDDomainLen, maxTransIDLen)}
	}
	return nil
}

// ValidateTransID reports whether v is a valid TRANSID as RFC 1845 §2
// defines it: "<" transid-local "@" transid-domain ">", at most
// 80 characters, each side of the "@" one or more atoms separated
// by single dots, an atom being one or more ASCII characters other than
// SPACE, controls, the MIME tspecials ( ) < > @ , ; : \ " / [ ] ? = and ".".
// It returns nil for a valid value and otherwise an error that matches
// ErrInvalidTransID and says what is wrong and, when it can, at which
// index. The comparison of TRANSIDs
// is case-sensitive, and ValidateTransID changes nothing.
func ValidateTransID(v string) error {
	fail := func(idx int, reason string) error {
		return &transIDError{Value: v, Index: idx, Reason: reason}
	}
	switch {
	case v == "":
		return fail(-1, "empty")
	case len(v) > maxTransIDLen:
		return fail(-1, fmt.Sprintf("%d characters, more than %d", len(v), maxTransIDLen))
	case v[0] != '<':
		return fail(0, `does not start with "<"`)
	case len(v) < 2 || v[len(v)-1] != '>':
		return fail(len(v)-1, `does not end with ">"`)
	}
	inner := v[1 : len(v)-1]
	at := strings.IndexByte(inner, '@')
	if inner == "" {
		return fail(1, "nothing between the angle brackets")
	}
	if at < 0 {
		if idx, reason := checkTransIDToken(inner, 1, "transid-local", false); reason != "" {
			return fail(idx, reason)
		}
		return fail(-1, `no "@"`)
	}
	if idx, reason := checkTransIDToken(inner[:at], 1, "transid-local", false); reason != "" {
		return fail(idx, reason)
	}
	if idx, reason := checkTransIDToken(inner[at+1:], at+2, "transid-domain", true); reason != "" {
		return fail(idx, reason)
	}
	return nil
}

// checkTransIDToken checks s against transid-token, atoms separated by
// single dots. off is the index of s in the value reported; what names the
// token in reasons; afterAt says s follows the value's "@", so that another
// "@" is reported as a second one. It returns the index and the reason of
// the first problem, or a reason of "".
func checkTransIDToken(s string, off int, what string, afterAt bool) (int, string) {
	if s == "" {
		return off, "empty " + what
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			switch {
			case i == 0:
				return off + i, what + ` starts with "."`
			case s[i-1] == '.':
				return off + i, `empty atom between two "."`
			case i == len(s)-1:
				return off + i, what + ` ends with "."`
			}
		case isTransIDAtomChar(c):
		case c == '@' && afterAt:
			return off + i, `a second "@"`
		default:
			return off + i, describeTransIDOctet(c)
		}
	}
	return 0, ""
}

// isTransIDAtomChar reports whether c may appear in a transid-atom: an
// ASCII CHAR other than SPACE, CTLs, tspecials (RFC 2045 §5.1) and ".".
func isTransIDAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	return !strings.ContainsRune(`()<>@,;:\"/[]?=.`, rune(c))
}

// describeTransIDOctet says why c, which is not an atom character, is not.
func describeTransIDOctet(c byte) string {
	switch {
	case c == ' ':
		return "space"
	case c < ' ' || c == 0x7f:
		return fmt.Sprintf("control character 0x%02x", c)
	case c >= 0x80:
		return fmt.Sprintf("non-ASCII octet 0x%02x", c)
	default:
		return fmt.Sprintf("tspecial %q", rune(c))
	}
}

// transIDDomain returns a transid-domain for the EHLO name: the name
// itself, or as many of its rightmost labels as fit (RFC 1845 §2 bounds a
// TRANSID to 80 characters), or "localhost" for an address literal, whose
// brackets a transid-atom may not hold. The random part of the TRANSID
// keeps it unique either way.
func transIDDomain(localName string) string {
	if strings.HasPrefix(localName, "[") {
		return "localhost"
	}
	for len(localName) > maxTransIDDomainLen {
		_, rest, ok := strings.Cut(localName, ".")
		if !ok {
			return "localhost"
		}
		localName = rest
	}
	return localName
}
