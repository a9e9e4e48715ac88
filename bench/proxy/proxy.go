// Package proxy is a loopback TCP proxy that adds a fixed one-way delay in
// each direction and counts turnarounds, for measuring how an SMTP client
// behaves on a link with a given round-trip time.
//
// # Delay
//
// Every chunk of bytes the proxy reads is stamped with the time it was read
// and written to the other side at that time plus the one-way delay. A
// reader and a writer goroutine per direction, with a queue between them,
// keep the order of the bytes and the throughput of the link: the delay is
// added once to each byte, not once per chunk one after the other, so a
// stream of many chunks arrives one delay later than it was sent and at the
// same rate. The connection to the target is opened one delay after the
// client's connection is accepted, so a server's greeting reaches the client
// a round trip after it connected, as over a real link. The round-trip time
// the proxy simulates is twice the one-way delay; the proxy's own hops and
// waking idle processes add some 0.05–0.5 ms, so measure the real one (the
// bench does, with NOOPs). Deadlines are kept to some 20 µs (see sleep.go).
//
// # Turnarounds
//
// A turnaround is a time the client had to stop and wait for the server
// before it could go on: the cost that pipelining (RFC 2920) and chunking
// (RFC 3030) exist to remove, and the reason a lock-step client's
// throughput is bounded by 1/RTT per command. The proxy counts one each time
// bytes from the client reach it and
//
//	(a) bytes from the server have been delivered to the client since the
//	    client's previous bytes reached the proxy (or since the connection
//	    was accepted, for its first bytes), and
//	(b) the client has been silent for at least the one-way delay (RTT/2)
//	    since then.
//
// (a) says the client may have been waiting for what the server sent; (b)
// says it was in fact idle, for longer than a client that keeps sending
// while replies stream back ever is. A lock-step client that sends a
// command and waits for its reply is silent for a whole round trip before
// each command, so it makes one turnaround per command; a pipelining client
// makes one per group of commands it has to wait on; a client that keeps
// the link busy while replies flow back makes none. With no delay there is
// no silence to measure and only (a) is applied: every burst of client bytes
// that follows a delivered server reply counts.
package proxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// chunkSize is the most one read takes from a connection.
const chunkSize = 32 << 10

// queueLen bounds the chunks in flight in one direction; with 32 KiB chunks
// that is room for 10 ms at 12 GB/s, far more than loopback carries.
const queueLen = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// A Proxy forwards every connection made to Addr to its target, delaying
// each direction by the one-way delay, and counts turnarounds over all of
// them.
type Proxy struct {
	// Addr is the address ("127.0.0.1:port") the proxy listens on.
	Addr string

	target string
	delay  time.Duration
	ln     net.Listener

	turnarounds atomic.Int64
	up, down    atomic.Int64 // bytes client→server, server→client

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New starts a proxy on 127.0.0.1 (a free port) to target, adding oneWay
// to each direction: the simulated round-trip time is 2×oneWay.
func New(target string, oneWay time.Duration) (*Proxy, error) {
	if oneWay < 0 {
		return nil, errors.New("proxy: negative delay")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		Addr:   ln.Addr().String(),
		target: target,
		delay:  oneWay,
		ln:     ln,
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Delay returns the one-way delay.
func (p *Proxy) Delay() time.Duration { return p.delay }

// Turnarounds returns the turnarounds counted since the start or the last
// ResetCounters, over all connections.
func (p *Proxy) Turnarounds() int64 { return p.turnarounds.Load() }

// Bytes returns the bytes forwarded client→server (up) and server→client
// (down) since the start or the last ResetCounters.
func (p *Proxy) Bytes() (up, down int64) { return p.up.Load(), p.down.Load() }

// ResetCounters sets the turnaround and byte counters to zero.
func (p *Proxy) ResetCounters() {
	p.turnarounds.Store(0)
	p.up.Store(0)
	p.down.Store(0)
}

// Close stops listening, closes every connection and waits for the
// proxy's goroutines.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers c to be closed by Close; it reports false (and closes c)
// if the proxy is already closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// link is the turnaround state of one proxied connection.
type link struct {
	p        *Proxy
	mu       sync.Mutex
	lastSend time.Time // when the client's previous bytes arrived
	replied  bool      // server bytes delivered since lastSend
}

// clientBytes is called when bytes from the client arrive at now.
func (l *link) clientBytes(now time.Time) {
	l.mu.Lock()
	if l.replied && (l.p.delay == 0 || now.Sub(l.lastSend) >= l.p.delay) {
		l.p.turnarounds.Add(1)
	}
	l.replied = false
	l.lastSend = now
	l.mu.Unlock()
}

// serverBytes is called just before bytes from the server are written to
// the client (before, so that a client's answer cannot overtake it).
func (l *link) serverBytes() {
	l.mu.Lock()
	l.replied = true
	l.mu.Unlock()
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	l := &link{p: p, lastSend: time.Now()}
	if p.delay > 0 {
		// The client's SYN takes one delay to reach the server. (Close
		// waits for at most this long.)
		newSleeper().until(time.Now().Add(p.delay))
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(client, server, l, true) }()
	go func() { defer wg.Done(); p.pipe(server, client, l, false) }()
	wg.Wait()
}

type chunk struct {
	buf *[]byte
	n   int
	at  time.Time // when to deliver
	eof bool
}

// pipe copies src to dst with the delay; up is true for client→server.
func (p *Proxy) pipe(src, dst net.Conn, l *link, up bool) {
	q := make(chan chunk, queueLen)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sl := newSleeper()
		failed := false
		for ch := range q {
			if failed {
				if ch.buf != nil {
					bufPool.Put(ch.buf)
				}
				continue
			}
			if ch.eof {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				continue
			}
			sl.until(ch.at)
			if !up {
				l.serverBytes()
			}
			_, err := dst.Write((*ch.buf)[:ch.n])
			bufPool.Put(ch.buf)
			if err != nil {
				// The other side is gone: stop both directions.
				failed = true
				src.Close()
				dst.Close()
			}
		}
	}()
	for {
		buf := bufPool.Get().(*[]byte)
		n, err := src.Read(*buf)
		if n > 0 {
			now := time.Now()
			if up {
				l.clientBytes(now)
				p.up.Add(int64(n))
			} else {
				p.down.Add(int64(n))
			}
			q <- chunk{buf: buf, n: n, at: now.Add(p.delay)}
		} else {
			bufPool.Put(buf)
		}
		if err != nil {
			q <- chunk{eof: true}
			break
		}
	}
	close(q)
	<-done
}
