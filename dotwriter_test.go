package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// dotCase is one DotWriter test: the input, written as the given chunks
// (one Write each), the canonical octets to skip, and the expected wire
// output and Count.
type dotCase struct {
	name   string
	chunks []string
	skip   int64
	want   string
	count  int64
}

// runDotWriter writes chunks to a new DotWriter over a bytes.Buffer, with
// Skip(skip) first, closes it and returns the output and the DotWriter.
func runDotWriter(t testing.TB, chunks []string, skip int64) (string, *DotWriter) {
	t.Helper()
	var buf bytes.Buffer
	d := NewDotWriter(&buf)
	d.Skip(skip)
	for _, c := range chunks {
		n, err := d.Write([]byte(c))
		require.NoError(t, err)
		require.Equal(t, len(c), n, "Write must report the whole input consumed")
	}
	require.NoError(t, d.Close())
	return buf.String(), d
}

func runDotCases(t *testing.T, cases []dotCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, d := runDotWriter(t, tc.chunks, tc.skip)
			require.Equal(t, tc.want, got)
			if tc.count != 0 {
				require.Equal(t, tc.count, d.Count())
			}
			// Whatever the chunking, the result of a skip is the tail of
			// the full output (RFC 1845 §3).
			checkAgainstReference(t, []byte(strings.Join(tc.chunks, "")), tc.skip, []byte(got), d)
		})
	}
}

// RFC 5321 §4.5.2: a line starting with "." gets one more ".".
func TestDotWriter_StuffsLeadingDot(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "first line", chunks: []string{".hello\r\n"}, want: "..hello\r\n.\r\n"},
		{name: "lone dot line", chunks: []string{"a\r\n.\r\nb\r\n"}, want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "two dots", chunks: []string{"..\r\n"}, want: "...\r\n.\r\n"},
		{name: "dot mid line", chunks: []string{"a.b\r\n a.\r\n"}, want: "a.b\r\n a.\r\n.\r\n"},
		{name: "dot after LF", chunks: []string{"a\n.b\n"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "dot after bare CR", chunks: []string{"a\r.b"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "dot in next write", chunks: []string{"a\r\n", ".b\r\n"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "dot after split CRLF", chunks: []string{"a\r", "\n.", "b"}, want: "a\r\n..b\r\n.\r\n"},
		{name: "consecutive dot lines", chunks: []string{".\r\n.\n.\r."}, want: "..\r\n..\r\n..\r\n..\r\n.\r\n"},
		{name: "long runs", chunks: []string{strings.Repeat("x", 600) + "\r\n." + strings.Repeat("y", 600) + "\r\n"},
			want: strings.Repeat("x", 600) + "\r\n.." + strings.Repeat("y", 600) + "\r\n.\r\n"},
	})
}

// RFC 5321 §2.3.8: lines end in CRLF only; a bare LF is a line ending.
func TestDotWriter_BareLFBecomesCRLF(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "one line", chunks: []string{"a\n"}, want: "a\r\n.\r\n", count: 3},
		{name: "empty lines", chunks: []string{"\n\n"}, want: "\r\n\r\n.\r\n", count: 4},
		{name: "mixed", chunks: []string{"a\r\nb\nc\r\n"}, want: "a\r\nb\r\nc\r\n.\r\n"},
		{name: "LF in next write", chunks: []string{"a", "\n", "b"}, want: "a\r\nb\r\n.\r\n"},
		{name: "LF after CRLF", chunks: []string{"a\r\n\n"}, want: "a\r\n\r\n.\r\n"},
		{name: "LF after CR LF split", chunks: []string{"a\r", "\n\n"}, want: "a\r\n\r\n.\r\n"},
		{name: "LF CR is two endings", chunks: []string{"a\n\rb"}, want: "a\r\n\r\nb\r\n.\r\n"},
	})
}

