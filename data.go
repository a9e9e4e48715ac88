package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The data phase: the message text after DATA's 354 (dot-stuffed, ended by
// "."), or as BDAT chunks (RFC 3030). Every way of sending goes through
// here: Data's writer, Send and Batch, the Courier, SendMail and
// Pipeline.Data's writer (the rfc821 package's MRSQ text).
//
// Progress has one definition for all of them (ClientTrace.DataProgress):
// written counts canonical octets (RFC 1845 §3: CRLF line ends, before
// dot-stuffing), from the start of the message, so a resumed transfer starts
// at the offset the server holds; total is the canonical size when it is
// known before the end (a binary message of known length, or a message
// whose earlier attempt reached its end), else -1; and once the whole
// message is written the last call is (size, size).

// A DataWriter writes the text of a data phase: the message after DATA's
// 354, or the text after any other command answered 354 (Pipeline.Data). It
// converts the text to canonical form and dot-stuffs it (see DotWriter)
// into the Client's buffered connection, and its Close sends the final "."
// and reads the reply to it. Data and DataContext return one as an
// io.WriteCloser.
type DataWriter struct {
	c      *Client
	end    func(error) error
	compat bool // from Data: net/smtp's errors
	closed bool
	next   int64  // the count at which DataProgress is called next
	count  int64  // the canonical octets written, once closed
	reply  *Reply // the reply to the final ".", once read
}

// Data issues a DATA command to the server and returns a writer that
// can be used to write the mail headers and body. The caller should
// close the writer before calling any more methods on c. A call to
// Data must be preceded by one or more calls to [Client.Rcpt].
//
// The writer converts the message to canonical form and dot-stuffs it (see
// DotWriter). Its Close sends the final "." and returns a *textproto.Error
// unless the server answers 250. Data returns a *textproto.Error unless the
// server answers 354. A failure of the connection is returned as the
// network's error, as net/smtp does.
func (c *Client) Data() (io.WriteCloser, error) {
	w, err := c.data(context.Background(), "DATA", true)
	if err != nil {
		return nil, c.compatErr(err)
	}
	return w, nil
}

