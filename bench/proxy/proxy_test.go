package proxy

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// serve runs handler for every connection to a new loopback listener.
func serve(t *testing.T, handler func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); handler(c) }()
		}
	}()
	return ln.Addr().String()
}

// lineServer greets with "hi\n" and answers every line with "ok\n", one
// write per line, as soon as it is read.
func lineServer(c net.Conn) {
	io.WriteString(c, "hi\n")
	r := bufio.NewReader(c)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return
		}
		if _, err := io.WriteString(c, "ok\n"); err != nil {
			return
		}
	}
}

func newProxy(t *testing.T, target string, oneWay time.Duration) *Proxy {
	t.Helper()
	p, err := New(target, oneWay)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDelay_RoundTripIsTwiceTheOneWayDelay(t *testing.T) {
	for _, oneWay := range []time.Duration{500 * time.Microsecond, 5 * time.Millisecond} {
		p := newProxy(t, serve(t, lineServer), oneWay)
		start := time.Now()
		c := dial(t, p.Addr)
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		// Connect (one delay to the server) plus the greeting (one back);
		// the first connection also starts goroutines (generous bound).
		if got := time.Since(start); got < 2*oneWay || got > 2*oneWay+50*time.Millisecond {
			t.Errorf("one-way %v: greeting after %v, want about %v", oneWay, got, 2*oneWay)
		}
		const n = 20
		var rts []time.Duration
		for range n {
			start := time.Now()
			io.WriteString(c, "ping\n")
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			got := time.Since(start)
			if got < 2*oneWay {
				t.Fatalf("one-way %v: round trip %v, shorter than %v", oneWay, got, 2*oneWay)
			}
			rts = append(rts, got)
		}
		// Deadlines are met to some 0.1 ms when the machine is not busy;
		// the fastest round trip shows that (a wait rounded up to a whole
		// millisecond would not), the median that most are close.
		slices.Sort(rts)
		t.Logf("one-way %v: round trips %v (min) %v (median) %v (max)", oneWay, rts[0], rts[n/2], rts[n-1])
		if rts[0] > 2*oneWay+500*time.Microsecond {
			t.Errorf("one-way %v: fastest round trip %v, want about %v", oneWay, rts[0], 2*oneWay)
		}
		if rts[n/2] > 2*oneWay+3*time.Millisecond {
			t.Errorf("one-way %v: median round trip %v, want about %v", oneWay, rts[n/2], 2*oneWay)
		}
	}
}

func TestDelay_KeepsOrderAndThroughput(t *testing.T) {
	// 8 MiB in 4 KiB writes through 20 ms each way. Delaying chunk after
	// chunk would take 2048×20 ms; the stream must arrive in one delay
	// plus transfer time, intact and in order, and the echo likewise.
	const oneWay = 20 * time.Millisecond
	echo := func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	}
	p := newProxy(t, serve(t, echo), oneWay)
	data := make([]byte, 8<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	c := dial(t, p.Addr)
	start := time.Now()
	go func() {
		for b := data; len(b) > 0; b = b[min(len(b), 4096):] {
			if _, err := c.Write(b[:min(len(b), 4096)]); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(data))
	}
	// Connect + the echo's way there and back: 3 delays, plus the time
	// to copy 8 MiB four times (generous, for the race detector). One
	// delay per chunk would be 2048×20 ms.
	if elapsed < 3*oneWay || elapsed > 3*oneWay+2*time.Second {
		t.Errorf("8 MiB echoed in %v, want a little over %v", elapsed, 3*oneWay)
	}
	up, down := p.Bytes()
	if up != int64(len(data)) || down != int64(len(data)) {
		t.Errorf("Bytes() = %d, %d; want %d both ways", up, down, len(data))
	}
}

// lockstep makes n request/reply exchanges after the greeting.
func lockstep(t *testing.T, addr string, n int) {
	c := dial(t, addr)
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	for range n {
		io.WriteString(c, "req\n")
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
}

func TestTurnarounds_LockstepClientMakesOnePerRequest(t *testing.T) {
	for _, oneWay := range []time.Duration{0, 2 * time.Millisecond} {
		p := newProxy(t, serve(t, lineServer), oneWay)
		const n = 25
		lockstep(t, p.Addr, n)
		if got := p.Turnarounds(); got != n {
			t.Errorf("one-way delay %v: %d turnarounds for %d request/replies, want %d", oneWay, got, n, n)
		}
		p.ResetCounters()
		if p.Turnarounds() != 0 {
			t.Error("ResetCounters left turnarounds")
		}
	}
}

func TestTurnarounds_StreamingClientMakesNone(t *testing.T) {
	// The client writes a request about every millisecond for some 20
	// round trips and reads the replies as they come back, while it
	// sends: it never waits, so no turnaround is counted after the
	// greeting's.
	const oneWay = 25 * time.Millisecond
	p := newProxy(t, serve(t, lineServer), oneWay)
	c := dial(t, p.Addr)
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var n int
	go func() {
		for {
			if _, err := r.ReadString('\n'); err != nil {
				done <- err
				return
			}
			n++
		}
	}()
	// A busy machine can stall the writer: every stall of half the
	// delay allows one turnaround.
	stalls, last := 0, time.Now()
	for start := last; time.Since(start) < 40*oneWay; {
		io.WriteString(c, "req\n")
		time.Sleep(200 * time.Microsecond) // about 1 ms
		now := time.Now()
		if now.Sub(last) > oneWay/2 {
			stalls++
		}
		last = now
	}
	c.(*net.TCPConn).CloseWrite()
	<-done
	got := p.Turnarounds()
	t.Logf("%d turnarounds, %d requests, %d stalls of the writer", got, n, stalls)
	if got < 1 || got > int64(1+stalls) {
		t.Errorf("%d turnarounds for a streaming client, want 1 (the greeting)", got)
	}
}

func TestTurnarounds_PipelinedGroupsCountOnce(t *testing.T) {
	// Groups of 5 requests in one write, each group waiting for all its
	// replies: one turnaround per group, however the replies are split.
	const oneWay = 2 * time.Millisecond
	p := newProxy(t, serve(t, lineServer), oneWay)
	c := dial(t, p.Addr)
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	const groups = 10
	for range groups {
		io.WriteString(c, "a\nb\nc\nd\ne\n")
		for range 5 {
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := p.Turnarounds(); got != groups {
		t.Errorf("%d turnarounds for %d pipelined groups, want %d", got, groups, groups)
	}
}

func TestClose_EndsOpenConnections(t *testing.T) {
	p, err := New(serve(t, lineServer), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr)
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with an open connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("connection still open after Close")
	}
}