// RFC 5321 §2.3.8 forbids sending a bare CR; DotWriter treats it as a line
// ending, so that "\r.\r" cannot end the data early (SMTP smuggling).
func TestDotWriter_BareCRBecomesCRLF(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "one line", chunks: []string{"a\rb"}, want: "a\r\nb\r\n.\r\n", count: 6},
		{name: "at end", chunks: []string{"a\r"}, want: "a\r\n.\r\n", count: 3},
		{name: "CR CR LF", chunks: []string{"a\r\r\n"}, want: "a\r\n\r\n.\r\n"},
		{name: "smuggling", chunks: []string{"a\r\n\r.\r\nMAIL FROM:<x>\r\n"},
			want: "a\r\n\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"},
		{name: "smuggling bare CR only", chunks: []string{"a\r.\rb"}, want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "smuggling LF", chunks: []string{"a\n.\nb"}, want: "a\r\n..\r\nb\r\n.\r\n"},
		{name: "CR at end of write", chunks: []string{"a\r", "b"}, want: "a\r\nb\r\n.\r\n"},
		{name: "CR then CR", chunks: []string{"a\r", "\r", "b"}, want: "a\r\n\r\nb\r\n.\r\n"},
		{name: "many", chunks: []string{strings.Repeat("ab\r", 300)}, want: strings.Repeat("ab\r\n", 300) + ".\r\n"},
		{name: "CRLF lines then bare CR", chunks: []string{"a\r\nb\r\nc\rd\r\n.e\r\n"},
			want: "a\r\nb\r\nc\r\nd\r\n..e\r\n.\r\n"},
	})
}

// A CR ending one Write and an LF starting the next are one CRLF.
func TestDotWriter_CRLFSplitAcrossWrites(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "split", chunks: []string{"a\r", "\nb\r\n"}, want: "a\r\nb\r\n.\r\n", count: 6},
		{name: "empty write between", chunks: []string{"a\r", "", "\nb"}, want: "a\r\nb\r\n.\r\n"},
		{name: "octet by octet", chunks: []string{"a", "\r", "\n", ".", "\r", "\n"}, want: "a\r\n..\r\n.\r\n"},
		{name: "split at end", chunks: []string{"a\r", "\n"}, want: "a\r\n.\r\n", count: 3},
	})
}

func TestDotWriter_EmptyMessage(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "no write", want: ".\r\n"},
		{name: "empty writes", chunks: []string{"", ""}, want: ".\r\n"},
		{name: "one empty line", chunks: []string{"\r\n"}, want: "\r\n.\r\n", count: 2},
	})
}

// RFC 5321 §4.1.1.4: the terminator is CRLF "." CRLF, where the CRLF ends
// the last line; Close supplies it when the data lacks it.
func TestDotWriter_AddsFinalCRLF(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "no ending", chunks: []string{"abc"}, want: "abc\r\n.\r\n", count: 5},
		{name: "CRLF ending", chunks: []string{"abc\r\n"}, want: "abc\r\n.\r\n", count: 5},
		{name: "CR ending", chunks: []string{"abc\r"}, want: "abc\r\n.\r\n", count: 5},
		{name: "LF ending", chunks: []string{"abc\n"}, want: "abc\r\n.\r\n", count: 5},
		{name: "dot without ending", chunks: []string{"a\r\n."}, want: "a\r\n..\r\n.\r\n", count: 6},
	})
}

// RFC 1845 §3: the restart offset counts canonical octets, before
// dot-stuffing; the rest is sent exactly as it would have been.
func TestDotWriter_SkipAtLineStartStuffsDot(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "dot line", chunks: []string{"ab\r\n.cd\r\n"}, skip: 4, want: "..cd\r\n.\r\n", count: 9},
		{name: "after bare LF", chunks: []string{"ab\n.cd\n"}, skip: 4, want: "..cd\r\n.\r\n"},
		{name: "after bare CR", chunks: []string{"ab\r.cd"}, skip: 4, want: "..cd\r\n.\r\n"},
		{name: "after split CRLF", chunks: []string{"ab\r", "\n", ".cd"}, skip: 4, want: "..cd\r\n.\r\n"},
		{name: "first octet", chunks: []string{".ab\r\n"}, skip: 0, want: "..ab\r\n.\r\n"},
		{name: "skipped dot", chunks: []string{"ab\r\n.cd\r\n"}, skip: 5, want: "cd\r\n.\r\n"},
		{name: "dot line in later write", chunks: []string{"ab\r\n", ".cd\r\n"}, skip: 4, want: "..cd\r\n.\r\n"},
		{name: "non-dot line", chunks: []string{"ab\r\ncd\r\n"}, skip: 4, want: "cd\r\n.\r\n"},
	})
}

