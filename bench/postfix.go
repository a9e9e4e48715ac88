package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Postfix's test programs: smtp-sink(1), a fast discarding SMTP server
// written in C, and smtp-source(1), its client, which sends commands in
// lock step ("No SMTP command pipelining support").
var (
	smtpSinkPath   = "/usr/sbin/smtp-sink"
	smtpSourcePath = "/usr/sbin/smtp-source"
)

// A postfixSink is an smtp-sink to run against.
type postfixSink struct {
	addr string
	cmd  *exec.Cmd // nil if not ours
}

// startSink returns the smtp-sink at addr if it is not "", else starts one
// (pinned to sinkCPU as p says) if it is installed, else uses the one
// named by RESMTP_SMTPSINK_ADDR (.ci/postfix-up.sh) if set. It returns an
// error saying why not if there is none to be had.
func startSink(ctx context.Context, addr string, p pinning) (*postfixSink, error) {
	if addr != "" {
		return existingSink(addr)
	}
	if _, err := os.Stat(smtpSinkPath); err != nil {
		if addr := os.Getenv("RESMTP_SMTPSINK_ADDR"); addr != "" {
			return existingSink(addr)
		}
		return nil, fmt.Errorf("%s not installed (apt-get install postfix, or: bash .ci/postfix-up.sh install)", smtpSinkPath)
	}
	// A free port: listen on port 0 and close (smtp-sink binds it next).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr = ln.Addr().String()
	ln.Close()
	args := []string{"-4", "-h", "sink.bench.example"}
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without -u.
		u := "nobody"
		if _, err := user.Lookup("postfix"); err == nil {
			u = "postfix"
		}
		args = append(args, "-u", u)
	}
	args = append(args, addr, "256")
	cmd := p.command(context.Background(), sinkCPU, smtpSinkPath, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &postfixSink{addr: addr, cmd: cmd}
	if err := waitGreeting(addr, 5*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("started %s on %s: %v; output: %s", smtpSinkPath, addr, err, out.String())
	}
	return s, nil
}

func existingSink(addr string) (*postfixSink, error) {
	if err := waitGreeting(addr, 5*time.Second); err != nil {
		return nil, fmt.Errorf("smtp-sink at %s: %w", addr, err)
	}
	return &postfixSink{addr: addr}, nil
}

func (s *postfixSink) stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// waitGreeting waits until addr answers with a 220 greeting.
func waitGreeting(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				return nil
			}
			if rerr == nil {
				err = fmt.Errorf("greeting %q", strings.TrimSpace(line))
			} else {
				err = rerr
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// smtpSource runs smtp-source for the same workload: one session (-s 1)
// that sends every message over the same connection (-d), each to three
// recipients (-r 3: it prefixes the address with 2, 3, ...), with the
// message read from a file (-F; smtp-source adds CRLF to each line and
// stuffs dots, so the file has bare LF endings and no stuffing; it also
// adds an empty line at the end, 2 octets). It says HELO, not EHLO, sends
// no RSET between messages, and has no pipelining: MAIL, each RCPT, DATA
// and "." wait for their replies, 6 round trips per message.
type smtpSource struct {
	file string
	pin  pinning
}

func newSMTPSource(dir string, w workload, p pinning) (*smtpSource, error) {
	if _, err := os.Stat(smtpSourcePath); err != nil {
		return nil, fmt.Errorf("%s not installed", smtpSourcePath)
	}
	text := strings.ReplaceAll(string(w.body), "\r\n", "\n")
	file := filepath.Join(dir, "smtp-source-message.txt")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return nil, err
	}
	return &smtpSource{file: file, pin: p}, nil
}

