// Command bench compares this library's bulk sending with Go's net/smtp
// and Postfix's smtp-source, in one run:
//
//   - over a loopback proxy that adds a round-trip time (bench/proxy) and
//     counts turnarounds, against a discarding SMTP server (bench/discard):
//     the same messages over one connection, for each round-trip time;
//   - without delay against Postfix's smtp-sink, with smtp-source for a
//     baseline (skipped if Postfix is not installed);
//   - one large message without delay: net/smtp over DATA, this library
//     over DATA and over BDAT, and a raw TCP copy of the same bytes.
//
// It prints a table with every ratio the issue sets a target for, and
// writes results.csv and chart.svg (messages/s against round-trip time).
//
//	cd bench && go run .            # the full run, a few minutes
//	cd bench && go run . -quick     # CI: fewer messages and points, < 1 min
//	go -C bench run .               # the same from the repository's root
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resmtp/smtp/bench/discard"
	"github.com/resmtp/smtp/bench/proxy"
)

// The round-trip time at which the targets are set.
const targetRTT = 10 * time.Millisecond

type config struct {
	rtts       []time.Duration
	messages   int
	size       int // octets of the throughput message
	reps       int
	sinkAddr   string
	csvPath    string
	svgPath    string
	quick      bool
	pins       []string // placements against smtp-sink: pinSplit, pinSame, pinOff
	runTimeout time.Duration
}

func main() {
	childMain()
	log.SetFlags(0)
	var (
		rtt      = flag.String("rtt", "0,1,5,10,20", "round-trip `times` to measure at, comma-separated: milliseconds or Go durations")
		messages = flag.Int("messages", defaultMessages, "messages per run")
		size     = flag.Int("size", 100, "size of the throughput message in `MiB`")
		reps     = flag.Int("reps", 5, "repetitions of each run without delay (the median is reported)")
		quick    = flag.Bool("quick", false, "fast mode for CI: -rtt 0,10 -messages 100 -size 8 -reps 3, files in $TMPDIR, unless set")
		sinkAddr = flag.String("smtp-sink", "", "address of a running smtp-sink (default: $RESMTP_SMTPSINK_ADDR, else one is started if installed)")
		csvPath  = flag.String("csv", "results.csv", "CSV `file` to write")
		svgPath  = flag.String("svg", "chart.svg", "SVG chart `file` to write")
		pin      = flag.String("pin", pinSplit+","+pinSame, "`placements` against smtp-sink, comma-separated: each client in a process pinned to another CPU than smtp-sink's (split), to the same (same), or in this process and nothing pinned (off)")
	)
	flag.Parse()
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		defaults := map[string]string{"rtt": "0,10", "messages": "100", "size": "8", "reps": "3",
			// Not over the full run's files, which the README shows.
			"csv": filepath.Join(os.TempDir(), "resmtp-bench-quick.csv"),
			"svg": filepath.Join(os.TempDir(), "resmtp-bench-quick.svg"),
		}
		for name, v := range defaults {
			if !set[name] {
				flag.Set(name, v)
			}
		}
	}
	rtts, err := parseRTTs(*rtt)
	if err != nil {
		log.Fatal(err)
	}
	pins := strings.Split(*pin, ",")
	for _, p := range pins {
		if p != pinSame && p != pinSplit && p != pinOff {
			log.Fatalf("-pin: %q is not split, same or off", p)
		}
	}
	cfg := config{
		rtts:       rtts,
		messages:   *messages,
		size:       *size << 20,
		reps:       max(*reps, 1),
		sinkAddr:   *sinkAddr,
		csvPath:    *csvPath,
		svgPath:    *svgPath,
		quick:      *quick,
		pins:       pins,
		runTimeout: 5 * time.Minute,
	}
	if err := run(cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func parseRTTs(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			ms, err2 := strconv.ParseFloat(f, 64)
			if err2 != nil {
				return nil, fmt.Errorf("-rtt: %q is neither milliseconds nor a duration", f)
			}
			d = time.Duration(ms * float64(time.Millisecond))
		}
		if d < 0 {
			return nil, fmt.Errorf("-rtt: negative %v", d)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-rtt: no round-trip times")
	}
	return out, nil
}