func TestDotWriter_SkipMidLine(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "mid line", chunks: []string{"abc.def\r\n"}, skip: 2, want: "c.def\r\n.\r\n"},
		{name: "dot mid line not stuffed", chunks: []string{"ab..c\r\n"}, skip: 3, want: ".c\r\n.\r\n"},
		{name: "second dot of stuffed line", chunks: []string{"..c\r\n"}, skip: 1, want: ".c\r\n.\r\n"},
		{name: "across writes", chunks: []string{"abc", "def", "\r\n"}, skip: 4, want: "ef\r\n.\r\n", count: 8},
		{name: "skip ends at write boundary", chunks: []string{"abc", ".def\n"}, skip: 3, want: ".def\r\n.\r\n"},
		{name: "long", chunks: []string{strings.Repeat("z", 2000) + "\r\n"}, skip: 1000, want: strings.Repeat("z", 1000) + "\r\n.\r\n"},
	})
}

// A CRLF is two canonical octets, so a restart offset can fall between the
// CR and the LF; the output then starts with the LF alone.
func TestDotWriter_SkipBetweenCRAndLF(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "CRLF", chunks: []string{"ab\r\ncd\r\n"}, skip: 3, want: "\ncd\r\n.\r\n"},
		{name: "CRLF split across writes", chunks: []string{"ab\r", "\ncd"}, skip: 3, want: "\ncd\r\n.\r\n"},
		{name: "CRLF then dot", chunks: []string{"ab\r\n.cd"}, skip: 3, want: "\n..cd\r\n.\r\n"},
		{name: "bare LF", chunks: []string{"ab\ncd"}, skip: 3, want: "\ncd\r\n.\r\n"},
		{name: "bare LF then dot", chunks: []string{"ab\n.cd"}, skip: 3, want: "\n..cd\r\n.\r\n"},
		{name: "bare LF first in write", chunks: []string{"ab", "\ncd"}, skip: 3, want: "\ncd\r\n.\r\n"},
		{name: "bare CR", chunks: []string{"ab\rcd"}, skip: 3, want: "\ncd\r\n.\r\n"},
		{name: "bare CR then dot", chunks: []string{"ab\r.cd"}, skip: 3, want: "\n..cd\r\n.\r\n"},
		{name: "CR ending the message", chunks: []string{"ab\r"}, skip: 3, want: "\n.\r\n", count: 4},
		{name: "CRLF ending the message", chunks: []string{"ab\r\n"}, skip: 3, want: "\n.\r\n", count: 4},
		{name: "CRLF added by Close", chunks: []string{"ab"}, skip: 3, want: "\n.\r\n", count: 4},
	})
}

func TestDotWriter_SkipWholeMessage(t *testing.T) {
	runDotCases(t, []dotCase{
		{name: "exact size", chunks: []string{"ab\r\n.c\r\n"}, skip: 8, want: ".\r\n", count: 8},
		{name: "beyond size", chunks: []string{"ab\r\n"}, skip: 100, want: ".\r\n", count: 4},
		{name: "without final CRLF", chunks: []string{"ab"}, skip: 2, want: "\r\n.\r\n", count: 4},
		{name: "without final CRLF, exact size", chunks: []string{"ab"}, skip: 4, want: ".\r\n", count: 4},
		{name: "empty message", skip: 5, want: ".\r\n"},
		{name: "all of a write", chunks: []string{"ab\r\n", "cd\r\n"}, skip: 4, want: "cd\r\n.\r\n", count: 8},
	})
}

