package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// resumeEvery is the distance in canonical octets between recorded resume
// points: a restart reads at most this much of the source in vain.
const resumeEvery = 32 << 10

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
}

func newMessage(r io.Reader, binary bool) *message {
	return &message{r: r, binary: binary, size: bodySize(r), canonical: -1}
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
	if n := len(m.points); n > 0 && p.Canonical-m.points[n-1].Canonical < resumeEvery {
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
	case src != 0 || m.consumed != 0:
		return nil, errors.New("smtp: the message cannot be read again")
	default:
		return countingReader{m}, nil
	}
}

type countingReader struct{ m *message }

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.m.r.Read(p)
	c.m.consumed += int64(n)
	return n, err
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
	buf := make([]byte, 16<<10)
	for !at.found {
		n, err := r.Read(buf)
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
// content, to raw. It hands the writer pieces that end at line ends where
// it can, records resume points there, and calls chunk after each piece
// (BDAT cuts chunks there) and progress with the canonical octets so far.
// w must have been Reset; feed closes it.
func (c *Client) feed(m *message, w *DotWriter, raw io.Writer, skip int64, chunk func() error) error {
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
	if cap(c.feedBuf) < feedBufSize {
		c.feedBuf = make([]byte, feedBufSize)
	}
	buf := c.feedBuf[:feedBufSize]
	src, carry := p.Source, 0
	count := func() int64 {
		if w == nil {
			return src
		}
		return w.Count()
	}
	for {
		n, rerr := io.ReadAtLeast(r, buf[carry:], 1)
		end := carry + n
		eof := rerr == io.EOF
		if rerr != nil && !eof {
			return &sourceError{err: rerr}
		}
		cut := end
		if !eof && w != nil {
			// Keep the piece to whole lines, unless a line fills the buffer.
			if i := bytes.LastIndexByte(buf[:end], '\n'); i >= 0 {
				cut = i + 1
			} else if end < len(buf) {
				carry = end
				continue
			}
		}
		var werr error
		if w != nil {
			_, werr = w.Write(buf[:cut])
		} else {
			_, werr = raw.Write(buf[:cut])
		}
		if werr != nil {
			return werr
		}
		src += int64(cut)
		if w != nil && cut > 0 && buf[cut-1] == '\n' {
			m.record(ResumePoint{Canonical: w.Count(), Source: src})
		}
		if chunk != nil {
			if err := chunk(); err != nil {
				return err
			}
		}
		m.written = count()
		c.progress(m.written, m)
		carry = copy(buf, buf[cut:end])
		if eof {
			break
		}
	}
	if w != nil {
		if err := w.Close(); err != nil {
			return err
		}
	}
	m.canonical = count()
	return nil
}

const feedBufSize = 64 << 10

// progress calls the DataProgress hook.
func (c *Client) progress(done int64, m *message) {
	if t := c.trace; t != nil && t.DataProgress != nil {
		t.DataProgress(done, m.size)
	}
}

// A sourceError is a failure to read the message, as opposed to a failure
// of the connection.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "smtp: reading the message: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
