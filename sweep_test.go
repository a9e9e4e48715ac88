package smtp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fault sweep: connection 1 is cut at every command boundary and at a
// few hundred octet positions of the message data, with DATA and with BDAT,
// against a server with CHECKPOINT (RFC 1845) and one without. Every case
// must end with exactly one byte-identical copy on the server (CHECKPOINT),
// or at least one whose final 250 the client saw (no CHECKPOINT), and the
// right result reported to the caller.

const (
	sweepMsgSize   = 96 << 10
	sweepChunkSize = 8 << 10
	sweepRandom    = 200 // random octet positions per mode, besides the edges
)

var sweepRcpts = []string{"b@example.com", "c@example.com"}

type sweepMode struct {
	name       string
	chunk      bool // BDAT (CHUNKING offered)
	checkpoint bool // CHECKPOINT offered
}

func (m sweepMode) extensions() []string {
	e := []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SIZE 100000000"}
	if m.checkpoint {
		e = append(e, "CHECKPOINT")
	}
	if m.chunk {
		e = append(e, "CHUNKING")
	}
	return e
}

// dataWireLen is the length on the wire of msg sent with DATA: dot-stuffed,
// with the terminator (msg ends with CRLF).
func dataWireLen(msg []byte) int64 {
	n := int64(len(msg)) + 3
	bol := true
	for _, b := range msg {
		if bol && b == '.' {
			n++
		}
		bol = b == '\n'
	}
	return n
}

// transcriptWire sums the message data octets on one connection's
// transcript ("C: <data N octets>", "C: <chunk N octets>").
func transcriptWire(lines []string) int64 {
	var n int64
	for _, l := range lines {
		for _, p := range []string{"C: <data ", "C: <chunk "} {
			if rest, ok := strings.CutPrefix(l, p); ok {
				f := strings.Fields(rest)
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					n += v
				}
			}
		}
	}
	return n
}

// sweepCase is one way of cutting connection 1.
type sweepCase struct {
	name     string
	faults   smtptest.Faults // connection 1's faults (every connection's with every)
	every    bool
	proxy    *cutAt // cut by the relay instead of the server
	seekable bool

	// What the server had done when the cut came:
	fires   bool // the connection is cut before the transaction completed
	mayFire bool // or not: the client's choice (BDAT: whether the last data chunk is LAST)
	begun   bool // the data had begun: a CHECKPOINT server holds it (355)
	endDone bool // the end of the data was executed: the message is stored
}

type sweepTally struct {
	cases, cut, resumed, resumedWhole, fresh, uncut, dups, failed int
}

func (s sweepTally) String() string {
	return fmt.Sprintf("cases=%d cut=%d resumed(355)=%d (of which at the end=%d) fresh=%d not-cut=%d duplicates=%d errors=%d",
		s.cases, s.cut, s.resumed, s.resumedWhole, s.fresh, s.uncut, s.dups, s.failed)
}

type sweepEnv struct {
	mode  sweepMode
	msg   []byte
	wire  int64 // octets of the data on the wire: DATA stuffed and terminated, or the chunks
	tally sweepTally
}

