package smtp

import (
	"context"
	"fmt"
	"io"
	"slices"
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
	// poolQuitTimeout bounds the QUIT of a connection the Pool closes.
	poolQuitTimeout = 5 * time.Second
)

// A Pool sends messages from many goroutines over a few connections to
// each server, pipelined: concurrent Sends to one address queue up, first
// in first out, and each connection sends the queued messages one after
// the other as a Batch does. With PIPELINING the next transaction goes out
// with the end of the previous message's data (about one round trip per
// message and connection); with CHUNKING as well, a window of transactions
// is in flight (far less than one round trip per message). Each Send still
// returns its own Result and error, in its own goroutine, once its
// transaction's replies are read. The zero value is ready to use. A Pool
// is safe for concurrent use by multiple goroutines; its fields must not
// be changed after the first Send.
//
// Fairness is first come, first served per address: one goroutine that
// queues many messages cannot starve the others, since each waits its turn
// in the same queue.
//
// A connection goes on as long as messages are queued for its address.
// When the queue is empty it waits for the replies still due, and then for
// the next message. A connection that waited less than two seconds is
// reused as it is: the session is then in its initial state (RFC 5321
// §4.1.1.4). One that waited longer is checked with RSET first (RFC 5321
// §4.1.1.5), and if RSET fails it is closed and its message goes to
// another connection, so a connection the server dropped while idle does
// not fail a Send.
//
// A connection is closed instead of reused after a connection-level error
// (the Client is unusable), after any 421 reply (the server is closing the
// channel, RFC 5321 §3.8), after MaxMessagesPerConn messages (QUIT goes with
// the end of the last one), and when it has waited IdleTimeout for a
// message (with QUIT).
//
// A Send that carries a ClientTrace in its context (WithClientTrace) is
// sent alone on its connection, not pipelined with others, so that the
// trace sees its commands and replies only.
//
// Close the Pool when done with it: no goroutine of the Pool runs after
// Close returns.
type Pool struct {
	// Dialer connects to the servers; nil means a zero Dialer. Its Trace
	// hooks, if any, are called for every connection of the Pool, so they
	// may be called concurrently.
	Dialer *Dialer
	// Auth, if not nil, authenticates each new connection before its first
	// transaction.
	Auth Auth
	// MaxConns is the number of connections to one address at most:
	// sending, idle, being dialed or being closed. Zero means 4.
	MaxConns int
	// IdleTimeout is how long a connection waits for a message before it
	// is closed with QUIT. Zero means a minute.
	IdleTimeout time.Duration
	// MaxMessagesPerConn, if positive, closes a connection with QUIT after
	// that many messages on it.
	MaxMessagesPerConn int
	// Resolver finds the mail exchangers of a domain for Deliver; nil
	// means a zero Resolver.
	Resolver *Resolver
	// MXPolicy, if not nil, decides for Deliver which mail exchangers may
	// be used and how their connections are protected (DANE, MTA-STS: see
	// the mx module). Without one, Deliver uses opportunistic STARTTLS
	// without authentication (RFC 7435).
	MXPolicy MXPolicy
	// Limiter, if not nil, shapes the traffic to each address: a
	// connection waits for its Conn place before it dials and for a
	// Message slot before it sends each message (the Send's context
	// bounds that wait; nothing of a Send is written before its slot), and
	// the outcome of every transaction is Observed. A RateLimiter does it
	// within the process; redislimit across processes.
	Limiter Limiter

	mu      sync.Mutex
	hosts   map[string]*poolHost
	stats   map[string]*PoolStats
	closed  bool
	workers sync.WaitGroup // the connections' goroutines
	stop    context.CancelFunc
	ctx     context.Context // ends at Close: dials and idle waits

	checkAfter time.Duration // for tests; zero means poolCheckAfter
}

// poolHost is the queue and the connections of one address.
type poolHost struct {
	key    string    // addr, and the host name and mode of sec
	sec    *Security // how its connections are protected, from an MXPolicy
	addr   string
	queue  []*queuedSend // Sends no connection has taken yet, oldest first
	conns  int           // sending, idle, being dialed or being closed
	idle   []*poolWorker // connections waiting for a message
	coming int           // connections about to look at the queue (poolConn.comeBack)
}

// queuedSend is one Send: what to send, and its outcome once done is closed.
type queuedSend struct {
	ctx   context.Context
	env   *Envelope
	msg   io.Reader
	taken bool // a connection has taken it (guarded by Pool.mu)
	done  chan struct{}
	res   *Result
	err   error
}

// poolWorker is a connection waiting for a message.
type poolWorker struct {
	wake chan struct{} // a message was queued, or the Pool is closing
}

