package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
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

// ErrMRSQRefused is matched, with the server's *Error, by the error of an
// MRSQ that the server does not accept: it does not implement MRSQ (4yz,
// 5yz), or not the scheme asked for (501).
var ErrMRSQRefused = errors.New("smtp: MRSQ refused")

// MRSQ sends RFC 772's MRSQ command with scheme and returns, for
// MRSQQuery, the server's preferred scheme from its "215 <scheme>" reply
// (MRSQRecipientsFirst or MRSQTextFirst), or MRSQNone otherwise.
//
// Every MRSQ resets the server's multi-recipient state (names stored by
// MRCP, stored text); "MRSQ ?" is RFC 772's way to reset without changing
// the selection, "MRSQ" (MRSQNone) goes back to no scheme, and "MRSQ" and
// "MRSQ ?" are its tests for whether the server implements MRSQ at all.
// While a scheme is selected, the server takes "MAIL FROM:<x>" as RFC
// 772's MAIL, which is followed by the text: select MRSQNone before using
// Mail again. SendMRSQ runs a whole transfer and leaves no scheme
// selected.
//
// MRSQ returns an error matching ErrMRSQRefused and the *Error when the
// reply is not the one RFC 772 requires (200 for a selection, 215 for "?"),
// an error for a 215 that names no scheme, and an error for a scheme other
// than the four constants before anything is sent. MRSQ is sent alone, not
// pipelined.
func (c *Client) MRSQ(ctx context.Context, scheme MRSQScheme) (MRSQScheme, error) {
	if err := checkScheme(scheme, true); err != nil {
		return MRSQNone, err
	}
	if err := c.hello(ctx); err != nil {
		return MRSQNone, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return MRSQNone, err
	}
	pref, err := c.mrsq(scheme)
	return pref, end(err)
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
	return fmt.Errorf("smtp: invalid MRSQ scheme %q", string(s))
}

// mrsq sends one MRSQ within a call.
func (c *Client) mrsq(scheme MRSQScheme) (MRSQScheme, error) {
	line, expect := "MRSQ", 200
	if scheme != MRSQNone {
		line += " " + string(scheme)
	}
	if scheme == MRSQQuery {
		expect = 215
	}
	rep, err := c.roundTrip(command{verb: "MRSQ", expect: expect, timeout: c.timeouts.Command}, "%s", line)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return MRSQNone, fmt.Errorf("%w: %w", ErrMRSQRefused, err)
		}
		return MRSQNone, err
	}
	if scheme != MRSQQuery {
		return MRSQNone, nil
	}
	// "215 <SP> <scheme> [<SP> <arbitrary text>]"
	word, _, _ := strings.Cut(strings.TrimSpace(rep.Text()), " ")
	switch pref := MRSQScheme(strings.ToUpper(word)); pref {
	case MRSQRecipientsFirst, MRSQTextFirst:
		return pref, nil
	}
	return MRSQNone, fmt.Errorf("smtp: the 215 reply to MRSQ ? names no scheme: %q", rep.Msg())
}

