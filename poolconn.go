package smtp

import (
	"context"
	"slices"
	"time"
)

// poolConn is one connection of a Pool and the goroutine that runs it: it
// takes the queued Sends of its address and sends them, pipelined, until
// it is closed.
type poolConn struct {
	p       *Pool
	h       *poolHost
	c       *Client
	release func()      // gives the Limiter's place back, if any
	sends   int         // messages sent on the connection
	idleAt  time.Time   // when it last ran out of messages
	coming  bool        // counted in h.coming: about to look at the queue
	w       poolWorker  // how next waits in h.idle, kept for the next wait
	timer   *time.Timer // next's idle timer, likewise
	// bctx is the context of the connection's Batches, which a Send whose
	// context ends cancels (bcancel); a new one is made only then.
	bctx    context.Context
	bcancel context.CancelCauseFunc
}

// work runs a new connection of h: it dials, then sends until done.
func (p *Pool) work(h *poolHost) {
	defer p.workers.Done()
	release := func() {}
	var c *Client
	var err error
	if p.Limiter != nil {
		release, err = p.Limiter.Conn(p.ctx, h.addr)
	}
	if err == nil {
		if c, err = p.dial(h); err != nil {
			release()
		}
	}
	if err != nil {
		p.mu.Lock()
		p.gone(h, err)
		p.mu.Unlock()
		return
	}
	cn := &poolConn{p: p, h: h, c: c, release: release, coming: true} // counted by dispatch
	cn.run()
}

// dial opens and authenticates a connection to h; Close stops it.
func (p *Pool) dial(h *poolHost) (*Client, error) {
	var d Dialer
	if p.Dialer != nil {
		d = *p.Dialer
	}
	d = secureDialer(d, h.sec)
	c, err := d.Dial(p.ctx, h.addr)
	reportTLS(h.sec, c, err)
	err = policyError(h.sec, err)
	if err == nil && p.Auth != nil {
		if err = c.AuthContext(p.ctx, p.Auth); err != nil {
			c.Close()
		}
	}
	return c, err
}

// run sends batches of queued messages until the connection is to be
// closed, then closes it.
func (cn *poolConn) run() {
	defer func() {
		if cn.bcancel != nil {
			cn.bcancel(nil)
		}
	}()
	s := cn.next()
	for s != nil {
		if !cn.idleAt.IsZero() && time.Since(cn.idleAt) >= cn.p.checkIdle() && !cn.check() {
			cn.giveBack(s)
			break
		}
		var ok bool
		if s, ok = cn.batch(s); !ok {
			break
		}
		if s == nil {
			cn.idleAt = time.Now()
			s = cn.next()
		}
	}
	cn.close()
}

// next returns the next queued Send, waiting for one for up to the Pool's
// IdleTimeout; nil means the connection is to be closed.
func (cn *poolConn) next() *queuedSend {
	p, h := cn.p, cn.h
	p.mu.Lock()
	defer p.mu.Unlock()
	cn.arrived()
	if cn.timer == nil {
		cn.timer = time.NewTimer(p.idleTimeout())
		cn.w.wake = make(chan struct{}, 1)
	} else {
		cn.timer.Reset(p.idleTimeout())
	}
	timer, w := cn.timer, &cn.w
	defer timer.Stop()
	for {
		if s := p.take(h); s != nil || p.closed {
			return s
		}
		drain(w.wake) // a wake that came as the timer fired, last time
		h.idle = append(h.idle, w)
		p.mu.Unlock()
		select {
		case <-w.wake:
			p.mu.Lock()
		case <-timer.C:
			p.mu.Lock()
			if i := slices.Index(h.idle, w); i >= 0 {
				h.idle = slices.Delete(h.idle, i, i+1)
				return nil
			}
			// Woken as the timer fired: see what is queued.
		}
	}
}

// comeBack says, as an outcome is handed to its Send, that the connection
// is about to look at the queue: a Send queued meanwhile waits for it
// instead of opening another connection. The next Send of a sequential
// sender thus stays on the connection of its last one.
func (cn *poolConn) comeBack() {
	cn.p.mu.Lock()
	if !cn.coming {
		cn.coming = true
		cn.h.coming++
	}
	cn.p.mu.Unlock()
}

// arrived undoes comeBack; p.mu is held.
func (cn *poolConn) arrived() {
	if cn.coming {
		cn.coming = false
		cn.h.coming--
	}
}

// check sends RSET on a connection that waited long for a message and
// reports whether it answered.
func (cn *poolConn) check() bool {
	ctx, cancel := context.WithTimeout(context.Background(), poolCheckTimeout)
	defer cancel()
	return cn.c.ResetContext(ctx) == nil
}

