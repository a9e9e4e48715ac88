package smtp

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// Defaults for a Pool.
const (
	// defaultMaxConns is the number of connections a Pool keeps to one
	// server address at most.
	defaultMaxConns = 4
	// defaultIdleTimeout is how long a Pool keeps an unused connection
	// open. Servers wait at least 5 minutes for the next command (RFC 5321
	// §4.5.3.2.7); a client should not hold their resources that long.
	defaultIdleTimeout = time.Minute
)

// errPoolClosed is returned by Pool.Send after Close, and to Sends waiting
// for a connection when Close is called; it matches ErrClosed.
const errPoolClosed = closedError("smtp: pool is closed")

const (
	// poolCheckAfter is how long a connection may sit idle and still be
	// reused without a check.
	poolCheckAfter = 2 * time.Second
	// poolCheckTimeout bounds the RSET of that check.
	poolCheckTimeout = 10 * time.Second
	// poolQuitTimeout bounds the QUITs of the connections closed at once.
	poolQuitTimeout = 5 * time.Second
)

// A Pool keeps connections to SMTP servers for concurrent senders, as
// net/http's Transport keeps idle connections: Send takes an idle connection
// to the address, or dials one, runs one mail transaction on it and keeps
// it for the next Send. The zero value is ready to use. A Pool is safe for
// concurrent use by multiple goroutines; its fields must not be changed
// after the first Send.
//
// A connection is reused as it is when its last transaction ended less than
// two seconds ago: the session is then in its initial state (RFC 5321
// §4.1.1.4), and if that transaction failed the Client sends RSET before the
// next MAIL anyway. A connection idle longer is checked with RSET, alone,
// before it is reused (RFC 5321 §4.1.1.5: RSET clears any transaction and
// proves the server still answers); if RSET fails, the connection is closed
// and Send takes another or dials one, so a connection the server dropped
// while idle does not fail a Send.
//
// A connection is closed instead of reused after a connection-level error
// (the Client is unusable), after any 421 reply (the server is closing the
// channel, RFC 5321 §3.8), after MaxMessagesPerConn Sends, and when it has
// been idle for IdleTimeout. Idle connections are reaped by one timer per
// Pool; a connection that is still usable gets QUIT first.
//
// Close the Pool when done with it: no goroutine or timer of the Pool runs
// after Close returns.
type Pool struct {
	// Dialer connects to the servers; nil means a zero Dialer. Its Trace
	// hooks, if any, are called for every connection of the Pool, so they
	// may be called concurrently.
	Dialer *Dialer
	// Auth, if not nil, authenticates each new connection before its first
	// transaction.
	Auth Auth
	// MaxConns is the number of connections to one address at most: in
	// use, idle, being dialed or being closed. Zero means 4.
	// A Send that finds them all in use waits for one.
	MaxConns int
	// IdleTimeout is how long an unused connection is kept before it is
	// closed with QUIT. Zero means a minute.
	IdleTimeout time.Duration
	// MaxMessagesPerConn, if positive, closes a connection with QUIT after
	// that many Sends on it.
	MaxMessagesPerConn int

	mu        sync.Mutex
	hosts     map[string]*poolHost
	closed    bool
	timer     *time.Timer    // reaps idle connections
	timerSet  bool           // timer is pending: its callback has not started
	timerRuns sync.WaitGroup // armings whose callback has not finished

	checkAfter time.Duration // for tests; zero means poolCheckAfter
}

// poolHost is the connections to one address.
type poolHost struct {
	addr    string
	idle    []*poolConn      // least recently used first
	open    int              // in use, idle, being dialed or being closed
	waiting []chan *poolConn // Sends waiting for a connection, oldest first
}

// poolConn is one connection of a Pool. It belongs to the Send using it, or
// to the Pool while idle.
type poolConn struct {
	c      *Client
	host   *poolHost
	idleAt time.Time // when it last became idle
	sends  int
}

