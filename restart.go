package smtp

import "errors"

// Restarting a checkpointed transaction (RFC 1845 §3), the transaction
// layer's side: the MAIL that asks the server what it holds, and the
// transaction that goes on from there. The Courier decides when to restart
// and what to do with each answer.

// A holding is what a server holds of an interrupted transaction, as its
// 355 reply to a restart's MAIL said (RFC 1845 §3): the envelope, and the
// first offset canonical octets of the message.
type holding struct {
	mail   *Cmd         // the restart's MAIL, answered 355
	offset int64        // canonical octets the server holds
	rcpts  []RcptResult // the recipients' outcomes from the attempt that was cut
}

// A restartAnswer is what the server said to a restart's MAIL.
type restartAnswer int

const (
	restartRefused   restartAnswer = iota // MAIL refused: its Cmd's Err says why
	restartFresh                          // 250: the server holds nothing
	restartHeld                           // 355 with an offset the message can have
	restartBadOffset                      // 355 with one it cannot have: RSET was sent
)

// sendCheckpointed is the transaction layer's one entry point for a
// checkpointed transaction: a new one (x and held nil); one whose restart
// MAIL x was answered 250 (its RCPTs and the whole message follow) or
// refused (nothing follows; the refusal goes to done); or one the server
// holds part of (held: only the rest of the message follows). It returns
// the transaction, whose outcome goes to done.
func (b *Batch) sendCheckpointed(to []Recipient, l *envelopeLines, m *message, x *Cmd, held *holding, done func(*Result, error)) (*txn, error) {
	t := &txn{to: to, hold: true, done: done, mail: x, held: held}
	if held != nil {
		t.mail = held.mail
	}
	if t.mail != nil && t.mail.Err != nil {
		b.finish(t)
		return t, nil
	}
	return t, b.sendTxn(t, l, m, nil)
}

// restart issues the MAIL line mail (with the TRANSID alone), the last
// command of its group, and says what the server answered, with the MAIL's
// Cmd and, for restartHeld, the offset the server holds. An offset m cannot
// have (beyond its end, or not at a line start for DATA) is a server fault:
// RSET is sent, and the message must go again in full.
func (b *Batch) restart(mail string, m *message) (restartAnswer, *Cmd, int64, error) {
	c := b.c
	x, err := c.queue(command{verb: "MAIL", expect: 250, timeout: c.timeouts.Mail}, "", "%s", mail)
	if err != nil {
		return 0, nil, 0, err
	}
	if err := c.await(x); err != nil {
		return 0, nil, 0, err
	}
	switch x.Reply.Code {
	case 250:
		return restartFresh, x, 0, nil
	case 355:
	default:
		return restartRefused, x, 0, nil
	}
	off, ok := parseOffset(x.Reply)
	reason := ""
	switch {
	case !ok:
		reason = "malformed 355 reply"
	default:
		switch ok, err := m.validOffset(off, !b.chunk); {
		case err != nil:
			return 0, nil, 0, err
		case !ok && b.chunk:
			reason = "offset beyond the end of the message"
		case !ok:
			reason = "offset beyond the end of the message, or not at a line start"
		}
	}
	if reason != "" {
		if tr := c.trace; tr != nil && tr.Resumed != nil {
			tr.Resumed(off, errors.New("smtp: 355 offset refused: "+reason))
		}
		rs, err := c.queue(command{verb: "RSET", expect: 250, timeout: c.timeouts.Command}, "", "RSET")
		if err == nil {
			err = c.await(rs)
		}
		if err == nil {
			err = rs.Err
		}
		if err != nil {
			return 0, nil, 0, err
		}
		return restartBadOffset, x, 0, nil
	}
	x.Err = nil // 355 is the answer we asked for
	if tr := c.trace; tr != nil && tr.Resumed != nil {
		tr.Resumed(off, nil)
	}
	return restartHeld, x, off, nil
}
