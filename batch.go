package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Default sizes for sending.
const (
	// defaultChunkSize is the BDAT chunk size (RFC 3030).
	defaultChunkSize = 1 << 20
	// defaultMaxInFlight is how many transactions a Batch keeps in flight
	// with CHUNKING and PIPELINING.
	defaultMaxInFlight = 64
	// defaultMaxInFlightOctets bounds the message octets in flight.
	defaultMaxInFlightOctets = 16 << 20
)

// A Batch sends many messages over one connection, pipelined (RFC 2920)
// when the server offers PIPELINING:
//
//   - With DATA, the end of one message's data and the next transaction's
//     MAIL, RCPT and DATA go out in one group, and the last "." goes with
//     QUIT: about one round trip per message.
//   - With CHUNKING as well (RFC 3030), a Batch does not wait at all: each
//     transaction is RSET (after the first, because a failed BDAT leaves the
//     session in an indeterminate state), MAIL, RCPT and BDAT ... LAST with
//     the data, and the replies are read while later messages are written.
//     At most MaxInFlight transactions and MaxInFlightOctets message octets
//     are unacknowledged at once, so memory stays bounded.
//   - Without PIPELINING, every command waits for its reply.
//
// Each message's outcome is reported to the function given to Send, on the
// goroutine that calls Send, Flush, Close or Quit, in the order the messages
// were sent. A Batch is not safe for concurrent use, and the Client may not
// be used for anything else until the Batch is closed.
type Batch struct {
	c      *Client
	end    func(error) error
	pipe   bool
	chunk  bool
	open   []*txn // sent, outcome not reported yet, oldest first
	sent   int
	octets int64 // message octets of the open transactions
	closed bool
}

// txn is one transaction of a Batch.
type txn struct {
	done   func(*Result, error)
	to     []Recipient
	mail   *Cmd
	rcpts  []*Cmd
	data   *Cmd    // DATA, or nil with BDAT
	chunks []*Cmd  // BDAT commands
	chunk0 [1]*Cmd // storage for chunks, for a message in one chunk
	lmtp   []*Cmd  // LMTP: one reply after the data per accepted recipient
	end    *Cmd    // the command whose reply ends the transaction
	lone   bool    // a lone "." was sent after every recipient failed
	hold   bool    // checkpointed: read the final reply before anything else
	// held, for a transaction resumed after a restart, is what the server
	// holds of it (RFC 1845 §3); nil otherwise.
	held   *holding
	sent   int64 // canonical octets handed to the connection
	err    error // a failure found by the client (reading the body)
	doubt  bool  // the connection failed after the end of the text, before its reply
	octets int64
}