// DataContext is Data bounded by ctx: the context bounds the whole data
// phase, up to and including the returned writer's Close. It and the
// writer return an *Error for a refusal. It is Pipeline.Data(ctx, "DATA")
// on an empty Pipeline, except that it sends no hello first, as Data does
// not.
func (c *Client) DataContext(ctx context.Context) (io.WriteCloser, error) {
	w, err := c.data(ctx, "DATA", false)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// data sends line, waits for its 354 and starts the text.
func (c *Client) data(ctx context.Context, line string, compat bool) (*DataWriter, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	verb, _, _ := strings.Cut(line, " ")
	verb = strings.ToUpper(verb)
	if _, err := c.roundTrip(command{verb: verb, expect: 354, timeout: c.commandTimeout(verb)}, "%s", line); err != nil {
		return nil, end(err)
	}
	return c.startData(end, compat), nil
}

// startData starts the text after a 354: the returned writer ends the call
// that began with end at its Close.
func (c *Client) startData(end func(error) error, compat bool) *DataWriter {
	c.startText()
	w := &DataWriter{c: c, end: end, compat: compat, next: progressInterval}
	c.openData = w
	return w
}

// Write writes p to the text, converted to canonical form and
// dot-stuffed. It returns an error after Close, and the error of the
// connection, which leaves the Client unusable.
func (w *DataWriter) Write(p []byte) (int, error) {
	n, err := w.writeProgress(p)
	if err != nil && w.compat {
		err = w.c.compatErr(err)
	}
	return n, err
}

func (w *DataWriter) writeProgress(p []byte) (int, error) {
	c := w.c
	if w.closed {
		return 0, errors.New("smtp: write after close of DATA writer")
	}
	if c.err != nil {
		return 0, c.err
	}
	if t := c.trace; t == nil || t.DataProgress == nil {
		return c.writeText(p)
	}
	// Report progress within large writes too (io.Copy from a
	// bytes.Reader hands over the whole message at once).
	n := 0
	for n < len(p) {
		m, err := c.writeText(p[n:min(len(p), n+progressInterval)])
		n += m
		if err != nil {
			return n, err
		}
		if c.dot.Count() >= w.next {
			c.progress(c.dot.Count(), -1)
			w.next = c.dot.Count() + progressInterval
		}
	}
	return n, nil
}

// Close ends the text with the final "." and reads the server's reply to
// it. It returns an *Error (a *textproto.Error from Data's writer) unless
// the reply is 250, an error if the writer was closed already, and an I/O,
// protocol or context error, which leaves the Client unusable.
func (w *DataWriter) Close() error {
	if w.closed {
		return errors.New("smtp: DATA writer already closed")
	}
	w.closed = true
	c := w.c
	c.openData = nil
	err := c.finishData(w)
	w.count = c.dot.Count()
	err = w.end(err)
	if w.compat {
		err = c.compatErr(err)
	}
	return err
}

// Reply returns the server's reply to the final ".", accepting or not,
// once Close has read it; nil before, or if it could not be read.
func (w *DataWriter) Reply() *Reply { return w.reply }

// Count returns the canonical octets of text written so far (RFC 1845 §3:
// CRLF line ends, before dot-stuffing; the final "." not counted): the size
// of the text once Close has run.
func (w *DataWriter) Count() int64 {
	if w.closed {
		return w.count
	}
	return w.c.dot.Count()
}

// abandon ends the call of a writer that will not be closed: the Client is
// being closed.
func (w *DataWriter) abandon() {
	w.closed = true
	w.count = w.c.dot.Count()
	w.end(nil)
}

// finishData ends the message with "." and reads the reply to it.
func (c *Client) finishData(w *DataWriter) error {
	if c.err != nil {
		return c.err
	}
	if err := c.closeText(); err != nil {
		return err
	}
	x := c.endText(1, nil)
	if err := c.await(x); err != nil {
		return err
	}
	w.reply = x.Reply
	return x.Err
}

// startText makes the Client's DotWriter write the message text, from its
// start, to the connection's buffered writer.
func (c *Client) startText() {
	if c.dot == nil {
		c.dot = NewDotWriter(c.bw)
	} else {
		c.dot.Reset(c.bw)
	}
}

// writeText writes p through the DotWriter, each write bounded by the
// data-block timeout (RFC 5321 §4.5.3.2.5). A failure of the connection
// stops the Client.
func (c *Client) writeText(p []byte) (int, error) {
	c.writeTimeout = c.timeouts.DataBlock
	n, err := c.dot.Write(p)
	c.writeTimeout = 0
	if err != nil {
		return n, c.fail(netError("writing message data", err))
	}
	return n, nil
}

// closeText ends the message text with CRLF "." CRLF and reports the
// final progress.
func (c *Client) closeText() error {
	c.writeTimeout = c.timeouts.DataBlock
	err := c.dot.Close()
	c.writeTimeout = 0
	if err != nil {
		return c.fail(netError("writing message data", err))
	}
	n := c.dot.Count()
	c.progress(n, n)
	return nil
}

// endText follows the end of the message text, written but perhaps not yet
// flushed: it queues the reply due to the "." and returns it. With lmtp not
// nil it queues one per accepted recipient instead (RFC 2033 §4.2), replies
// in all, appends them to *lmtp, and returns the last.
func (c *Client) endText(replies int, lmtp *[]*Cmd) *Cmd {
	var last *Cmd
	for range max(replies, 1) {
		last = c.expect(command{verb: ".", expect: 250, timeout: c.timeouts.DataTerm})
		if lmtp != nil {
			*lmtp = append(*lmtp, last)
		}
	}
	if t := c.trace; t != nil && t.CommandSent != nil {
		t.CommandSent(".")
	}
	return last
}

// writeData writes m dot-stuffed through the Client's DotWriter, from the
// canonical offset skip on, without flushing, and returns the canonical
// size. A failure to read m closes the connection: DATA cannot be
// withdrawn, and a message cut short must not be delivered.
func (c *Client) writeData(m *message, skip int64) (int64, error) {
	c.startText()
	c.writeTimeout = c.timeouts.DataBlock
	err := c.feed(m, c.dot, nil, skip, feedBufSize)
	c.writeTimeout = 0
	if err != nil {
		var se *sourceError
		if errors.As(err, &se) {
			return 0, c.fail(fmt.Errorf("%w (the connection is closed, as DATA cannot be withdrawn)", err))
		}
		if c.err == nil {
			c.fail(netError("writing message data", err))
		}
		return 0, c.err
	}
	n := c.dot.Count()
	c.progress(n, n)
	return n, nil
}

// writeChunks sends m from the canonical offset skip on as BDAT chunks of
// about the configured size, the last one marked LAST. Text is converted to
// canonical form first (RFC 3030 §2); BINARYMIME goes as it is. A failure
// to read m, or a refused chunk without PIPELINING, ends the transaction
// without LAST, and RSET clears it before the next one.
func (b *Batch) writeChunks(t *txn, m *message, skip int64) error {
	c := b.c
	ch := &c.chunker // a field of the Client: no allocation
	*ch = chunker{b: b, t: t, m: m, out: &c.chunkOut}
	defer func() { *ch = chunker{} }()
	ch.out.b = ch.out.b[:0]
	var w *DotWriter
	if !m.binary {
		if c.canon == nil {
			c.canon = newCanonicalWriter(ch.out)
		}
		c.canon.Reset(ch.out)
		w = c.canon
	}
	err := c.feed(m, w, ch, skip, c.chunkSize)
	if err == nil && !ch.sentLast {
		err = ch.emit(true)
	}
	t.octets = m.canonical
	switch {
	case err == nil:
		c.progress(m.canonical, m.canonical)
		return nil
	case errors.Is(err, errChunkRefused):
	case isSourceError(err):
		t.err = err
	default:
		return err
	}
	c.needRset = true // RFC 3030 §2: no LAST, or a failed BDAT
	if t.end == nil {
		t.end = t.mail
	}
	return nil
}

// A chunker cuts one transaction's message into BDAT chunks.
type chunker struct {
	b        *Batch
	t        *txn
	m        *message
	out      *appendWriter // canonical text collected for the next chunks
	sentLast bool          // a chunk marked LAST went out
}

// send writes one BDAT command and its chunk; without PIPELINING it waits
// for the reply and returns errChunkRefused for a refusal.
func (ch *chunker) send(chunk []byte, last bool) error {
	c, t := ch.b.c, ch.t
	line := strconv.AppendInt(append(c.lineBuf[:0], "BDAT "...), int64(len(chunk)), 10)
	if last {
		if err := ch.m.end(); err != nil {
			return err
		}
		line = append(line, " LAST"...)
	}
	c.lineBuf = append(line, "\r\n"...)
	x, err := c.queueBytes(command{verb: "BDAT", expect: 250, timeout: c.timeouts.DataTerm}, c.lineBuf)
	if err != nil {
		return err
	}
	c.writeTimeout = c.timeouts.DataBlock
	_, err = c.bw.Write(chunk)
	c.writeTimeout = 0
	if err != nil {
		return c.fail(netError("writing message data", err))
	}
	t.chunks = append(t.chunks, x)
	t.end = x
	t.sent += int64(len(chunk))
	if !ch.b.pipe {
		if err := c.await(x); err != nil {
			return err
		}
		if x.Err != nil {
			return errChunkRefused
		}
	}
	return nil
}

// emit sends every full chunk collected, and with last the rest.
func (ch *chunker) emit(last bool) error {
	out, size := ch.out, ch.b.c.chunkSize
	sent := 0
	for len(out.b)-sent >= size && !(last && len(out.b)-sent == size) {
		if err := ch.send(out.b[sent:sent+size], false); err != nil {
			return err
		}
		sent += size
	}
	if last {
		if err := ch.send(out.b[sent:], true); err != nil {
			return err
		}
		sent = len(out.b)
	}
	out.b = out.b[:copy(out.b, out.b[sent:])]
	return nil
}

// direct sends a piece that needs no conversion as a chunk of its own,
// straight from the source: no copy (RFC 3030 §2 lets chunks be any size).
func (ch *chunker) direct(piece []byte, last bool) error {
	if len(ch.out.b) > 0 {
		if err := ch.send(ch.out.b, false); err != nil {
			return err
		}
		ch.out.b = ch.out.b[:0]
	}
	ch.sentLast = last
	return ch.send(piece, last)
}

var errChunkRefused = errors.New("smtp: BDAT refused")

// isSourceError reports whether err is a failure to read the message.
func isSourceError(err error) bool {
	var se *sourceError
	return errors.As(err, &se)
}

// appendWriter collects what the canonical writer produces.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// progress calls the DataProgress hook with the canonical octets written
// so far and the canonical size if known, else -1.
func (c *Client) progress(written, total int64) {
	if t := c.trace; t != nil && t.DataProgress != nil {
		t.DataProgress(written, total)
	}
}
