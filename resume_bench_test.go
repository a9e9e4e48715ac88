package smtp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cost of a restart (RFC 1845 §3): a message cut at 90 % and resumed
// sends, on the new connection, the remainder the server does not hold (in
// canonical octets; plus DATA's dot-stuffing and terminator), and reads from
// a seekable source no more than that remainder and the distance back to a
// resume point.

// countingSource is a seekable message source that counts the octets read
// in each attempt of a Courier, and those read since the last Seek.
type countingSource struct {
	r       *bytes.Reader
	attempt int             // set by the Connected hook
	read    map[int]int64   // octets read per attempt
	seeks   []sourceSeek    // every Seek that moved the source
	last    *sourceSeek     // the latest of them
	total   int64           // octets read in all
	byAtt   map[int][]int64 // offsets sought per attempt
}

type sourceSeek struct {
	attempt   int
	offset    int64 // where the Seek went
	firstRead int64 // the offset of the first read after it, -1 if none
	read      int64 // octets read after it, before the next Seek
}

func newCountingSource(msg []byte) *countingSource {
	return &countingSource{r: bytes.NewReader(msg), read: map[int]int64{}, byAtt: map[int][]int64{}}
}

func (s *countingSource) Read(p []byte) (int, error) {
	off, _ := s.r.Seek(0, io.SeekCurrent)
	n, err := s.r.Read(p)
	s.total += int64(n)
	s.read[s.attempt] += int64(n)
	if s.last != nil {
		if s.last.firstRead < 0 && n > 0 {
			s.last.firstRead = off
		}
		s.last.read += int64(n)
	}
	return n, err
}

func (s *countingSource) Seek(offset int64, whence int) (int64, error) {
	pos, err := s.r.Seek(offset, whence)
	if err == nil && !(offset == 0 && whence == io.SeekCurrent) {
		s.seeks = append(s.seeks, sourceSeek{attempt: s.attempt, offset: pos, firstRead: -1})
		s.last = &s.seeks[len(s.seeks)-1]
		s.byAtt[s.attempt] = append(s.byAtt[s.attempt], pos)
	}
	return pos, err
}

// resumeCost is what one cut-and-resume costs.
type resumeCost struct {
	size, wire  int64 // the message's canonical size and its octets on the wire
	cutWire     int64 // the first connection was cut after this many data octets
	cutCanon    int64 // ... which is this canonical offset
	offset      int64 // the server's 355 offset
	remainder   int64 // size - offset
	resumedWire int64 // data octets on the wire on the second connection
	stuffing    int64 // dots added by DATA's stuffing to the remainder
	terminator  int64 // DATA's ".\r\n"
	srcAfter    int64 // source octets read after the last Seek of the resumed attempt
	srcResume   int64 // source octets read in the resumed attempt, all Seeks
	srcSeeks    []int64
	srcFirst    int64 // the offset of the first read after the last seek
	longestLine int64 // the longest line with its CRLF
	elapsed     time.Duration
}

// overWire is what the resumed connection sent beyond the remainder,
// DATA's stuffing aside (it is encoding, not data): its terminator, or 0
// for BDAT.
func (c resumeCost) overWire() int64 { return c.resumedWire - c.stuffing - c.remainder }

func (c resumeCost) String() string {
	return fmt.Sprintf("size=%d cut at wire %d (canonical %d), 355 offset %d, remainder %d; resumed wire %d (stuffing %d, terminator %d, over %d); source read after the resume seek %d (over %d), in the whole resumed attempt %d (over %d), seeks %v; longest line %d; %v",
		c.size, c.cutWire, c.cutCanon, c.offset, c.remainder, c.resumedWire, c.stuffing, c.terminator, c.overWire(),
		c.srcAfter, c.srcAfter-c.remainder, c.srcResume, c.srcResume-c.remainder, c.srcSeeks, c.longestLine, c.elapsed.Round(time.Millisecond))
}

// canonicalAtWire returns the canonical offset of msg reached after w
// octets of its DATA encoding (stuffing counted; the terminator not).
func canonicalAtWire(msg []byte, w int64) int64 {
	var wire int64
	bol := true
	for i, b := range msg {
		if bol && b == '.' {
			wire++
		}
		if wire >= w {
			return int64(i)
		}
		wire++
		if wire >= w {
			return int64(i) + 1
		}
		bol = b == '\n'
	}
	return int64(len(msg))
}

func longestLine(msg []byte) int64 {
	var best, start int64
	for i, b := range msg {
		if b == '\n' {
			best = max(best, int64(i)+1-start)
			start = int64(i) + 1
		}
	}
	return max(best, int64(len(msg))-start)
}