func newSweepServer(t *testing.T, cfg smtptest.Config) *smtptest.Server {
	t.Helper()
	s, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func dumpTranscripts(srv *smtptest.Server) string {
	var b strings.Builder
	for i := 1; i <= srv.Conns(); i++ {
		fmt.Fprintf(&b, "--- connection %d\n", i)
		for _, l := range srv.Transcript(i) {
			if len(l) > 120 {
				l = l[:120] + "..."
			}
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func queueIDOf(r *Reply) string {
	if r == nil || len(r.Lines) == 0 {
		return ""
	}
	f := strings.Fields(r.Lines[0])
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func (e *sweepEnv) run(t *testing.T, c sweepCase) {
	cfg := smtptest.Config{Extensions: e.mode.extensions()}
	if c.every {
		cfg.Faults = c.faults
	} else if c.proxy == nil {
		cfg.ConnFaults = map[int]smtptest.Faults{1: c.faults}
	}
	srv := newSweepServer(t, cfg)
	addr := srv.Addr
	var px *cutProxy
	if c.proxy != nil {
		px = newCutProxy(t, srv.Addr, *c.proxy)
		addr = px.Addr()
	}
	var resumed []int64
	var refused []string
	tr := &ClientTrace{
		Resumed: func(off int64, err error) {
			if err != nil {
				refused = append(refused, fmt.Sprintf("%d: %v", off, err))
			} else {
				resumed = append(resumed, off)
			}
		},
	}
	d := &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled, ChunkSize: sweepChunkSize, Trace: tr}
	k := &Courier{Dialer: d, RetryDelay: time.Millisecond, Attempts: 3}
	var body io.Reader = bytes.NewReader(e.msg)
	if !c.seekable {
		body = onlyReader{body}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := k.Send(ctx, []string{addr}, &Envelope{From: "a@example.org", To: Recipients(sweepRcpts...)}, body)
	if px != nil {
		px.Close()
	}
	msgs := srv.Messages()
	size := int64(len(e.msg))
	conns := srv.Conns()
	e.tally.cases++

	fail := func(format string, args ...any) {
		t.Helper()
		assert.Fail(t, fmt.Sprintf(format, args...), "%s\nerr=%v res=%+v resumed=%v refused=%v messages=%d\n%s", c.name,
			err, res, resumed, refused, len(msgs), dumpTranscripts(srv))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Data, e.msg) {
			fail("server copy %d is not byte-identical (%d octets, want %d)", i, len(m.Data), size)
		}
	}
	if len(refused) > 0 {
		fail("a resume offset was refused")
	}
	if !e.mode.checkpoint && len(resumed) > 0 {
		fail("resumed without CHECKPOINT")
	}
	if res != nil && res.Reply != nil && err == nil && res.Reply.Code != 250 {
		fail("success with reply %d", res.Reply.Code)
	}

	if c.every {
		// Every connection is cut the same way.
		if err != nil {
			e.tally.failed++
			if res != nil && res.Reply != nil {
				fail("an error with a final reply")
			}
		}
		switch {
		case e.mode.checkpoint:
			if len(msgs) > 1 {
				fail("%d copies with CHECKPOINT", len(msgs))
			}
			if err == nil && (res == nil || res.Reply == nil || len(msgs) != 1) {
				fail("success without one copy and its reply")
			}
		default:
			if err == nil {
				fail("success although every connection was cut")
			}
			if len(msgs) > 1 {
				e.tally.dups += len(msgs) - 1
			}
		}
		return
	}

	if err != nil {
		fail("Send failed")
		return
	}
	if res == nil || res.Reply == nil || res.Reply.Code != 250 {
		fail("no final 250 reported")
		return
	}
	if res.Accepted() != len(sweepRcpts) || len(res.Recipients) != len(sweepRcpts) {
		fail("recipients not reported accepted: %+v", res.Recipients)
	}
	if res.Octets != size {
		fail("Octets = %d, want %d", res.Octets, size)
	}
	if res.Restarts != conns-1 {
		fail("Restarts = %d with %d connections", res.Restarts, conns)
	}
	if res.Transmitted >= 2*size+64<<10 {
		fail("Transmitted = %d for a message of %d", res.Transmitted, size)
	}
	qid := queueIDOf(res.Reply)
	var mine *smtptest.Message
	for i := range msgs {
		if msgs[i].QueueID == qid {
			mine = &msgs[i]
		}
	}
	if mine == nil {
		fail("the reported queue id %q is not on the server", qid)
		return
	}
	if !slices.Equal(mine.To, sweepRcpts) {
		fail("server recipients %v", mine.To)
	}
	cut := conns > 1
	if c.mayFire {
		c.fires, c.begun = cut, cut
	}
	if cut {
		e.tally.cut++
	} else {
		e.tally.uncut++
	}
	if cut != c.fires {
		fail("cut=%v, expected %v", cut, c.fires)
	}
	lastWire := transcriptWire(srv.Transcript(conns))

	if !e.mode.checkpoint {
		if len(msgs) > 1 {
			e.tally.dups += len(msgs) - 1
		}
		want := 1
		if c.endDone {
			want = 2 // the final reply was lost: sent again in full
		}
		if len(msgs) != want {
			fail("%d copies, expected %d", len(msgs), want)
		}
		if mine.TransID != "" {
			fail("TRANSID without CHECKPOINT")
		}
		if res.Transmitted > 2*size {
			fail("Transmitted = %d > 2×%d", res.Transmitted, size)
		}
		if cut {
			e.tally.fresh++
			if mine.ConnIndex != conns {
				fail("the reported copy came on connection %d of %d", mine.ConnIndex, conns)
			}
			if lastWire != e.wire {
				fail("the retry sent %d data octets, expected the whole %d", lastWire, e.wire)
			}
		}
		return
	}

	// CHECKPOINT: exactly one copy, resumed whenever the server held data.
	if len(msgs) != 1 {
		fail("%d copies with CHECKPOINT", len(msgs))
		return
	}
	if mine.TransID == "" {
		fail("no TRANSID")
	}
	wantResume := c.fires && c.begun
	if wantResume != (len(resumed) > 0) {
		fail("resumed=%v, expected %v", resumed, wantResume)
		return
	}
	if len(resumed) > 1 {
		fail("resumed more than once")
	}
	if len(resumed) == 0 {
		if cut {
			e.tally.fresh++
			if lastWire != e.wire {
				fail("the fresh retry sent %d data octets, expected the whole %d", lastWire, e.wire)
			}
		}
		if res.Transmitted > 2*size {
			fail("Transmitted = %d > 2×%d", res.Transmitted, size)
		}
		return
	}
	e.tally.resumed++
	off := resumed[0]
	if off == size {
		e.tally.resumedWhole++
	}
	if c.endDone && off != size {
		fail("the final reply was lost but the offset is %d, not %d", off, size)
	}
	if off > size || (!e.mode.chunk && off > 0 && e.msg[off-1] != '\n') {
		fail("offset %d accepted", off)
	}
	// The resumed connection sends the rest and nothing else.
	want := size - off
	if !e.mode.chunk {
		want = dataWireLen(e.msg[off:])
	}
	if lastWire != want {
		fail("the resumed connection sent %d data octets, expected %d (offset %d)", lastWire, want, off)
	}
	if res.Transmitted > size+(size-off) {
		fail("Transmitted = %d > %d + the remainder %d", res.Transmitted, size, size-off)
	}
	if !c.endDone && !slices.Equal(mine.ResumedAt, resumed) {
		fail("server ResumedAt %v, client %v", mine.ResumedAt, resumed)
	}
}

// octetPositions returns the data octet counts at which to cut: n seeded
// random ones over the data, and the edges.
// bounds are the ends of the BDAT chunks of a clean run.
func octetPositions(seed uint64, e *sweepEnv, n int, bounds []int64) (random, edges []int64) {
	rng := rand.New(rand.NewPCG(seed, 1845))
	seen := map[int64]bool{}
	add := func(list *[]int64, p int64) {
		if p >= 1 && !seen[p] {
			seen[p] = true
			*list = append(*list, p)
		}
	}
	size := int64(len(e.msg))
	for _, p := range []int64{1, 2, size - 1, size, size + 1, size + 2, size + 3, e.wire - 3, e.wire - 2, e.wire - 1, e.wire, e.wire + 1} {
		add(&edges, p)
	}
	if e.mode.chunk {
		for _, b := range bounds {
			add(&edges, b-1)
			add(&edges, b)
			add(&edges, b+1)
		}
	} else {
		add(&edges, 3) // the message starts with a stuffed dot
		// Around the wire positions of every chunk-size boundary of the
		// canonical data (resume points are recorded every 32 KiB).
		var dots int64
		for i := int64(0); i < size; i++ {
			if i%sweepChunkSize == 0 && i > 0 {
				w := i + dots
				add(&edges, w-1)
				add(&edges, w)
				add(&edges, w+1)
			}
			if e.msg[i] == '.' && (i == 0 || e.msg[i-1] == '\n') {
				dots++
			}
		}
	}
	for len(random) < n {
		add(&random, 1+rng.Int64N(e.wire))
	}
	sort.Slice(random, func(i, j int) bool { return random[i] < random[j] })
	return random, edges
}

// commandCases cuts connection 1 through the server's faults, at the first
// command of each verb, before it is executed and with its reply lost.
func commandCases(m sweepMode) []sweepCase {
	xfer := "DATA"
	if m.chunk {
		xfer = "BDAT"
	}
	var cs []sweepCase
	cs = append(cs, sweepCase{name: "close GREETING", faults: smtptest.Faults{CloseAfterCommand: "GREETING"}, fires: true})
	for _, v := range []string{"EHLO", "MAIL", "RCPT", xfer, ".", "QUIT"} {
		for _, before := range []bool{true, false} {
			c := sweepCase{fires: v != "QUIT"}
			if before {
				c.name, c.faults = "CloseAfterCommand "+v, smtptest.Faults{CloseAfterCommand: v}
				c.begun = v == "."
			} else {
				c.name, c.faults = "CloseBeforeReply "+v, smtptest.Faults{CloseBeforeReply: v}
				// A lost 354 leaves nothing held; a lost reply to the
				// first BDAT chunk leaves the chunk held.
				c.begun = v == "." || v == "BDAT"
				c.endDone = v == "."
			}
			cs = append(cs, c)
		}
	}
	return cs
}

func octetCase(e *sweepEnv, p int64, seekable bool) sweepCase {
	fires := p < e.wire
	src := "seekable"
	if !seekable {
		src = "non-seekable"
	}
	// The server's fault does not fire when the data ends within the
	// octets it counts, in a LAST chunk with BDAT: a client that sends the
	// data in plain chunks and then "BDAT 0 LAST" is cut at the size.
	return sweepCase{name: fmt.Sprintf("octet %d %s", p, src), faults: smtptest.Faults{CloseAfterDataOctets: p},
		seekable: seekable, fires: fires, begun: fires, mayFire: e.mode.chunk && p == e.wire}
}

func TestSweep_CutEverywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the fault sweep takes seconds; go test without -short runs it")
	}
	msg := bigText(sweepMsgSize)
	modes := []sweepMode{
		{"DATA+CHECKPOINT", false, true},
		{"BDAT+CHECKPOINT", true, true},
		{"DATA", false, false},
		{"BDAT", true, false},
	}
	for mi, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			e := &sweepEnv{mode: mode, msg: msg, wire: int64(len(msg))}
			if !mode.chunk {
				e.wire = dataWireLen(msg)
			}
			nRandom := sweepRandom
			if testing.Short() {
				nRandom = 40
			}
			start := time.Now()
			cmds, bounds := cleanRun(t, e)
			random, edges := octetPositions(uint64(mi/2), e, nRandom, bounds)

			// Command boundaries: the server's faults at the first of each
			// verb, and the relay at every command of the connection.
			for _, c := range commandCases(mode) {
				for _, seekable := range []bool{true, false} {
					c := c
					c.seekable = seekable
					if !seekable {
						c.name += " non-seekable"
					}
					t.Run(c.name, func(t *testing.T) { e.run(t, c) })
				}
			}
			for i, verb := range cmds {
				for _, after := range []bool{false, true} {
					// Seekable like the clean run: a source of unknown length ends
					// with an extra "BDAT 0 LAST", which would shift the commands.
					c := sweepCase{seekable: true, proxy: &cutAt{k: i + 1, after: after}, fires: verb != "QUIT"}
					earlier := slices.ContainsFunc(cmds[:i], isDataCommand)
					if after {
						c.name = fmt.Sprintf("relay: command %d (%s) executed, reply lost", i+1, verb)
						c.begun = earlier || isDataCommand(verb) // DATA's 354 was sent: 355 0
						c.endDone = verb == "." || verb == "BDAT LAST"
					} else {
						c.name = fmt.Sprintf("relay: command %d (%s) not delivered", i+1, verb)
						c.begun = earlier
					}
					t.Run(c.name, func(t *testing.T) { e.run(t, c) })
				}
			}

			// Octet positions: every position seekable, the edges and every
			// fourth random one also from a non-seekable source.
			for i, p := range random {
				for _, seekable := range []bool{true, false} {
					if seekable || i%4 == 0 {
						c := octetCase(e, p, seekable)
						t.Run(c.name, func(t *testing.T) { e.run(t, c) })
					}
				}
			}
			for _, p := range edges {
				for _, seekable := range []bool{true, false} {
					c := octetCase(e, p, seekable)
					t.Run(c.name, func(t *testing.T) { e.run(t, c) })
				}
			}
			positions := len(random) + len(edges)
			sweep := e.tally
			e.tally = sweepTally{}

			// Every connection cut the same way.
			var every []sweepCase
			for _, c := range commandCases(mode) {
				if c.faults.CloseAfterCommand != "QUIT" && c.faults.CloseBeforeReply != "QUIT" {
					every = append(every, c)
				}
			}
			for i, p := range random {
				if i%8 == 0 && p < e.wire {
					every = append(every, octetCase(e, p, i%16 == 0))
				}
			}
			for _, c := range every {
				c.every, c.seekable = true, true
				t.Run("every connection: "+c.name, func(t *testing.T) { e.run(t, c) })
			}
			ev := e.tally
			t.Logf("%s sweep: %d octet positions (%d random, %d edges); %s; every connection cut: cases=%d errors=%d successes=%d extra copies=%d; %v",
				mode.name, positions, len(random), len(edges), sweep, ev.cases, ev.failed, ev.cases-ev.failed, ev.dups, time.Since(start).Round(time.Millisecond))
			if !testing.Short() {
				assert.GreaterOrEqual(t, positions, 200, "octet positions")
			}
		})
	}
}

