package smtp

import (
	"fmt"
	"strconv"
	"strings"
)

// extensions is the server's EHLO extension table (RFC 5321 §4.1.1.1):
// upper-case keyword -> its parameters. A nil table is a server that
// answered HELO, or that has not been asked yet: it offers nothing.
type extensions map[string]string

// parseEHLO reads the ehlo-lines of a 250 reply to EHLO, the greeting line
// excluded: the keyword is the text up to the first space, compared
// case-insensitively (RFC 5321 §2.4), the rest its parameters. Some servers
// also list their mechanisms the pre-RFC 2554 way, "AUTH=LOGIN PLAIN": the
// first such line counts, and an RFC 4954 "AUTH" line wins over it.
func parseEHLO(lines []string) extensions {
	ext := make(extensions, len(lines))
	for _, line := range lines {
		k, v, _ := strings.Cut(line, " ")
		k = strings.ToUpper(k)
		if legacy, ok := strings.CutPrefix(k, "AUTH="); ok {
			if _, ok := ext["AUTH"]; !ok {
				ext["AUTH"] = strings.TrimSpace(legacy + " " + v)
			}
			continue
		}
		ext[k] = v
	}
	return ext
}

// has reports whether the server offers the extension kw (upper case).
func (e extensions) has(kw string) bool {
	_, ok := e[kw]
	return ok
}

// need returns an error matching ErrExtensionNotOffered unless the server
// offers kw; what names the parameter or feature that needs it.
func (e extensions) need(kw, what string) error {
	if !e.has(kw) {
		return fmt.Errorf("%w: %s needs %s", ErrExtensionNotOffered, what, kw)
	}
	return nil
}

// extFacts is what every MAIL command needs to know of the extensions,
// worked out once per EHLO instead of once per message.
type extFacts struct {
	sizeLimit    int64 // SIZE's limit, 0 for none
	size         bool  // SIZE is offered
	eightBitMIME bool
}

// setExt records the server's extensions (nil before EHLO, after HELO, and
// after STARTTLS until the next EHLO) and what follows from them.
func (c *Client) setExt(ext extensions) {
	c.ext = ext
	c.extFacts = extFacts{eightBitMIME: ext.has("8BITMIME")}
	c.extFacts.sizeLimit, c.extFacts.size = ext.maxSize()
}

// maxSize returns the SIZE extension's limit (0: none given) and whether
// the server offers SIZE (RFC 1870 §4).
func (e extensions) maxSize() (int64, bool) {
	v, ok := e["SIZE"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, true
	}
	return n, true
}