// SendMRSQ sends msg from from to every address of to with RFC 772's
// multi-recipient scheme (MRSQRecipientsFirst or MRSQTextFirst). Use it only
// with a server that accepts the scheme; SendMRSQ does not fall back to
// MAIL and RCPT. Each step waits for its reply. The sequences, after the
// hello if none was sent, follow RFC 772's Appendices A and B:
//
//	MRSQ R                     MRSQ T
//	MRCP TO:<to[0]>   (200)    MAIL FROM:<from>  (354)
//	MRCP TO:<to[1]>   (200)    <text> .          (250: stored)
//	...                        MRCP TO:<to[0]>   (2yz: delivered to it)
//	MAIL FROM:<from>  (354)    MRCP TO:<to[1]>   ...
//	<text> .          (250: delivered to all)
//	MRSQ              (200)    MRSQ              (200)
//
// A refused MRCP (4yz or 5yz, such as 553) refuses that recipient only;
// the others are delivered. With R, a 452 to MRCP ("recipient table full")
// makes SendMRSQ send the text to the names stored so far and then go on
// naming the rest, the refused one again, as RFC 772 prescribes, so the
// text may be sent more than once: msg is read into memory for that unless
// it is an io.ReadSeeker. If no name was accepted, no text is sent. The
// final "MRSQ" resets the server (it forgets names and text) and selects
// no scheme, so that MAIL is SMTP's again.
//
// The Result holds each recipient's outcome: Reply is the reply to its
// MRCP, and Err the refusal, or with R the refusal of the text, which
// counts for every name stored with it. Result.Reply is the reply to the
// end of the (last) text.
//
// SendMRSQ returns:
//   - before anything is sent, an error for a bad scheme, no recipients, or
//     an address with CR, LF, NUL or angle brackets;
//   - an error matching ErrMRSQRefused and the *Error if the server refuses
//     the scheme, with a nil Result;
//   - with T, the *Error of a refused MAIL or text: nothing was delivered;
//   - a *RecipientsError when some recipients were refused (Accepted says
//     how many got the message);
//   - the error of the final MRSQ, if it fails, when all went well before;
//   - an I/O, protocol or context error, which leaves the Client unusable,
//     with the outcomes known so far.
func (c *Client) SendMRSQ(ctx context.Context, scheme MRSQScheme, from string, to []string, msg io.Reader) (*Result, error) {
	if scheme != MRSQRecipientsFirst && scheme != MRSQTextFirst {
		return nil, fmt.Errorf("smtp: SendMRSQ needs scheme R or T, not %q", string(scheme))
	}
	if len(to) == 0 {
		return nil, errors.New("smtp: no recipients")
	}
	if err := validateAddress(from); err != nil {
		return nil, err
	}
	for _, a := range to {
		if a == "" {
			return nil, errors.New("smtp: empty recipient address")
		}
		if err := validateAddress(a); err != nil {
			return nil, err
		}
	}
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	res, err := c.sendMRSQ(scheme, from, to, msg)
	return res, end(err)
}

func (c *Client) sendMRSQ(scheme MRSQScheme, from string, to []string, msg io.Reader) (*Result, error) {
	if _, err := c.mrsq(scheme); err != nil {
		return nil, err
	}
	res := &Result{Recipients: make([]RcptResult, len(to))}
	for i, a := range to {
		res.Recipients[i].Addr = a
	}
	var err error
	if scheme == MRSQRecipientsFirst {
		err = c.mrsqRecipientsFirst(res, from, msg)
	} else {
		err = c.mrsqTextFirst(res, from, msg)
	}
	if err != nil && c.err != nil {
		return res, err // the connection is gone
	}
	_, rerr := c.mrsq(MRSQNone)
	if c.err != nil {
		return res, rerr
	}
	if err != nil {
		return res, err
	}
	var re RecipientsError
	for _, r := range res.Recipients {
		if r.Err != nil {
			re.Refused = append(re.Refused, r)
		} else {
			re.Accepted++
		}
	}
	if len(re.Refused) > 0 {
		return res, &re
	}
	if rerr != nil {
		return res, fmt.Errorf("smtp: resetting MRSQ after the transfer: %w", rerr)
	}
	return res, nil
}

// mrsqRecipientsFirst runs MRCP for each recipient, then MAIL with the
// text; a 452 sends the text for the names stored so far first.
func (c *Client) mrsqRecipientsFirst(res *Result, from string, msg io.Reader) error {
	body, err := rewindable(msg)
	if err != nil {
		return err
	}
	var stored []int
	sent := false
	for i := 0; i < len(res.Recipients); {
		r := &res.Recipients[i]
		x, err := c.queueLine(command{verb: "MRCP", expect: 2, timeout: c.timeouts.Rcpt}, "MRCP TO:<"+r.Addr+">")
		if err == nil {
			err = c.await(x)
		}
		if err != nil {
			return err
		}
		r.Reply, r.Err = x.Reply, x.Err
		if x.Err == nil {
			stored = append(stored, i)
			i++
			continue
		}
		if x.Reply.Code == 452 && len(stored) > 0 {
			// RFC 772: no further MRCP succeeds until the text is sent to
			// the stored names; then this one is named again.
			r.Reply, r.Err = nil, nil
			if err := body.rewind(sent); err != nil {
				return err
			}
			if _, err := c.mtpText(res, from, body.r, stored); err != nil {
				return err
			}
			sent, stored = true, nil
			continue
		}
		i++
	}
	if len(stored) == 0 {
		return nil
	}
	if err := body.rewind(sent); err != nil {
		return err
	}
	_, err = c.mtpText(res, from, body.r, stored)
	return err
}