func isDataCommand(verb string) bool {
	return verb == "DATA" || strings.HasPrefix(verb, "BDAT") || verb == "."
}

// cleanRun runs the transaction through the relay without a cut and
// returns the commands of its connection and, with BDAT, where each chunk
// ends in the data.
func cleanRun(t *testing.T, e *sweepEnv) (cmds []string, bounds []int64) {
	srv := newSweepServer(t, smtptest.Config{Extensions: e.mode.extensions()})
	px := newCutProxy(t, srv.Addr, cutAt{})
	d := &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled, ChunkSize: sweepChunkSize}
	k := &Courier{Dialer: d, RetryDelay: time.Millisecond, Attempts: 1}
	_, err := k.Send(context.Background(), []string{px.Addr()}, &Envelope{From: "a@example.org", To: Recipients(sweepRcpts...)}, bytes.NewReader(e.msg))
	px.Close()
	require.NoError(t, err)
	cmds = px.Commands()
	want := []string{"EHLO", "MAIL"}
	for range sweepRcpts {
		want = append(want, "RCPT")
	}
	ok := slices.Equal(cmds[:min(len(want), len(cmds))], want)
	rest := cmds[min(len(want), len(cmds)):]
	if e.mode.chunk {
		// Some BDAT chunks, the last one LAST; their sizes are the
		// client's choice.
		i := 0
		for i < len(rest) && rest[i] == "BDAT" {
			i++
		}
		ok = ok && slices.Equal(rest[i:], []string{"BDAT LAST", "QUIT"})
		var end int64
		for _, l := range srv.Transcript(1) {
			if strings.HasPrefix(l, "C: <chunk ") {
				end += transcriptWire([]string{l})
				bounds = append(bounds, end)
			}
		}
		require.Equal(t, int64(len(e.msg)), end, "chunks end at %v", bounds)
		require.GreaterOrEqual(t, len(bounds), 4, "chunks end at %v", bounds)
	} else {
		ok = ok && slices.Equal(rest, []string{"DATA", ".", "QUIT"})
	}
	require.True(t, ok, "commands %v", cmds)
	return cmds, bounds
}

