package smtptest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// errCut ends a connection because of Faults.CloseAfterDataOctets.
var errCut = errors.New("fault CloseAfterDataOctets")

func (c *conn) cmdDATA(arg string) error {
	const v = "DATA"
	t := c.tx
	switch {
	case arg != "":
		return c.reply(v, 501, "5.5.4", "Syntax: DATA")
	case t == nil:
		return c.reply(v, 503, "5.5.1", "Error: need MAIL command")
	case t.bdat:
		return c.reply(v, 503, "5.5.1", "Error: DATA after BDAT in the same transaction")
	case t.body == "BINARYMIME":
		return c.reply(v, 503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT")
	case len(t.to) == 0 && t.rcptAttempts == 0:
		return c.reply(v, 503, "5.5.1", "Error: need RCPT command")
	case len(t.to) == 0:
		return c.reply(v, c.noRcptCode(), "5.5.1", "Error: no valid recipients")
	}
	text := "End data with <CR><LF>.<CR><LF>"
	if n := len(t.resumedAt); n > 0 {
		text = fmt.Sprintf("Send message data starting at octet %d", t.resumedAt[n-1])
	}
	if err := c.reply(v, 354, "", text); err != nil {
		return err
	}
	c.startData(t, "DATA")
	bol := len(t.data) == 0 || bytes.HasSuffix(t.data, []byte("\r\n"))
	wire, err := c.readDotData(t, bol)
	if err != nil {
		c.record(fmt.Sprintf("C: <data %d octets, incomplete>", wire))
		return err
	}
	c.record(fmt.Sprintf("C: <data %d octets>", wire))
	return c.endOfData(t, "DATA")
}

func parseBDAT(arg string) (size int64, last, ok bool) {
	f := strings.Fields(arg)
	if len(f) < 1 || len(f) > 2 {
		return 0, false, false
	}
	for i := 0; i < len(f[0]); i++ {
		if f[0][i] < '0' || f[0][i] > '9' {
			return 0, false, false
		}
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, false
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, false
		}
		last = true
	}
	return size, last, true
}

func (c *conn) cmdBDAT(line, arg string) error {
	const v = "BDAT"
	size, last, ok := parseBDAT(arg)
	if !ok {
		// The chunk size is unknown, so nothing can be skipped.
		return c.reply(v, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]")
	}
	// fail reads and discards the chunk, then replies (RFC 3030 section 2).
	fail := func(code int, enh, text string) error {
		if err := c.discardFailed(size); err != nil {
			return err
		}
		return c.reply(v, code, enh, text)
	}
	if raw, has := c.override(v, line); has {
		if raw == "" || raw[0] != '2' {
			if err := c.discardFailed(size); err != nil {
				return err
			}
			c.record("* override " + v)
			return c.sendRaw(raw, v)
		}
		c.pending[v] = raw
	}
	t := c.tx
	_, chunking := c.sessExt["CHUNKING"]
	lmtpLast := c.s.cfg.LMTP && last
	switch {
	case c.greetingRejected:
		return fail(503, "5.5.1", "Error: bad sequence of commands")
	case !chunking:
		return fail(502, "5.5.1", "Error: command not implemented")
	case t == nil:
		return fail(503, "5.5.1", "Error: need MAIL command")
	case lmtpLast && len(t.to) == 0:
		// RFC 2033 section 4.3: BDAT LAST returns zero replies.
		if err := c.discardChunk(size); err != nil {
			return err
		}
		c.record("* LMTP: BDAT LAST without an accepted recipient, no reply")
		c.resetTx()
		return nil
	case lmtpLast && t.failed:
		if err := c.discardChunk(size); err != nil {
			return err
		}
		return c.lmtpRepeat(t, []string{"BDAT"}, 503, "5.5.1", "Error: transaction failed, send RSET")
	case t.failed:
		return fail(503, "5.5.1", "Error: transaction failed, send RSET")
	case len(t.to) == 0 && t.rcptAttempts == 0:
		return fail(503, "5.5.1", "Error: need RCPT command")
	case len(t.to) == 0:
		return fail(c.noRcptCode(), "5.5.1", "Error: no valid recipients")
	}
	if !t.bdat {
		t.bdat = true
		c.startData(t, "BDAT")
	}
	err := c.readChunk(t, size, last)
	if err != nil {
		c.record(fmt.Sprintf("C: <chunk %d octets, incomplete>", size))
		return err
	}
	c.record(fmt.Sprintf("C: <chunk %d octets>", size))
	if t.tooBig && !t.complete {
		t.failed = true
		if lmtpLast {
			return c.lmtpRepeat(t, []string{"BDAT"}, 552, "5.3.4", "Error: message exceeds fixed maximum message size")
		}
		return c.reply(v, 552, "5.3.4", "Error: message exceeds fixed maximum message size")
	}
	if !last {
		return c.reply(v, 250, "2.0.0", fmt.Sprintf("%d octets received", size))
	}
	return c.endOfData(t, "BDAT")
}

