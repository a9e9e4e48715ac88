package smtp

import (
	"errors"
	"os"
	"sync"
	"time"
)

// A pump reads replies on a goroutine of its own while the caller goes on
// writing, so that a server which answers as it reads can never block
// against a client that is still writing (RFC 2920 §3.1: "deadlock").
// Replies still go to their commands strictly in order.
//
// The pump reads only while a reply is due, so it is idle, not blocked on
// the network, whenever every reply has been read. Its goroutine ends when
// the pump is stopped or the connection fails; it never outlives the call
// or the Batch that started it. A stopped pump is kept by its Client and
// started again for the next Batch, channels, timer and queue included.
type pump struct {
	c        *Client
	mu       sync.Mutex
	toRead   cmdFIFO // written, reply not read yet, oldest first
	err      error   // the read failure that stopped the goroutine
	stopping bool    // stopPump asks the goroutine to end once idle
	work     chan struct{}
	ready    chan struct{}
	running  sync.WaitGroup
	timer    *time.Timer
}

// startPump starts reading replies concurrently; stopPump ends it.
func (c *Client) startPump() {
	p := c.spare
	if p == nil {
		p = &pump{c: c, work: make(chan struct{}, 1), ready: make(chan struct{}, 1)}
	}
	c.spare = nil
	p.err, p.stopping = nil, false
	drain(p.work)
	drain(p.ready)
	p.toRead.reset()
	for _, x := range c.pending.items() {
		p.toRead.push(x)
	}
	c.unhanded, c.readAhead = 0, 0
	c.pump = p
	p.running.Add(1)
	go p.run()
}

// drain empties a wake-up channel.
func drain(ch chan struct{}) {
	select {
	case <-ch:
	default:
	}
}

// stopPump waits for the reader goroutine to end. Every reply due must have
// been read, or the connection have failed; otherwise the connection is
// closed, since the reader is in the middle of a reply.
func (c *Client) stopPump() {
	p := c.pump
	if p == nil {
		return
	}
	if c.pending.len() > 0 && c.err == nil {
		c.fail(errors.New("smtp: replies still due when pipelining ended"))
	}
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	wake(p.work)
	p.running.Wait()
	if p.timer != nil {
		p.timer.Stop()
	}
	p.toRead.reset() // what a failure left: the spare holds no Cmd
	c.pump, c.spare = nil, p
	// Replies read before a failure still count: a restart needs to know
	// which recipients were accepted.
	for _, x := range c.pending.items() {
		if !x.read {
			break
		}
		x.done = true
		if !x.Reply.matches(x.cmd.expect) {
			x.Err = x.Reply.err()
		}
	}
	c.pending.reset()
	c.unhanded, c.readAhead = 0, 0
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// add gives the pump xs, whose replies are due, oldest first.
func (p *pump) add(xs []*Cmd) {
	p.mu.Lock()
	for _, x := range xs {
		p.toRead.push(x)
	}
	p.mu.Unlock()
	wake(p.work)
}

// readAhead returns how many of xs, from the first, have their replies
// read, or -1 if none has and the pump has failed (next reports it). The
// caller may use the replies it counts without locking again.
func (p *pump) readAhead(xs []*Cmd) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(xs) && xs[n].read {
		n++
	}
	if n == 0 && p.err != nil {
		return -1
	}
	return n
}

// burst bounds the replies the pump reads before it hands them over.
const burst = 16

func (p *pump) run() {
	defer p.running.Done()
	for {
		p.mu.Lock()
		for p.toRead.len() == 0 {
			if p.stopping {
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			<-p.work
			p.mu.Lock()
		}
		// The replies due, up to burst of them: each is the consumer's
		// again only once read is set.
		var xs [burst]*Cmd
		n := copy(xs[:], p.toRead.items())
		p.mu.Unlock()

		// The first may wait for the network; the others are read only
		// while they are in the buffer whole, so that a reply read is
		// never held back waiting for the next one.
		k := 0
		var err error
		for k < n && (k == 0 || p.c.rr.buffered()) {
			if err = p.c.rr.read(&xs[k].reply); err != nil {
				break
			}
			k++
		}

		p.mu.Lock()
		for _, x := range xs[:k] {
			x.Reply = &x.reply
			x.read = true
			p.toRead.pop()
		}
		if err != nil {
			p.err = err
			p.mu.Unlock()
			wake(p.ready)
			return
		}
		p.mu.Unlock()
		wake(p.ready)
	}
}

// wait waits until x's reply has been read, until the deadline of timeout
// (and of the call) if it has to block; the deadline is worked out only
// then, so that a reply already read costs no clock reading.
func (p *pump) wait(x *Cmd, timeout time.Duration) error {
	var expired <-chan time.Time
	armed := false
	defer func() {
		if expired != nil {
			p.timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		read, err := x.read, p.err
		p.mu.Unlock()
		if read {
			return nil
		}
		if err != nil {
			return err
		}
		if !armed {
			armed = true
			if deadline := p.c.deadline(timeout); !deadline.IsZero() {
				d := time.Until(deadline)
				if p.timer == nil {
					p.timer = time.NewTimer(d)
				} else {
					p.timer.Reset(d)
				}
				expired = p.timer.C
			}
		}
		select {
		case <-p.ready:
		case <-expired:
			return os.ErrDeadlineExceeded
		}
	}
}