// report is everything one run measured.
type report struct {
	cfg        config
	sweep      []result  // over the proxy, per RTT and client
	sinks      []sinkRun // against smtp-sink, one per placement
	sinkSkip   string    // why the smtp-sink section was skipped
	throughput []tpResult
	checks     []check
}

type tpResult struct {
	name    string
	size    int
	elapsed time.Duration
	err     error

	fastest, slowest float64 // MB/s over the repetitions
}

func (t tpResult) mbPerSec() float64 { return float64(t.size) / 1e6 / t.elapsed.Seconds() }

func run(cfg config, out io.Writer) error {
	start := time.Now()
	rep := &report{cfg: cfg}
	srv, err := discard.NewServer(discard.Config{})
	if err != nil {
		return err
	}
	defer srv.Close()
	w := newWorkload(cfg.messages)
	fmt.Fprintf(out, "Workload: %d messages × %d octets × %d recipients over one connection.\n\n",
		w.messages, len(w.body), len(w.to))

	// Warm up every client (code paths, buffers, goroutines).
	for _, c := range clients {
		if err := c.run(context.Background(), srv.Addr, newWorkload(10)); err != nil {
			return fmt.Errorf("%s: warm-up: %w", c.name, err)
		}
	}

	// 1. Round-trip times over the proxy.
	for _, rtt := range cfg.rtts {
		res, err := sweepPoint(cfg, srv, w, rtt)
		if err != nil {
			return err
		}
		rep.sweep = append(rep.sweep, res...)
	}

	// 2. smtp-sink and smtp-source.
	rep.sinks, rep.sinkSkip = sinkSection(cfg, w)

	// 3. One large message.
	tp, err := throughput(cfg, srv)
	if err != nil {
		return err
	}
	rep.throughput = tp

	rep.checks = evaluate(rep)
	printReport(out, rep)
	if err := writeCSV(cfg.csvPath, rep); err != nil {
		return err
	}
	if err := writeChart(cfg.svgPath, rep.sweep, cfg); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWrote %s and %s in %.1fs.\n", cfg.csvPath, cfg.svgPath, time.Since(start).Seconds())
	return nil
}

// sweepPoint runs every client over a proxy adding rtt, against srv.
func sweepPoint(cfg config, srv *discard.Server, w workload, rtt time.Duration) ([]result, error) {
	p, err := proxy.New(srv.Addr, rtt/2)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	eff, err := measureRTT(p.Addr, 20)
	if err != nil {
		return nil, fmt.Errorf("measuring the round trip through the proxy: %w", err)
	}
	log.Printf("Over the proxy: RTT %s (measured %s)", fmtRTT(rtt), fmtDur(eff))
	reps := 1
	if rtt == 0 {
		reps = cfg.reps // short runs: take the median of several
	}
	var out []result
	for _, c := range clients {
		var runs []result
		for range reps {
			p.ResetCounters()
			srv.ResetCounters()
			r := timeRun(cfg, c.name, c.run, p.Addr, w)
			r.rtt, r.effRTT, r.turnarounds = rtt, eff, p.Turnarounds()
			if r.err == nil && srv.Messages() != int64(w.messages) {
				r.err = fmt.Errorf("the server accepted %d messages, not %d", srv.Messages(), w.messages)
			}
			runs = append(runs, r)
		}
		r := median(runs)
		logResult(r)
		out = append(out, r)
	}
	return out, nil
}

func timeRun(cfg config, name string, run runFunc, addr string, w workload) result {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.runTimeout)
	defer cancel()
	start := time.Now()
	err := run(ctx, addr, w)
	return result{client: name, messages: w.messages, elapsed: time.Since(start), turnarounds: -1, err: err}
}