// cutAt says where a cutProxy cuts its first connection: at its k-th
// command (1-based, the greeting not counted; 0 never), either before the
// server sees it (the replies to earlier commands are delivered first) or
// after the server executed it, its reply lost.
type cutAt struct {
	k     int
	after bool
}

// A cutProxy relays connections to an SMTP server. On the first connection
// it reads the client's commands (with DATA's data and BDAT's chunks) and
// the server's replies, one reply per command, and cuts both ways at the
// chosen command; later connections are relayed untouched.
type cutProxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	at     cutAt

	mu      sync.Mutex
	cond    *sync.Cond
	n       int
	cmds    []string
	replies int
	open    []net.Conn
	wg      sync.WaitGroup
}

func newCutProxy(t testing.TB, target string, at cutAt) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{t: t, ln: ln, target: target, at: at}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

// Commands returns the commands seen on the first connection.
func (p *cutProxy) Commands() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cmds...)
}

func (p *cutProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.open {
		c.Close()
	}
	p.open = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			cc.Close()
			continue
		}
		p.mu.Lock()
		p.n++
		first := p.n == 1
		p.open = append(p.open, cc, sc)
		p.mu.Unlock()
		p.wg.Add(2)
		if first {
			go p.replies1(cc, sc)
			go p.commands1(cc, sc)
		} else {
			go p.relay(cc, sc)
			go p.relay(sc, cc)
		}
	}
}