// measureResume sends msg through a server that cuts the first connection
// after cutPercent of the data's wire octets, and measures the restart.
func measureResume(tb testing.TB, msg []byte, chunk bool, chunkSize int, cutPercent int64) resumeCost {
	tb.Helper()
	ext := []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHECKPOINT"}
	if chunk {
		ext = append(ext, "CHUNKING")
	}
	c := resumeCost{size: int64(len(msg)), wire: int64(len(msg))}
	if !chunk {
		c.wire = dataWireLen(msg)
	}
	c.cutWire = c.wire * cutPercent / 100
	c.cutCanon = c.cutWire
	if !chunk {
		c.cutCanon = canonicalAtWire(msg, c.cutWire)
	}
	srv, err := smtptest.NewServer(smtptest.Config{Extensions: ext, MaxMessageSize: 2*c.size + 1<<20,
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: c.cutWire}}})
	require.NoError(tb, err)
	defer srv.Close()
	src := newCountingSource(msg)
	var resumed []int64
	d := &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled, ChunkSize: chunkSize, Trace: &ClientTrace{
		Connected: func(_ string, attempt int) { src.attempt = attempt },
		Resumed:   func(off int64, _ error) { resumed = append(resumed, off) },
	}}
	k := &Courier{Dialer: d, RetryDelay: time.Millisecond, Attempts: 3}
	start := time.Now()
	res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, src)
	c.elapsed = time.Since(start)
	require.NoError(tb, err, "Send")
	msgs := srv.Messages()
	require.Len(tb, msgs, 1, "copies on the server")
	// Not require.Equal: a diff of megabytes is no help.
	require.True(tb, bytes.Equal(msgs[0].Data, msg), "the copy on the server is not the message")
	require.Equal(tb, 1, res.Restarts, "restarts %d, resumed at %v, %d connections", res.Restarts, resumed, srv.Conns())
	require.Len(tb, resumed, 1, "restarts %d, resumed at %v, %d connections", res.Restarts, resumed, srv.Conns())
	require.Equal(tb, 2, srv.Conns(), "restarts %d, resumed at %v, %d connections", res.Restarts, resumed, srv.Conns())
	require.Equal(tb, resumed, msgs[0].ResumedAt, "server ResumedAt, client's Resumed")
	c.offset = resumed[0]
	c.remainder = c.size - c.offset
	c.resumedWire = transcriptWire(srv.Transcript(2))
	if !chunk {
		c.stuffing = dataWireLen(msg[c.offset:]) - 3 - c.remainder
		c.terminator = 3
	}
	var last *sourceSeek
	for i := range src.seeks {
		if src.seeks[i].attempt == 2 {
			last = &src.seeks[i]
		}
	}
	require.NotNil(tb, last, "the resumed attempt did not seek the source: %+v", src.seeks)
	c.srcAfter, c.srcFirst = last.read, last.firstRead
	require.Equal(tb, last.offset, c.srcFirst, "the first read after the resume seek is at %d, the seek at %d, the 355 offset %d", c.srcFirst, last.offset, c.offset)
	require.LessOrEqual(tb, c.srcFirst, c.offset, "the first read after the resume seek is at %d, the seek at %d, the 355 offset %d", c.srcFirst, last.offset, c.offset)
	c.srcResume = src.read[2]
	c.srcSeeks = src.byAtt[2]
	c.longestLine = longestLine(msg)
	return c
}

// checkResumeCost asserts the two bounds of the issue: the octets on the
// wire for the resumed part are at most the remainder plus one line (with
// DATA's stuffing aside), and the source octets read after the resume seek
// at most the remainder plus 64 KiB.
func checkResumeCost(tb testing.TB, c resumeCost, chunk bool) {
	tb.Helper()
	oneLine := c.longestLine + 3 // the line with its CRLF, and ".\r\n"
	over := c.overWire()
	assert.GreaterOrEqual(tb, over, int64(0), "the resumed connection sent fewer octets than the remainder: %v", c)
	assert.LessOrEqual(tb, over, oneLine, "the resumed connection sent %d octets beyond the remainder, more than one line (%d): %v", over, oneLine, c)
	if chunk {
		assert.Zero(tb, over, "BDAT sent %d octets beyond the remainder: %v", over, c)
	}
	// The server holds what it received up to the cut, less the partial
	// line with DATA: the remainder is the cut's plus at most one line.
	lost := c.remainder - (c.size - c.cutCanon)
	assert.GreaterOrEqual(tb, lost, int64(0), "the 355 offset is %d octets before the cut: %v", lost, c)
	assert.LessOrEqual(tb, lost, c.longestLine, "the 355 offset is %d octets before the cut: %v", lost, c)
	assert.LessOrEqual(tb, c.srcAfter-c.remainder, int64(64<<10), "read %d source octets after the resume seek for a remainder of %d: %v", c.srcAfter, c.remainder, c)
	assert.GreaterOrEqual(tb, c.srcAfter, c.remainder, "read %d source octets after the resume seek for a remainder of %d: %v", c.srcAfter, c.remainder, c)
	if c.srcResume-c.remainder > 64<<10 {
		// Checking the 355 offset reads from the resume point to the
		// offset, and the data is then read again from that point.
		tb.Logf("note: %d source octets read in the whole resumed attempt, %d over the remainder (the offset check re-reads from the resume point)",
			c.srcResume, c.srcResume-c.remainder)
	}
}