// median returns the run with the median time; a failed run if any failed.
func median(runs []result) result {
	for _, r := range runs {
		if r.err != nil {
			return r
		}
	}
	slices.SortFunc(runs, func(a, b result) int { return int(a.elapsed - b.elapsed) })
	r := runs[len(runs)/2]
	r.runs = len(runs)
	r.fastest, r.slowest = runs[0].msgsPerSec(), runs[len(runs)-1].msgsPerSec()
	return r
}

func logResult(r result) {
	if r.err != nil {
		log.Printf("  %-28s rtt %-6s  FAILED: %v", r.client, fmtRTT(r.rtt), r.err)
		return
	}
	tpm := "—"
	if r.turnarounds >= 0 {
		tpm = fmt.Sprintf("%.3f", r.turnsPerMsg())
	}
	log.Printf("  %-28s rtt %-6s  %9.1f msgs/s  %s turnarounds/msg  (%v)", r.client, fmtRTT(r.rtt), r.msgsPerSec(), tpm, r.elapsed.Round(time.Millisecond))
}

// measureRTT returns the mean time of n lock-step NOOPs to addr.
func measureRTT(addr string, n int) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	tc := textproto.NewConn(c)
	if _, _, err := tc.ReadResponse(220); err != nil {
		return 0, err
	}
	var sum time.Duration
	for range n {
		start := time.Now()
		if err := tc.PrintfLine("NOOP"); err != nil {
			return 0, err
		}
		if _, _, err := tc.ReadResponse(250); err != nil {
			return 0, err
		}
		sum += time.Since(start)
	}
	tc.PrintfLine("QUIT")
	return sum / time.Duration(n), nil
}

// throughput sends one message of cfg.size octets with each copier.
func throughput(cfg config, srv *discard.Server) ([]tpResult, error) {
	msg := makeMessage(cfg.size)
	sink, err := discard.NewSink()
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	log.Printf("One %d MiB message, %d runs each (median)", cfg.size>>20, cfg.reps)
	runs := make([][]tpResult, len(copiers))
	for range cfg.reps {
		for i, c := range copiers {
			addr := srv.Addr
			if c.sink {
				addr = sink.Addr
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.runTimeout)
			start := time.Now()
			err := c.run(ctx, addr, msg)
			runs[i] = append(runs[i], tpResult{name: c.name, size: len(msg), elapsed: time.Since(start), err: err})
			cancel()
		}
	}
	var out []tpResult
	for i := range copiers {
		rs := runs[i]
		slices.SortFunc(rs, func(a, b tpResult) int { return int(a.elapsed - b.elapsed) })
		r := rs[len(rs)/2]
		r.fastest, r.slowest = rs[0].mbPerSec(), rs[len(rs)-1].mbPerSec()
		for _, x := range rs {
			if x.err != nil {
				r = x
			}
		}
		if r.err != nil {
			log.Printf("  %-28s %d MiB  FAILED: %v", r.name, r.size>>20, r.err)
		} else {
			log.Printf("  %-28s %d MiB  %8.1f MB/s", r.name, r.size>>20, r.mbPerSec())
		}
		out = append(out, r)
	}
	return out, nil
}

// A check is one ratio the issue sets a target for.
type check struct {
	name   string
	value  float64
	atMost bool // the target is a maximum, else a minimum
	limit  float64
	status string // PASS, MISS, n/a
	note   string
}

func (c check) target() string {
	if c.atMost {
		return fmt.Sprintf("<= %g", c.limit)
	}
	return fmt.Sprintf(">= %g", c.limit)
}

