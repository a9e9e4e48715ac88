package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoRecord is matched by the error ParseRecords returns when the TXT
// records of "_mta-sts.<domain>" hold no MTA-STS record, or more than one
// (RFC 8461 §3.1): the domain then has no policy.
var ErrNoRecord = errors.New("mtasts: no MTA-STS TXT record")

// ParseRecords finds the MTA-STS record among the TXT records of
// "_mta-sts.<domain>" and returns its id (RFC 8461 §3.1): records that do
// not begin with "v=STSv1;" are discarded, and exactly one must be left,
// of the form "v=STSv1; id=<1 to 32 letters and digits>;" with optional
// extension fields. It returns an error that matches ErrNoRecord
// otherwise.
func ParseRecords(txts []string) (id string, err error) {
	var found []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1;") || t == "v=STSv1" {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%w: %d records begin with v=STSv1", ErrNoRecord, len(found))
	}
	fields := strings.Split(found[0], ";")
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" && i == len(fields)-2 {
			break // a trailing separator
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || !validKey(k) || !validExtValue(v) {
			return "", fmt.Errorf("%w: malformed field %q", ErrNoRecord, f)
		}
		if k == "id" {
			if id != "" || len(v) > 32 || strings.Trim(v, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				return "", fmt.Errorf("%w: bad id %q", ErrNoRecord, v)
			}
			id = v
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no id", ErrNoRecord)
	}
	return id, nil
}

// validExtValue reports whether v is one or more visible characters other
// than ";" and "=".
func validExtValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}
