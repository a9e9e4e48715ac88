package smtp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A Limiter shapes a Pool's traffic to each destination: how many
// connections may be open to it at once and how fast messages may go to
// it. A destination is the address a Pool sends to ("host:port"). The
// Pool asks before it dials and before it writes each message, and tells
// the Limiter the outcome of each transaction, so that a Limiter can slow
// down for a server that asks it to.
//
// RateLimiter shapes within one process; the module
// github.com/resmtp/smtp/redislimit shares the limits among processes and
// machines through Redis. Implementations must be safe for concurrent use.
type Limiter interface {
	// Conn waits until one more connection to dest may be opened and
	// returns the function that gives its place back, which the Pool
	// calls once when the connection is closed. It returns ctx's error if
	// ctx ends first.
	Conn(ctx context.Context, dest string) (release func(), err error)
	// Message waits until one more message may be sent to dest. It
	// returns ctx's error if ctx ends first.
	Message(ctx context.Context, dest string) error
	// Observe is told the reply that ended each transaction to dest, or
	// refused it: its code and enhanced code (zero if none). It must not
	// block.
	Observe(dest string, code int, enhanced EnhancedCode)
}

// A RateLimiter is a Limiter within one process: per destination, at most
// MaxConns connections and Rate messages a second, in bursts of at most
// Burst. The zero value limits nothing. Its fields must not be changed
// after first use.
//
// It slows down for a server that asks it to (RFC 5321 §4.2.1, RFC 3463):
// a 421 (closing, often "too many connections"), a 450 or 451 (busy, or
// greylisting), or an enhanced code 4.7.x (policy: rate limits, RFC 7372)
// or 4.3.2 (system not accepting messages) halves the destination's Rate
// and MaxConns, down to a sixteenth and one connection, for Backoff. Once
// Backoff has passed, every 10 transactions in a row that end with 2yz
// double them again, up to the configured values. The policy is the same
// for every destination.
type RateLimiter struct {
	// MaxConns bounds the connections open to one destination; zero
	// means no bound (the Pool's MaxConns still applies).
	MaxConns int
	// Rate bounds the messages a second to one destination; zero means
	// no bound.
	Rate float64
	// Burst is how many messages may go at once after a quiet time; zero
	// means 1.
	Burst int
	// Backoff is how long a slow-down signal holds; zero means a minute,
	// a negative value disables slowing down.
	Backoff time.Duration

	mu    sync.Mutex
	dests map[string]*rateDest
}

// rateDest is the state of one destination.
type rateDest struct {
	conns   int
	freed   chan struct{} // closed and replaced when a connection is released
	tat     time.Time     // theoretical arrival time of the next message (GCRA)
	penalty int           // the Rate and MaxConns are divided by 2^penalty
	until   time.Time     // no recovery before
	good    int           // 2yz outcomes in a row since the last change
}

// wake tells the Conns waiting for a place to look again; the limiter's
// mu is held.
func (s *rateDest) wake() {
	close(s.freed)
	s.freed = make(chan struct{})
}

// maxPenalty is the most a destination is slowed down: a sixteenth.
const maxPenalty = 4

// recoverAfter is the run of 2yz outcomes that undoes one halving.
const recoverAfter = 10

var _ Limiter = (*RateLimiter)(nil)

func (l *RateLimiter) dest(d string) *rateDest {
	s := l.dests[d]
	if s == nil {
		s = &rateDest{freed: make(chan struct{})}
		if l.dests == nil {
			l.dests = make(map[string]*rateDest)
		}
		l.dests[d] = s
	}
	return s
}

// Conn waits for a place among the destination's MaxConns (halved while
// slowed down, one at least).
func (l *RateLimiter) Conn(ctx context.Context, dest string) (func(), error) {
	for {
		l.mu.Lock()
		s := l.dest(dest)
		limit := l.MaxConns
		if limit > 0 {
			limit = max(limit>>s.penalty, 1)
		}
		if limit <= 0 || s.conns < limit {
			s.conns++
			l.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { l.release(s) }) }, nil
		}
		freed := s.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, fmt.Errorf("smtp: waiting for a connection to %s: %w", dest, context.Cause(ctx))
		}
	}
}

func (l *RateLimiter) release(s *rateDest) {
	l.mu.Lock()
	s.conns--
	s.wake()
	l.mu.Unlock()
}

// Message waits for the destination's next slot: the generic cell rate
// algorithm, one message every 1/Rate seconds (longer while slowed down),
// Burst of them at once after a quiet time.
func (l *RateLimiter) Message(ctx context.Context, dest string) error {
	if l.Rate <= 0 {
		return ctx.Err()
	}
	for {
		l.mu.Lock()
		s := l.dest(dest)
		interval := time.Duration(float64(time.Second) / l.Rate * float64(int(1)<<s.penalty))
		now := time.Now()
		tat := s.tat
		if tat.Before(now) {
			tat = now
		}
		allowAt := tat.Add(-time.Duration(max(l.Burst, 1)-1) * interval)
		if !now.Before(allowAt) {
			s.tat = tat.Add(interval)
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(allowAt.Sub(now))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("smtp: waiting to send to %s: %w", dest, context.Cause(ctx))
		}
	}
}

// Observe slows the destination down on a slow-down signal and speeds it
// up again after runs of 2yz outcomes, as the type's documentation says.
func (l *RateLimiter) Observe(dest string, code int, enhanced EnhancedCode) {
	if l.Backoff < 0 {
		return
	}
	backoff := l.Backoff
	if backoff == 0 {
		backoff = time.Minute
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.dest(dest)
	now := time.Now()
	switch {
	case SlowDown(code, enhanced):
		s.penalty = min(s.penalty+1, maxPenalty)
		s.until, s.good = now.Add(backoff), 0
	case code/100 == 2 && s.penalty > 0:
		if s.good++; s.good >= recoverAfter && !now.Before(s.until) {
			s.penalty--
			s.good = 0
			s.wake() // a waiting Conn may fit now
		}
	}
}

// SlowDown reports whether a reply asks the client to send less: a 421, a
// 450 or 451, or an enhanced code 4.7.x or 4.3.2.
func SlowDown(code int, enhanced EnhancedCode) bool {
	switch {
	case code == 421, code == 450, code == 451:
		return true
	case enhanced.Class == 4 && (enhanced.Subject == 7 || enhanced.Subject == 3 && enhanced.Detail == 2):
		return true
	}
	return false
}

// outcomeCode returns the reply code and enhanced code that ended a
// transaction, or refused it, for a Limiter; zero when no reply did (a
// broken connection).
func outcomeCode(res *Result, err error) (int, EnhancedCode) {
	var e *Error
	var re *RecipientsError
	switch {
	case err == nil && res != nil && res.Reply != nil:
		return res.Reply.Code, res.Reply.Enhanced
	case errors.As(err, &re) && len(re.Refused) > 0 && re.Refused[0].Reply != nil:
		return re.Refused[0].Reply.Code, re.Refused[0].Reply.Enhanced
	case errors.As(err, &e):
		return e.Code, e.Enhanced
	}
	return 0, EnhancedCode{}
}