func evaluate(rep *report) []check {
	var checks []check
	add := func(name string, value float64, ok bool, target, note string) {
		c := check{name: name, value: value, note: note, status: "n/a"}
		var op string
		fmt.Sscanf(target, "%s %g", &op, &c.limit)
		c.atMost = op == "<="
		if ok {
			c.status = "MISS"
			if c.atMost && value <= c.limit || !c.atMost && value >= c.limit {
				c.status = "PASS"
			}
		}
		checks = append(checks, c)
	}
	find := func(rs []result, client string, rtt time.Duration) (result, bool) {
		for _, r := range rs {
			if r.client == client && r.rtt == rtt && r.err == nil {
				return r, true
			}
		}
		return result{}, false
	}
	note10 := ""
	if rep.cfg.messages != defaultMessages {
		note10 = fmt.Sprintf("%d messages, not %d", rep.cfg.messages, defaultMessages)
	}
	if !slices.Contains(rep.cfg.rtts, targetRTT) {
		note10 = "10 ms not in -rtt"
	}
	ns, nsOK := find(rep.sweep, "net/smtp", targetRTT)
	pipe, pipeOK := find(rep.sweep, "resmtp PIPELINING", targetRTT)
	chunk, chunkOK := find(rep.sweep, "resmtp PIPELINING+CHUNKING", targetRTT)
	add("PIPELINING @10ms: turnarounds/msg", pipe.turnsPerMsg(), pipeOK, "<= 1.03", note10)
	add("PIPELINING @10ms: msgs/s ÷ net/smtp", pipe.msgsPerSec()/ns.msgsPerSec(), pipeOK && nsOK, ">= 5.8", note10)
	add("PIPELINING+CHUNKING @10ms: turnarounds/msg", chunk.turnsPerMsg(), chunkOK, "<= 0.05", note10)
	add("PIPELINING+CHUNKING @10ms: msgs/s ÷ net/smtp", chunk.msgsPerSec()/ns.msgsPerSec(), chunkOK && nsOK, ">= 100", note10)

	if len(rep.sinks) == 0 {
		for _, name := range []string{"resmtp PIPELINING", "resmtp PIPELINING+CHUNKING"} {
			add("smtp-sink: "+name+" msgs/s ÷ smtp-source", 0, false, ">= 3", rep.sinkSkip)
		}
	}
	for _, sr := range rep.sinks {
		src, srcOK := find(sr.results, "smtp-source", 0)
		for _, name := range []string{"resmtp PIPELINING", "resmtp PIPELINING+CHUNKING"} {
			r, ok := find(sr.results, name, 0)
			add("smtp-sink ("+sr.pin+"): "+name+" msgs/s ÷ smtp-source", r.msgsPerSec()/src.msgsPerSec(), ok && srcOK, ">= 3", sr.where)
		}
	}

	tp := func(name string) (tpResult, bool) {
		for _, t := range rep.throughput {
			if t.name == name && t.err == nil {
				return t, true
			}
		}
		return tpResult{}, false
	}
	noteSize := ""
	if rep.cfg.size != 100<<20 {
		noteSize = fmt.Sprintf("%d MiB, not 100", rep.cfg.size>>20)
	}
	nsd, nsdOK := tp("net/smtp DATA")
	rd, rdOK := tp("resmtp DATA")
	rb, rbOK := tp("resmtp BDAT")
	raw, rawOK := tp("raw TCP")
	add("100 MiB: resmtp DATA MB/s ÷ net/smtp DATA", rd.mbPerSec()/nsd.mbPerSec(), rdOK && nsdOK, ">= 10", noteSize)
	add("100 MiB: resmtp BDAT MB/s ÷ raw TCP copy", rb.mbPerSec()/raw.mbPerSec(), rbOK && rawOK, ">= 0.9", noteSize)
	return checks
}

