package smtp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// A Path is a reverse-path or forward-path (RFC 5321 §4.1.2): a mailbox,
// optionally preceded by a source route, the list of hosts the mail is to
// be relayed through (RFC 821 §3.6: in "<@ONE,@TWO:JOE@THREE>" the route is
// ONE, TWO and the mailbox JOE@THREE).
//
// Source routes are deprecated: RFC 5321 §3.6.1 and Appendix C say clients
// SHOULD NOT generate them and servers MUST accept them but SHOULD ignore
// the route and deliver to the mailbox's domain (F.2: a server that uses
// the route MUST send to its first host). They remain for very old
// systems and for debugging. The Client sends a path exactly as it is
// given: pass Addr (no angle brackets) to Mail, Rcpt, an Envelope or the
// rfc821 package's StartMail.
//
// The zero Path is the null path "<>", the reverse-path of notifications
// (RFC 821 §3.6, RFC 5321 §4.5.5).
type Path struct {
	// Route lists the hosts of the source route, in order, without their
	// "@": domain names or address literals, as given.
	Route []string
	// Mailbox is "local-part@domain" (or "Postmaster"), as given; "" for
	// the null path.
	Mailbox string
}

// String returns p in angle brackets, as in a command: "<@A,@B:joe@C>",
// "<joe@C>" or "<>". For a Path from ParsePath it is the input, with the
// brackets added if they were left out.
func (p Path) String() string { return "<" + p.Addr() + ">" }

// Addr returns p without angle brackets ("@A,@B:joe@C", "joe@C", "" for
// the null path): the form Client.Mail, Client.Rcpt and Envelope take.
func (p Path) Addr() string {
	if len(p.Route) == 0 {
		return p.Mailbox
	}
	return "@" + strings.Join(p.Route, ",@") + ":" + p.Mailbox
}

// maxPathLen is RFC 5321 §4.5.3.1.3's limit on a path, angle brackets
// included.
const maxPathLen = 256

// ErrInvalidPath is matched by every error ParsePath returns.
var ErrInvalidPath = errors.New("smtp: invalid path")