// Send sends one message to the server at addr ("host:port") over a
// connection of the Pool, as Client.Send does, and returns its Result and
// outcome. Send is not retried on another connection once the transaction
// has started: its failure is returned.
//
// Send returns an error that matches ErrClosed after Close; the error of dialing (or of Auth)
// for a new connection; the context's error, matched by errors.Is, if ctx is
// done while it waits for a connection; otherwise what Client.Send returns.
func (p *Pool) Send(ctx context.Context, addr string, env *Envelope, msg io.Reader) (*Result, error) {
	pc, err := p.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	res, err := pc.c.Send(ctx, env, msg)
	pc.sends++
	p.put(pc)
	return res, err
}

// Close closes the idle connections with QUIT, stops the idle timer and
// makes Sends waiting for a connection, and later Sends, return
// an error that matches ErrClosed. A connection in use is closed with QUIT when its Send
// finishes. Close waits for the QUITs, which are bounded by a few seconds
// in all, and for a running reap of idle connections. It returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.timerSet && p.timer.Stop() {
		p.timerSet = false
		p.timerRuns.Done()
	}
	var idle []*poolConn
	for _, h := range p.hosts {
		idle = append(idle, h.idle...)
		h.idle = nil
		for _, w := range h.waiting {
			close(w)
		}
		h.waiting = nil
	}
	p.mu.Unlock()
	p.retire(idle...)
	p.timerRuns.Wait()
	return nil
}

// get returns a connection to addr: an idle one, a new one, or one
// returned by another Send while this one waits.
func (p *Pool) get(ctx context.Context, addr string) (*poolConn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		h := p.hosts[addr]
		if h == nil {
			h = &poolHost{addr: addr}
			if p.hosts == nil {
				p.hosts = make(map[string]*poolHost)
			}
			p.hosts[addr] = h
		}
		now := time.Now()
		if n := len(h.idle); n > 0 && now.Sub(h.idle[n-1].idleAt) >= p.idleTimeout() {
			// The timer is late: every idle connection is past its time.
			expired := h.idle
			h.idle = nil
			p.mu.Unlock()
			p.retire(expired...)
			continue
		}
		if n := len(h.idle); n > 0 {
			pc := h.idle[n-1]
			h.idle[n-1] = nil
			h.idle = h.idle[:n-1]
			p.mu.Unlock()
			if now.Sub(pc.idleAt) < p.checkIdle() {
				return pc, nil
			}
			if err := p.check(ctx, pc); err != nil {
				p.retire(pc)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
				}
				continue
			}
			return pc, nil
		}
		if h.open < p.maxConns() {
			h.open++
			p.mu.Unlock()
			return p.dial(ctx, h)
		}
		w := make(chan *poolConn, 1)
		h.waiting = append(h.waiting, w)
		p.mu.Unlock()
		return p.wait(ctx, h, w)
	}
}