// Count is the RFC 1845 offset basis: canonical octets, stuffing excluded,
// the CRLF added by Close included, the terminator excluded.
func TestDotWriter_CountsCanonicalOctets(t *testing.T) {
	for _, tc := range []struct {
		name         string
		chunks       []string
		afterWrites  int64
		afterClose   int64
		writtenClose int64
	}{
		{"empty", nil, 0, 0, 3},
		{"CRLF", []string{"ab\r\n"}, 4, 4, 7},
		{"bare LF", []string{"ab\n"}, 4, 4, 7},
		{"bare CR pending", []string{"ab\r"}, 3, 4, 7},
		{"bare CR resolved", []string{"ab\r", "c"}, 5, 7, 10},
		{"stuffing excluded", []string{".\r\n..\r\n"}, 7, 7, 12},
		{"final CRLF added", []string{"ab"}, 2, 4, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			d := NewDotWriter(&buf)
			for _, c := range tc.chunks {
				_, err := d.Write([]byte(c))
				require.NoError(t, err)
			}
			require.Equal(t, tc.afterWrites, d.Count())
			require.NoError(t, d.Close())
			require.Equal(t, tc.afterClose, d.Count())
			require.Equal(t, tc.writtenClose, int64(buf.Len()), "on the wire")
		})
	}
}

// failWriter accepts limit octets, then fails.
type failWriter struct {
	limit int
	err   error
	buf   bytes.Buffer
	calls int
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.calls++
	if len(p) <= w.limit {
		w.limit -= len(p)
		return w.buf.Write(p)
	}
	n := w.limit
	w.limit = 0
	w.buf.Write(p[:n])
	return n, w.err
}

func TestDotWriter_WriterErrorIsSticky(t *testing.T) {
	boom := errors.New("boom")
	long := strings.Repeat("x", 1000) + "\r\n"
	for _, tc := range []struct {
		name  string
		limit int
		input string
	}{
		{"first write", 0, "abc\r\n"},
		{"direct run", 10, long + "." + long},
		{"buffered", 3, "a\nb\nc\n"},
		{"later line", 1500, long + "." + long + long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &failWriter{limit: tc.limit, err: boom}
			d := NewDotWriter(w)
			n, err := d.Write([]byte(tc.input))
			require.ErrorIs(t, err, boom)
			require.Less(t, n, len(tc.input))

			calls := w.calls
			n, err = d.Write([]byte("more\r\n"))
			require.ErrorIs(t, err, boom)
			require.Zero(t, n)
			require.ErrorIs(t, d.Close(), boom)
			require.Equal(t, calls, w.calls, "no writes after an error")
			require.ErrorIs(t, d.Close(), ErrClosed)
		})
	}
	t.Run("error in Close", func(t *testing.T) {
		w := &failWriter{limit: 4, err: boom}
		d := NewDotWriter(w)
		_, err := d.Write([]byte("abc"))
		require.NoError(t, err)
		require.ErrorIs(t, d.Close(), boom)
		require.Equal(t, 4, w.buf.Len(), "what the writer took before failing")
	})
	t.Run("short write", func(t *testing.T) {
		d := NewDotWriter(shortWriter{})
		_, err := d.Write([]byte("abc\r\n"))
		require.ErrorIs(t, err, io.ErrShortWrite)
		_, err = d.Write([]byte("abc\r\n"))
		require.ErrorIs(t, err, io.ErrShortWrite)
	})
}

// shortWriter violates io.Writer by writing less without an error.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestDotWriter_CloseTwice(t *testing.T) {
	var buf bytes.Buffer
	d := NewDotWriter(&buf)
	_, err := d.Write([]byte("a"))
	require.NoError(t, err)
	require.NoError(t, d.Close())
	require.Equal(t, "a\r\n.\r\n", buf.String())
	require.ErrorIs(t, d.Close(), ErrClosed)
	n, err := d.Write([]byte("b"))
	require.ErrorIs(t, err, ErrClosed)
	require.Zero(t, n)
	require.Equal(t, "a\r\n.\r\n", buf.String(), "nothing written after Close")

	// Reset makes it usable again.
	buf.Reset()
	d.Reset(&buf)
	require.Zero(t, d.Count())
	_, err = d.Write([]byte(".b"))
	require.NoError(t, err)
	require.NoError(t, d.Close())
	require.Equal(t, "..b\r\n.\r\n", buf.String())
}

