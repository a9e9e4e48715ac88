package scriptpeer

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A Listener accepts connections on 127.0.0.1 and runs a handler on each,
// for tests of a client against raw peers that do what no real server
// would: endless or malformed replies, stalls, resets, a peer that stops
// reading.
type Listener struct {
	Addr string

	ln   net.Listener
	stop chan struct{}
	wg   sync.WaitGroup
	n    atomic.Int32

	mu    sync.Mutex
	conns []net.Conn
}

// A Conn is the peer's side of one connection.
type Conn struct {
	net.Conn
	// N numbers the Listener's connections from 1, in accept order.
	N int
	// R reads the connection, with a 64 KiB buffer.
	R *bufio.Reader
	// Stop is closed when the Listener is closed.
	Stop <-chan struct{}
}

// Listen starts a Listener that runs handler on each connection, on a
// goroutine of its own, and closes the connection when handler returns.
// With readBuffer > 0 each connection's socket receive buffer is set to
// that size, so that a peer that stops reading stops the client's writes
// after a few KiB rather than after the megabytes a loopback buffer can
// grow to. The Listener is closed when the test ends.
func Listen(t testing.TB, readBuffer int, handler func(c *Conn)) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Addr: ln.Addr().String(), ln: ln, stop: make(chan struct{})}
	l.wg.Add(1)
	go l.accept(readBuffer, handler)
	t.Cleanup(func() { l.Close() })
	return l
}

func (l *Listener) accept(readBuffer int, handler func(c *Conn)) {
	defer l.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		select {
		case <-l.stop:
			l.mu.Unlock()
			conn.Close()
			return
		default:
		}
		l.conns = append(l.conns, conn)
		l.mu.Unlock()
		if tc, ok := conn.(*net.TCPConn); ok && readBuffer > 0 {
			tc.SetReadBuffer(readBuffer)
		}
		c := &Conn{Conn: conn, N: int(l.n.Add(1)), R: bufio.NewReaderSize(conn, 64<<10), Stop: l.stop}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer conn.Close()
			handler(c)
		}()
	}
}

// Close stops the Listener: it closes the listening socket and every
// connection, so that a handler streaming forever fails its next write, and
// waits for the handlers. It reports whether they all ended within 3
// seconds. It may be called more than once.
func (l *Listener) Close() bool {
	l.mu.Lock()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(3 * time.Second):
		return false
	}
}

// HangUp closes every connection, to free a client stuck in a write; the
// Listener goes on accepting.
func (l *Listener) HangUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
}