var (
	resumeMsgOnce sync.Once
	resumeMsg     []byte
)

func resumeMessage() []byte {
	resumeMsgOnce.Do(func() { resumeMsg = bigText(100 << 20) })
	return resumeMsg
}

// The claim of the benchmark, checked on every `go test`: an 8 MiB message
// cut at 90 %.
func TestResume_CostIsTheRemainder(t *testing.T) {
	msg := bigText(8 << 20)
	for _, chunk := range []bool{false, true} {
		name := "DATA"
		if chunk {
			name = "BDAT"
		}
		t.Run(name, func(t *testing.T) {
			c := measureResume(t, msg, chunk, 0, 90)
			t.Log(c)
			checkResumeCost(t, c, chunk)
		})
	}
	// BDAT with chunks larger than what the connection buffers: the cut
	// comes while a chunk is being written, and the resume points inside
	// it must be there all the same.
	t.Run("BDAT 16 MiB chunk cut while written", func(t *testing.T) {
		c := measureResume(t, bigText(16<<20), true, 16<<20, 25)
		t.Log(c)
		checkResumeCost(t, c, true)
	})
	// Other cut points of a smaller message: the wire bound, and the
	// source read after the resume seek. (The source read in the whole
	// resumed attempt, which also re-reads to check the 355 offset, is
	// logged.)
	small := bigText(2 << 20)
	for _, chunk := range []bool{false, true} {
		name := "DATA cut points"
		if chunk {
			name = "BDAT cut points"
		}
		t.Run(name, func(t *testing.T) {
			var maxGap, maxAfter, maxAttempt int64
			for pct := int64(50); pct < 100; pct += 4 {
				c := measureResume(t, small, chunk, 0, pct)
				over := c.overWire()
				assert.GreaterOrEqual(t, over, int64(0), "cut at %d %%: %d octets over the remainder: %v", pct, over, c)
				assert.LessOrEqual(t, over, c.longestLine+3, "cut at %d %%: %d octets over the remainder: %v", pct, over, c)
				if chunk {
					assert.Zero(t, over, "cut at %d %%: %d octets over the remainder: %v", pct, over, c)
				}
				assert.GreaterOrEqual(t, c.srcAfter, c.remainder, "cut at %d %%: read %d source octets after the seek for a remainder of %d: %v", pct, c.srcAfter, c.remainder, c)
				assert.LessOrEqual(t, c.srcAfter-c.remainder, int64(64<<10), "cut at %d %%: read %d source octets after the seek for a remainder of %d: %v", pct, c.srcAfter, c.remainder, c)
				maxGap = max(maxGap, c.offset-c.srcSeeks[len(c.srcSeeks)-1])
				maxAfter = max(maxAfter, c.srcAfter-c.remainder)
				maxAttempt = max(maxAttempt, c.srcResume-c.remainder)
			}
			t.Logf("largest distance sought back from the 355 offset %d; source read over the remainder: after the seek %d, in the resumed attempt %d",
				maxGap, maxAfter, maxAttempt)
		})
	}
}

// BenchmarkResume: a 100 MiB message cut at 90 % of its data and resumed.
//
//	go test -run '^$' -bench BenchmarkResume -benchtime 1x -count 3 .
func BenchmarkResume(b *testing.B) {
	msg := resumeMessage()
	for _, chunk := range []bool{false, true} {
		name := "DATA"
		if chunk {
			name = "BDAT"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			var c resumeCost
			for b.Loop() {
				c = measureResume(b, msg, chunk, 0, 90)
			}
			checkResumeCost(b, c, chunk)
			b.ReportMetric(float64(c.resumedWire), "resumed-wire-B")
			b.ReportMetric(float64(c.remainder), "remainder-B")
			b.ReportMetric(float64(c.overWire()), "wire-over-remainder-B")
			b.ReportMetric(float64(c.stuffing), "stuffing-B")
			b.ReportMetric(float64(c.srcAfter), "source-read-after-seek-B")
			b.ReportMetric(float64(c.srcAfter-c.remainder), "source-over-remainder-B")
			b.ReportMetric(float64(c.srcResume-c.remainder), "resume-attempt-source-over-remainder-B")
		})
	}
}