func printReport(out io.Writer, rep *report) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(out, "\n== Over the delaying proxy, against the discarding server ==")
	fmt.Fprintln(tw, "RTT\tmeasured RTT\tclient\t\tmessages\ttime\tmsgs/s\tturnarounds/msg\t× net/smtp\t")
	base := map[time.Duration]float64{}
	for _, r := range rep.sweep {
		if r.client == "net/smtp" && r.err == nil {
			base[r.rtt] = r.msgsPerSec()
		}
	}
	for _, r := range rep.sweep {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\tFAILED: %v\t\t\t\t\t\n", fmtRTT(r.rtt), fmtDur(r.effRTT), r.client, r.err)
			continue
		}
		ratio := "—"
		if b := base[r.rtt]; b > 0 {
			ratio = fmt.Sprintf("%.1f", r.msgsPerSec()/b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t%d\t%v\t%.1f\t%.3f\t%s\t\n", fmtRTT(r.rtt), fmtDur(r.effRTT), r.client,
			r.messages, r.elapsed.Round(100*time.Microsecond), r.msgsPerSec(), r.turnsPerMsg(), ratio)
	}
	tw.Flush()

	fmt.Fprintln(out, "\n== Without delay, against Postfix's smtp-sink ==")
	if len(rep.sinks) == 0 {
		fmt.Fprintln(out, rep.sinkSkip)
	} else {
		fmt.Fprintln(out, "(smtp-source: a run of N messages less a run of 1, so that its process start-up")
		fmt.Fprintln(out, "is not counted; the others: connect to QUIT. smtp-sink offers no CHUNKING: resmtp")
		fmt.Fprintln(out, "PIPELINING+CHUNKING falls back to DATA, and the minimal BDAT client is left out.)")
	}
	for _, sr := range rep.sinks {
		fmt.Fprintf(out, "\n%s: %s\n", sr.pin, sr.where)
		var src float64
		for _, r := range sr.results {
			if r.client == "smtp-source" && r.err == nil {
				src = r.msgsPerSec()
			}
		}
		fmt.Fprintf(tw, "client\t\tmessages\ttime (median of %d)\tmsgs/s\t(slowest–fastest)\t× smtp-source\t\n", rep.cfg.reps)
		for _, r := range sr.results {
			if r.err != nil {
				fmt.Fprintf(tw, "%s\t\tFAILED: %v\t\t\t\t\t\n", r.client, r.err)
				continue
			}
			ratio := "—"
			if src > 0 {
				ratio = fmt.Sprintf("%.2f", r.msgsPerSec()/src)
			}
			fmt.Fprintf(tw, "%s\t\t%d\t%v\t%.0f\t(%.0f–%.0f)\t%s\t\n", r.client, r.messages, r.elapsed.Round(10*time.Microsecond),
				r.msgsPerSec(), r.slowest, r.fastest, ratio)
		}
		tw.Flush()
	}

	fmt.Fprintln(out, "\n== One large message, without delay, against the discarding server ==")
	fmt.Fprintf(tw, "client\t\tMiB\ttime (median of %d)\tMB/s\t(slowest–fastest)\t\n", rep.cfg.reps)
	for _, t := range rep.throughput {
		if t.err != nil {
			fmt.Fprintf(tw, "%s\t\t%d\tFAILED: %v\t\t\t\n", t.name, t.size>>20, t.err)
			continue
		}
		fmt.Fprintf(tw, "%s\t\t%d\t%v\t%.0f\t(%.0f–%.0f)\t\n", t.name, t.size>>20, t.elapsed.Round(100*time.Microsecond),
			t.mbPerSec(), t.slowest, t.fastest)
	}
	tw.Flush()

	fmt.Fprintln(out, "\n== Targets (issue, item 7) ==")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio\tvalue\ttarget\tresult\tnote")
	for _, c := range rep.checks {
		v := "—"
		if c.status != "n/a" {
			v = fmt.Sprintf("%.3g", c.value)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.name, v, c.target(), c.status, c.note)
	}
	tw.Flush()
}

func fmtRTT(d time.Duration) string { return fmt.Sprintf("%g ms", float64(d)/1e6) }

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}
