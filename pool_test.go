package smtp

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// newTestPool returns a Pool that dials srv without TLS and is closed when
// the test ends.
func newTestPool(t *testing.T, p *Pool) *Pool {
	t.Helper()
	if p.Dialer == nil {
		p.Dialer = &Dialer{}
	}
	p.Dialer.LocalName = "client.example"
	if p.Dialer.TLSConfig == nil {
		p.Dialer.TLSPolicy = TLSDisabled
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func poolSend(ctx context.Context, p *Pool, srv *smtptest.Server, i int) error {
	_, err := p.Send(ctx, srv.Addr, &Envelope{From: "a@example.org", To: Recipients(fmt.Sprintf("r%d@example.com", i))},
		strings.NewReader(testMessage(i)))
	return err
}

// poolLastLines returns the last n lines of a connection's transcript.
func poolLastLines(srv *smtptest.Server, conn, n int) []string {
	tr := srv.Transcript(conn)
	return tr[max(0, len(tr)-n):]
}

// poolCommands returns the commands a connection received, in order.
func poolCommands(srv *smtptest.Server, conn int) []string {
	var verbs []string
	for _, l := range srv.Transcript(conn) {
		if c, ok := strings.CutPrefix(l, "C: "); ok && !strings.HasPrefix(c, "<") {
			verb, _, _ := strings.Cut(c, " ")
			verbs = append(verbs, verb)
		}
	}
	return verbs
}

// poolQuit reports whether the client ended connection conn with QUIT.
func poolQuit(srv *smtptest.Server, conn int) bool {
	l := poolLastLines(srv, conn, 4)
	return len(l) == 4 && l[0] == "C: QUIT" && strings.HasPrefix(l[1], "S: 221 ") && l[3] == "* close: QUIT"
}

// assertPoolQuit asserts that connection conn was ended with QUIT, allowing
// the server a moment to record the close.
func assertPoolQuit(t *testing.T, srv *smtptest.Server, conn int, msgAndArgs ...any) {
	t.Helper()
	assert.Eventually(t, func() bool { return poolQuit(srv, conn) }, 2*time.Second, time.Millisecond, msgAndArgs...)
}

// poolWaitGoroutines waits a little for the goroutine count to be back at n
// (not with require.Eventually, which runs its condition on a goroutine).
func poolWaitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			require.Failf(t, "goroutines left", "%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// poolFlushing reports whether connection conn has received a whole
// message text: its client is past queueing more and waits for replies.
func poolFlushing(srv *smtptest.Server, conn int) bool {
	return slices.ContainsFunc(srv.Transcript(conn), func(l string) bool { return strings.HasPrefix(l, "C: <data") })
}

// heldReader is a message whose first Read waits for release: the
// connection sending it is busy until then.
type heldReader struct {
	started, release chan struct{}
	r                io.Reader
}

func (h *heldReader) Read(p []byte) (int, error) {
	if h.started != nil {
		close(h.started)
		h.started = nil
		<-h.release
	}
	return h.r.Read(p)
}

// holdConn starts a Send to srv whose message is held, so that the
// connection that took it stays busy; release lets it go on and returns
// the Send's error.
func holdConn(t *testing.T, p *Pool, srv *smtptest.Server, i int) (release func() error) {
	t.Helper()
	started, rel := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := p.Send(context.Background(), srv.Addr, &Envelope{From: "a@example.org", To: Recipients(fmt.Sprintf("r%d@example.com", i))},
			&heldReader{started: started, release: rel, r: strings.NewReader(testMessage(i))})
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		require.FailNow(t, "the held Send was not taken")
	}
	return func() error {
		close(rel)
		return <-done
	}
}

// Many goroutines share a few connections; every message arrives exactly
// once and every reported success is a stored message.
func TestPool_ConcurrentSendersShareMaxConns(t *testing.T) {
	for _, ext := range []struct {
		name string
		ext  []string
		tls  bool
	}{{"pipelined", extPipelining, false}, {"lockstep", extLockstep[:3], false}, {"chunking", extChunking, false},
		{"STARTTLS", nil, true}} {
		t.Run(ext.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: ext.ext})
			d := &Dialer{}
			if ext.tls {
				d.TLSConfig = srv.ClientTLSConfig()
				d.TLSPolicy = TLSRequired
			}
			p := newTestPool(t, &Pool{MaxConns: 3, Dialer: d})
			const senders, each = 8, 25
			var wg sync.WaitGroup
			errs := make(chan error, senders*each)
			for g := range senders {
				wg.Go(func() {
					for j := range each {
						errs <- poolSend(context.Background(), p, srv, g*each+j)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			seen := make(map[string]int)
			for _, m := range srv.Messages() {
				seen[string(m.Data)]++
			}
			require.Len(t, seen, senders*each)
			for i := range senders * each {
				assert.Equal(t, 1, seen[testMessage(i)], "message %d", i)
			}
			assert.LessOrEqual(t, srv.Conns(), 3)
			for _, m := range srv.Messages() {
				require.Equal(t, ext.tls, m.TLS)
			}
		})
	}
}

// MaxConns counts per address: a busy server does not hold up another.
func TestPool_MaxConnsIsPerAddress(t *testing.T) {
	busy := newTestServer(t, smtptest.Config{Extensions: extPipelining, Faults: smtptest.Faults{Delay: map[string]time.Duration{"MAIL": 500 * time.Millisecond}}})
	other := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{MaxConns: 1})
	slow := make(chan error, 1)
	go func() { slow <- poolSend(context.Background(), p, busy, 0) }()
	require.Eventually(t, func() bool { return busy.Conns() == 1 }, 2*time.Second, 5*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.NoError(t, poolSend(ctx, p, other, 1), "not held up by the busy server's one connection")
	require.NoError(t, <-slow)
	assert.Equal(t, 1, busy.Conns())
	assert.Equal(t, 1, other.Conns())
}

// Sequential Sends reuse one connection, with no RSET between successful
// transactions.
func TestPool_SequentialSendsReuseOneConnection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	var replies atomic.Int32
	p := newTestPool(t, &Pool{Dialer: &Dialer{Trace: &ClientTrace{ReplyRead: func(*Reply) { replies.Add(1) }}}})
	for i := range 5 {
		require.NoError(t, poolSend(context.Background(), p, srv, i))
	}
	assert.Equal(t, 1, srv.Conns())
	assert.Len(t, srv.Messages(), 5)
	assert.NotContains(t, poolCommands(srv, 1), "RSET")
	assert.Equal(t, int32(2+5*4), replies.Load(), "the Dialer's Trace sees greeting, EHLO, and MAIL, RCPT, DATA, . of each")
}

// A failed transaction leaves the connection usable: the Client sends RSET
// before the next MAIL on it.
func TestPool_RefusedTransactionKeepsTheConnection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{})
	_, err := p.Send(context.Background(), srv.Addr, &Envelope{From: "a@example.org", To: Recipients("reject1@example.com")}, strings.NewReader("x\r\n"))
	var re *RecipientsError
	require.ErrorAs(t, err, &re)
	require.NoError(t, poolSend(context.Background(), p, srv, 1))
	assert.Equal(t, 1, srv.Conns())
	assert.Contains(t, poolCommands(srv, 1), "RSET")
	assert.Len(t, srv.Messages(), 1)
}

