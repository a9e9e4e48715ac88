// Package mtasts implements SMTP MTA Strict Transport Security (RFC 8461)
// for a sending client: it discovers a domain's policy through its
// "_mta-sts" TXT record, fetches it over HTTPS with the rules of §3.3,
// parses it strictly (§3.2), caches it (§5.1) and tells which MX hosts it
// allows and whether TLS with a verified certificate is required (§4).
package mtasts

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §3.2, §5).
type Mode string

const (
	// Enforce: deliver only to a matching MX host over TLS with a
	// certificate valid for its name; anything else is a temporary failure.
	Enforce Mode = "enforce"
	// Testing: deliver as without a policy, and report failures (RFC 8460).
	Testing Mode = "testing"
	// None: the domain has withdrawn its policy.
	None Mode = "none"
)

// MaxAge is the largest max_age a policy may have: one year (§3.2).
const MaxAge = 31557600 * time.Second

// A Policy is a parsed MTA-STS policy.
type Policy struct {
	Mode Mode
	// MX lists the allowed MX patterns: host names, or "*." and a domain
	// (one label of wildcard), lower-case, without a trailing dot.
	MX []string
	// MaxAge is how long the policy may be cached.
	MaxAge time.Duration
}

// ErrSyntax is matched by the error Parse returns for a policy that does
// not follow RFC 8461 §3.2.
var ErrSyntax = errors.New("mtasts: invalid policy")

// Parse parses a policy body (RFC 8461 §3.2): "key: value" lines ended by
// LF or CRLF. version must be "STSv1"; mode one of enforce, testing and
// none; max_age an integer of at most ten digits and at most 31557600; mx
// a host name or a "*." wildcard, and at least one unless mode is none.
// version, mode and max_age must each appear exactly once (a policy that
// says two things is not trusted); mx may repeat; unknown fields are
// ignored. It returns an error that matches ErrSyntax and names the line.
func Parse(body []byte) (*Policy, error) {
	p := &Policy{}
	seen := map[string]bool{}
	lines := bytes.Split(body, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1] // the last line's terminator
	}
	for i, raw := range lines {
		line := string(bytes.TrimSuffix(raw, []byte("\r")))
		if err := p.field(line, seen); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrSyntax, i+1, err)
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: no %s", ErrSyntax, k)
		}
	}
	if p.Mode != None && len(p.MX) == 0 {
		return nil, fmt.Errorf("%w: mode %s without an mx", ErrSyntax, p.Mode)
	}
	return p, nil
}

// field parses one line into p.
func (p *Policy) field(line string, seen map[string]bool) error {
	key, value, ok := strings.Cut(line, ":")
	if !ok || !validKey(key) {
		return fmt.Errorf("not a field: %q", line)
	}
	value = strings.TrimRight(strings.TrimLeft(value, " \t"), " \t")
	if key != "mx" && seen[key] && isKnown(key) {
		return fmt.Errorf("%s given twice", key)
	}
	seen[key] = true
	switch key {
	case "version":
		if value != "STSv1" {
			return fmt.Errorf("version %q, not STSv1", value)
		}
	case "mode":
		switch m := Mode(value); m {
		case Enforce, Testing, None:
			p.Mode = m
		default:
			return fmt.Errorf("mode %q", value)
		}
	case "max_age":
		if value == "" || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
			return fmt.Errorf("max_age %q", value)
		}
		n, _ := strconv.ParseInt(value, 10, 64)
		if time.Duration(n)*time.Second > MaxAge {
			return fmt.Errorf("max_age %d over a year", n)
		}
		p.MaxAge = time.Duration(n) * time.Second
	case "mx":
		pattern := strings.ToLower(strings.TrimSuffix(value, "."))
		if !validPattern(pattern) {
			return fmt.Errorf("mx %q", value)
		}
		p.MX = append(p.MX, pattern)
	default:
		if value == "" {
			return fmt.Errorf("field %s without a value", key)
		}
	}
	return nil
}

func isKnown(key string) bool {
	return key == "version" || key == "mode" || key == "max_age"
}

// validKey reports whether k is a field name: a letter or digit, then up to
// 31 letters, digits, "_", "-" and ".".
func validKey(k string) bool {
	if k == "" || len(k) > 32 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validPattern reports whether p is a host name, or "*." and a host name
// of two labels at least (a wildcard may not stand for a whole domain's
// name under a public suffix alone); each label letters, digits and
// hyphens, not starting or ending with a hyphen.
func validPattern(p string) bool {
	host, wild := strings.CutPrefix(p, "*.")
	labels := strings.Split(host, ".")
	if len(host) == 0 || len(host) > 253 || wild && len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Match reports whether the MX host name mx matches one of the policy's
// patterns (RFC 8461 §4.1): equal to a host name, or to a wildcard's domain
// with exactly one more label on the left; case-insensitive, a trailing
// dot ignored.
func (p *Policy) Match(mx string) bool {
	mx = strings.ToLower(strings.TrimSuffix(mx, "."))
	for _, pat := range p.MX {
		if d, ok := strings.CutPrefix(pat, "*."); ok {
			label, rest, found := strings.Cut(mx, ".")
			if found && label != "" && rest == d {
				return true
			}
		} else if mx == pat {
			return true
		}
	}
	return false
}
