package smtp

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// Message spaces messages 1/Rate apart after a burst of Burst, per
// destination; a context that ends first returns its error.
func TestRateLimiter_Message(t *testing.T) {
	l := &RateLimiter{Rate: 200, Burst: 5}
	ctx := context.Background()
	start := time.Now()
	for range 5 {
		require.NoError(t, l.Message(ctx, "a:25"))
	}
	assert.Less(t, time.Since(start), 25*time.Millisecond, "the burst goes at once")
	for range 10 {
		require.NoError(t, l.Message(ctx, "a:25"))
	}
	assert.GreaterOrEqual(t, time.Since(start), 45*time.Millisecond, "then one per 5 ms")
	require.NoError(t, l.Message(ctx, "b:25"), "another destination has its own bucket")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	slow := &RateLimiter{Rate: 1}
	require.NoError(t, slow.Message(short, "a:25"))
	require.ErrorIs(t, slow.Message(short, "a:25"), context.DeadlineExceeded)
}

// Conn keeps at most MaxConns places per destination; a released place
// wakes a waiter, and releasing twice counts once.
func TestRateLimiter_Conn(t *testing.T) {
	l := &RateLimiter{MaxConns: 2}
	ctx := context.Background()
	r1, err := l.Conn(ctx, "a:25")
	require.NoError(t, err)
	_, err = l.Conn(ctx, "a:25")
	require.NoError(t, err)
	_, err = l.Conn(ctx, "b:25")
	require.NoError(t, err, "per destination")

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = l.Conn(short, "a:25")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	got := make(chan error, 1)
	go func() {
		_, err := l.Conn(ctx, "a:25")
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	r1()
	r1()
	require.NoError(t, <-got)
	l.mu.Lock()
	assert.Equal(t, 2, l.dests["a:25"].conns)
	l.mu.Unlock()
}

// A slow-down signal halves the destination's rate and connections for
// Backoff; runs of 2yz outcomes after it restore them; other replies and
// other destinations are left alone.
func TestRateLimiter_SlowsDownAndRecovers(t *testing.T) {
	l := &RateLimiter{MaxConns: 8, Rate: 100, Backoff: 30 * time.Millisecond}
	penalty := func(d string) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.dest(d).penalty
	}
	signals := []struct {
		code     int
		enhanced EnhancedCode
		slow     bool
	}{
		{421, EnhancedCode{4, 4, 5}, true},
		{450, EnhancedCode{4, 2, 1}, true},
		{451, EnhancedCode{}, true},
		{452, EnhancedCode{4, 7, 0}, true},
		{452, EnhancedCode{4, 3, 2}, true},
		{452, EnhancedCode{4, 2, 2}, false},
		{550, EnhancedCode{5, 7, 1}, false},
		{250, EnhancedCode{2, 0, 0}, false},
	}
	for _, s := range signals {
		assert.Equal(t, s.slow, SlowDown(s.code, s.enhanced), "%d %v", s.code, s.enhanced)
	}
	for range 6 {
		l.Observe("a:25", 421, EnhancedCode{})
	}
	assert.Equal(t, maxPenalty, penalty("a:25"), "a sixteenth at most")
	assert.Zero(t, penalty("b:25"))
	for range 3 * recoverAfter {
		l.Observe("a:25", 250, EnhancedCode{})
	}
	assert.Equal(t, maxPenalty, penalty("a:25"), "not before Backoff")
	time.Sleep(40 * time.Millisecond)
	for range 2 * recoverAfter {
		l.Observe("a:25", 250, EnhancedCode{})
	}
	assert.Equal(t, maxPenalty-2, penalty("a:25"), "one halving undone per run")
	l.Observe("a:25", 550, EnhancedCode{5, 1, 1})
	assert.Equal(t, maxPenalty-2, penalty("a:25"), "a permanent refusal is no signal")
}

// A Pool with a RateLimiter never has more connections open nor sends more
// messages a second to the server than the limits, whatever the
// concurrency, and delivers everything.
func TestPool_LimiterShapesTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the shaped run takes a second")
	}
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	lim := &RateLimiter{MaxConns: 2, Rate: 40, Burst: 1}
	p := newTestPool(t, &Pool{MaxConns: 8, Limiter: lim})
	const senders, each = 16, 4
	var wg sync.WaitGroup
	start := time.Now()
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, poolSend(context.Background(), p, srv, s*each+i))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	assert.Len(t, srv.Messages(), senders*each)
	assert.LessOrEqual(t, srv.MaxOpen(), 2, "connections at once")
	// Rate and Burst, and one for the jitter between a message's slot and
	// the moment the server takes it.
	assert.LessOrEqual(t, srv.MaxPerSecond(), 40+1+1, "messages in any second")
	assert.GreaterOrEqual(t, elapsed, time.Duration(senders*each-1)*time.Second/40, "the rate bounds the run")
}

// A 421 makes the Pool's RateLimiter slow the destination down: the next
// Sends see half the connections.
func TestPool_LimiterSlowsDownOn421(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining, ConnFaults: map[int]smtptest.Faults{1: {Reply: map[string]string{"MAIL": "421 4.7.0 too many connections"}}}})
	lim := &RateLimiter{MaxConns: 4, Backoff: time.Hour}
	p := newTestPool(t, &Pool{Limiter: lim})
	err := poolSend(context.Background(), p, srv, 0)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 421, e.Code)
	lim.mu.Lock()
	assert.Equal(t, 1, lim.dests[srv.Addr].penalty)
	lim.mu.Unlock()
	// The server counts connection 1 as open until it has seen it close.
	require.Eventually(t, func() bool {
		tr := srv.Transcript(1)
		return len(tr) > 0 && strings.HasPrefix(tr[len(tr)-1], "* close")
	}, 2*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() { assert.NoError(t, poolSend(context.Background(), p, srv, 1+i)) })
	}
	wg.Wait()
	assert.LessOrEqual(t, srv.MaxOpen(), 2)
	assert.Len(t, srv.Messages(), 12)
}