// A connection is retired after a 421 (RFC 5321 §3.8) or a connection
// failure; the failing Send reports it, and the next one dials anew.
func TestPool_RetiresBrokenConnections(t *testing.T) {
	tests := []struct {
		name   string
		faults smtptest.Faults
		check  func(t *testing.T, err error)
	}{
		{"421 to MAIL", smtptest.Faults{Reply: map[string]string{"MAIL": "421 4.3.2 shutting down"}}, func(t *testing.T, err error) {
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, 421, e.Code)
		}},
		{"421 to RCPT", smtptest.Faults{Reply: map[string]string{"RCPT": "421 4.3.2 shutting down"}}, func(t *testing.T, err error) {
			var re *RecipientsError
			require.ErrorAs(t, err, &re)
		}},
		{"421 to the data", smtptest.Faults{Reply: map[string]string{".": "421 4.3.2 shutting down"}}, func(t *testing.T, err error) {
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, 421, e.Code)
		}},
		{"cut after RCPT", smtptest.Faults{CloseAfterCommand: "RCPT"}, func(t *testing.T, err error) {
			require.Error(t, err)
		}},
		{"cut in the data", smtptest.Faults{CloseAfterDataOctets: 20}, func(t *testing.T, err error) {
			require.Error(t, err)
		}},
		{"final reply lost", smtptest.Faults{CloseBeforeReply: "."}, func(t *testing.T, err error) {
			require.Error(t, err)
		}},
	}
	for _, tt := range tests {
		for _, ext := range []struct {
			name string
			ext  []string
		}{{"pipelined", extPipelining}, {"lockstep", extLockstep[:3]}, {"chunking", extChunking}} {
			t.Run(tt.name+"/"+ext.name, func(t *testing.T) {
				srv := newTestServer(t, smtptest.Config{Extensions: ext.ext, ConnFaults: map[int]smtptest.Faults{2: tt.faults}})
				p := newTestPool(t, &Pool{MaxConns: 2})
				// Connection 1 is busy with a held message; a second Send
				// at the same time dials connection 2, which fails.
				release := holdConn(t, p, srv, 0)
				err := poolSend(context.Background(), p, srv, 1)
				tt.check(t, err)
				require.NoError(t, release())
				require.Equal(t, 2, srv.Conns())

				before := len(srv.Messages())
				for i := 2; i < 5; i++ {
					require.NoError(t, poolSend(context.Background(), p, srv, i))
				}
				assert.Equal(t, 2, srv.Conns(), "connection 1 goes on")
				assert.Len(t, srv.Messages(), before+3)

				// Connection 2 is gone from the Pool: with connection 1
				// busy again, a second Send dials a new 3.
				release = holdConn(t, p, srv, 5)
				require.NoError(t, poolSend(context.Background(), p, srv, 6))
				require.NoError(t, release())
				assert.Equal(t, 3, srv.Conns())
				assert.NotContains(t, poolCommands(srv, 2)[len(poolCommands(srv, 2))-1], "QUIT", "no QUIT after a 421 or a cut")
			})
		}
	}
}