// ParsePath parses a reverse-path or forward-path, with or without its
// angle brackets: "<@A,@B:joe@C>", "joe@C", "<>" (and "", the null path).
// It follows RFC 5321 §4.1.2, which RFC 821 §4.1.2's grammar became:
//
//   - each host of the route is a domain name (letters, digits and hyphens
//     in labels of at most 63 octets, not starting or ending with a
//     hyphen, at most 255 octets) or an address literal ("[192.0.2.1]",
//     "[IPv6:2001:db8::1]", or a "[tag:content]" general literal);
//   - the mailbox is local-part "@" domain or address literal; the local
//     part (at most 64 octets) is a dot-string of atoms, or a quoted
//     string; RFC 821's backslash escapes in a dot-string ("Joe\,Smith")
//     are accepted too;
//   - "Postmaster" alone, in any case, is accepted (RFC 5321 §4.1.1.3);
//   - UTF-8 in local parts and domain labels is accepted (RFC 6531, which
//     needs the server's SMTPUTF8);
//   - the whole path is at most 256 octets with its brackets (RFC 5321
//     §4.5.3.1.3).
//
// Angle brackets are accepted where RFC 5321's grammar allows them: inside
// a quoted local part (qtextSMTP, §4.1.2) and inside a general address
// literal (dcontent, §4.1.3), as in "<0@[x:<]>". The Client accepts exactly
// those (see validateAddress): a bracket anywhere else could end the path
// early and smuggle parameters onto the command line. RFC 821's backslash
// escapes may not escape a bracket (RFC 5321 has no such escapes, so a
// server would read "\>" as the end of the path), and RFC 821's "#123"
// host numbers are refused (RFC 5321 F.4: MUST NOT be used). RFC 772 wrote a route with a comma before the mailbox
// ("<@Y,@X,fubar@Z>"); ParsePath reads only the RFC 821 form, but the
// Client sends whatever path it is given.
//
// The parts are kept as given, case included. The error matches
// ErrInvalidPath and says what is wrong.
func ParsePath(s string) (Path, error) {
	in := s
	if strings.HasPrefix(s, "<") || strings.HasSuffix(s, ">") {
		if len(s) < 2 || s[0] != '<' || s[len(s)-1] != '>' {
			return Path{}, pathError(in, "unbalanced angle brackets")
		}
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return Path{}, nil
	}
	if len(s)+2 > maxPathLen {
		return Path{}, pathError(in, fmt.Sprintf("%d octets with the brackets, more than %d (RFC 5321 §4.5.3.1.3)", len(s)+2, maxPathLen))
	}
	if !utf8.ValidString(s) {
		return Path{}, pathError(in, "not valid UTF-8")
	}
	var p Path
	i := 0
	if s[0] == '@' {
		for {
			n, err := hostLen(s[i+1:])
			if err != nil {
				return Path{}, pathError(in, "source route: "+err.Error())
			}
			p.Route = append(p.Route, s[i+1:i+1+n])
			i += 1 + n
			if i >= len(s) {
				return Path{}, pathError(in, "source route without a mailbox")
			}
			if s[i] == ':' {
				i++
				break
			}
			if s[i] != ',' {
				return Path{}, pathError(in, fmt.Sprintf("source route: unexpected %q after a host", s[i]))
			}
			i++
			if i >= len(s) || s[i] != '@' {
				return Path{}, pathError(in, `source route: a host must follow "," with "@" (RFC 772's "@A,user@host" is not RFC 821's "@A:user@host")`)
			}
		}
	}
	mb := s[i:]
	if err := checkMailbox(mb, len(p.Route) == 0); err != nil {
		return Path{}, pathError(in, err.Error())
	}
	p.Mailbox = mb
	return p, nil
}

func pathError(s, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidPath, s, reason)
}

// hostLen returns the length of the domain or address literal at the start
// of s, checked.
func hostLen(s string) (int, error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return 0, errors.New("address literal without \"]\"")
		}
		return end + 1, checkAddressLiteral(s[:end+1])
	}
	n := 0
	for n < len(s) && (isLetDig(s[n]) || s[n] == '-' || s[n] == '.' || s[n] >= 0x80) {
		n++
	}
	if n == 0 {
		if n < len(s) && s[n] == '#' {
			return 0, errors.New(`"#" host numbers MUST NOT be used (RFC 5321 F.4)`)
		}
		return 0, errors.New("empty host")
	}
	return n, checkDomain(s[:n])
}

func isLetDig(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkDomain checks RFC 5321's Domain: sub-domains of letters, digits and
// hyphens (and UTF-8, RFC 6531), each starting and ending with a letter or
// digit, at most 63 octets; 255 in all (§4.5.3.1.2).
func checkDomain(d string) error {
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > 255 {
		return fmt.Errorf("domain of %d octets, more than 255 (RFC 5321 §4.5.3.1.2)", len(d))
	}
	for label := range strings.SplitSeq(d, ".") {
		switch {
		case label == "":
			return fmt.Errorf("domain %q has an empty label", d)
		case len(label) > 63:
			return fmt.Errorf("domain %q has a label longer than 63 octets", d)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("domain %q has a label starting or ending with \"-\"", d)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isLetDig(c) && c != '-' && c < 0x80 {
				return fmt.Errorf("domain %q: %q is not allowed", d, c)
			}
		}
	}
	return nil
}

// checkAddressLiteral checks RFC 5321 §4.1.3's address-literal, brackets
// included.
func checkAddressLiteral(lit string) error {
	in := lit[1 : len(lit)-1]
	if tag, rest, ok := strings.Cut(in, ":"); ok {
		if strings.EqualFold(tag, "IPv6") {
			a, err := netip.ParseAddr(rest)
			if err != nil || !a.Is6() || a.Zone() != "" {
				return fmt.Errorf("invalid IPv6 address literal %s", lit)
			}
			return nil
		}
		if tag == "" || !isLetDig(tag[len(tag)-1]) || rest == "" {
			return fmt.Errorf("invalid address literal %s", lit)
		}
		for i := 0; i < len(tag); i++ {
			if !isLetDig(tag[i]) && tag[i] != '-' {
				return fmt.Errorf("invalid address literal tag in %s", lit)
			}
		}
		for i := 0; i < len(rest); i++ {
			if c := rest[i]; c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' {
				return fmt.Errorf("invalid address literal %s", lit)
			}
		}
		return nil
	}
	// IPv4: Snum 3("." Snum), Snum 1 to 3 digits up to 255.
	parts := strings.Split(in, ".")
	if len(parts) != 4 {
		return fmt.Errorf("invalid IPv4 address literal %s", lit)
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return fmt.Errorf("invalid IPv4 address literal %s", lit)
		}
		n := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return fmt.Errorf("invalid IPv4 address literal %s", lit)
			}
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return fmt.Errorf("invalid IPv4 address literal %s", lit)
		}
	}
	return nil
}

