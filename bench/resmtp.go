package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/resmtp/smtp"
)

// This library's clients: registered here, after net/smtp.
func init() {
	clients = append(clients,
		client{name: "resmtp PIPELINING", run: runResmtp(false)},
		client{name: "resmtp PIPELINING+CHUNKING", run: runResmtp(true)},
	)
	copiers = append(copiers,
		copier{"resmtp DATA", false, copyResmtp(false)},
		copier{"resmtp BDAT", false, copyResmtp(true)},
	)
}

// runResmtp sends w with this library's bulk API: one Batch, every message
// handed to Send without waiting for its result, and Quit, which waits for
// all of them (QUIT goes with the last message). With chunking false the
// Dialer does not use CHUNKING even if the server offers it.
func runResmtp(chunking bool) runFunc {
	return func(ctx context.Context, addr string, w workload) error {
		return sendResmtp(ctx, addr, w.messages, w.from, w.to, w.body, chunking)
	}
}

// copyResmtp sends one message with the bulk API, over BDAT if chunking,
// else over DATA.
func copyResmtp(chunking bool) copyFunc {
	return func(ctx context.Context, addr string, msg []byte) error {
		return sendResmtp(ctx, addr, 1, sender, recipients[:1], msg, chunking)
	}
}

func sendResmtp(ctx context.Context, addr string, messages int, from string, to []string, body []byte, chunking bool) error {
	d := &smtp.Dialer{
		LocalName:       "bench.example",
		TLSPolicy:       smtp.TLSDisabled,
		DisableChunking: !chunking,
	}
	c, err := d.Dial(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := c.NewBatch(ctx)
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		failed   int
		firstErr error
	)
	done := func(res *smtp.Result, err error) {
		if err != nil {
			mu.Lock()
			if failed++; firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
	}
	for range messages {
		env := &smtp.Envelope{From: from, To: smtp.Recipients(to...)}
		if err := b.Send(env, bytes.NewReader(body), done); err != nil {
			return err
		}
	}
	if err := b.Quit(); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 {
		return fmt.Errorf("%d of %d messages failed; first: %w", failed, messages, firstErr)
	}
	return nil
}