// wait waits for a connection handed over on w. A nil one hands over the
// right to dial.
func (p *Pool) wait(ctx context.Context, h *poolHost, w chan *poolConn) (*poolConn, error) {
	select {
	case pc, ok := <-w:
		if !ok {
			return nil, errPoolClosed
		}
		if pc == nil {
			return p.dial(ctx, h)
		}
		return pc, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	for i, x := range h.waiting {
		if x == w {
			h.waiting = append(h.waiting[:i], h.waiting[i+1:]...)
			p.mu.Unlock()
			return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
		}
	}
	p.mu.Unlock()
	// Something was handed over as ctx ended: pass it on.
	if pc, ok := <-w; ok {
		if pc == nil {
			p.mu.Lock()
			p.gone(h)
			p.mu.Unlock()
		} else {
			p.put(pc)
		}
	}
	return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
}

// dial opens a new connection to h for the slot already counted in h.open.
func (p *Pool) dial(ctx context.Context, h *poolHost) (*poolConn, error) {
	var d Dialer
	if p.Dialer != nil {
		d = *p.Dialer
	}
	pc := &poolConn{host: h}
	c, err := d.Dial(ctx, h.addr)
	if err == nil && p.Auth != nil {
		if err = c.AuthContext(ctx, p.Auth); err != nil {
			pc.c = c
			p.retire(pc)
			return nil, err
		}
	}
	if err != nil {
		p.mu.Lock()
		p.gone(h)
		p.mu.Unlock()
		return nil, err
	}
	pc.c = c
	return pc, nil
}

// check sends RSET on a connection that sat idle.
func (p *Pool) check(ctx context.Context, pc *poolConn) error {
	ctx, cancel := context.WithTimeout(ctx, poolCheckTimeout)
	defer cancel()
	return pc.c.ResetContext(ctx)
}

// put gives a connection back after a Send: to a waiting Send, to the idle
// list, or to retire.
func (p *Pool) put(pc *poolConn) {
	reuse := pc.c.err == nil && pc.c.closing == nil &&
		(p.MaxMessagesPerConn <= 0 || pc.sends < p.MaxMessagesPerConn)
	p.mu.Lock()
	if !reuse || p.closed {
		p.mu.Unlock()
		p.retire(pc)
		return
	}
	h := pc.host
	if len(h.waiting) > 0 {
		w := h.waiting[0]
		h.waiting = h.waiting[1:]
		w <- pc
		p.mu.Unlock()
		return
	}
	pc.idleAt = time.Now()
	h.idle = append(h.idle, pc)
	if !p.timerSet {
		p.arm(p.idleTimeout())
	}
	p.mu.Unlock()
}

// arm sets the idle timer; p.mu is held and the timer is not pending.
func (p *Pool) arm(d time.Duration) {
	p.timerRuns.Add(1)
	p.timerSet = true
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.reap)
	} else {
		p.timer.Reset(d)
	}
}

// reap closes the connections idle for IdleTimeout and sets the timer for
// the next one to expire.
func (p *Pool) reap() {
	defer p.timerRuns.Done()
	p.mu.Lock()
	p.timerSet = false
	if p.closed {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	timeout := p.idleTimeout()
	var expired []*poolConn
	var next time.Duration
	for _, h := range p.hosts {
		i := 0
		for i < len(h.idle) && now.Sub(h.idle[i].idleAt) >= timeout {
			i++
		}
		expired = append(expired, h.idle[:i]...)
		rest := copy(h.idle, h.idle[i:])
		clear(h.idle[rest:])
		h.idle = h.idle[:rest]
		if len(h.idle) > 0 {
			if d := h.idle[0].idleAt.Add(timeout).Sub(now); next == 0 || d < next {
				next = d
			}
		}
	}
	if next > 0 {
		p.arm(next)
	}
	p.mu.Unlock()
	p.retire(expired...)
}

// retire closes connections: with QUIT when they are still usable, all
// QUITs bounded together by a few seconds. Their slots are then free.
func (p *Pool) retire(pcs ...*poolConn) {
	if len(pcs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), poolQuitTimeout)
	for _, pc := range pcs {
		if pc.c.err == nil && pc.c.closing == nil {
			pc.c.QuitContext(ctx)
		}
		pc.c.Close()
	}
	cancel()
	p.mu.Lock()
	for _, pc := range pcs {
		p.gone(pc.host)
	}
	p.mu.Unlock()
}

// gone frees a slot of h, handing it to a waiting Send if there is one;
// p.mu is held.
func (p *Pool) gone(h *poolHost) {
	h.open--
	if len(h.waiting) > 0 && !p.closed {
		w := h.waiting[0]
		h.waiting = h.waiting[1:]
		h.open++
		w <- nil
		return
	}
	if h.open == 0 && len(h.idle) == 0 && len(h.waiting) == 0 && p.hosts[h.addr] == h {
		delete(p.hosts, h.addr)
	}
}

func (p *Pool) maxConns() int {
	if p.MaxConns <= 0 {
		return defaultMaxConns
	}
	return p.MaxConns
}

func (p *Pool) idleTimeout() time.Duration {
	if p.IdleTimeout <= 0 {
		return defaultIdleTimeout
	}
	return p.IdleTimeout
}

func (p *Pool) checkIdle() time.Duration {
	if p.checkAfter != 0 {
		return p.checkAfter
	}
	return poolCheckAfter
}