// isAtext reports whether c may appear in an atom (RFC 5322 atext, and
// UTF-8 octets for RFC 6531).
func isAtext(c byte) bool {
	return isLetDig(c) || c >= 0x80 || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkMailbox checks Local-part "@" (Domain / address-literal); with
// postmaster, a bare "Postmaster" passes too.
func checkMailbox(mb string, postmaster bool) error {
	if mb == "" {
		return errors.New("empty mailbox")
	}
	if postmaster && strings.EqualFold(mb, "Postmaster") {
		return nil
	}
	n, err := localPartLen(mb)
	if err != nil {
		return err
	}
	if n > 64 {
		return fmt.Errorf("local part of %d octets, more than 64 (RFC 5321 §4.5.3.1.1)", n)
	}
	if n >= len(mb) || mb[n] != '@' {
		return errors.New(`mailbox without "@domain"`)
	}
	host := mb[n+1:]
	hn, err := hostLen(host)
	if err != nil {
		return err
	}
	if hn != len(host) {
		return fmt.Errorf("unexpected %q after the domain", host[hn:])
	}
	return nil
}

// localPartLen returns the length of the local part at the start of s: a
// quoted string, or a dot-string (with RFC 821's backslash escapes).
func localPartLen(s string) (int, error) {
	if s[0] == '"' {
		for i := 1; i < len(s); i++ {
			switch c := s[i]; {
			case c == '"':
				return i + 1, nil
			case c == '\\':
				i++
				if i >= len(s) || s[i] < 32 || s[i] > 126 {
					return 0, errors.New("invalid quoted pair in the local part")
				}
			case c < 32 || c == 127:
				return 0, fmt.Errorf("%q in the local part", c)
			}
		}
		return 0, errors.New("unterminated quoted local part")
	}
	i := 0
	atom := 0 // octets in the current atom
	for i < len(s) {
		switch c := s[i]; {
		case isAtext(c):
			atom++
		case c == '\\':
			i++
			if i >= len(s) || s[i] < 32 || s[i] > 126 || s[i] == '<' || s[i] == '>' {
				return 0, errors.New("invalid backslash escape in the local part")
			}
			atom++
		case c == '.':
			if atom == 0 {
				return 0, errors.New(`empty atom in the local part (".." or a leading ".")`)
			}
			atom = 0
		case c == '@':
			if i == 0 {
				return 0, errors.New("empty local part")
			}
			if atom == 0 {
				return 0, errors.New(`the local part ends with "."`)
			}
			return i, nil
		default:
			return 0, fmt.Errorf("%q is not allowed in a local part (quote it)", c)
		}
		i++
	}
	if atom == 0 {
		return 0, errors.New(`the local part ends with "."`)
	}
	return i, nil
}
