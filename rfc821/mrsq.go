package rfc821

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/resmtp/smtp"
)

// An MRSQScheme is an argument of RFC 772's MRSQ command (Mail Recipient
// Scheme Question), which selects how one message text reaches several
// recipients at the same host.
type MRSQScheme string

const (
	// MRSQNone selects no scheme, the default: MAIL is SMTP's again.
	MRSQNone MRSQScheme = ""
	// MRSQRecipientsFirst ("R") names the recipients with MRCP first, each
	// answered on its own, then sends the text once with MAIL for all of
	// them.
	MRSQRecipientsFirst MRSQScheme = "R"
	// MRSQTextFirst ("T") sends the text with MAIL first, which the server
	// stores, then delivers it with one MRCP per recipient, each answered
	// with that recipient's delivery.
	MRSQTextFirst MRSQScheme = "T"
	// MRSQQuery ("?") asks for the server's preferred scheme without
	// changing the selection.
	MRSQQuery MRSQScheme = "?"
)

// ErrMRSQRefused is matched, with the server's *smtp.Error, by the error of
// an MRSQ that the server does not accept: it does not implement MRSQ (4yz,
// 5yz), or not the scheme asked for (501).
var ErrMRSQRefused = errors.New("rfc821: MRSQ refused")

// MRSQ sends RFC 772's MRSQ command with scheme over c and returns, for
// MRSQQuery, the server's preferred scheme from its "215 <scheme>" reply
// (MRSQRecipientsFirst or MRSQTextFirst), or MRSQNone otherwise.
//
// Every MRSQ resets the server's multi-recipient state (names stored by
// MRCP, stored text); "MRSQ ?" is RFC 772's way to reset without changing
// the selection, "MRSQ" (MRSQNone) goes back to no scheme, and "MRSQ" and
// "MRSQ ?" are its tests for whether the server implements MRSQ at all.
// While a scheme is selected, the server takes "MAIL FROM:<x>" as RFC
// 772's MAIL, which is followed by the text: select MRSQNone before using
// Client.Mail again. SendMRSQ runs a whole transfer and leaves no scheme
// selected.
//
// MRSQ returns an error matching ErrMRSQRefused and the *smtp.Error when
// the reply is not the one RFC 772 requires (200 for a selection, 215 for
// "?"), an error for a 215 that names no scheme, and an error for a scheme
// other than the four constants before anything is sent; an I/O, protocol
// or context error leaves the Client unusable. MRSQ is sent alone, after
// the hello if none was sent, not pipelined.
func MRSQ(ctx context.Context, c *smtp.Client, scheme MRSQScheme) (MRSQScheme, error) {
	if err := checkScheme(scheme, true); err != nil {
		return MRSQNone, err
	}
	return mrsq(ctx, c, scheme)
}

func checkScheme(s MRSQScheme, query bool) error {
	switch s {
	case MRSQNone, MRSQRecipientsFirst, MRSQTextFirst:
		return nil
	case MRSQQuery:
		if query {
			return nil
		}
	}
	return fmt.Errorf("rfc821: invalid MRSQ scheme %q", string(s))
}

// mrsq sends one MRSQ. A refusal matches ErrMRSQRefused; any other error
// is a failure of the Client.
func mrsq(ctx context.Context, c *smtp.Client, scheme MRSQScheme) (MRSQScheme, error) {
	line, expect := "MRSQ", 200
	if scheme != MRSQNone {
		line += " " + string(scheme)
	}
	if scheme == MRSQQuery {
		expect = 215
	}
	p := c.Pipeline()
	x := p.Cmd(expect, "%s", line)
	if err := p.Exec(ctx); err != nil {
		return MRSQNone, err
	}
	if x.Err != nil {
		return MRSQNone, fmt.Errorf("%w: %w", ErrMRSQRefused, x.Err)
	}
	if scheme != MRSQQuery {
		return MRSQNone, nil
	}
	// "215 <SP> <scheme> [<SP> <arbitrary text>]"
	word, _, _ := strings.Cut(strings.TrimSpace(x.Reply.Text()), " ")
	switch pref := MRSQScheme(strings.ToUpper(word)); pref {
	case MRSQRecipientsFirst, MRSQTextFirst:
		return pref, nil
	}
	return MRSQNone, fmt.Errorf("rfc821: the 215 reply to MRSQ ? names no scheme: %q", x.Reply.Text())
}
