package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	resmtp "github.com/resmtp/smtp"
	"github.com/resmtp/smtp/bench/discard"
	"github.com/resmtp/smtp/bench/proxy"
	"github.com/resmtp/smtp/internal/smtptest"
)

var (
	benchRTT  = flag.Duration("bench.rtt", 10*time.Millisecond, "round-trip time of BenchmarkRTT")
	benchSize = flag.Int("bench.size", 16, "message size of BenchmarkThroughput in MiB")
)

func newServer(t testing.TB) *discard.Server {
	t.Helper()
	s, err := discard.NewServer(discard.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newProxy(t testing.TB, target string, rtt time.Duration) *proxy.Proxy {
	t.Helper()
	p, err := proxy.New(target, rtt/2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// stuffedLen is the length of msg over DATA: a dot added to every line
// that starts with one.
func stuffedLen(msg []byte) int {
	n := len(msg)
	if bytes.HasPrefix(msg, []byte(".")) {
		n++
	}
	return n + bytes.Count(msg, []byte("\r\n."))
}

func TestMakeMessage(t *testing.T) {
	for _, size := range []int{200, 2048, 2049, 100 << 10, 8<<20 + 3} {
		m := makeMessage(size)
		if len(m) != size {
			t.Errorf("makeMessage(%d) has %d octets", size, len(m))
		}
		if !bytes.HasSuffix(m, []byte("\r\n")) {
			t.Errorf("makeMessage(%d) does not end with CRLF", size)
		}
		lines := strings.Split(string(m[:len(m)-2]), "\r\n")
		dots := 0
		for _, l := range lines {
			if strings.ContainsAny(l, "\r\n") || len(l) > 998 {
				t.Fatalf("makeMessage(%d): bad line %q", size, l)
			}
			if strings.HasPrefix(l, ".") {
				dots++
			}
		}
		if size >= 2048 && dots == 0 {
			t.Errorf("makeMessage(%d) has no line starting with a dot", size)
		}
	}
}

func TestClients_SendTheWorkload(t *testing.T) {
	s := newServer(t)
	const rtt = 2 * time.Millisecond
	p := newProxy(t, s.Addr, rtt)
	w := newWorkload(5)
	for _, c := range clients {
		s.ResetCounters()
		p.ResetCounters()
		if err := c.run(context.Background(), p.Addr, w); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if s.Messages() != 5 || s.Recipients() != 15 {
			t.Errorf("%s: the server got %d messages, %d recipients; want 5, 15", c.name, s.Messages(), s.Recipients())
		}
		if want := int64(5 * stuffedLen(w.body)); s.Octets() != want && s.Octets() != int64(5*len(w.body)) {
			t.Errorf("%s: the server got %d octets, want %d (DATA) or %d (BDAT)", c.name, s.Octets(), want, 5*len(w.body))
		}
		t.Logf("%s: %d turnarounds", c.name, p.Turnarounds())
		if c.name == "net/smtp" {
			// EHLO; per message MAIL, 3 RCPT, DATA, the text, RSET; QUIT.
			if got, want := p.Turnarounds(), int64(1+5*7+1); got != want {
				t.Errorf("net/smtp: %d turnarounds, want %d", got, want)
			}
		}
	}
}

func TestCopiers_SendTheMessage(t *testing.T) {
	s := newServer(t)
	sink, err := discard.NewSink()
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	msg := makeMessage(1 << 20)
	for _, c := range copiers {
		s.ResetCounters()
		before := sink.Bytes()
		addr := s.Addr
		if c.sink {
			addr = sink.Addr
		}
		if err := c.run(context.Background(), addr, msg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.sink {
			if got := sink.Bytes() - before; got != int64(len(msg)) {
				t.Errorf("%s: %d bytes, want %d", c.name, got, len(msg))
			}
			continue
		}
		if s.Messages() != 1 || s.Octets() < int64(len(msg)) {
			t.Errorf("%s: %d messages, %d octets; want 1, %d", c.name, s.Messages(), s.Octets(), len(msg))
		}
	}
}

func TestSMTPSource_SendsTheSameWorkload(t *testing.T) {
	w := newWorkload(3)
	src, err := newSMTPSource(t.TempDir(), w, pinning{mode: pinOff})
	if err != nil {
		t.Skip(err)
	}
	s := newServer(t)
	if err := src.run(context.Background(), s.Addr, w); err != nil {
		t.Fatal(err)
	}
	if s.Messages() != 3 || s.Recipients() != 9 {
		t.Errorf("the server got %d messages, %d recipients; want 3, 9", s.Messages(), s.Recipients())
	}
	// smtp-source ends every message with an empty line: 2 octets more.
	if want := int64(3 * (stuffedLen(w.body) + 2)); s.Octets() != want {
		t.Errorf("the server got %d octets, want %d: not the same message", s.Octets(), want)
	}
}

func TestRun_WritesTheReport(t *testing.T) {
	dir := t.TempDir()
	cfg := config{
		rtts:       []time.Duration{0, 2 * time.Millisecond},
		messages:   5,
		size:       1 << 20,
		reps:       1,
		pins:       []string{pinSplit, pinSame},
		csvPath:    filepath.Join(dir, "results.csv"),
		svgPath:    filepath.Join(dir, "chart.svg"),
		runTimeout: time.Minute,
	}
	var out bytes.Buffer
	if err := run(cfg, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Targets", "net/smtp", "raw TCP", "PIPELINING @10ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	f, err := os.Open(cfg.csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, r := range recs[1:] {
		kinds[r[0]]++
	}
	sink := kinds["smtp-sink/split"] + kinds["smtp-sink/same"] + kinds["smtp-sink/off"]
	sinkClients := 0 // smtp-source is one more; a client that needs CHUNKING is left out
	for _, c := range clients {
		if !c.needsChunking {
			sinkClients++
		}
	}
	if kinds["rtt"] != 2*len(clients) || kinds["throughput"] != len(copiers) || kinds["target"] == 0 ||
		sink%(1+sinkClients) != 0 {
		t.Errorf("CSV rows by kind: %v", kinds)
	}
	svg, err := os.ReadFile(cfg.svgPath)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("chart.svg is not well-formed XML: %v", err)
		}
	}
	for _, c := range clients {
		if !bytes.Contains(svg, []byte(c.name)) {
			t.Errorf("the chart has no line for %s", c.name)
		}
	}
}

// slug makes a client's name a benchmark name.
func slug(s string) string { return strings.NewReplacer("/", "-", " ", "-").Replace(s) }

// BenchmarkRTT sends b.N messages (2 KiB, 3 recipients) over one
// connection through the proxy at -bench.rtt; an op is one message.
//
//	go test -run '^$' -bench RTT -count 6 -bench.rtt 10ms . | tee rtt.txt
func BenchmarkRTT(b *testing.B) {
	s := newServer(b)
	p := newProxy(b, s.Addr, *benchRTT)
	for _, c := range clients {
		b.Run(slug(c.name), func(b *testing.B) {
			p.ResetCounters()
			w := newWorkload(b.N)
			start := time.Now()
			if err := c.run(context.Background(), p.Addr, w); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.ReportMetric(float64(p.Turnarounds())/float64(b.N), "turnarounds/msg")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
		})
	}
}

// BenchmarkThroughput sends one message of -bench.size MiB per op, without
// delay, over a new connection.
func BenchmarkThroughput(b *testing.B) {
	s := newServer(b)
	sink, err := discard.NewSink()
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	msg := makeMessage(*benchSize << 20)
	for _, c := range copiers {
		addr := s.Addr
		if c.sink {
			addr = sink.Addr
		}
		b.Run(slug(c.name), func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := c.run(context.Background(), addr, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var (
	sinkOnce sync.Once
	sinkErr  error
	theSink  *postfixSink
)

// BenchmarkSMTPSink sends b.N messages over one connection to Postfix's
// smtp-sink without delay, with smtp-source and each client, timed and
// pinned as by the command (-pin same); an op is one message, but ns/op
// includes process start-ups: see msgs/s.
func BenchmarkSMTPSink(b *testing.B) {
	pin := newPinning(pinSame)
	sinkOnce.Do(func() { theSink, sinkErr = startSink(context.Background(), "", pin) })
	if sinkErr != nil {
		b.Skip(sinkErr)
	}
	src, err := newSMTPSource(b.TempDir(), newWorkload(1), pin)
	if err != nil {
		b.Skip(err)
	}
	cfg := config{runTimeout: 5 * time.Minute}
	for _, t := range sinkTimers(cfg, pin, src, theSink.addr) {
		b.Run(slug(t.name), func(b *testing.B) {
			r := t.time(newWorkload(max(b.N, 2)))
			if r.err != nil {
				b.Fatal(r.err)
			}
			b.ReportMetric(r.msgsPerSec(), "msgs/s")
		})
	}
}

func TestMain(m *testing.M) {
	childMain()
	serverMain()
	code := m.Run()
	if theSink != nil {
		theSink.stop()
	}
	os.Exit(code)
}

// BenchmarkPool sends b.N messages (2 KiB, 3 recipients) from G goroutines
// through the proxy at -bench.rtt, with poolConns connections for the
// pooled clients; an op is one message.
//
//	go test -run '^$' -bench Pool -count 6 -bench.rtt 10ms . | tee pool.txt
func BenchmarkPool(b *testing.B) {
	full := newServer(b)
	noChunking, err := discard.NewServer(discard.Config{Extensions: []string{"PIPELINING", "8BITMIME", "SIZE 1073741824"}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { noChunking.Close() })
	for _, g := range []int{1, 8, 64} {
		for _, c := range poolClients {
			target := full.Addr
			if !strings.Contains(c.name, "CHUNKING") {
				target = noChunking.Addr // DATA only, whatever the client
			}
			p := newProxy(b, target, *benchRTT)
			b.Run(fmt.Sprintf("G=%d/%s", g, slug(c.name)), func(b *testing.B) {
				p.ResetCounters()
				w := newWorkload(b.N)
				start := time.Now()
				if err := c.run(context.Background(), p.Addr, g, b.N, w); err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				b.ReportMetric(float64(p.Turnarounds())/float64(b.N), "turnarounds/msg")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			})
		}
	}
}

// The pooled clients deliver every message, from any number of goroutines.
func TestPoolClients_SendEveryMessage(t *testing.T) {
	s := newServer(t)
	for _, c := range poolClients {
		for _, g := range []int{1, 3, 8} {
			before := s.Messages()
			require := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s, G=%d: %v", c.name, g, err)
				}
			}
			require(c.run(context.Background(), s.Addr, g, 20, newWorkload(20)))
			if got := s.Messages() - before; got != 20 {
				t.Errorf("%s, G=%d: %d messages arrived, want 20", c.name, g, got)
			}
		}
	}
}

// The shaping run of issue 11: 1000 messages from 64 goroutines to a
// destination limited to 50 messages a second and 2 connections. The
// server never sees more, and the run takes 20 s ± 10 %.
func TestShaping_1000MessagesAt50PerSecond(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the shaped run takes 20 s")
	}
	srv, err := smtptest.NewServer(smtptest.Config{Extensions: []string{"PIPELINING", "CHUNKING", "8BITMIME"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p := &resmtp.Pool{
		Dialer:   &resmtp.Dialer{LocalName: "bench.example", TLSPolicy: resmtp.TLSDisabled},
		MaxConns: 8,
		Limiter:  &resmtp.RateLimiter{MaxConns: 2, Rate: 50},
	}
	defer p.Close()
	const total = 1000
	w := newWorkload(total)
	env := &resmtp.Envelope{From: w.from, To: resmtp.Recipients(w.to...)}
	start := time.Now()
	err = spread(64, total, func(int) error {
		_, err := p.Send(context.Background(), srv.Addr, env, bytes.NewReader(w.body))
		return err
	})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages in %v; at most %d connections and %d messages in a second", total, elapsed.Round(time.Millisecond), srv.MaxOpen(), srv.MaxPerSecond())
	if n := len(srv.Messages()); n != total {
		t.Errorf("%d messages arrived, want %d", n, total)
	}
	if srv.MaxOpen() > 2 {
		t.Errorf("%d connections at once, want at most 2", srv.MaxOpen())
	}
	if srv.MaxPerSecond() > 50+1+1 { // the rate, one at the start, one for jitter
		t.Errorf("%d messages within a second, want at most 52", srv.MaxPerSecond())
	}
	if elapsed < 18*time.Second || elapsed > 22*time.Second {
		t.Errorf("the run took %v, want 20 s ± 10 %%", elapsed)
	}
}