func TestDotWriter_ResetZeroAllocs(t *testing.T) {
	bw := bufio.NewWriterSize(io.Discard, 64<<10)
	crlf := []byte(strings.Repeat("abc def\r\n.ghi\r\n", 100))
	lf := []byte(strings.Repeat("abc def\n.ghi\r", 100))
	d := NewDotWriter(bw)
	run := func() {
		d.Reset(bw)
		d.Skip(5)
		for _, p := range [][]byte{crlf, lf, crlf[:7]} {
			_, err := d.Write(p)
			require.NoError(t, err)
		}
		require.NoError(t, d.Close())
	}
	run() // allocates the internal buffer once
	require.Zero(t, testing.AllocsPerRun(100, run))

	var sink bytes.Buffer
	sink.Grow(64 << 10)
	require.Zero(t, testing.AllocsPerRun(100, func() {
		sink.Reset()
		d.Reset(&sink)
		d.Write(lf)
		d.Close()
	}), "unbuffered writer")
}

// The fuzz targets mostly see short inputs; this covers long lines (written
// directly to w), many short lines (filling the internal buffer) and large
// skips, in all line ending styles.
func TestDotWriter_LongInputsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5321, 452))
	styles := []string{"\r\n", "\n", "\r", "mixed"}
	for iter := range 200 {
		style := styles[iter%len(styles)]
		var data []byte
		for len(data) < 20000 {
			if r.IntN(10) == 0 {
				data = append(data, '.')
			}
			n := r.IntN(80)
			if r.IntN(20) == 0 {
				n = 500 + r.IntN(2000)
			}
			for range n {
				data = append(data, "abc. "[r.IntN(5)])
			}
			eol := style
			if style == "mixed" {
				eol = []string{"\r\n", "\n", "\r", "\r\r\n", "\n\r"}[r.IntN(5)]
			}
			data = append(data, eol...)
		}
		data = data[:len(data)-r.IntN(3)]
		splits := make([]byte, r.IntN(8))
		for i := range splits {
			splits[i] = byte(r.IntN(256))
		}
		var skip int64
		if iter%3 != 0 {
			skip = r.Int64N(int64(len(data)) * 2)
		}
		var buf bytes.Buffer
		d := NewDotWriter(&buf)
		d.Skip(skip)
		writeSplitLong(t, d, data, splits, r)
		require.NoError(t, d.Close())
		checkAgainstReference(t, data, skip, buf.Bytes(), d)
	}
}

// writeSplitLong writes data in short chunks from splits, then in chunks
// of up to 8 KiB.
func writeSplitLong(t *testing.T, d *DotWriter, data, splits []byte, r *rand.Rand) {
	t.Helper()
	for _, s := range splits {
		n := min(int(s)%64, len(data))
		_, err := d.Write(data[:n])
		require.NoError(t, err)
		data = data[n:]
	}
	for len(data) > 0 {
		n := min(1+r.IntN(8<<10), len(data))
		k, err := d.Write(data[:n])
		require.NoError(t, err)
		require.Equal(t, n, k)
		data = data[n:]
	}
}

// --- reference model, deliberately simple and independent of DotWriter ---

