package main

import (
	"context"
	"fmt"
	"net"
	"net/smtp"
)

// runNetSMTP sends w with Go's net/smtp the way a program that reuses one
// connection does: Mail, Rcpt for each recipient, Data, write, Close,
// then Reset before the next message; Quit at the end.
func runNetSMTP(ctx context.Context, addr string, w workload) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.example"); err != nil {
		return err
	}
	for range w.messages {
		if err := sendNetSMTP(c, w.from, w.to, w.body); err != nil {
			return err
		}
		if err := c.Reset(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return c.Quit()
}

func sendNetSMTP(c *smtp.Client, from string, to []string, body []byte) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write(body); err != nil {
		return err
	}
	return wc.Close()
}

// copyNetSMTP sends one message with net/smtp over DATA.
func copyNetSMTP(ctx context.Context, addr string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.example"); err != nil {
		return err
	}
	if err := sendNetSMTP(c, sender, recipients[:1], msg); err != nil {
		return err
	}
	return c.Quit()
}

// copyRaw writes msg to a discard.Sink over plain TCP, half-closes and
// waits for the sink's "ok", which it sends when it has read everything.
func copyRaw(ctx context.Context, addr string, msg []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var ack [3]byte
	if n, err := c.Read(ack[:]); n == 0 {
		return fmt.Errorf("raw TCP: no acknowledgement: %v", err)
	}
	return nil
}