// The same, simply: a 421 or a cut on the only connection, then the next
// Send dials a new one and succeeds; a failure is never a delivery reported
// as success.
func TestPool_NextSendAfterFailureDialsAnew(t *testing.T) {
	tests := []struct {
		name   string
		faults smtptest.Faults
	}{
		{"421 to MAIL", smtptest.Faults{Reply: map[string]string{"MAIL": "421 4.3.2 shutting down"}}},
		{"cut after RCPT", smtptest.Faults{CloseAfterCommand: "RCPT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: extPipelining, ConnFaults: map[int]smtptest.Faults{1: tt.faults}})
			p := newTestPool(t, &Pool{})
			require.Error(t, poolSend(context.Background(), p, srv, 0))
			assert.Empty(t, srv.Messages())
			require.NoError(t, poolSend(context.Background(), p, srv, 1))
			assert.Equal(t, 2, srv.Conns())
			require.Len(t, srv.Messages(), 1)
			assert.Equal(t, 2, srv.Messages()[0].ConnIndex)
		})
	}
}

// A connection idle for IdleTimeout is closed with QUIT by the Pool's timer,
// and the next Send dials anew.
func TestPool_IdleTimeoutQuitsTheConnection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{IdleTimeout: 100 * time.Millisecond})
	start := time.Now()
	require.NoError(t, poolSend(context.Background(), p, srv, 0))
	assert.False(t, poolQuit(srv, 1), "not before IdleTimeout")
	assertPoolQuit(t, srv, 1)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	require.NoError(t, poolSend(context.Background(), p, srv, 1))
	assert.Equal(t, 2, srv.Conns())
}

// Connections idle for different times expire one by one.
func TestPool_IdleTimerFollowsEachConnection(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{IdleTimeout: 300 * time.Millisecond})
	release := holdConn(t, p, srv, 0)                             // connection 1
	require.NoError(t, poolSend(context.Background(), p, srv, 1)) // connection 2, idle from now
	time.Sleep(150 * time.Millisecond)
	require.NoError(t, release()) // connection 1, idle from now
	assertPoolQuit(t, srv, 2)
	assert.False(t, poolQuit(srv, 1), "connection 1 has not expired yet")
	assertPoolQuit(t, srv, 1)
}