// mrsqTextFirst sends the text with MAIL, then MRCP for each recipient.
func (c *Client) mrsqTextFirst(res *Result, from string, msg io.Reader) error {
	refused, err := c.mtpText(res, from, msg, nil)
	if err != nil {
		return err
	}
	if refused != nil {
		for i := range res.Recipients {
			res.Recipients[i].Err = refused
		}
		return refused
	}
	for i := range res.Recipients {
		r := &res.Recipients[i]
		// The reply is the delivery's: allow as long as for the end of DATA.
		x, err := c.queueLine(command{verb: "MRCP", expect: 2, timeout: c.timeouts.DataTerm}, "MRCP TO:<"+r.Addr+">")
		if err == nil {
			err = c.await(x)
		}
		if err != nil {
			return err
		}
		r.Reply, r.Err = x.Reply, x.Err
	}
	return nil
}

// mtpText sends RFC 772's "MAIL FROM:<from>", and on 354 the text, and
// records the reply to the end of the text, or the refusal, in res.Reply.
// A refusal of either is returned as refused (an *Error) and counts for the
// recipients at the indexes in stored. err is the failure of the
// connection.
func (c *Client) mtpText(res *Result, from string, msg io.Reader, stored []int) (refused, err error) {
	refuse := func(rep *Reply, e error) (error, error) {
		res.Reply = rep
		for _, i := range stored {
			res.Recipients[i].Err = e
		}
		return e, nil
	}
	x, err := c.queueLine(command{verb: "MAIL", expect: 354, timeout: c.timeouts.Mail}, "MAIL FROM:<"+from+">")
	if err == nil {
		err = c.await(x)
	}
	if err != nil {
		return nil, err
	}
	if x.Err != nil {
		return refuse(x.Reply, x.Err)
	}
	// A message that cannot be read leaves the server holding a partial
	// text that must not be delivered: writeData drops the connection,
	// the only way RFC 772 leaves to abort it.
	n, err := c.writeData(newMessage(msg, false), 0)
	if err != nil {
		return nil, err
	}
	res.Octets = n
	res.Transmitted += n
	end := c.endText(1)[0]
	if err := c.await(end); err != nil {
		return nil, err
	}
	if end.Err != nil {
		return refuse(end.Reply, end.Err)
	}
	res.Reply = end.Reply
	return nil, nil
}

// rewindableBody is a message that can be read again from its start.
type rewindableBody struct {
	r     io.Reader
	start int64
	seek  io.Seeker
	data  []byte
}

func rewindable(msg io.Reader) (*rewindableBody, error) {
	if s, ok := msg.(io.ReadSeeker); ok {
		off, err := s.Seek(0, io.SeekCurrent)
		if err == nil {
			return &rewindableBody{r: s, start: off, seek: s}, nil
		}
	}
	data, err := io.ReadAll(msg)
	if err != nil {
		return nil, fmt.Errorf("smtp: reading the message: %w", err)
	}
	return &rewindableBody{r: bytes.NewReader(data), data: data}, nil
}

// rewind goes back to the start if the body was read (sent).
func (b *rewindableBody) rewind(sent bool) error {
	if !sent {
		return nil
	}
	if b.seek != nil {
		if _, err := b.seek.Seek(b.start, io.SeekStart); err != nil {
			return fmt.Errorf("smtp: rewinding the message: %w", err)
		}
		return nil
	}
	b.r = bytes.NewReader(b.data)
	return nil
}
