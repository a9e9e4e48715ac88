package rfc821

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/resmtp/smtp"
)

// SendMRSQ sends msg from from to every address of to over c with RFC
// 772's multi-recipient scheme (MRSQRecipientsFirst or MRSQTextFirst). Use
// it only with a server that accepts the scheme; SendMRSQ does not fall
// back to MAIL and RCPT. Each step waits for its reply. The sequences,
// after the hello if none was sent, follow RFC 772's Appendices A and B:
//
//	MRSQ R                     MRSQ T
//	MRCP TO:<to[0]>   (200)    MAIL FROM:<from>  (354)
//	MRCP TO:<to[1]>   (200)    <text> .          (250: stored)
//	...                        MRCP TO:<to[0]>   (2yz: delivered to it)
//	MAIL FROM:<from>  (354)    MRCP TO:<to[1]>   ...
//	<text> .          (250: delivered to all)
//	MRSQ              (200)    MRSQ              (200)
//
// The text goes through the Client's data phase (Pipeline.Data): it is
// converted to canonical form and dot-stuffed, and its progress is reported
// to ClientTrace.DataProgress as for DATA. The reply to an MRCP of scheme T
// is the delivery's: it is awaited as long as the reply to the end of the
// data (Timeouts.DataTerm); an MRCP of scheme R is awaited as long as a
// RCPT.
//
// A refused MRCP (4yz or 5yz, such as 553) refuses that recipient only;
// the others are delivered. With R, a 452 to MRCP ("recipient table full")
// makes SendMRSQ send the text to the names stored so far and then go on
// naming the rest, the refused one again, as RFC 772 prescribes, so the
// text may be sent more than once: msg is read into memory for that unless
// it is an io.ReadSeeker. If no name was accepted, no text is sent. The
// final "MRSQ" resets the server (it forgets names and text) and selects
// no scheme, so that MAIL is SMTP's again. A message that cannot be read
// leaves the server holding a partial text that must not be delivered:
// SendMRSQ then closes the Client, the only way RFC 772 leaves to abort it.
//
// The Result holds each recipient's outcome: Reply is the reply to its
// MRCP, and Err the refusal, or with R the refusal of the text, which
// counts for every name stored with it. Result.Reply is the reply to the
// end of the (last) text; Octets is the text's canonical size and
// Transmitted counts the canonical octets of every text sent.
//
// SendMRSQ returns:
//   - before anything is sent, an error for a bad scheme, no recipients, or
//     an address with CR, LF, NUL or angle brackets;
//   - an error matching ErrMRSQRefused and the *smtp.Error if the server
//     refuses the scheme, with a nil Result;
//   - with T, the *smtp.Error of a refused MAIL or text: nothing was
//     delivered;
//   - a *smtp.RecipientsError when some recipients were refused (Accepted
//     says how many got the message);
//   - the error of the final MRSQ, if it fails, when all went well before;
//   - an I/O, protocol or context error, which leaves the Client unusable,
//     or an error reading msg, with the outcomes known so far.
func SendMRSQ(ctx context.Context, c *smtp.Client, scheme MRSQScheme, from string, to []string, msg io.Reader) (*smtp.Result, error) {
	if err := checkTransfer(scheme, from, to); err != nil {
		return nil, err
	}
	if _, err := mrsq(ctx, c, scheme); err != nil {
		return nil, err
	}
	t := &transfer{ctx: ctx, c: c, from: from, res: &smtp.Result{Recipients: make([]smtp.RcptResult, len(to))}}
	for i, a := range to {
		t.res.Recipients[i].Addr = a
	}
	var err error
	if scheme == MRSQRecipientsFirst {
		err = t.recipientsFirst(msg)
	} else {
		err = t.textFirst(msg)
	}
	if err != nil && t.broken {
		return t.res, err // the connection is gone
	}
	_, rerr := mrsq(ctx, c, MRSQNone)
	if rerr != nil && !errors.Is(rerr, ErrMRSQRefused) {
		return t.res, rerr // the connection is gone
	}
	if err != nil {
		return t.res, err
	}
	var re smtp.RecipientsError
	for _, r := range t.res.Recipients {
		if r.Err != nil {
			re.Refused = append(re.Refused, r)
		} else {
			re.Accepted++
		}
	}
	if len(re.Refused) > 0 {
		return t.res, &re
	}
	if rerr != nil {
		return t.res, fmt.Errorf("rfc821: resetting MRSQ after the transfer: %w", rerr)
	}
	return t.res, nil
}

// checkTransfer checks SendMRSQ's arguments before anything is sent.
func checkTransfer(scheme MRSQScheme, from string, to []string) error {
	if scheme != MRSQRecipientsFirst && scheme != MRSQTextFirst {
		return fmt.Errorf("rfc821: SendMRSQ needs scheme R or T, not %q", string(scheme))
	}
	if len(to) == 0 {
		return errors.New("rfc821: no recipients")
	}
	if err := checkAddress(from); err != nil {
		return err
	}
	for _, a := range to {
		if a == "" {
			return errors.New("rfc821: empty recipient address")
		}
		if err := checkAddress(a); err != nil {
			return err
		}
	}
	return nil
}