// A connection idle for a while is checked with RSET before reuse; one
// that fails the check is closed and the Send goes on another, unharmed.
func TestPool_IdleConnectionIsCheckedWithRSET(t *testing.T) {
	tests := []struct {
		name   string
		faults smtptest.Faults
		conns  int
	}{
		{"alive", smtptest.Faults{}, 1},
		{"421 to RSET", smtptest.Faults{Reply: map[string]string{"RSET": "421 4.4.2 idle too long"}}, 2},
		{"closed by the server", smtptest.Faults{CloseAfterCommand: "RSET"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: extPipelining, ConnFaults: map[int]smtptest.Faults{1: tt.faults}})
			p := newTestPool(t, &Pool{})
			p.checkAfter = 50 * time.Millisecond
			require.NoError(t, poolSend(context.Background(), p, srv, 0))
			require.NoError(t, poolSend(context.Background(), p, srv, 1)) // at once: no check
			assert.Equal(t, []string{"EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA"}, poolCommands(srv, 1))
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, poolSend(context.Background(), p, srv, 2))
			assert.Equal(t, tt.conns, srv.Conns())
			assert.Equal(t, "RSET", poolCommands(srv, 1)[7])
			assert.Len(t, srv.Messages(), 3)
		})
	}
}

// MaxMessagesPerConn closes a connection with QUIT after that many Sends.
func TestPool_MaxMessagesPerConn(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{MaxMessagesPerConn: 2})
	for i := range 5 {
		require.NoError(t, poolSend(context.Background(), p, srv, i))
	}
	assert.Equal(t, 3, srv.Conns())
	assertPoolQuit(t, srv, 1)
	assertPoolQuit(t, srv, 2)
	assert.Len(t, srv.Messages(), 5)
}

// With every connection in use, Send waits: for a connection handed back,
// or until its context ends.
func TestPool_WaitsAtMaxConns(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		wantErr  error
		maxDelay time.Duration
	}{
		{"deadline before a connection is free", 50 * time.Millisecond, context.DeadlineExceeded, 150 * time.Millisecond},
		{"connection handed over", 5 * time.Second, nil, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: extPipelining,
				Faults: smtptest.Faults{Delay: map[string]time.Duration{".": 200 * time.Millisecond}}})
			p := newTestPool(t, &Pool{MaxConns: 1})
			first := make(chan error, 1)
			go func() { first <- poolSend(context.Background(), p, srv, 0) }()
			require.Eventually(t, func() bool { return poolFlushing(srv, 1) }, 2*time.Second, time.Millisecond, "first Send waiting for its reply")

			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			err := poolSend(ctx, p, srv, 1)
			assert.Less(t, time.Since(start), tt.maxDelay)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.NoError(t, <-first)
			assert.Equal(t, 1, srv.Conns())
			// The slot was not lost: the Pool still sends.
			require.NoError(t, poolSend(context.Background(), p, srv, 2))
			assert.Equal(t, 1, srv.Conns())
		})
	}
}

// A failed dial is returned to the caller and frees its slot.
func TestPool_FailedDialFreesItsSlot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	p := newTestPool(t, &Pool{MaxConns: 1})
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Send(ctx, addr, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, strings.NewReader("x\r\n"))
		cancel()
		var ne *net.OpError
		require.ErrorAs(t, err, &ne)
	}
	p.mu.Lock()
	assert.Empty(t, p.hosts, "nothing kept for an address without connections")
	p.mu.Unlock()
}

// A refused AUTH is returned as the dial error; the connection is closed
// with QUIT and its slot freed.
func TestPool_AuthFailureIsADialError(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "AUTH PLAIN"}, Users: map[string]string{"joe": "pw"}})
	p := newTestPool(t, &Pool{MaxConns: 1, Auth: PlainAuth("", "joe", "wrong", "127.0.0.1")})
	var e *Error
	require.ErrorAs(t, poolSend(context.Background(), p, srv, 0), &e)
	assert.Equal(t, 535, e.Code)
	assertPoolQuit(t, srv, 1)

	p2 := newTestPool(t, &Pool{MaxConns: 1, Auth: PlainAuth("", "joe", "pw", "127.0.0.1")})
	require.NoError(t, poolSend(context.Background(), p2, srv, 1))
	require.NoError(t, poolSend(context.Background(), p2, srv, 2))
	assert.Equal(t, 2, srv.Conns())
	assert.Equal(t, "joe", srv.Messages()[1].AuthUser)
}

