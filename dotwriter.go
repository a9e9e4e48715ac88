package smtp

import (
	"io"
)

// errDotWriterClosed is returned by [DotWriter.Write] and [DotWriter.Close]
// once the DotWriter has been closed; it matches ErrClosed.
const errDotWriterClosed = closedError("smtp: write to closed DotWriter")

// States of a DotWriter, describing the last canonical octet accepted.
const (
	dotBOL  = iota // at the start of a line (or of the message)
	dotData        // inside a line
	dotCR          // after a CR whose LF has not been seen yet
)

const (
	// dotBufSize is the size of the buffer that coalesces short pieces
	// (single lines and inserted CR, LF and stuffing octets).
	dotBufSize = 4096
	// dotDirect is the length from which a run of input is written
	// straight to the underlying writer instead of being buffered.
	dotDirect = 512
)

// dotEnd is the longest sequence Close may write: the CRLF completing a
// last line that lacked one, and the "." CRLF terminator.
var dotEnd = []byte("\r\n.\r\n")

// DotWriter converts a message to SMTP canonical form, dot-stuffs it, and
// ends it with CRLF "." CRLF, as the DATA command requires (RFC 5321
// §4.5.2, §4.1.1.4). A DotWriter must be created with [NewDotWriter] (or a
// zero DotWriter set up with [DotWriter.Reset]); it is not safe for
// concurrent use.
//
// Canonical form means that every line ends in CRLF (RFC 5321 §2.3.8). The
// input may use CRLF, a bare LF or a bare CR as a line ending, and each of
// them is written as CRLF; a CR at the end of one Write and an LF at the
// start of the next are one CRLF. Treating a bare CR as a line ending rather
// than passing it through is deliberate: RFC 5321 §2.3.8 forbids sending
// bare CR or LF, and a server that reads a bare CR (or "\r.\r") differently
// from this writer could be made to see the end of the data early, which is
// what "SMTP smuggling" exploits. After conversion, no line on the wire
// starts with a single "." and no CR or LF appears outside a CRLF.
//
// A "." at the start of a canonical line is sent as "..".
//
// The canonical octets are counted (see [DotWriter.Count]); this is the
// offset basis of RFC 1845 checkpoint/restart, which [DotWriter.Skip] uses
// to resume an interrupted transfer.
//
// DotWriter scans its input a block of octets at a time and writes long
// runs of it in a single call to the underlying writer. Short pieces, and
// text with many lines to convert or stuff, are collected in a small
// internal buffer, which is always emptied before Write or Close returns; a
// DotWriter never holds data between calls. It does not allocate in the
// steady state.
type DotWriter struct {
	w      io.Writer
	buf    []byte // pending output, written to w before Write returns
	err    error  // sticky error from w
	count  int64  // canonical octets accepted, skipped ones included
	skip   int64  // canonical octets still to be skipped
	state  uint8
	closed bool
	raw    bool // canonical form only: no stuffing, no terminator (BDAT)
}

// NewDotWriter returns a DotWriter that writes the dot-stuffed message to w.
// It never fails.
func NewDotWriter(w io.Writer) *DotWriter {
	return &DotWriter{w: w, buf: make([]byte, 0, dotBufSize)}
}

// newCanonicalWriter returns a DotWriter that only converts to canonical
// form (and completes the last line), for BDAT (RFC 3030 §2: text "MUST be
// sent in the canonical MIME format"), which needs neither dot-stuffing nor
// a terminator.
func newCanonicalWriter(w io.Writer) *DotWriter {
	d := NewDotWriter(w)
	d.raw = true
	return d
}

// startAt makes d go on with a message at canonical offset off, which must
// be the start of a line: the resume point of a restart (RFC 1845 §3).
func (d *DotWriter) startAt(off int64) {
	d.count = off
	d.state = dotBOL
}

// passable reports whether canonical text may go out without passing
// through d, recorded with advance: d is at a line start with nothing left
// to skip.
func (d *DotWriter) passable() bool {
	return d.skip == 0 && d.state == dotBOL
}

// advance records n canonical octets that went out without passing
// through d: a piece of BDAT data already in canonical form, ending at a
// line end, taken when d was at a line start with nothing to skip.
func (d *DotWriter) advance(n int) {
	d.count += int64(n)
}

// Reset discards any state of d, including a sticky error and a pending
// Skip, and makes it write a new message to w, as if it had been returned by
// NewDotWriter(w). It keeps d's internal buffer, so reusing a DotWriter does
// not allocate. It never fails.
func (d *DotWriter) Reset(w io.Writer) {
	*d = DotWriter{w: w, buf: d.buf[:0], raw: d.raw}
}

