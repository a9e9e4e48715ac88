package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// resumeEvery is about the distance in canonical octets between recorded
// resume points (at least half of it): a restart reads at most about this
// much of the source in vain, twice (to check the server's offset, then to
// send).
const resumeEvery = 24 << 10

// message is the content of one transaction as the client reads it. For a
// checkpointed transaction it can be read again from a resume point: by
// seeking a seekable source, or from a spool of what a non-seekable source
// has produced.
type message struct {
	r      io.Reader
	binary bool  // BODY=BINARYMIME: sent as it is
	size   int64 // input length if known, else -1

	resumable bool
	seeker    io.ReadSeeker // r, if it can seek
	start     int64         // the seeker's offset where the message begins
	spool     *spool        // what a non-seekable r produced so far
	points    []ResumePoint // recorded at line starts, increasing
	consumed  int64         // source octets taken from r (non-seekable)
	canonical int64         // canonical size, once a pass reached the end; else -1
	written   int64         // canonical offset reached by the latest pass

	// ending, if not nil, runs before the end of the data (the final "."
	// or BDAT LAST) is written: an error keeps the end from going out.
	ending func() error
	// advance, if not nil, runs after the first piece of the data a pass
	// writes and then after a piece at most every advanceEvery: an error
	// stops the data.
	advance      func() error
	advanceEvery time.Duration
	advanced     time.Time // when advance last ran; zero at a pass's start
}

// end runs m's ending hook.
func (m *message) end() error {
	if m.ending == nil {
		return nil
	}
	return m.ending()
}

// tick runs m's advance hook when it is due.
func (m *message) tick() error {
	if m.advance == nil {
		return nil
	}
	now := time.Now()
	if !m.advanced.IsZero() && now.Sub(m.advanced) < m.advanceEvery {
		return nil
	}
	m.advanced = now
	return m.advance()
}

func newMessage(r io.Reader, binary bool) *message {
	m := makeMessage(r, binary)
	return &m
}

// makeMessage returns the message read from r.
func makeMessage(r io.Reader, binary bool) message {
	return message{r: r, binary: binary, size: bodySize(r), canonical: -1}
}

// makeResumable prepares m to be read again. A source that can seek is
// sought; any other is spooled as it is read, in memory up to spoolMemory
// octets and then in a temporary file in spoolDir.
func (m *message) makeResumable(spoolMemory int64, spoolDir string) error {
	m.resumable = true
	if rs, ok := m.r.(io.ReadSeeker); ok {
		if off, err := rs.Seek(0, io.SeekCurrent); err == nil {
			m.seeker, m.start = rs, off
			return nil
		}
	}
	m.spool = &spool{max: spoolMemory, dir: spoolDir}
	return nil
}

// close releases the spool's temporary file, if any.
func (m *message) close() error {
	if m.spool != nil {
		return m.spool.close()
	}
	return nil
}

// pointBefore returns the last recorded point at or before the canonical
// offset off.
func (m *message) pointBefore(off int64) ResumePoint {
	var p ResumePoint
	for _, q := range m.points {
		if q.Canonical > off {
			break
		}
		p = q
	}
	return p
}

// record notes a resume point at a line start.
func (m *message) record(p ResumePoint) {
	if !m.resumable {
		return
	}
	if n := len(m.points); n > 0 && p.Canonical-m.points[n-1].Canonical < resumeEvery/2 {
		return
	}
	if n := len(m.points); n > 0 && p.Canonical <= m.points[n-1].Canonical {
		return
	}
	m.points = append(m.points, p)
}

// readerFrom returns a reader of the source from offset src. Only a
// resumable message can be read from anywhere but the start of a first
// pass.
func (m *message) readerFrom(src int64) (io.Reader, error) {
	switch {
	case m.seeker != nil:
		if _, err := m.seeker.Seek(m.start+src, io.SeekStart); err != nil {
			return nil, fmt.Errorf("smtp: seeking the message: %w", err)
		}
		return m.seeker, nil
	case m.spool != nil:
		return m.spool.readerFrom(src, m)
	case src != 0 || m.consumed < 0:
		return nil, errors.New("smtp: the message cannot be read again")
	default:
		m.consumed = -1 // read once
		return m.r, nil
	}
}