// discardFailed reads and discards a refused chunk of size octets and
// fails the transaction, if any (RFC 3030 §2).
func (c *conn) discardFailed(size int64) error {
	if err := c.discardChunk(size); err != nil {
		return err
	}
	if c.tx != nil {
		c.tx.failed = true
	}
	return nil
}

// startData marks the beginning of a data transfer command and persists the
// envelope of a CHECKPOINT transaction.
func (c *conn) startData(t *transaction, via string) {
	t.via = via
	if t.transID == "" || t.complete {
		return
	}
	to := append([]string(nil), t.to...)
	rp := make([][]string, len(t.rcptParams))
	for i, p := range t.rcptParams {
		rp[i] = append([]string(nil), p...)
	}
	c.s.store.update(t.transID, c.token, func(e *Checkpoint) {
		e.DataStarted = true
		e.Via = via
		e.From = t.from
		e.MailParams = append([]string(nil), t.mailParams...)
		e.To, e.RcptParams = to, rp
	})
}

// sink stores canonical message octets.
func (c *conn) sink(t *transaction, b []byte) {
	if len(b) == 0 {
		return
	}
	if t.complete {
		t.extra += int64(len(b))
		return
	}
	if t.tooBig {
		return
	}
	if int64(len(t.data)+len(b)) > c.s.maxMsg {
		t.tooBig = true
		return
	}
	t.data = append(t.data, b...)
	if t.transID != "" {
		c.s.store.update(t.transID, c.token, func(e *Checkpoint) {
			e.Data = append(e.Data, b...)
		})
	}
}

// DATA decoder states.
const (
	stBOL   = iota // at the beginning of a line
	stMid          // inside a line
	stCR           // saw CR (held back)
	stDot          // saw "." at the beginning of a line (held back)
	stDotCR        // saw ".\r" at the beginning of a line (held back)
)

// readDotData reads dot-stuffed data through the terminating CRLF.CRLF,
// passing un-stuffed octets to sink. bol tells whether the first octet
// starts a line. It returns the wire octets consumed.
func (c *conn) readDotData(t *transaction, bol bool) (int64, error) {
	st := stMid
	if bol {
		st = stBOL
	}
	out := make([]byte, 0, 4096)
	step := func(b byte) bool {
		for {
			switch st {
			case stBOL:
				if b == '.' {
					st = stDot
					return false
				}
				st = stMid
			case stMid:
				if b == '\r' {
					st = stCR
				} else {
					out = append(out, b)
				}
				return false
			case stCR:
				if b == '\n' {
					out = append(out, '\r', '\n')
					st = stBOL
					return false
				}
				out = append(out, '\r')
				st = stMid
			case stDot:
				if b == '\r' {
					st = stDotCR
					return false
				}
				st = stMid // the leading dot was stuffing
			case stDotCR:
				if b == '\n' {
					return true
				}
				st = stCR // ".\rX": the dot was stuffing, CR still held
			}
		}
	}
	var wire int64
	for {
		if _, err := c.r.Peek(1); err != nil {
			return wire, err
		}
		n := c.r.Buffered()
		cut := false
		if lim := c.f.CloseAfterDataOctets; lim > 0 {
			r := lim - c.dataWire
			if r <= 0 {
				return wire, errCut
			}
			if r <= int64(n) {
				n, cut = int(r), true
			}
		}
		buf, _ := c.r.Peek(n)
		out = out[:0]
		i, done := 0, false
		for i < n && !done {
			done = step(buf[i])
			i++
		}
		c.r.Discard(i)
		wire += int64(i)
		c.dataWire += int64(i)
		c.sink(t, out)
		if done {
			return wire, nil
		}
		if cut {
			return wire, errCut
		}
	}
}