// Skip makes the DotWriter consume, but not write, the first n canonical
// octets of the message (offsets 0 to n-1, counted as by [DotWriter.Count]).
// It implements the restart of RFC 1845 §3, whose octet offset is "counted
// on canonical data, before dot-stuffing". Skip should be called before the
// first Write; octets already accepted are not affected, and the last call
// to Skip wins. It never fails.
//
// What is written is exactly the tail of what a DotWriter without Skip
// would write, starting at the wire position of canonical octet n:
//
//   - if octet n is a "." at the start of a line, it is stuffed (".." is
//     written), as in the full transfer; a "." in the middle of a line or a
//     skipped "." is never stuffed;
//   - the CR and the LF of a line ending are two octets, so n may fall
//     between them: the output then starts with "\n". This holds for the
//     LF half of a CRLF that was converted from a bare CR or bare LF too;
//   - the CRLF that Close adds to a message that does not end in one is
//     part of the canonical data and can be skipped like the rest: if n is
//     the size of the message as written (without that CRLF), the output is
//     "\r\n.\r\n";
//   - if n is at least the canonical size of the message, the output is
//     ".\r\n" alone.
func (d *DotWriter) Skip(n int64) {
	d.skip = max(n-d.count, 0)
}

// Count returns the number of canonical octets accepted so far: the message
// after line ending conversion, before dot-stuffing, without the "." CRLF
// terminator. It includes octets consumed by [DotWriter.Skip] and, after
// Close, the CRLF that Close may add. This is the RFC 1845 octet offset.
func (d *DotWriter) Count() int64 { return d.count }

// Write converts p to canonical form, dot-stuffs it and writes it to the
// underlying writer. Its return values follow io.Writer: n == len(p) and a
// nil error on success. If the underlying writer fails (or writes short,
// reported as [io.ErrShortWrite]) Write returns that error with n < len(p),
// the number of input octets handled before the failure, and every later
// Write or Close returns the same error without writing anything: the
// DotWriter is unusable until Reset. After Close, Write returns
// an error that matches [ErrClosed].
func (d *DotWriter) Write(p []byte) (n int, err error) {
	if d.closed {
		return 0, errDotWriterClosed
	}
	if d.err != nil {
		return 0, d.err
	}
	q := p
	if d.skip > 0 {
		q = d.skipPrefix(q)
	}
	if len(q) == 0 {
		return len(p), nil
	}
	if k, ok := d.scan(q); !ok {
		return len(p) - len(q) + k, d.err
	}
	return len(p), nil
}

// Close completes the message. If the canonical data is not empty and does
// not end in CRLF, it writes the missing CRLF (just LF if the data ended with
// a CR, whose LF had not been seen yet), then the terminating "." CRLF;
// octets that [DotWriter.Skip] still has to skip are not written. Close does
// not close the underlying writer. It returns the underlying writer's error,
// or the sticky error of an earlier Write. A second Close writes nothing and
// returns an error that matches [ErrClosed].
func (d *DotWriter) Close() error {
	if d.closed {
		return errDotWriterClosed
	}
	d.closed = true
	if d.err != nil {
		return d.err
	}
	var add int64 // canonical octets completing the last line
	switch d.state {
	case dotData:
		add = 2
	case dotCR:
		add = 1
	}
	d.count += add
	skipped := min(d.skip, add)
	d.skip -= skipped
	d.state = dotBOL
	end := dotEnd[2-add+skipped:]
	if d.raw {
		end = end[:len(end)-3] // no "." CRLF
	}
	if len(end) > 0 {
		d.out(end) // the buffer is empty between calls
	}
	return d.err
}

// skipPrefix consumes canonical octets of p while d.skip > 0, updating the
// state and the count, and returns the rest of p.
func (d *DotWriter) skipPrefix(p []byte) []byte {
	i, state := 0, d.state
	for i < len(p) && d.skip > 0 {
		switch state {
		case dotCR:
			// The LF of the line ending: p[i] or, for a bare CR, an
			// inserted one.
			state = dotBOL
			d.skip--
			d.count++
			if p[i] == '\n' {
				i++
			}
			continue
		case dotBOL:
			state = dotData // a skipped "." is not stuffed
		}
		lim := len(p)
		if int64(lim-i) > d.skip {
			lim = i + int(d.skip)
		}
		k := i
		for k < lim && p[k] != '\r' && p[k] != '\n' {
			k++
		}
		d.skip -= int64(k - i)
		d.count += int64(k - i)
		i = k
		if k == lim {
			continue
		}
		// A CR, or the CR inserted before a bare LF.
		d.skip--
		d.count++
		if p[k] == '\r' {
			i++
			state = dotCR
			continue
		}
		if d.skip == 0 {
			// Skipping stops between the inserted CR and the LF: let scan
			// write the LF as the second half of a CRLF.
			state = dotCR
			break
		}
		d.skip--
		d.count++
		i++
		state = dotBOL
	}
	d.state = state
	return p[i:]
}