// A spool keeps a copy of a non-seekable source as it is read, so that a
// restart can read it again: in memory up to max octets, then in a
// temporary file.
type spool struct {
	max  int64
	dir  string
	mem  []byte
	file *os.File
	n    int64 // octets spooled
}

func (s *spool) write(p []byte) error {
	if s.file == nil && int64(len(s.mem)+len(p)) <= s.max {
		s.mem = append(s.mem, p...)
		s.n += int64(len(p))
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "resmtp-spool-*")
		if err != nil {
			return fmt.Errorf("smtp: spooling the message: %w", err)
		}
		os.Remove(f.Name()) // the open file stays usable; nothing is left behind
		if _, err := f.Write(s.mem); err != nil {
			f.Close()
			return fmt.Errorf("smtp: spooling the message: %w", err)
		}
		s.file, s.mem = f, nil
	}
	if _, err := s.file.WriteAt(p, s.n); err != nil {
		return fmt.Errorf("smtp: spooling the message: %w", err)
	}
	s.n += int64(len(p))
	return nil
}

// readerFrom reads the spool from off, then the rest of m's source, which
// it spools too.
func (s *spool) readerFrom(off int64, m *message) (io.Reader, error) {
	if off > s.n {
		return nil, fmt.Errorf("smtp: resume point %d beyond the %d octets spooled", off, s.n)
	}
	var saved io.Reader
	if s.file != nil {
		saved = io.NewSectionReader(s.file, off, s.n-off)
	} else {
		saved = bytes.NewReader(s.mem[off:s.n])
	}
	return io.MultiReader(saved, &spoolingReader{s: s, m: m}), nil
}

type spoolingReader struct {
	s *spool
	m *message
}