// giveBack puts s back at the head of the queue, for another connection.
func (cn *poolConn) giveBack(s *queuedSend) {
	p, h := cn.p, cn.h
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		s.finish(nil, errPoolClosed)
		return
	}
	s.taken = false
	h.queue = slices.Insert(h.queue, 0, s)
}

// batch sends s and the messages queued after it over one Batch, until the
// queue is empty, the connection fails or has sent its MaxMessagesPerConn.
// A Send that carries a ClientTrace is sent alone: batch returns it, not
// yet sent, as next when it comes after others. ok reports whether the
// connection may go on.
func (cn *poolConn) batch(s *queuedSend) (next *queuedSend, ok bool) {
	c := cn.c
	if ContextClientTrace(s.ctx) != nil {
		if lim := cn.p.Limiter; lim != nil {
			if err := lim.Message(s.ctx, cn.h.addr); err != nil {
				s.finish(nil, err)
				return nil, true
			}
		}
		res, err := c.Send(s.ctx, s.env, s.msg)
		cn.sends++
		cn.observe(res, err)
		cn.comeBack()
		s.finish(res, err)
		return nil, cn.usable()
	}
	// A Send whose context ends once its transaction is taken closes the
	// connection: the Batch's context ends with it.
	if cn.bctx == nil || cn.bctx.Err() != nil {
		if cn.bcancel != nil {
			cn.bcancel(nil)
		}
		cn.bctx, cn.bcancel = context.WithCancelCause(context.Background())
	}
	cancel := cn.bcancel
	b, err := c.NewBatch(cn.bctx)
	if err != nil {
		s.finish(nil, err)
		return nil, false
	}
	for s != nil {
		if lim := cn.p.Limiter; lim != nil {
			if err := lim.Message(s.ctx, cn.h.addr); err != nil {
				s.finish(nil, err) // withdrawn: nothing of it was written
				if s = cn.takeQueued(); s != nil && ContextClientTrace(s.ctx) != nil {
					next, s = s, nil
				}
				continue
			}
		}
		cur := s
		stop := func() bool { return true }
		if cur.ctx.Done() != nil {
			stop = context.AfterFunc(cur.ctx, func() { cancel(context.Cause(cur.ctx)) })
		}
		done := func(res *Result, err error) {
			stop()
			cn.observe(res, err)
			cn.comeBack()
			cur.finish(res, err)
		}
		if err := b.Send(cur.env, cur.msg, done); err != nil {
			done(nil, err)
		} else if cn.p.Limiter != nil {
			// A Batch writes when its buffer fills; shaped, each message
			// goes out when its slot came, not with the next ones.
			c.flush()
		}
		cn.sends++
		if !cn.usable() {
			break
		}
		if s = cn.takeQueued(); s != nil && ContextClientTrace(s.ctx) != nil {
			next, s = s, nil
		}
	}
	if cn.full() && c.err == nil && c.closing == nil {
		b.Quit()
		if next != nil {
			cn.giveBack(next)
		}
		return nil, false
	}
	b.Close()
	return next, cn.usable()
}

// observe tells the Pool's Limiter, if any, how a transaction ended.
func (cn *poolConn) observe(res *Result, err error) {
	if lim := cn.p.Limiter; lim != nil {
		if code, enh := outcomeCode(res, err); code != 0 {
			lim.Observe(cn.h.addr, code, enh)
		}
	}
}

// takeQueued returns the next queued Send without waiting, or nil; with
// nil the connection is still about to look at the queue (in next).
func (cn *poolConn) takeQueued() *queuedSend {
	cn.p.mu.Lock()
	defer cn.p.mu.Unlock()
	s := cn.p.take(cn.h)
	if s != nil {
		cn.arrived()
	}
	return s
}

// full reports whether the connection has sent MaxMessagesPerConn.
func (cn *poolConn) full() bool {
	return cn.p.MaxMessagesPerConn > 0 && cn.sends >= cn.p.MaxMessagesPerConn
}

// usable reports whether the connection may send another message.
func (cn *poolConn) usable() bool {
	return cn.c.err == nil && cn.c.closing == nil && !cn.full()
}

// close ends the connection, with QUIT if it is still usable, and frees
// its place.
func (cn *poolConn) close() {
	c := cn.c
	if c.err == nil && c.closing == nil {
		ctx, cancel := context.WithTimeout(context.Background(), poolQuitTimeout)
		c.QuitContext(ctx)
		cancel()
	}
	c.Close()
	cn.release()
	p := cn.p
	p.mu.Lock()
	cn.arrived()
	p.gone(cn.h, nil)
	p.mu.Unlock()
}