// refCanon converts in to SMTP canonical form: CRLF, bare CR and bare LF
// become CRLF, and a non-empty message gets a final CRLF if it lacks one.
func refCanon(in []byte) []byte {
	var out []byte
	for i := 0; i < len(in); i++ {
		switch c := in[i]; c {
		case '\r':
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
			out = append(out, '\r', '\n')
		case '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		out = append(out, '\r', '\n')
	}
	return out
}

// refWire dot-stuffs canonical data and appends the terminator. off[k] is the
// wire offset at which canonical octet k (with its stuffing dot, if any)
// starts; off[len(canon)] is the offset of the terminator.
func refWire(canon []byte) (wire []byte, off []int) {
	bol := true
	for _, c := range canon {
		off = append(off, len(wire))
		if bol && c == '.' {
			wire = append(wire, '.')
		}
		wire = append(wire, c)
		bol = c == '\n'
	}
	off = append(off, len(wire))
	return append(wire, ".\r\n"...), off
}

// refDecode undoes dot-stuffing as a server would, checking the wire rules:
// only CRLF line endings, no line with a single leading "." before the
// terminator, and the terminator at the very end.
func refDecode(t testing.TB, wire []byte) []byte {
	t.Helper()
	var body []byte
	for len(wire) > 0 {
		i := bytes.Index(wire, []byte("\r\n"))
		require.GreaterOrEqual(t, i, 0, "unterminated line %q", wire)
		line := wire[:i]
		wire = wire[i+2:]
		require.False(t, bytes.ContainsAny(line, "\r\n"), "bare CR or LF in line %q", line)
		if bytes.Equal(line, []byte(".")) {
			require.Empty(t, wire, "data after the terminator: %q", wire)
			return body
		}
		if line, ok := bytes.CutPrefix(line, []byte(".")); ok {
			require.True(t, bytes.HasPrefix(line, []byte(".")), "line starting with a single dot: %q", line)
			body = append(body, line...)
		} else {
			body = append(body, line...)
		}
		body = append(body, '\r', '\n')
	}
	require.FailNow(t, "no terminator")
	return nil
}

// writeSplit writes data to d in chunks whose lengths come from splits
// (each octet mod 64, zero meaning an empty Write); the rest goes in one
// last Write.
func writeSplit(t testing.TB, d *DotWriter, data, splits []byte) {
	t.Helper()
	for _, s := range splits {
		n := min(int(s)%64, len(data))
		k, err := d.Write(data[:n])
		require.NoError(t, err, "Write")
		require.Equal(t, n, k, "Write")
		data = data[n:]
	}
	k, err := d.Write(data)
	require.NoError(t, err, "Write")
	require.Equal(t, len(data), k, "Write")
}

// checkAgainstReference compares out, produced by d from data with
// Skip(skip), with the reference model.
func checkAgainstReference(t testing.TB, data []byte, skip int64, out []byte, d *DotWriter) {
	t.Helper()
	canon := refCanon(data)
	wire, off := refWire(canon)
	require.Equal(t, int64(len(canon)), d.Count(), "Count()")
	k := off[min(skip, int64(len(canon)))]
	require.Equal(t, string(wire[k:]), string(out), "input %q skip %d", data, skip)
	if skip == 0 {
		require.Equal(t, string(canon), string(refDecode(t, out)), "decoded")
	}
}

func addDotSeeds(f *testing.F, add func(data, splits []byte)) {
	for _, s := range []struct{ data, splits string }{
		{"", ""},
		{".", ""},
		{".\r\n", ""},
		{"a\r\n.\r\n", ""},
		{"..\r\n.\n.\r.", ""},
		{"a\r.\rb", ""},
		{"a\n.\nb", ""},
		{"a\r\n\r.\r\nMAIL FROM:<x>\r\n", ""},
		{"a\r\nb", "\x02"},
		{"abc\r\n.def\r\n", "\x04\x01"},
		{"ab\r\r\n\n\r", "\x01\x01\x01\x01"},
		{"no final newline", "\x05"},
		{"line\nline\r\nline\rline", "\x00\x07\x00"},
	} {
		add([]byte(s.data), []byte(s.splits))
	}
}

// FuzzDotWriter checks DotWriter against the reference model for arbitrary
// input split into arbitrary Writes.
func FuzzDotWriter(f *testing.F) {
	addDotSeeds(f, func(data, splits []byte) { f.Add(data, splits) })
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		var buf bytes.Buffer
		d := NewDotWriter(&buf)
		writeSplit(t, d, data, splits)
		require.NoError(t, d.Close())
		checkAgainstReference(t, data, 0, buf.Bytes(), d)
	})
}