// scan writes p, which is not empty, in canonical dot-stuffed form. It
// returns (len(p), true), or on error the number of octets of p handled
// before the failing write and false.
//
// Input is written in runs p[start:i] copied verbatim; only the octets that
// are not in the input (the CR of a bare LF, the LF of a bare CR, stuffing
// dots) are written separately. A stuffing dot is written by ending one run
// just after a line-initial "." and starting the next one at that ".".
// cleanPrefix finds where a run must end, whole blocks of octets at a time.
func (d *DotWriter) scan(p []byte) (int, bool) {
	var (
		state = d.state
		start = 0 // p[start:i] is accepted but not yet written
		i     = 0 // next octet to look at
		ins   = 0 // inserted canonical octets
	)
	for i < len(p) {
		prev := byte('\n')
		switch state {
		case dotCR:
			state = dotBOL
			if p[i] == '\n' {
				i++
				continue
			}
			// Bare CR ending the last Write: supply its LF.
			if !d.run(p[start:i]) || !d.put('\n') {
				return start, false
			}
			ins, start = ins+1, i
			continue
		case dotData:
			prev = 'x'
		}
		k := i + cleanPrefix(p[i:], prev, !d.raw)
		if k == len(p) {
			i, state = k, stateAfter(p[k-1])
			break
		}
		if haveDotCopy && k-i < dotDense && len(p)-i >= 64 {
			// Short lines that need octets inserted: copy them through
			// the buffer, converted, a block at a time.
			if !d.run(p[start:i]) {
				return start, false
			}
			start = i
			ns, nd, ok := d.dense(p[i:min(len(p), i+dotSpan)], prev)
			if !ok {
				return i, false
			}
			if ns > 0 {
				i += ns
				ins += nd - ns
				start, state = i, stateAfter(p[i-1])
				continue
			}
		}
		switch p[k] {
		case '\r': // bare CR: supply its LF
			if !d.run(p[start:k+1]) || !d.put('\n') {
				return start, false
			}
			ins++
			start, i, state = k+1, k+1, dotBOL
		case '\n': // bare LF: supply its CR
			if !d.run(p[start:k]) || !d.put('\r') {
				return start, false
			}
			ins++
			start, i, state = k, k+1, dotBOL
		default: // "." at the start of a line: write it twice
			if !d.run(p[start : k+1]) {
				return start, false
			}
			start, i, state = k, k+1, dotData
		}
	}
	if !d.run(p[start:]) || !d.flush() {
		return start, false
	}
	d.state, d.count = state, d.count+int64(len(p)+ins)
	return len(p), true
}

// dense converts and stuffs p, in which octets must be inserted often,
// into the buffer with dotCopy, until the buffer is full; prev is the
// octet before p, not a CR. It returns the octets of p it took and the
// canonical octets it added to the buffer (stuffing dots are not), and
// false if flushing the buffer failed.
func (d *DotWriter) dense(p []byte, prev byte) (ns, nd int, ok bool) {
	if cap(d.buf)-len(d.buf) < dotBufSize/4 && !d.grow() {
		return 0, 0, false
	}
	nd, ns, stuffed := dotCopy(d.buf[len(d.buf):cap(d.buf)], p, prev, !d.raw)
	d.buf = d.buf[:len(d.buf)+nd]
	return ns, nd - stuffed, true
}

// stateAfter returns the state after the octet c: at a line start after
// LF, after a CR, else inside a line.
func stateAfter(c byte) uint8 {
	switch c {
	case '\n':
		return dotBOL
	case '\r':
		return dotCR
	}
	return dotData
}

// run writes b, buffering it if it is short.
func (d *DotWriter) run(b []byte) bool {
	if len(b) >= dotDirect {
		return d.flush() && d.out(b)
	}
	if len(d.buf)+len(b) > cap(d.buf) && !d.grow() {
		return false
	}
	d.buf = append(d.buf, b...)
	return true
}

// put writes the single octet c through the buffer.
func (d *DotWriter) put(c byte) bool {
	if len(d.buf) == cap(d.buf) && !d.grow() {
		return false
	}
	d.buf = append(d.buf, c)
	return true
}

// grow makes room in the buffer, allocating it if d was not made by
// NewDotWriter.
func (d *DotWriter) grow() bool {
	if d.buf == nil {
		d.buf = make([]byte, 0, dotBufSize)
		return true
	}
	return d.flush()
}

// flush writes the buffered octets to w.
func (d *DotWriter) flush() bool {
	if len(d.buf) == 0 {
		return true
	}
	ok := d.out(d.buf)
	d.buf = d.buf[:0]
	return ok
}

// out writes b to w, recording a failure as the sticky error.
func (d *DotWriter) out(b []byte) bool {
	n, err := d.w.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		d.err = err
		return false
	}
	return true
}
