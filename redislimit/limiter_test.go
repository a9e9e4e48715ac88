package redislimit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// startRedis starts a redis-server of its own on a loopback port, without
// persistence, stopped when the test ends, and returns its address. The
// tests skip without redis-server, except in CI (CI=true), where .ci/run
// installs it.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	require.Eventually(t, func() bool { return c.Ping(context.Background()).Err() == nil }, 10*time.Second, 20*time.Millisecond, "redis-server did not start")
	return addr
}

func newLimiter(t *testing.T, addr string, l Limiter) *Limiter {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	l.Redis = c
	l.Prefix = "test:" + t.Name() + ":"
	return &l
}

// Places are shared by every Limiter on the Redis server, given back by
// release, and lost by a holder that stops renewing its lease.
func TestLimiter_Conn(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	a := newLimiter(t, addr, Limiter{MaxConns: 2, LeaseTTL: 300 * time.Millisecond, Poll: 10 * time.Millisecond})
	b := newLimiter(t, addr, Limiter{MaxConns: 2, LeaseTTL: 300 * time.Millisecond, Poll: 10 * time.Millisecond})
	r1, err := a.Conn(ctx, "mx:25")
	require.NoError(t, err)
	_, err = b.Conn(ctx, "mx:25")
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = a.Conn(short, "mx:25")
	require.ErrorIs(t, err, context.DeadlineExceeded, "two places in all, whoever holds them")
	time.Sleep(400 * time.Millisecond)
	_, err = a.Conn(short, "mx:25")
	require.ErrorIs(t, err, context.DeadlineExceeded, "renewed leases outlive LeaseTTL")
	r1()
	r3, err := b.Conn(ctx, "mx:25")
	require.NoError(t, err, "a released place is free")
	r3()
	_, err = a.Conn(ctx, "other:25")
	require.NoError(t, err, "per destination")

	// A holder that dies: its renewing stops, so its place goes after
	// the lease.
	dead := newLimiter(t, addr, Limiter{MaxConns: 1, LeaseTTL: 200 * time.Millisecond, Poll: 10 * time.Millisecond})
	require.NoError(t, dead.Redis.(*redis.Client).ZAdd(ctx, dead.key("conns", "gone:25"), redis.Z{Score: float64(time.Now().Add(200 * time.Millisecond).UnixMilli()), Member: "dead-worker"}).Err())
	start := time.Now()
	release, err := dead.Conn(ctx, "gone:25")
	require.NoError(t, err)
	release()
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond, "not before the dead holder's lease ends")
}

// Message spaces the messages of every Limiter on the server 1/Rate apart
// after a burst; a slow-down signal halves the rate for all of them.
func TestLimiter_MessageAndSlowDown(t *testing.T) {
	addr := startRedis(t)
	ctx := context.Background()
	a := newLimiter(t, addr, Limiter{Rate: 100, Burst: 2, Backoff: time.Hour})
	b := newLimiter(t, addr, Limiter{Rate: 100, Burst: 2, Backoff: time.Hour})
	start := time.Now()
	for i := range 12 {
		l := a
		if i%2 == 1 {
			l = b
		}
		require.NoError(t, l.Message(ctx, "mx:25"))
	}
	assert.GreaterOrEqual(t, time.Since(start), 95*time.Millisecond, "12 messages at 100/s after a burst of 2")
	assert.Less(t, time.Since(start), 2*time.Second)

	a.Observe("mx:25", 421, smtp.EnhancedCode{Class: 4, Subject: 7, Detail: 0})
	b.Observe("mx:25", 550, smtp.EnhancedCode{Class: 5, Subject: 1, Detail: 1}) // no signal
	pen, err := a.Redis.(*redis.Client).Get(ctx, a.key("slow", "mx:25")).Int()
	require.NoError(t, err)
	assert.Equal(t, 1, pen)
	start = time.Now()
	for range 6 {
		require.NoError(t, b.Message(ctx, "mx:25"))
	}
	assert.GreaterOrEqual(t, time.Since(start), 95*time.Millisecond, "half the rate: 6 at 50/s")

	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	slowRate := newLimiter(t, addr, Limiter{Rate: 0.5})
	require.NoError(t, slowRate.Message(short, "x:25"))
	require.ErrorIs(t, slowRate.Message(short, "x:25"), context.DeadlineExceeded)
}

const (
	workers       = 3
	workerSends   = 50
	sharedRate    = 50.0
	sharedConns   = 2
	workerEnvAddr = "RESMTP_REDISLIMIT_WORKER"
)

// Worker processes, each with a Pool of its own, share one limit of
// sharedRate messages a second and sharedConns connections to one server:
// the server never sees more, and together they reach at least 90 % of the
// rate.
func TestLimiter_WorkerProcessesShareTheLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the shared run takes three seconds")
	}
	redisAddr := startRedis(t)
	srv, err := smtptest.NewServer(smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME"}})
	require.NoError(t, err)
	defer srv.Close()
	var wg sync.WaitGroup
	outs := make([][]byte, workers)
	errs := make([]error, workers)
	for w := range workers {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), workerEnvAddr+"="+redisAddr+","+srv.Addr+","+t.Name())
		wg.Go(func() { outs[w], errs[w] = cmd.CombinedOutput() })
	}
	wg.Wait()
	for w := range workers {
		require.NoError(t, errs[w], "worker %d:\n%s", w, outs[w])
	}
	msgs := srv.Messages()
	require.Len(t, msgs, workers*workerSends)
	span := msgs[len(msgs)-1].At.Sub(msgs[0].At)
	rate := float64(len(msgs)-1) / span.Seconds()
	t.Logf("%d messages in %v: %.1f/s (limit %.0f/s); at most %d connections and %d messages in a second",
		len(msgs), span.Round(time.Millisecond), rate, sharedRate, srv.MaxOpen(), srv.MaxPerSecond())
	assert.LessOrEqual(t, srv.MaxOpen(), sharedConns, "connections at once, all workers together")
	// Rate and Burst, and one for the jitter between a message's slot and
	// the moment the server takes it.
	assert.LessOrEqual(t, srv.MaxPerSecond(), int(sharedRate)+1+1, "messages in any second, all workers together")
	assert.GreaterOrEqual(t, rate, 0.9*sharedRate, "together they use the budget")
}

// TestWorkerProcess is one worker of TestLimiter_WorkerProcessesShareTheLimits,
// run as a process of its own.
func TestWorkerProcess(t *testing.T) {
	env := os.Getenv(workerEnvAddr)
	if env == "" {
		t.Skip("run by TestLimiter_WorkerProcessesShareTheLimits")
	}
	parts := strings.SplitN(env, ",", 3)
	rc := redis.NewClient(&redis.Options{Addr: parts[0]})
	defer rc.Close()
	lim := &Limiter{Redis: rc, Prefix: "test:" + parts[2] + ":", MaxConns: sharedConns, Rate: sharedRate, Poll: 10 * time.Millisecond}
	p := &smtp.Pool{Dialer: &smtp.Dialer{LocalName: "worker.example", TLSPolicy: smtp.TLSDisabled}, MaxConns: 4, Limiter: lim}
	defer p.Close()
	var wg sync.WaitGroup
	for i := range workerSends {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			env := &smtp.Envelope{From: "w@example.org", To: smtp.Recipients(fmt.Sprintf("r%d@example.com", i))}
			_, err := p.Send(ctx, parts[1], env, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}