func (p *cutProxy) relay(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// replies1 relays the first connection's replies, counting them, but none
// from the cut command's on.
func (p *cutProxy) replies1(cc, sc net.Conn) {
	defer p.wg.Done()
	defer p.cond.Broadcast()
	br := bufio.NewReader(sc)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			cc.Close()
			return
		}
		p.mu.Lock()
		idx := p.replies // the greeting is reply 0, command k's reply k
		p.mu.Unlock()
		if p.at.k == 0 || idx < p.at.k {
			if _, err := cc.Write(line); err != nil {
				return
			}
		}
		if len(line) < 4 || line[3] != '-' {
			p.mu.Lock()
			p.replies++
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}
}

// waitReplies waits until n replies were read from the server.
func (p *cutProxy) waitReplies(n int) {
	deadline := time.AfterFunc(5*time.Second, func() {
		p.mu.Lock()
		p.replies = -1 << 30 // give up
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer deadline.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.replies >= 0 && p.replies < n && p.open != nil {
		p.cond.Wait()
	}
	if p.replies < 0 {
		// Not require: this runs on the proxy's goroutine.
		assert.Failf(p.t, "cutProxy: timed out", "no reply %d from the server", n-1)
	}
}

// commands1 relays the first connection's commands and cuts it.
func (p *cutProxy) commands1(cc, sc net.Conn) {
	defer p.wg.Done()
	br := bufio.NewReaderSize(cc, 64<<10)
	bw := bufio.NewWriterSize(sc, 64<<10)
	cut := func() {
		cc.Close()
		sc.Close()
	}
	inData := false
	for n := 0; ; {
		if br.Buffered() == 0 {
			if bw.Flush() != nil {
				cut()
				return
			}
		}
		line, err := br.ReadBytes('\n')
		if err != nil {
			bw.Flush()
			sc.Close()
			return
		}
		if inData && string(line) != ".\r\n" {
			bw.Write(line)
			continue
		}
		n++
		verb, chunk := ".", int64(0)
		if inData {
			inData = false
		} else {
			f := strings.Fields(string(line))
			if len(f) > 0 {
				verb = strings.ToUpper(f[0])
			}
			switch verb {
			case "DATA":
				inData = true
			case "BDAT":
				if len(f) > 1 {
					chunk, _ = strconv.ParseInt(f[1], 10, 64)
				}
				if len(f) > 2 && strings.EqualFold(f[2], "LAST") {
					verb = "BDAT LAST"
				}
			}
		}
		p.mu.Lock()
		p.cmds = append(p.cmds, verb)
		p.mu.Unlock()
		if n == p.at.k && !p.at.after {
			bw.Flush()
			p.waitReplies(n) // the greeting's and those of commands 1..k-1
			cut()
			return
		}
		bw.Write(line)
		if chunk > 0 {
			if _, err := io.CopyN(bw, br, chunk); err != nil {
				cut()
				return
			}
		}
		if n == p.at.k {
			bw.Flush()
			p.waitReplies(n + 1) // command k's own reply: it was executed
			cut()
			return
		}
	}
}

// With BDAT, PIPELINING and CHECKPOINT the client writes MAIL, RCPT and the
// first chunk in one go. When the connection is cut before the server's
// replies to MAIL and RCPT reach the client, the server still holds the
// envelope and the data so far, and the restart's MAIL gets 355: the
// message must then be reported delivered to the recipients the server
// accepted, not refused.
func TestSweep_BDATResumeBeforeTheRcptRepliesWereRead(t *testing.T) {
	msg := bigText(96 << 10)
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpointChunk,
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 1}}})
	var resumed []int64
	k := testCourier(&Dialer{ChunkSize: 8 << 10, Trace: &ClientTrace{Resumed: func(off int64, _ error) { resumed = append(resumed, off) }}})
	res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com", "c@example.com")}, bytes.NewReader(msg))
	msgs := srv.Messages()
	require.Len(t, msgs, 1, "copies on the server")
	// Not require.Equal: a diff of 96 KiB is no help.
	require.True(t, bytes.Equal(msgs[0].Data, msg), "the copy on the server is not the message")
	require.Len(t, resumed, 1, "resumed at %v", resumed)
	require.NoError(t, err, "the server queued the message as %s for %v, but Send failed", msgs[0].QueueID, msgs[0].To)
	require.NotNil(t, res.Reply, "result %+v", res)
	require.Equal(t, 2, res.Accepted(), "result %+v", res)
}