// Close quits idle connections, fails queued and later Sends with
// ErrClosed, lets a Send in progress complete and quits its connection,
// and leaves no goroutine behind.
func TestPool_Close(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	other := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	before := runtime.NumGoroutine()
	p := &Pool{MaxConns: 1, Dialer: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}}
	require.NoError(t, poolSend(context.Background(), p, other, 0)) // idle
	release := holdConn(t, p, srv, 1)                               // in progress
	queued := make(chan error, 1)
	go func() { queued <- poolSend(context.Background(), p, srv, 2) }()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.hosts[srv.Addr].queue) == 1
	}, 2*time.Second, time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	require.ErrorIs(t, <-queued, ErrClosed, "a queued Send")
	assertPoolQuit(t, other, 1, "idle connection quit")
	assert.ErrorIs(t, poolSend(context.Background(), p, srv, 3), ErrClosed, "a later Send")
	select {
	case <-closed:
		require.FailNow(t, "Close returned before the Send in progress ended")
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, release(), "a Send in progress completes")
	require.NoError(t, <-closed)
	assertPoolQuit(t, srv, 1, "and its connection is quit")
	assert.Len(t, srv.Messages(), 1)
	require.NoError(t, p.Close(), "a second Close")

	poolWaitGoroutines(t, before)
}

// A Send queued when Close is called gets ErrClosed at once, even while
// the connection is busy.
func TestPool_CloseWakesWaitingSends(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{MaxConns: 1})
	release := holdConn(t, p, srv, 0)
	waiting := make(chan error, 1)
	go func() { waiting <- poolSend(context.Background(), p, srv, 1) }()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.hosts[srv.Addr].queue) == 1
	}, 2*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	require.ErrorIs(t, <-waiting, ErrClosed)
	require.NoError(t, release())
	require.NoError(t, <-closed)
	assertPoolQuit(t, srv, 1)
}

// Close while the idle timer is reaping waits for the reap, and no timer
// goroutine is left.
func TestPool_CloseRacesTheIdleTimer(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	before := runtime.NumGoroutine()
	for i := range 20 {
		p := &Pool{IdleTimeout: time.Duration(i%5) * time.Millisecond, Dialer: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}}
		require.NoError(t, poolSend(context.Background(), p, srv, i))
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		require.NoError(t, p.Close())
		p.mu.Lock()
		assert.Empty(t, p.hosts)
		p.mu.Unlock()
	}
	poolWaitGoroutines(t, before)
	assert.Len(t, srv.Messages(), 20)
	for i := 1; i <= 20; i++ {
		assertPoolQuit(t, srv, i, "connection %d", i)
	}
}

// Stats counts, per destination, the connections dialed and open and the
// Sends by outcome.
func TestPool_Stats(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{})
	require.NoError(t, poolSend(context.Background(), p, srv, 0))
	require.NoError(t, poolSend(context.Background(), p, srv, 1))
	send := func(to string) error {
		_, err := p.Send(context.Background(), srv.Addr, &Envelope{From: "a@example.org", To: Recipients(to)}, strings.NewReader("x\r\n"))
		return err
	}
	require.Error(t, send("reject@example.com"))
	require.Error(t, send("temp@example.com"))
	st := p.Stats()
	require.Len(t, st, 1)
	assert.Equal(t, srv.Addr, st[0].Dest)
	assert.Equal(t, int64(1), st[0].Dials)
	assert.Equal(t, 1, st[0].Open)
	assert.Equal(t, int64(2), st[0].Delivered)
	assert.Equal(t, int64(1), st[0].Bounced)
	assert.Equal(t, int64(1), st[0].Deferred)
	assert.Positive(t, st[0].Octets)
}

// A server that stops reading holds up only the Sends to it: Sends to
// another address go on, and the stalled one ends with its context.
func TestPool_StalledServerDoesNotBlockOthers(t *testing.T) {
	stalled := newTestServer(t, smtptest.Config{Extensions: extPipelining, Faults: smtptest.Faults{Stall: "DATA"}})
	other := newTestServer(t, smtptest.Config{Extensions: extPipelining})
	p := newTestPool(t, &Pool{MaxConns: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stuck := make(chan error, 2)
	for i := range 2 {
		go func() { stuck <- poolSend(ctx, p, stalled, i) }()
	}
	for i := range 5 {
		quick, qcancel := context.WithTimeout(context.Background(), time.Second)
		require.NoError(t, poolSend(quick, p, other, 10+i))
		qcancel()
	}
	cancel()
	for range 2 {
		require.ErrorIs(t, <-stuck, context.Canceled)
	}
	assert.Empty(t, stalled.Messages())
}
