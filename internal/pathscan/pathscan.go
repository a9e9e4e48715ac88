// Package pathscan finds angle-bracketed paths in SMTP text the way RFC
// 5321 §4.1.2 quotes them: a bracket inside a quoted string, or escaped
// with a backslash, is not one. The client (EXPN replies), the rfc821
// receiver and the test server (MAIL and RCPT arguments) share it.
package pathscan

import "strings"

// unquoted calls visit with the index of each octet of s, from from on,
// that stands outside a quoted string and is not escaped by a backslash,
// until visit returns false.
func unquoted(s string, from int, visit func(i int) bool) {
	quoted, escaped := false, false
	for i := from; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted:
			if !visit(i) {
				return
			}
		}
	}
}

// Cut splits "PREFIX<path> params" (the prefix matched case-insensitively,
// spaces after it tolerated) into the path, without its brackets, and what
// follows the closing bracket, which must be empty or start with a space.
// ok is false if arg is not of that form.
func Cut(arg, prefix string) (path, rest string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", "", false
	}
	s := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(s, "<") {
		return "", "", false
	}
	end := -1
	unquoted(s, 1, func(i int) bool {
		if s[i] == '>' {
			end = i
		}
		return end < 0
	})
	if end < 0 || end+1 < len(s) && s[end+1] != ' ' {
		return "", "", false
	}
	return s[1:end], s[end+1:], true
}

// LastBracketed returns what the last unquoted "<" of line opens, up to the
// ">" that ends line ("Full Name <mailbox>" gives "mailbox"), or "" and
// false if line does not end in ">" or has no such "<".
func LastBracketed(line string) (string, bool) {
	if !strings.HasSuffix(line, ">") {
		return "", false
	}
	start := -1
	unquoted(line[:len(line)-1], 0, func(i int) bool {
		if line[i] == '<' {
			start = i
		}
		return true
	})
	if start < 0 {
		return "", false
	}
	return line[start+1 : len(line)-1], true
}
