// Package redislimit is an smtp.Limiter whose limits hold for every
// process that shares one Redis server: worker processes on several
// machines that send to the same destination together stay within one
// budget of connections and messages a second, where per-process limits
// would overshoot it by the number of workers.
//
// Each limit is one Lua script, run atomically by Redis on Redis's own
// clock (TIME), so that the workers' clocks need not agree:
//
//   - a connection's place is a member of a sorted set, scored with the
//     time its lease ends; the holder renews the lease while the
//     connection is open, so a worker that dies holding places loses them
//     after LeaseTTL;
//   - the message rate is the generic cell rate algorithm (GCRA): one key
//     holds the theoretical arrival time of the destination's next
//     message;
//   - a slow-down signal (smtp.SlowDown) sets a penalty key that halves
//     the destination's rate and connections, for every worker, until it
//     expires Backoff after the last signal.
//
// The keys are Prefix + "conns:", "tat:" or "slow:" + the destination.
package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resmtp/smtp"
)

// A Limiter is an smtp.Limiter kept in Redis. Its fields must be set
// before first use and not changed after; a Limiter is safe for
// concurrent use.
type Limiter struct {
	// Redis runs the scripts: a *redis.Client, *redis.ClusterClient (all
	// keys of a destination share a hash tag) or redis.UniversalClient.
	Redis redis.Scripter
	// Prefix starts every key; "" means "resmtp:".
	Prefix string
	// MaxConns bounds the connections open to one destination by all
	// workers together; zero means no bound.
	MaxConns int
	// Rate bounds the messages a second to one destination by all workers
	// together; zero means no bound.
	Rate float64
	// Burst is how many messages may go at once after a quiet time; zero
	// means 1.
	Burst int
	// Backoff is how long a slow-down signal halves a destination's rate
	// and connections (each signal within it halves them again, down to a
	// sixteenth and one connection); zero means a minute, negative
	// disables slowing down.
	Backoff time.Duration
	// LeaseTTL is how long a connection's place outlives a worker that
	// stopped renewing it; zero means 30 seconds. Places are renewed every
	// third of it.
	LeaseTTL time.Duration
	// Poll is how often a worker waiting for a connection's place tries
	// again; zero means 50 ms.
	Poll time.Duration
}

var _ smtp.Limiter = (*Limiter)(nil)

// key returns the key of kind for dest. The destination is in a hash tag,
// so that a cluster keeps a destination's keys on one node.
func (l *Limiter) key(kind, dest string) string {
	p := l.Prefix
	if p == "" {
		p = "resmtp:"
	}
	return p + kind + ":{" + dest + "}"
}

// acquire takes a place if fewer than the limit (halved by the penalty)
// are held: KEYS conns, slow; ARGV lease in ms, limit, member.
var acquire = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local pen = tonumber(redis.call('GET', KEYS[2]) or '0')
limit = math.max(math.floor(limit / 2 ^ pen), 1)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then
	return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return 1
`)

// renew extends a place's lease if it is still held: KEYS conns; ARGV
// lease in ms, member.
var renew = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
	return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
return 1
`)

// release gives a place back: KEYS conns; ARGV member.
var release = redis.NewScript(`
return redis.call('ZREM', KEYS[1], ARGV[1])
`)

// gcra takes the next message slot, or returns how many microseconds to
// wait for it: KEYS tat, slow; ARGV interval in µs, burst.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pen = tonumber(redis.call('GET', KEYS[2]) or '0')
local interval = tonumber(ARGV[1]) * 2 ^ pen
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then
	tat = now
end
local allow = tat - (burst - 1) * interval
if now < allow then
	return math.ceil(allow - now)
end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return 0
`)

// slow raises the penalty, at most 4, and keeps it for the backoff: KEYS
// slow; ARGV backoff in ms.
var slow = redis.NewScript(`
local pen = math.min(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, 4)
redis.call('SET', KEYS[1], pen, 'PX', tonumber(ARGV[1]))
return pen
`)

func (l *Limiter) lease() time.Duration {
	if l.LeaseTTL <= 0 {
		return 30 * time.Second
	}
	return l.LeaseTTL
}

// Conn waits for a place among the destination's MaxConns, polling every
// Poll, and keeps its lease renewed until the returned function is
// called. It returns ctx's error if ctx ends first, or the error of
// Redis.
func (l *Limiter) Conn(ctx context.Context, dest string) (func(), error) {
	if l.MaxConns <= 0 {
		return func() {}, ctx.Err()
	}
	var id [12]byte
	rand.Read(id[:])
	member := hex.EncodeToString(id[:])
	conns, slowKey := l.key("conns", dest), l.key("slow", dest)
	ttl := l.lease().Milliseconds()
	poll := l.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	for {
		ok, err := acquire.Run(ctx, l.Redis, []string{conns, slowKey}, ttl, l.MaxConns, member).Int()
		if err != nil {
			return nil, fmt.Errorf("redislimit: %w", err)
		}
		if ok == 1 {
			return l.hold(conns, member), nil
		}
		if err := sleep(ctx, poll); err != nil {
			return nil, fmt.Errorf("redislimit: waiting for a connection to %s: %w", dest, err)
		}
	}
}

// hold renews the lease of member until the returned function is called;
// that function gives the place back.
func (l *Limiter) hold(conns, member string) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.lease() / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				renew.Run(ctx, l.Redis, []string{conns}, l.lease().Milliseconds(), member)
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer rcancel()
			// If this fails, the lease ends the place within LeaseTTL.
			release.Run(rctx, l.Redis, []string{conns}, member)
		})
	}
}

// Message waits for the destination's next slot of Rate (with Burst). It
// returns ctx's error if ctx ends first, or the error of Redis.
func (l *Limiter) Message(ctx context.Context, dest string) error {
	if l.Rate <= 0 {
		return ctx.Err()
	}
	interval := int64(1e6 / l.Rate)
	keys := []string{l.key("tat", dest), l.key("slow", dest)}
	for {
		wait, err := gcra.Run(ctx, l.Redis, keys, interval, max(l.Burst, 1)).Int64()
		if err != nil {
			return fmt.Errorf("redislimit: %w", err)
		}
		if wait == 0 {
			return nil
		}
		if err := sleep(ctx, time.Duration(wait)*time.Microsecond); err != nil {
			return fmt.Errorf("redislimit: waiting to send to %s: %w", dest, err)
		}
	}
}

// Observe records a slow-down signal (smtp.SlowDown) for every worker,
// within a second; other outcomes need nothing from Redis, since the
// penalty expires by itself.
func (l *Limiter) Observe(dest string, code int, enhanced smtp.EnhancedCode) {
	if l.Backoff < 0 || !smtp.SlowDown(code, enhanced) {
		return
	}
	backoff := l.Backoff
	if backoff == 0 {
		backoff = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	slow.Run(ctx, l.Redis, []string{l.key("slow", dest)}, backoff.Milliseconds())
}

// sleep waits for d or until ctx ends, and returns ctx's cause then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