// readChunk reads a BDAT chunk of size octets into the transaction.
func (c *conn) readChunk(t *transaction, size int64, last bool) error {
	rem := size
	for rem > 0 {
		if _, err := c.r.Peek(1); err != nil {
			return err
		}
		n := min(int64(c.r.Buffered()), rem)
		cut := false
		if lim := c.f.CloseAfterDataOctets; lim > 0 {
			r := lim - c.dataWire
			if r <= 0 {
				return errCut
			}
			if r <= n {
				n, cut = r, true
			}
		}
		buf, _ := c.r.Peek(int(n))
		c.sink(t, buf)
		c.r.Discard(int(n))
		rem -= n
		c.dataWire += n
		if cut && !(rem == 0 && last) {
			return errCut
		}
	}
	return nil
}

// discardChunk reads and drops size octets.
func (c *conn) discardChunk(size int64) error {
	c.record(fmt.Sprintf("C: <chunk %d octets, discarded>", size))
	for size > 0 {
		if _, err := c.r.Peek(1); err != nil {
			return err
		}
		n := min(int64(c.r.Buffered()), size)
		c.r.Discard(int(n))
		size -= n
	}
	return nil
}

// endOfData finishes a transaction after its last data octet.
func (c *conn) endOfData(t *transaction, via string) error {
	if err := c.received("."); err != nil {
		return err
	}
	handled, err := c.checkOverride(".", ".", "2")
	if err != nil {
		return err
	}
	if handled {
		// The client was told the transaction failed.
		c.resetTx()
		return nil
	}
	verbs := []string{"."}
	if via == "BDAT" {
		verbs = append(verbs, "BDAT")
	}
	if t.complete {
		// RFC 1845: the transaction had completed but the client never saw
		// the reply; answer again without storing a second copy.
		c.tx, c.dataWire = nil, 0
		if t.extra > 0 {
			return c.sendRaw(c.format(554, "5.6.0",
				fmt.Sprintf("Error: %d octets beyond the checkpointed end of a completed transaction", t.extra)), verbs...)
		}
		return c.sendRaw(c.format(250, "2.0.0", "Ok: queued as "+t.queueID), verbs...)
	}
	if t.tooBig {
		c.resetTx()
		if c.s.cfg.LMTP {
			return c.lmtpRepeat(t, verbs, 552, "5.3.4", "Error: message exceeds fixed maximum message size")
		}
		return c.sendRaw(c.format(552, "5.3.4", "Error: message exceeds fixed maximum message size"), verbs...)
	}
	if c.s.cfg.LMTP {
		return c.lmtpEndOfData(t, via, verbs)
	}
	qid := fmt.Sprintf("Q%d", c.s.queueSeq.Add(1))
	if t.transID != "" {
		owned := c.s.store.update(t.transID, c.token, func(e *Checkpoint) {
			e.Complete, e.QueueID, e.Via = true, qid, via
		})
		if !owned {
			c.record("* close: transaction taken over by another connection")
			return errClose
		}
	}
	c.s.addMessage(Message{
		Verb:       t.verb,
		Scheme:     t.scheme,
		From:       t.from,
		To:         t.to,
		MailParams: t.mailParams,
		RcptParams: t.rcptParams,
		Data:       t.data,
		Via:        via,
		TransID:    t.transID,
		ResumedAt:  t.resumedAt,
		QueueID:    qid,
		ConnIndex:  c.idx,
		Helo:       c.helo,
		TLS:        c.tls,
		AuthUser:   c.authUser,
	})
	// The checkpoint entry (c.cpKey) is kept until the client shows it saw
	// this reply (RSET, MAIL, QUIT, ...).
	c.tx, c.dataWire = nil, 0
	c.idleArmed = true
	return c.sendRaw(c.format(250, "2.0.0", "Ok: queued as "+qid), verbs...)
}
