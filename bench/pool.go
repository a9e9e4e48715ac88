package main

import (
	"bytes"
	"context"
	"errors"
	"net/smtp"
	"sync"
	"sync/atomic"

	resmtp "github.com/resmtp/smtp"
)

// The concurrent workload of issue 11: G goroutines send M messages in all
// (2 KiB, 3 recipients each) to one server, each waiting for a message's
// outcome before it sends its next, as a queue worker does.

// poolConns is the connection limit of the pooled clients.
const poolConns = 4

// A poolClient sends n messages from g goroutines to addr.
type poolClient struct {
	name string
	run  func(ctx context.Context, addr string, g, n int, w workload) error
}

var poolClients = []poolClient{
	{"net/smtp per goroutine", runNetSMTPPerGoroutine},
	{"net/smtp pooled", runNetSMTPPooled},
	{"resmtp Pool PIPELINING", runResmtpPool(false)},
	{"resmtp Pool PIPELINING+CHUNKING", runResmtpPool(true)},
}

// spread runs send for n messages over g goroutines and returns the first
// error.
func spread(g, n int, send func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, g)
	for k := range g {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := send(i); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runNetSMTPPerGoroutine gives each goroutine its own net/smtp client,
// reused with Reset, as a program without a pool does.
func runNetSMTPPerGoroutine(ctx context.Context, addr string, g, n int, w workload) error {
	var wg sync.WaitGroup
	errs := make([]error, g)
	for k := range g {
		mine := n / g
		if k < n%g {
			mine++
		}
		if mine == 0 {
			continue
		}
		wg.Go(func() {
			c, err := smtp.Dial(addr)
			if err != nil {
				errs[k] = err
				return
			}
			defer c.Close()
			for range mine {
				if err := sendNetSMTP(c, w.from, w.to, w.body); err != nil {
					errs[k] = err
					return
				}
				if err := c.Reset(); err != nil {
					errs[k] = err
					return
				}
			}
			errs[k] = c.Quit()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runNetSMTPPooled shares poolConns net/smtp clients among the goroutines
// through a channel: a lock-step pool, the design of
// github.com/knadh/smtppool (which the module proxy here does not serve).
func runNetSMTPPooled(ctx context.Context, addr string, g, n int, w workload) error {
	pool := make(chan *smtp.Client, poolConns)
	for range poolConns {
		c, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		pool <- c
	}
	err := spread(g, n, func(int) error {
		c := <-pool
		defer func() { pool <- c }()
		if err := sendNetSMTP(c, w.from, w.to, w.body); err != nil {
			return err
		}
		return c.Reset()
	})
	for range poolConns {
		(<-pool).Quit()
	}
	return err
}

// runResmtpPool sends through one resmtp Pool of poolConns connections;
// without chunking its Dialer does not use CHUNKING.
func runResmtpPool(chunking bool) func(ctx context.Context, addr string, g, n int, w workload) error {
	return func(ctx context.Context, addr string, g, n int, w workload) error {
		p := &resmtp.Pool{
			Dialer:   &resmtp.Dialer{LocalName: "bench.example", TLSPolicy: resmtp.TLSDisabled, DisableChunking: !chunking},
			MaxConns: poolConns,
		}
		defer p.Close()
		env := &resmtp.Envelope{From: w.from, To: resmtp.Recipients(w.to...)}
		return spread(g, n, func(int) error {
			_, err := p.Send(ctx, addr, env, bytes.NewReader(w.body))
			return err
		})
	}
}