// NewBatch starts a Batch on c. The context bounds the whole Batch, up to
// Close or Quit; cancelling it closes the connection. NewBatch returns an
// error if the Client is unusable or busy.
func (c *Client) NewBatch(ctx context.Context) (*Batch, error) {
	if err := c.hello(ctx); err != nil {
		return nil, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	b := &Batch{c: c, end: end, pipe: c.pipelining(), chunk: !c.lmtp && c.chunking()}
	c.batch = b
	if b.pipe {
		c.startPump()
	}
	return b, nil
}

// Send sends one message: env's MAIL and RCPT commands, then msg. It
// returns when the message has been handed to the connection (with
// PIPELINING, before the server has answered); done, if not nil, receives
// the outcome later. The message is read from msg before Send returns.
//
// When Send returns an error, done is not called for this message. The
// error is about the Envelope (invalid, asking for what the server does not
// offer, or a message over the server's size limit: then nothing was sent),
// or it is the connection's failure before the message was sent whole: the
// Client is then unusable, and the failure has been reported to done for
// every earlier message still open. A message sent whole when the
// connection fails gets its outcome through done, as the earlier ones do:
// its reply if it was read, else an error that matches ErrNoFinalReply.
//
// The outcome is a *RecipientsError when recipients were refused (with the
// Result of a message delivered to the others), an *Error when the server
// refused the transaction, the error of reading msg, or the connection's
// failure. A message whose reading fails after DATA has started cannot be
// withdrawn: the connection is closed, so that it is not delivered cut off.
func (b *Batch) Send(env *Envelope, msg io.Reader, done func(*Result, error)) error {
	if b.closed {
		return errors.New("smtp: Send on a closed Batch")
	}
	c := b.c
	if c.err != nil {
		return c.err
	}
	size := env.Size
	if size <= 0 {
		size = bodySize(msg)
	}
	box := new(sendBox)
	if err := c.fillEnvelope(&box.lines, env, size); err != nil {
		return err
	}
	box.msg = makeMessage(msg, env.Body == BodyBinaryMIME)
	if box.msg.binary && !b.chunk {
		return fmt.Errorf("%w: BODY=BINARYMIME needs CHUNKING (RFC 3030 §3)", ErrExtensionNotOffered)
	}
	t := &box.txn
	*t = txn{done: done, to: env.To, hold: env.TransID != ""}
	err := b.sendTxn(t, &box.lines, &box.msg, box)
	if err != nil {
		b.failed(err, t)
		if t.complete() || t.inDoubt() {
			// The message went out whole: its outcome goes to done.
			b.open = append(b.open, t)
			b.failed(err, nil)
			return nil
		}
		return err
	}
	return nil
}

// sendBox holds what one Send needs, in one allocation: the transaction,
// its lines and message, and room for the Cmds of up to seven commands
// (RSET, MAIL, three RCPTs, DATA and its end).
type sendBox struct {
	txn   txn
	lines envelopeLines
	msg   message
	cmds  [7]Cmd
	rcpts [4]*Cmd
}

// sendTxn sends t with DATA or BDAT, whichever the Batch uses. The Cmds of
// its commands come from one slab (MAIL, RCPTs, DATA or a BDAT, the end of
// the text or RSET, and with LMTP one reply per recipient): box's, if t
// came with one (box may be nil) and they fit in it.
func (b *Batch) sendTxn(t *txn, l *envelopeLines, m *message, box *sendBox) error {
	n := 3 + len(t.to) // RSET, MAIL, the RCPTs, and BDAT or DATA
	if !b.chunk {
		n++ // the end of the text
	}
	if b.c.lmtp {
		n += len(t.to)
	}
	if box != nil && n <= len(box.cmds) {
		b.c.cmds = box.cmds[:0:n]
	} else {
		b.c.cmds = make([]Cmd, 0, n)
	}
	if box != nil && len(t.to) <= len(box.rcpts) {
		t.rcpts = box.rcpts[:0:len(t.to)]
	} else {
		t.rcpts = make([]*Cmd, 0, len(t.to))
	}
	t.chunks = t.chunk0[:0]
	if b.chunk {
		return b.sendChunked(t, l, m)
	}
	return b.sendData(t, l, m)
}

// queue writes one command of a transaction.
func (b *Batch) queue(verb string, line string) (*Cmd, error) {
	c := b.c
	return c.queueLine(command{verb: verb, expect: expectFor(verb), timeout: c.commandTimeout(verb)}, line)
}

func expectFor(verb string) int {
	switch verb {
	case "RCPT":
		return 25
	case "DATA":
		return 354
	}
	return 250
}

// step waits for x's reply unless the server pipelines.
func (b *Batch) step(x *Cmd) error {
	if b.pipe {
		return nil
	}
	if err := b.c.await(x); err != nil {
		return err
	}
	b.settle()
	return nil
}

// envelope queues RSET if due, MAIL and the RCPTs. Without PIPELINING it
// stops early when the transaction cannot go on, and reports false.
func (b *Batch) envelope(t *txn, l *envelopeLines, rset bool) (bool, error) {
	if t.held != nil {
		return true, nil // the server restored the envelope (RFC 1845 §3)
	}
	if t.mail != nil {
		rset = false // a restart's MAIL was answered already
	} else if rset || b.c.needRset {
		b.c.needRset = false
		x, err := b.queue("RSET", "RSET")
		if err != nil {
			return false, err
		}
		if err := b.step(x); err != nil {
			return false, err
		}
	}
	if t.mail == nil {
		var err error
		if t.mail, err = b.queue(l.verb, l.mail); err != nil {
			return false, err
		}
		if err := b.step(t.mail); err != nil {
			return false, err
		}
	}
	if !b.pipe && t.mail.Err != nil {
		b.finish(t)
		return false, nil
	}
	for _, line := range l.rcpts {
		x, err := b.queue("RCPT", line)
		if err != nil {
			return false, err
		}
		t.rcpts = append(t.rcpts, x)
		if err := b.step(x); err != nil {
			return false, err
		}
	}
	if !b.pipe && t.accepted() == 0 {
		b.c.needRset = true // the server holds the MAIL
		b.finish(t)
		return false, nil
	}
	return true, nil
}

// sendData sends a transaction with DATA.
func (b *Batch) sendData(t *txn, l *envelopeLines, m *message) error {
	c := b.c
	ok, err := b.envelope(t, l, false)
	if !ok || err != nil {
		return err
	}
	if t.data, err = b.queue("DATA", "DATA"); err != nil {
		return err
	}
	// The one wait of a pipelined transaction: DATA's 354 (RFC 2920 §3.1).
	if err := c.await(t.data); err != nil {
		return err
	}
	b.settle()
	if t.data.Err != nil {
		if t.mail.Err == nil {
			b.c.needRset = true // RFC 2920 §3.1: DATA refused, RSET clears it
		}
		b.finish(t)
		return nil
	}
	if t.mail.Err != nil || t.accepted() == 0 {
		// RFC 2920 §3.1: DATA was accepted although nothing else was;
		// a lone "." ends it without a message.
		t.lone = true
		b.c.needRset = true // be sure the server let go of the MAIL
		if _, err := c.bw.WriteString(".\r\n"); err != nil {
			return c.fail(err)
		}
	} else {
		n, err := c.writeData(m, t.skipped())
		t.octets, t.sent = n, max(m.written-t.skipped(), 0)
		if err != nil {
			return err
		}
	}
	if c.lmtp && !t.lone {
		t.end = c.endText(t.accepted(), &t.lmtp) // RFC 2033 §4.2: one per accepted recipient
	} else {
		t.end = c.endText(1, nil)
	}
	b.open = append(b.open, t)
	b.sent++
	if !b.pipe || t.hold {
		// RFC 1845 §3: the next MAIL, RSET or QUIT would end the server's
		// hold on a checkpointed transaction, so its outcome comes first.
		if err := c.await(t.end); err != nil {
			return err
		}
		b.settle()
	}
	return nil
}

// sendChunked sends a transaction with BDAT (RFC 3030).
func (b *Batch) sendChunked(t *txn, l *envelopeLines, m *message) error {
	c := b.c
	ok, err := b.envelope(t, l, b.pipe && b.sent > 0 && !t.hold)
	if !ok || err != nil {
		return err
	}
	if t.hold && b.pipe && len(t.rcpts) > 0 {
		// A checkpointed transaction collects the RCPT replies first (RFC
		// 3030 §2 describes it so), so that a restart knows which
		// recipients the server holds.
		if err := c.await(t.rcpts[len(t.rcpts)-1]); err != nil {
			return err
		}
		if t.mail.Err != nil || t.accepted() == 0 {
			c.needRset = t.mail.Err == nil
			t.end = t.rcpts[len(t.rcpts)-1]
			b.finish(t)
			return nil
		}
	}
	if err := b.writeChunks(t, m, t.skipped()); err != nil {
		return err
	}
	b.open = append(b.open, t)
	b.sent++
	b.octets += t.sent
	if !b.pipe {
		b.settle() // writeChunks waited for each reply
		return nil
	}
	if t.hold {
		if err := c.await(t.end); err != nil {
			return err
		}
		b.settle()
		return nil
	}
	// Report what has come back, then keep the window bounded.
	for c.ready() {
		if _, err := c.next(); err != nil {
			return err
		}
	}
	b.settle()
	for len(b.open) > c.window || b.octets > c.windowOctets {
		if err := c.flush(); err != nil {
			return err
		}
		if _, err := c.next(); err != nil {
			return err
		}
		b.settle()
	}
	return nil
}

// settle reports, in order, every open transaction whose last reply is in.
func (b *Batch) settle() {
	for len(b.open) > 0 && b.open[0].end.done {
		t := b.open[0]
		b.open[0] = nil
		b.open = b.open[1:]
		b.octets -= t.sent
		b.finish(t)
	}
}

// complete reports whether every reply t waits for has been read. Only
// what the consumer side has taken is looked at (Cmd.done): the pump may
// be filling in the rest.
func (t *txn) complete() bool {
	if !replied(t.end) {
		return false
	}
	for _, x := range t.lmtp {
		if !replied(x) {
			return false
		}
	}
	return true
}

// replied reports whether x's reply has been read and taken.
func replied(x *Cmd) bool { return x != nil && x.done && x.Reply != nil }

// inDoubt reports whether the server may have taken t although its final
// reply was not read: the end of the text was sent, or queued to be, and
// no reply read so far refused the transaction.
func (t *txn) inDoubt() bool {
	no := func(x *Cmd) bool { return replied(x) && x.Err != nil } // a refusal read
	if t.end == nil || replied(t.end) || t.lone || no(t.mail) || no(t.data) {
		return false
	}
	for _, x := range t.chunks {
		if no(x) {
			return false
		}
	}
	for _, x := range t.rcpts {
		if !no(x) {
			return true
		}
	}
	return len(t.rcpts) == 0
}

// skipped returns the canonical octets the server already held.
func (t *txn) skipped() int64 {
	if t.held == nil {
		return 0
	}
	return t.held.offset
}

// transmitted returns the canonical octets of m this attempt handed to the
// connection, as far as known after a failure.
func (t *txn) transmitted(m *message) int64 {
	if t.sent == 0 && t.data != nil { // DATA: what the DotWriter handed on
		return max(m.written-t.skipped(), 0)
	}
	return t.sent
}

func (t *txn) accepted() int {
	if t.held != nil {
		n := 0
		for _, r := range t.held.rcpts {
			if r.Err == nil {
				n++
			}
		}
		return n
	}
	n := 0
	for _, x := range t.rcpts {
		if x.done && x.Err == nil {
			n++
		}
	}
	return n
}

// errRcptNotSent is the outcome of a recipient whose RCPT was not sent.
var errRcptNotSent = errors.New("smtp: RCPT not sent")

// rcptResults returns the recipients' outcomes as far as known.
func (t *txn) rcptResults() []RcptResult {
	res := make([]RcptResult, len(t.to))
	t.fillRcptResults(res)
	return res
}

// fillRcptResults sets res, of len(t.to), as rcptResults returns it.
func (t *txn) fillRcptResults(res []RcptResult) {
	for i, r := range t.to {
		rr := RcptResult{Addr: r.Addr, Err: errRcptNotSent}
		switch {
		case t.held != nil && i < len(t.held.rcpts):
			rr = t.held.rcpts[i]
		case i < len(t.rcpts) && t.rcpts[i].done:
			rr.Reply, rr.Err = t.rcpts[i].Reply, t.rcpts[i].Err
		}
		res[i] = rr
	}
}

// resultFor returns a Result with Recipients of n, in one allocation for
// up to four recipients.
func resultFor(n int) *Result {
	if n > 4 {
		return &Result{Recipients: make([]RcptResult, n)}
	}
	box := &struct {
		r  Result
		rr [4]RcptResult
	}{}
	box.r.Recipients = box.rr[:n:n]
	return &box.r
}

// finish works out a transaction's outcome from its replies and reports it.
func (b *Batch) finish(t *txn) {
	res := resultFor(len(t.to))
	res.Octets, res.Transmitted, res.resumed = t.octets, t.sent, t.held != nil
	t.fillRcptResults(res.Recipients)
	var refused []RcptResult
	lmtp := t.lmtp
	for i, rr := range res.Recipients {
		if rr.Err == nil && len(lmtp) > 0 {
			rr.Delivery, rr.Err = lmtp[0].Reply, lmtp[0].Err
			lmtp = lmtp[1:]
		}
		res.Recipients[i] = rr
		if rr.Err != nil {
			refused = append(refused, rr)
		}
	}
	accepted := len(t.to) - len(refused)
	firstErr := func(xs ...*Cmd) error {
		for _, x := range xs {
			if x != nil && x.Err != nil {
				return x.Err
			}
		}
		return nil
	}
	var err error
	switch {
	case t.doubt:
		err = t.err
	case t.mail.Err != nil:
		err = t.mail.Err
	case accepted == 0:
		err = &RecipientsError{Refused: refused}
	case t.err != nil:
		err = t.err
	case firstErr(t.data) != nil:
		err = t.data.Err
	case firstErr(t.chunks...) != nil:
		err = firstErr(t.chunks...)
	case len(t.lmtp) == 0 && firstErr(t.end) != nil:
		err = t.end.Err
	case t.end == nil || !t.end.done:
		err = errors.New("smtp: the transaction did not complete")
	default:
		res.Reply = t.end.Reply
		for _, rr := range res.Recipients {
			if rr.Delivery != nil && rr.Err == nil {
				res.Reply = rr.Delivery
				break
			}
		}
		if len(refused) > 0 {
			err = &RecipientsError{Refused: refused, Accepted: accepted}
		}
	}
	if err != nil && t.mail.done && t.mail.Err == nil {
		// The server may still hold the failed transaction (RFC 3030 §2:
		// after a failed BDAT its state is indeterminate).
		b.c.needRset = true
	}
	if t.done != nil {
		t.done(res, err)
	}
}

// failed reports the connection's failure to every open transaction but
// skip, whose Send returns it instead, and returns it.
func (b *Batch) failed(err error, skip *txn) error {
	for len(b.open) > 0 {
		t := b.open[0]
		b.open = b.open[1:]
		if t == skip {
			continue
		}
		if t.complete() {
			// Every reply of t was read before the failure (the next
			// transaction's RSET or MAIL broke): its outcome stands.
			b.finish(t)
			continue
		}
		if t.inDoubt() {
			t.doubt = true
			t.err = fmt.Errorf("%w: %w", ErrNoFinalReply, err)
		}
		if t.err == nil {
			t.err = err
		}
		if t.end != nil && !t.end.done {
			t.end.Err = err
		}
		b.finish(t)
	}
	return err
}

// Flush waits until every message sent so far has its outcome reported. It
// returns the connection's failure, if any.
func (b *Batch) Flush() error {
	if b.closed {
		return errors.New("smtp: Flush on a closed Batch")
	}
	if err := b.c.drain(); err != nil {
		return b.failed(err, nil)
	}
	b.settle()
	return nil
}

// Close waits for every outcome, like Flush, and ends the Batch; the
// Client can then be used again.
func (b *Batch) Close() error {
	if b.closed {
		return nil
	}
	err := b.Flush()
	b.stop()
	return b.end(err)
}

// Quit sends QUIT in the same group as the end of the last message, waits
// for every outcome and closes the connection. It returns the connection's
// failure, or an *Error if QUIT is not answered 221.
func (b *Batch) Quit() error {
	if b.closed {
		return errors.New("smtp: Quit on a closed Batch")
	}
	c := b.c
	x, err := c.queue(command{verb: "QUIT", expect: 221, timeout: c.timeouts.Command}, "", "QUIT")
	if err == nil {
		err = c.drain()
	}
	if err != nil {
		b.failed(err, nil)
	}
	b.settle()
	b.stop()
	if err == nil {
		err = x.Err
	}
	if c.err == nil {
		c.err = ErrClosed
	}
	c.Text.Close()
	return b.end(err)
}

func (b *Batch) stop() {
	b.closed = true
	b.c.stopPump()
	b.c.batch = nil
}