// FuzzDotWriterSkip checks that Skip(n) writes the tail of the full output
// starting at canonical octet n (RFC 1845 §3).
func FuzzDotWriterSkip(f *testing.F) {
	addDotSeeds(f, func(data, splits []byte) {
		for _, n := range []uint64{0, 1, 2, 3, 4, 5, 7} {
			f.Add(data, n, splits)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte, n uint64, splits []byte) {
		skip := int64(n % uint64(len(refCanon(data))+1))
		var buf bytes.Buffer
		d := NewDotWriter(&buf)
		d.Skip(skip)
		writeSplit(t, d, data, splits)
		require.NoError(t, d.Close())
		checkAgainstReference(t, data, skip, buf.Bytes(), d)
	})
}

// FuzzCanonicalWriter checks the BDAT form (RFC 3030 §2): canonical line
// endings, a completed last line, no stuffing, no terminator, whatever the
// Write boundaries and the skip.
func FuzzCanonicalWriter(f *testing.F) {
	addDotSeeds(f, func(data, splits []byte) { f.Add(data, uint64(0), splits); f.Add(data, uint64(3), splits) })
	f.Fuzz(func(t *testing.T, data []byte, n uint64, splits []byte) {
		canon := refCanon(data)
		skip := int64(n % uint64(len(canon)+1))
		var buf bytes.Buffer
		d := newCanonicalWriter(&buf)
		d.Skip(skip)
		writeSplit(t, d, data, splits)
		require.NoError(t, d.Close())
		require.Equal(t, string(canon[skip:]), buf.String(), "input %q skip %d", data, skip)
		require.Equal(t, int64(len(canon)), d.Count(), "Count()")
	})
}

// --- benchmark ---

var (
	benchTextOnce      sync.Once
	benchCRLF, benchLF []byte
)

// benchText returns at least 16 MiB of text in 76-column lines of words,
// about one line in 50 starting with ".", with CRLF and with LF endings.
func benchText() (crlf, lf []byte) {
	benchTextOnce.Do(func() {
		words := strings.Fields(`the of and to a in is you that it he was for on are
			as with his they I at be this have from or one had by word but not what
			all were we when your can said there use an each which she do how their
			if will up other about out many then them these so some her would make
			like him into time has look two more write go see number no way could
			people my than first water been call who oil its now find long down day
			did get come made may part message header Received: Subject: From: To:
			2024 <postmaster@example.org> (comment) "quoted" =?utf-8?q?x?= 3.14`)
		r := rand.New(rand.NewPCG(1845, 5321))
		var crlfBuf, lfBuf bytes.Buffer
		line := make([]byte, 0, 80)
		for crlfBuf.Len() < 16<<20 {
			line = line[:0]
			if r.IntN(50) == 0 {
				line = append(line, '.')
			}
			for {
				w := words[r.IntN(len(words))]
				if len(line)+1+len(w) > 76 {
					break
				}
				if len(line) > 0 && line[len(line)-1] != '.' {
					line = append(line, ' ')
				}
				line = append(line, w...)
			}
			crlfBuf.Write(line)
			crlfBuf.WriteString("\r\n")
			lfBuf.Write(line)
			lfBuf.WriteByte('\n')
		}
		benchCRLF, benchLF = crlfBuf.Bytes(), lfBuf.Bytes()
	})
	return benchCRLF, benchLF
}

func BenchmarkDotWriter(b *testing.B) {
	crlf, lf := benchText()
	const chunk = 32 << 10
	for _, in := range []struct {
		name string
		data []byte
	}{{"CRLF", crlf}, {"LF", lf}} {
		b.Run(in.name, func(b *testing.B) {
			b.Run("resmtp", func(b *testing.B) {
				bw := bufio.NewWriterSize(io.Discard, 64<<10)
				d := NewDotWriter(bw)
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					d.Reset(bw)
					for p := in.data; len(p) > 0; {
						n := min(chunk, len(p))
						if _, err := d.Write(p[:n]); err != nil {
							b.Fatal(err)
						}
						p = p[n:]
					}
					if err := d.Close(); err != nil {
						b.Fatal(err)
					}
					if err := bw.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("textproto", func(b *testing.B) {
				bw := bufio.NewWriterSize(io.Discard, 64<<10)
				tw := textproto.NewWriter(bw)
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					d := tw.DotWriter()
					for p := in.data; len(p) > 0; {
						n := min(chunk, len(p))
						if _, err := d.Write(p[:n]); err != nil {
							b.Fatal(err)
						}
						p = p[n:]
					}
					if err := d.Close(); err != nil { // flushes bw
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// mixText returns about size octets of lines whose lengths (line ending
// excluded) are drawn uniformly from [minLen, maxLen], each starting with
// "." with probability dots/100, ended by eol ("\r\n", "\n" or "\r").
func mixText(size, minLen, maxLen, dots int, eol string) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:<>@()"
	r := rand.New(rand.NewPCG(uint64(minLen*1000+maxLen), uint64(dots)))
	out := make([]byte, 0, size+maxLen+2)
	for len(out) < size {
		n := minLen + r.IntN(maxLen-minLen+1)
		start := len(out)
		for range n {
			out = append(out, letters[r.IntN(len(letters))])
		}
		if n > 0 && r.IntN(100) < dots {
			out[start] = '.'
		} else if n > 0 && out[start] == '.' {
			out[start] = ',' // dots per cent of the lines start with ".", no more
		}
		out = append(out, eol...)
	}
	return out
}

// The line-length mixes of BenchmarkDotWriterMix.
var dotMixes = []struct {
	name           string
	minLen, maxLen int
}{{"1-10", 1, 10}, {"20-76", 20, 76}, {"76", 76, 76}, {"200", 200, 200}, {"998", 998, 998}}

// DotWriter writes, for CRLF and for LF-only text of every line-length mix
// of the benchmarks, exactly what net/textproto's DotWriter writes.
func TestDotWriter_MatchesTextprotoOnEveryMix(t *testing.T) {
	for _, mix := range dotMixes {
		for _, dots := range []int{0, 2, 20} {
			for _, eol := range []string{"\r\n", "\n"} {
				in := mixText(256<<10, mix.minLen, mix.maxLen, dots, eol)
				var got, want bytes.Buffer
				d := NewDotWriter(&got)
				tw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
				for p := in; len(p) > 0; {
					n := min(len(p), 7000)
					_, err := d.Write(p[:n])
					require.NoError(t, err)
					_, err = tw.Write(p[:n])
					require.NoError(t, err)
					p = p[n:]
				}
				require.NoError(t, d.Close())
				require.NoError(t, tw.Close())
				require.True(t, bytes.Equal(want.Bytes(), got.Bytes()), "lines %s, %d%% dots, %q", mix.name, dots, eol)
			}
		}
	}
}

// BenchmarkDotWriterMix compares DotWriter with net/textproto's on lines of
// 1–10, 20–76, 76, 200 and 998 octets, with 0, 2 and 20 % of them starting
// with ".", ended by CRLF and by LF alone, and (DotWriter only: textproto
// passes a bare CR through) by CR alone, written 32 KiB at a time.
func BenchmarkDotWriterMix(b *testing.B) {
	const size, chunk = 4 << 20, 32 << 10
	for _, mix := range dotMixes {
		for _, dots := range []int{0, 2, 20} {
			for _, eol := range []struct{ name, s string }{{"CRLF", "\r\n"}, {"LF", "\n"}, {"CR", "\r"}} {
				in := mixText(size, mix.minLen, mix.maxLen, dots, eol.s)
				name := fmt.Sprintf("lines=%s/dots=%d/%s", mix.name, dots, eol.name)
				b.Run(name+"/resmtp", func(b *testing.B) {
					bw := bufio.NewWriterSize(io.Discard, 64<<10)
					d := NewDotWriter(bw)
					b.SetBytes(int64(len(in)))
					b.ReportAllocs()
					for b.Loop() {
						d.Reset(bw)
						for p := in; len(p) > 0; p = p[min(chunk, len(p)):] {
							if _, err := d.Write(p[:min(chunk, len(p))]); err != nil {
								b.Fatal(err)
							}
						}
						if err := d.Close(); err != nil {
							b.Fatal(err)
						}
					}
				})
				if eol.name == "CR" {
					continue
				}
				b.Run(name+"/textproto", func(b *testing.B) {
					bw := bufio.NewWriterSize(io.Discard, 64<<10)
					tw := textproto.NewWriter(bw)
					b.SetBytes(int64(len(in)))
					b.ReportAllocs()
					for b.Loop() {
						d := tw.DotWriter()
						for p := in; len(p) > 0; p = p[min(chunk, len(p)):] {
							if _, err := d.Write(p[:min(chunk, len(p))]); err != nil {
								b.Fatal(err)
							}
						}
						if err := d.Close(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