// Send sends one message to the server at addr ("host:port") over a
// connection of the Pool, pipelined with the other Sends to addr, and
// returns its Result and outcome, as Client.Send does. Send is not retried
// on another connection once its transaction has started: its failure is
// returned.
//
// The context bounds the whole Send. A Send whose context ends before a
// connection has taken it is withdrawn: nothing of it was written, and it
// returns the context's error. Once taken, its transaction is on the wire,
// pipelined with others: when the context ends then, the connection is
// closed (never leaving a command half-written as a whole command), Send
// returns the context's error, and the other messages in flight on that
// connection fail as on any broken connection. A message whose final "."
// was sent may have been delivered all the same.
//
// Send returns an error that matches ErrClosed after Close, or when Close
// is called while it is queued; the error of dialing (or of Auth) when no
// connection to addr could be opened; otherwise what Client.Send returns.
func (p *Pool) Send(ctx context.Context, addr string, env *Envelope, msg io.Reader) (*Result, error) {
	return p.send(ctx, Target{Addr: addr}, env, msg)
}

// send is Send to a target, whose Security, if any, applies to the
// connections the Pool opens for it.
func (p *Pool) send(ctx context.Context, t Target, env *Envelope, msg io.Reader) (*Result, error) {
	addr := t.Addr
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
	}
	s := &queuedSend{ctx: ctx, env: env, msg: msg, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPoolClosed
	}
	h := p.host(t)
	h.queue = append(h.queue, s)
	p.dispatch(h)
	p.mu.Unlock()
	select {
	case <-s.done:
		p.count(addr, s)
		return s.res, s.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	if !s.taken {
		if i := slices.Index(h.queue, s); i >= 0 {
			h.queue = slices.Delete(h.queue, i, i+1)
		}
		p.mu.Unlock()
		return nil, fmt.Errorf("smtp: %w", context.Cause(ctx))
	}
	p.mu.Unlock()
	<-s.done // the connection is being closed
	p.count(addr, s)
	if s.err != nil {
		return s.res, fmt.Errorf("smtp: %w: %w", context.Cause(ctx), s.err)
	}
	return s.res, nil
}

// Close makes later Sends, and the Sends still queued, return an error
// that matches ErrClosed; it closes the idle connections with QUIT and
// waits for the connections that are sending to finish the messages they
// have taken and close with QUIT, and for dials in progress to stop. It
// returns nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.stop != nil {
		p.stop()
	}
	for _, h := range p.hosts {
		for _, s := range h.queue {
			s.finish(nil, errPoolClosed)
		}
		h.queue = nil
		for _, w := range h.idle {
			w.wake <- struct{}{}
		}
		h.idle = nil
	}
	p.mu.Unlock()
	p.workers.Wait()
	return nil
}

// finish records the outcome of s and wakes its Send.
func (s *queuedSend) finish(res *Result, err error) {
	s.res, s.err = res, err
	close(s.done)
}

// host returns the poolHost of t, made if need be; p.mu is held. Targets
// share connections when they have the same address and, under an
// MXPolicy, the same host name and security mode.
func (p *Pool) host(t Target) *poolHost {
	key := t.Addr
	if t.Security != nil {
		key += "\x00" + t.Host + "\x00" + t.Security.Mode
	}
	h := p.hosts[key]
	if h == nil {
		h = &poolHost{key: key, addr: t.Addr, sec: t.Security}
		if p.hosts == nil {
			p.hosts = make(map[string]*poolHost)
			p.ctx, p.stop = context.WithCancel(context.Background())
		}
		p.hosts[key] = h
	}
	return h
}

// dispatch finds a connection for the queue of h: it wakes an idle one,
// leaves the queue to the connections about to look at it while they are
// as many as the Sends queued, or starts a new one if h has fewer than
// MaxConns; p.mu is held.
func (p *Pool) dispatch(h *poolHost) {
	if len(h.queue) == 0 {
		return
	}
	if n := len(h.idle); n > 0 {
		w := h.idle[n-1]
		h.idle = h.idle[:n-1]
		w.wake <- struct{}{}
		return
	}
	if len(h.queue) > h.coming && h.conns < p.maxConns() {
		h.conns++
		p.stat(h.addr).Dials++
		h.coming++ // the new connection looks at the queue once dialed
		p.workers.Add(1)
		go p.work(h)
	}
}

// take returns the oldest queued Send of h that is still wanted, marked as
// taken, or nil; p.mu is held.
func (p *Pool) take(h *poolHost) *queuedSend {
	for len(h.queue) > 0 {
		s := h.queue[0]
		h.queue = slices.Delete(h.queue, 0, 1) // in place: the array is reused
		if err := s.ctx.Err(); err != nil {
			s.finish(nil, fmt.Errorf("smtp: %w", context.Cause(s.ctx)))
			continue
		}
		s.taken = true
		return s
	}
	return nil
}

// gone accounts for a connection of h that is closed, or that could not
// be opened (dialErr). The queue gets a new connection after a close; a
// failed dial leaves it to the connections still open, and when none is
// left the queued Sends get its error. p.mu is held.
func (p *Pool) gone(h *poolHost, dialErr error) {
	h.conns--
	if dialErr != nil {
		h.coming-- // counted by dispatch for the dial
	}
	switch {
	case dialErr != nil && h.conns == 0:
		for _, s := range h.queue {
			s.finish(nil, dialErr)
		}
		h.queue = nil
	case dialErr == nil && !p.closed:
		p.dispatch(h)
	}
	if h.conns == 0 && len(h.queue) == 0 && p.hosts[h.key] == h {
		delete(p.hosts, h.key)
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