func (s *smtpSource) run(ctx context.Context, addr string, w workload) error {
	cmd := s.pin.command(ctx, s.pin.clientCPU(), smtpSourcePath,
		"-4", "-s", "1", "-d",
		"-m", strconv.Itoa(w.messages),
		"-r", strconv.Itoa(len(w.to)),
		"-M", "bench.example",
		"-f", w.from, "-t", w.to[0],
		"-F", s.file,
		addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("smtp-source: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if len(out) > 0 {
		return errors.New("smtp-source: " + strings.TrimSpace(string(out)))
	}
	return nil
}

// A sinkRun is the clients' results against smtp-sink with one placement.
type sinkRun struct {
	pin     string // pinSplit, pinSame, pinOff
	where   string // the placement in words
	results []result
}

// sinkSection runs smtp-source and the clients against smtp-sink, without
// delay, once for each placement in cfg.pins; or says why it cannot.
func sinkSection(cfg config, w workload) ([]sinkRun, string) {
	dir, err := os.MkdirTemp("", "resmtp-bench-")
	if err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(dir)
	modes := cfg.pins
	if len(modes) == 0 {
		modes = []string{pinOff}
	}
	var pins []pinning
	for _, mode := range modes {
		p := newPinning(mode)
		if cfg.sinkAddr != "" && p.mode != pinOff {
			p = pinning{mode: pinOff, why: "smtp-sink not started here (-smtp-sink)"}
		}
		if !slices.ContainsFunc(pins, func(q pinning) bool { return q.mode == p.mode }) {
			pins = append(pins, p)
		}
	}
	src, err := newSMTPSource(dir, w, pins[0])
	if err != nil {
		return nil, "skipped: " + err.Error()
	}
	sinkPin := pinning{mode: pinOff}
	for _, p := range pins {
		if p.mode != pinOff {
			sinkPin = p
		}
	}
	sink, err := startSink(context.Background(), cfg.sinkAddr, sinkPin)
	if err != nil {
		return nil, "skipped: " + err.Error()
	}
	defer sink.stop()
	if sink.cmd == nil && sinkPin.mode != pinOff {
		pins = []pinning{{mode: pinOff, why: "smtp-sink not started here ($RESMTP_SMTPSINK_ADDR)"}}
	}
	var out []sinkRun
	for _, pin := range pins {
		where := "nothing pinned, the Go clients in this process"
		if pin.why != "" {
			where += " (" + pin.why + ")"
		}
		switch pin.mode {
		case pinSame:
			where = fmt.Sprintf("smtp-sink and each client pinned to CPU %d", sinkCPU)
		case pinSplit:
			where = fmt.Sprintf("smtp-sink pinned to CPU %d, each client to CPU %d", sinkCPU, otherCPU)
		}
		log.Printf("Against smtp-sink at %s, %d runs each (median); %s", sink.addr, cfg.reps, where)
		src.pin = pin
		timers := sinkTimers(cfg, pin, src, sink.addr)
		runs := make([][]result, len(timers))
		for range cfg.reps { // interleaved, so that drift hits all alike
			for i, t := range timers {
				runs[i] = append(runs[i], t.time(w))
			}
		}
		sr := sinkRun{pin: pin.mode, where: where}
		for i := range timers {
			r := median(runs[i])
			logResult(r)
			sr.results = append(sr.results, r)
		}
		out = append(out, sr)
	}
	return out, ""
}

// A sinkTimer times one client against smtp-sink.
type sinkTimer struct {
	name string
	time func(w workload) result
}

// sinkTimers returns the timers for smtp-source and every client against
// the smtp-sink at addr.
func sinkTimers(cfg config, pin pinning, src *smtpSource, addr string) []sinkTimer {
	timers := []sinkTimer{{"smtp-source", func(w workload) result {
		// Leave out smtp-source's process start-up (and, in its
		// favour, its connection set-up, greeting, HELO, QUIT and one
		// message): time N-1 messages as a run of N less a run of 1.
		r := timeRun(cfg, "smtp-source", src.run, addr, w)
		if r.err == nil && w.messages > 1 {
			one := w
			one.messages = 1
			r1 := timeRun(cfg, "smtp-source", src.run, addr, one)
			r.err = r1.err
			r.messages--
			r.elapsed -= r1.elapsed
		}
		return r
	}}}
	for _, c := range clients {
		if c.needsChunking {
			continue // smtp-sink offers no CHUNKING
		}
		timers = append(timers, sinkTimer{c.name, func(w workload) result {
			if pin.mode == pinOff {
				return timeRun(cfg, c.name, c.run, addr, w)
			}
			// The child's own time, from connecting to QUIT.
			ctx, cancel := context.WithTimeout(context.Background(), cfg.runTimeout)
			defer cancel()
			d, err := pin.runChild(ctx, c.name, addr, w.messages)
			return result{client: c.name, messages: w.messages, elapsed: d, turnarounds: -1, err: err}
		}})
	}
	return timers
}