func (r *spoolingReader) Read(p []byte) (int, error) {
	n, err := r.m.r.Read(p)
	if n > 0 {
		r.m.consumed += int64(n)
		if werr := r.s.write(p[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (s *spool) close() error {
	if s.file != nil {
		err := s.file.Close()
		s.file = nil
		return err
	}
	s.mem = nil
	return nil
}

// total returns the canonical size of m if it is known before the end of
// this pass: from an earlier pass that reached the end, or for a binary
// message of known length; else -1.
func (m *message) total() int64 {
	switch {
	case m.canonical >= 0:
		return m.canonical
	case m.binary:
		return m.size
	}
	return -1
}

// validOffset reports whether the canonical offset off can be where a
// server's copy of m ends (RFC 1845 §3): within the message and, if
// lineStart, at the start of a line (required with DATA). It reads the
// source from the resume point before off.
func (m *message) validOffset(off int64, lineStart bool) (bool, error) {
	if off == 0 {
		return true, nil
	}
	if m.canonical >= 0 && off > m.canonical {
		return false, nil
	}
	if m.binary && m.size >= 0 {
		return off <= m.size, nil // the source is the canonical form
	}
	p := m.pointBefore(off - 1) // the point must come before the octet at off-1
	if m.binary {
		p, lineStart = ResumePoint{}, false
	}
	r, err := m.readerFrom(p.Source)
	if err != nil {
		return false, err
	}
	at := &octetAt{pos: p.Canonical, at: off - 1}
	var w io.Writer = at
	var cw *DotWriter
	if !m.binary {
		cw = newCanonicalWriter(at)
		cw.startAt(p.Canonical)
		w = cw
	}
	// Read no further than needed: the source has at most as many octets
	// as the canonical form up to the same point.
	buf := make([]byte, 16<<10)
	left := off - p.Canonical + 1
	for !at.found {
		n, err := r.Read(buf[:max(min(int64(len(buf)), left), 1)])
		left -= int64(n)
		w.Write(buf[:n])
		if err == io.EOF {
			if cw != nil {
				cw.Close()
			}
			break
		}
		if err != nil {
			return false, &sourceError{err: err}
		}
	}
	return at.found && (!lineStart || at.b == '\n'), nil
}

// octetAt finds the octet at offset at of what is written to it, counting
// from pos.
type octetAt struct {
	pos, at int64
	b       byte
	found   bool
}

func (o *octetAt) Write(p []byte) (int, error) {
	if !o.found && o.at >= o.pos && o.at < o.pos+int64(len(p)) {
		o.b, o.found = p[o.at-o.pos], true
	}
	o.pos += int64(len(p))
	return len(p), nil
}

// feed reads m from the canonical offset skip on and writes it: through w
// (the DotWriter for DATA, the canonical writer for BDAT), or, for binary
// content, to ch.direct, which learns which piece is the last when the
// source's length is known. It hands over pieces of at most size octets
// that end at line ends where they can, records resume points at line ends
// about every resumeEvery octets, and with BDAT (ch not nil) lets ch cut
// chunks after each piece; it reports progress with the canonical octets so
// far.
//
// With BDAT, a piece that is already in canonical form goes to ch.direct as
// it is, without a copy; an in-memory message (a bytes.Reader,
// strings.Reader or bytes.Buffer) is not copied into a buffer at all. w
// must have been Reset; feed closes it.
func (c *Client) feed(m *message, w *DotWriter, ch *chunker, skip int64, size int) error {
	p := m.pointBefore(skip)
	if m.binary {
		p = ResumePoint{skip, skip} // canonical is the source itself
	}
	r, err := m.readerFrom(p.Source)
	if err != nil {
		return err
	}
	if w != nil {
		w.startAt(p.Canonical)
		w.Skip(skip)
	}
	if cap(c.feedBuf) < size {
		c.feedBuf = make([]byte, size)
	}
	f := &c.feeder // a field of the Client: no allocation
	*f = feeder{c: c, m: m, w: w, ch: ch, src: p.Source, buf: c.feedBuf[:size]}
	defer func() { *f = feeder{} }()
	switch r.(type) {
	case *bytes.Reader, *strings.Reader, *bytes.Buffer:
		_, err = r.(io.WriterTo).WriteTo(f)
	default:
		err = f.readFrom(r)
	}
	if err == nil && f.carry > 0 {
		err = f.piece(f.buf[:f.carry])
	}
	if err == nil && w != nil && ch == nil {
		err = m.end() // before DATA's final "."
	}
	if err == nil && w != nil {
		err = w.Close()
	}
	if err != nil {
		return err
	}
	m.canonical = f.count()
	return nil
}

// A feeder cuts a message into pieces for feed.
type feeder struct {
	c     *Client
	m     *message
	w     *DotWriter
	ch    *chunker // BDAT: where pieces go, and who cuts chunks; nil for DATA
	src   int64    // source offset of the next octet
	buf   []byte   // holds a partial line between writes
	carry int      // octets held in buf
}

func (f *feeder) count() int64 {
	if f.w == nil {
		return f.src
	}
	return f.w.Count()
}

// readFrom reads r into the buffer and hands on the whole lines.
func (f *feeder) readFrom(r io.Reader) error {
	for {
		n, err := io.ReadAtLeast(r, f.buf[f.carry:], 1)
		end := f.carry + n
		if err != nil && err != io.EOF {
			return &sourceError{err: err}
		}
		cut := end
		if f.w != nil && err == nil {
			// Keep the piece to whole lines, unless a line fills the buffer.
			if i := bytes.LastIndexByte(f.buf[:end], '\n'); i >= 0 {
				cut = i + 1
			} else if end < len(f.buf) {
				f.carry = end
				continue
			}
		}
		if cut > 0 {
			if perr := f.piece(f.buf[:cut]); perr != nil {
				return perr
			}
		}
		f.carry = copy(f.buf, f.buf[cut:end])
		if err == io.EOF {
			return nil
		}
	}
}

// Write takes the source octets of an in-memory message (its WriteTo calls
// it) and hands on the whole lines in them without copying.
func (f *feeder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.carry > 0 {
			// Complete the partial line held from the last write.
			take := len(p)
			if i := bytes.IndexByte(p, '\n'); i >= 0 && f.w != nil {
				take = i + 1
			}
			take = min(take, len(f.buf)-f.carry)
			copy(f.buf[f.carry:], p[:take])
			f.carry += take
			p = p[take:]
			if f.carry == len(f.buf) || f.w != nil && f.buf[f.carry-1] == '\n' {
				if err := f.piece(f.buf[:f.carry]); err != nil {
					return n - len(p), err
				}
				f.carry = 0
			}
			continue
		}
		lim := min(len(p), len(f.buf))
		cut := lim
		if f.w != nil {
			cut = bytes.LastIndexByte(p[:lim], '\n') + 1
			if cut == 0 && lim < len(f.buf) {
				f.carry = copy(f.buf, p) // a partial line: wait for the rest
				break
			}
			if cut == 0 {
				cut = lim
			}
		}
		if err := f.piece(p[:cut]); err != nil {
			return n - len(p), err
		}
		p = p[cut:]
	}
	return n, nil
}

// piece writes one piece and records the progress it makes.
func (f *feeder) piece(p []byte) error {
	w := f.w
	// The last piece of a source of known length can say so (BDAT LAST).
	last := f.m.size >= 0 && f.src+int64(len(p)) == f.m.size
	switch {
	case w == nil:
		if err := f.ch.direct(p, last); err != nil {
			return err
		}
		f.src += int64(len(p))
	case f.ch != nil && w.passable() && p[len(p)-1] == '\n' && isCanonical(p):
		// Canonical and source offsets move together here: resume points
		// at the line starts after every resumeEvery octets, recorded
		// before the write, which may break off anywhere in the piece.
		start := ResumePoint{Canonical: w.Count(), Source: f.src}
		for at := resumeEvery; at < len(p); at += resumeEvery {
			i := bytes.IndexByte(p[at:], '\n')
			if i < 0 {
				break
			}
			at += i + 1
			f.m.record(ResumePoint{Canonical: start.Canonical + int64(at), Source: start.Source + int64(at)})
		}
		w.advance(len(p))
		if err := f.ch.direct(p, last); err != nil {
			return err
		}
		f.src += int64(len(p))
	default:
		// Through the writer in parts of about resumeEvery octets that end
		// at line ends, each a resume point.
		for len(p) > 0 {
			n := len(p)
			if n > resumeEvery {
				if i := bytes.IndexByte(p[resumeEvery:], '\n'); i >= 0 {
					n = resumeEvery + i + 1
				}
			}
			if _, err := w.Write(p[:n]); err != nil {
				return err
			}
			f.src += int64(n)
			if p[n-1] == '\n' {
				f.m.record(ResumePoint{Canonical: w.Count(), Source: f.src})
			}
			p = p[n:]
		}
	}
	if f.ch != nil {
		if err := f.ch.emit(false); err != nil {
			return err
		}
	}
	f.m.written = f.count()
	f.c.progress(f.m.written, f.m.total())
	return f.m.tick()
}

// isCanonical reports whether p, which ends in LF, needs no conversion:
// every LF follows a CR and every CR precedes an LF. It looks at each
// octet once, a block at a time (cleanPrefix).
func isCanonical(p []byte) bool {
	return cleanPrefix(p, '\n', false) == len(p)
}

const feedBufSize = 64 << 10

// A sourceError is a failure to read the message, as opposed to a failure
// of the connection.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "smtp: reading the message: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