// A transfer is one SendMRSQ after the scheme was selected.
type transfer struct {
	ctx    context.Context
	c      *smtp.Client
	from   string
	res    *smtp.Result
	broken bool // a call failed: the Client is unusable
}

// fail records that err, from a call of the Client's, left it unusable.
func (t *transfer) fail(err error) error {
	t.broken = true
	return err
}

// mrcp sends "MRCP TO:<addr>" for r, waits for its reply as long as the
// Timeouts field that wait picks says and records it in r.
func (t *transfer) mrcp(r *smtp.RcptResult, wait func(smtp.Timeouts) time.Duration) (*smtp.Cmd, error) {
	p := t.c.Pipeline()
	x := p.CmdTimeout(wait(p.Timeouts()), 2, "MRCP TO:<%s>", r.Addr)
	if err := p.Exec(t.ctx); err != nil {
		return nil, t.fail(err)
	}
	r.Reply, r.Err = x.Reply, x.Err
	return x, nil
}

// recipientsFirst runs MRCP for each recipient, then MAIL with the text; a
// 452 sends the text for the names stored so far first.
func (t *transfer) recipientsFirst(msg io.Reader) error {
	body, err := rewindable(msg)
	if err != nil {
		return err
	}
	var stored []int
	sent := false
	for i := 0; i < len(t.res.Recipients); {
		r := &t.res.Recipients[i]
		x, err := t.mrcp(r, func(to smtp.Timeouts) time.Duration { return to.Rcpt })
		if err != nil {
			return err
		}
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
			if _, err := t.text(body.r, stored); err != nil {
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
	_, err = t.text(body.r, stored)
	return err
}

// textFirst sends the text with MAIL, then MRCP for each recipient.
func (t *transfer) textFirst(msg io.Reader) error {
	refused, err := t.text(msg, nil)
	if err != nil {
		return err
	}
	if refused != nil {
		for i := range t.res.Recipients {
			t.res.Recipients[i].Err = refused
		}
		return refused
	}
	for i := range t.res.Recipients {
		// The reply is the delivery's: allow as long as for the end of DATA.
		if _, err := t.mrcp(&t.res.Recipients[i], func(to smtp.Timeouts) time.Duration { return to.DataTerm }); err != nil {
			return err
		}
	}
	return nil
}

// text sends RFC 772's "MAIL FROM:<from>", and on 354 the text through the
// Client's data phase, and records the reply to the end of the text, or
// the refusal, in the Result's Reply. A refusal of either is returned as
// refused (an *smtp.Error) and counts for the recipients at the indexes in
// stored. err is the failure of the Client or of reading msg.
func (t *transfer) text(msg io.Reader, stored []int) (refused, err error) {
	w, err := t.c.Pipeline().Data(t.ctx, "MAIL FROM:<"+t.from+">")
	if e := refusal(err); e != nil {
		return t.refuse(replyOf(e), e, stored), nil
	}
	if err != nil {
		return nil, t.fail(err)
	}
	if err := t.copyText(w, msg); err != nil {
		return nil, err
	}
	err = w.Close()
	t.res.Octets = w.Count()
	t.res.Transmitted += w.Count()
	if e := refusal(err); e != nil {
		return t.refuse(w.Reply(), e, stored), nil
	}
	if err != nil {
		return nil, t.fail(err)
	}
	t.res.Reply = w.Reply()
	return nil, nil
}

// refuse records the refusal e of the text, whose reply is rep, for the
// recipients at the indexes in stored, and returns e.
func (t *transfer) refuse(rep *smtp.Reply, e *smtp.Error, stored []int) error {
	t.res.Reply = rep
	for _, i := range stored {
		t.res.Recipients[i].Err = e
	}
	return e
}

// copyText writes msg to the text. A message that cannot be read closes
// the Client: the server must not deliver the part it holds, and RFC 772
// has no way to withdraw a text but the end of the connection.
func (t *transfer) copyText(w io.Writer, msg io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, rerr := msg.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return t.fail(err)
			}
		}
		switch {
		case rerr == io.EOF:
			return nil
		case rerr != nil:
			t.c.Close()
			return t.fail(fmt.Errorf("rfc821: reading the message: %w (the connection is closed, as the text cannot be withdrawn)", rerr))
		}
	}
}

// refusal returns err as an *smtp.Error when it is the server's refusal,
// which Pipeline.Data and the writer's Close return as it is; nil for any
// other error, a failure that leaves the Client unusable.
func refusal(err error) *smtp.Error {
	e, _ := err.(*smtp.Error)
	return e
}

// replyOf returns the reply that e reports: the same code, enhanced code
// and lines.
func replyOf(e *smtp.Error) *smtp.Reply {
	return &smtp.Reply{Code: e.Code, Enhanced: e.Enhanced, Lines: strings.Split(e.Msg, "\n")}
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
		return nil, fmt.Errorf("rfc821: reading the message: %w", err)
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
			return fmt.Errorf("rfc821: rewinding the message: %w", err)
		}
		return nil
	}
	b.r = bytes.NewReader(b.data)
	return nil
}
