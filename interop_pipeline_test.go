package smtp_test

// Interop tests of the pipelined, chunked and bulk paths against a real
// Postfix smtpd and smtp-sink (see interop_test.go).

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	smtp "github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/interop"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func interopDial(t *testing.T, addr string, chunking bool) *smtp.Client {
	t.Helper()
	d := &smtp.Dialer{LocalName: "client.resmtp.test", TLSPolicy: smtp.TLSDisabled, DisableChunking: !chunking, ChunkSize: 64 << 10}
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	c, err := d.Dial(ctx, addr)
	require.NoError(t, err, "Dial(%s)", addr)
	t.Cleanup(func() { c.Close() })
	for _, ext := range []string{"PIPELINING", "CHUNKING"} {
		if ext == "PIPELINING" || chunking {
			ok, _ := c.Extension(ext)
			require.True(t, ok, "the server does not offer %s", ext)
		}
	}
	return c
}

// RFC 2920 §3.1 against Postfix: a recipient refused in the middle of a
// pipelined group does not stop the message for the others, with DATA and
// with BDAT (RFC 3030), for a small and a 1 MiB message.
func TestInteropPipelinedSendWithRefusedRecipient(t *testing.T) {
	addr := interop.Postfix(t)
	for _, chunking := range []bool{false, true} {
		for _, size := range []int{0, 1 << 20} {
			t.Run(fmt.Sprintf("chunking=%v/size=%d", chunking, size), func(t *testing.T) {
				c := interopDial(t, addr, chunking)
				marker := interop.Marker(t)
				good := []string{"alice@example.com", "bob@example.org"}
				to := []string{good[0], "reject@example.com", good[1]}
				msg := interopMessage(marker, "sender@example.com", to, "pipelined", append(dotLines, bigBody(size)...)...)
				ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
				defer cancel()
				res, err := c.Send(ctx, &smtp.Envelope{From: "sender@example.com", To: smtp.Recipients(to...)}, bytes.NewReader(msg))
				var re *smtp.RecipientsError
				require.ErrorAs(t, err, &re, "Send: want one 550 refusal for reject@example.com")
				require.Len(t, re.Refused, 1, "Send: %v; want one 550 refusal for reject@example.com", err)
				require.Equal(t, "reject@example.com", re.Refused[0].Addr, "Send: %v; want one 550 refusal for reject@example.com", err)
				require.Equal(t, 550, replyCode(err), "Send: %v; want one 550 refusal for reject@example.com", err)
				require.NotNil(t, res, "Result: want the message accepted for two recipients")
				require.NotNil(t, res.Reply, "Result %+v: want the message accepted for two recipients", res)
				require.Equal(t, 2, res.Accepted(), "Result %+v: want the message accepted for two recipients", res)
				checkDelivered(t, good, marker, msg)
				require.NoError(t, c.Quit(), "Quit")
			})
		}
	}
}

// Bulk over one connection to Postfix, with DATA and with streaming BDAT:
// every message arrives byte-identical and every outcome is reported for
// the right message.
func TestInteropBatch(t *testing.T) {
	addr := interop.Postfix(t)
	for _, chunking := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunking=%v", chunking), func(t *testing.T) {
			c := interopDial(t, addr, chunking)
			ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
			defer cancel()
			b, err := c.NewBatch(ctx)
			require.NoError(t, err)
			const n = 20
			type sent struct {
				marker string
				to     []string
				msg    []byte
			}
			var msgs []sent
			outcomes := make([]error, n)
			reported := 0
			for i := 0; i < n; i++ {
				marker := interop.Marker(t) + fmt.Sprint(i)
				to := []string{"alice@example.com", "bob@example.com"}
				if i == 7 {
					to = []string{"alice@example.com", "reject@example.com"}
				}
				msg := interopMessage(marker, "sender@example.com", to, fmt.Sprint("bulk ", i), dotLines...)
				msgs = append(msgs, sent{marker, to, msg})
				i := i
				err := b.Send(&smtp.Envelope{From: "sender@example.com", To: smtp.Recipients(to...)}, bytes.NewReader(msg),
					func(_ *smtp.Result, err error) { outcomes[i] = err; reported++ })
				require.NoError(t, err, "Send %d", i)
			}
			require.NoError(t, b.Quit(), "Quit")
			require.Equal(t, n, reported, "outcomes reported")
			for i, err := range outcomes {
				if i == 7 {
					var re *smtp.RecipientsError
					if assert.ErrorAs(t, err, &re, "message 7: want one refused recipient") {
						assert.Equal(t, 1, re.Accepted, "message 7: %v; want one refused recipient", err)
					}
				} else {
					assert.NoError(t, err, "message %d", i)
				}
			}
			for i, m := range msgs {
				rcpts := m.to
				if i == 7 {
					rcpts = rcpts[:1]
				}
				checkDelivered(t, rcpts, m.marker, m.msg)
			}
		})
	}
}

// 200 messages to smtp-sink in one Batch: about one round trip each.
func TestInteropSinkBatch(t *testing.T) {
	c := interopDial(t, interop.Sink(t), false)
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()
	b, err := c.NewBatch(ctx)
	require.NoError(t, err)
	failed := 0
	for i := 0; i < 200; i++ {
		msg := interopMessage(fmt.Sprint("sink", i), "sender@example.com", []string{"x@example.net"}, "sink", dotLines...)
		err := b.Send(&smtp.Envelope{From: "sender@example.com", To: smtp.Recipients("x@example.net", "y@example.net", "z@example.net")},
			bytes.NewReader(msg), func(_ *smtp.Result, err error) {
				if !assert.NoError(t, err, "message") {
					failed++
				}
			})
		require.NoError(t, err)
	}
	require.NoError(t, b.Quit())
	require.Zero(t, failed, "messages failed")
}

// The Pool against Postfix: 64 goroutines × 50 messages share a few
// pipelined connections, with DATA and with CHUNKING, and every message
// arrives exactly once, byte-identical.
func TestInteropPool(t *testing.T) {
	addr := interop.Postfix(t)
	for _, chunking := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunking=%v", chunking), func(t *testing.T) {
			d := &smtp.Dialer{LocalName: "client.resmtp.test", TLSPolicy: smtp.TLSDisabled, DisableChunking: !chunking}
			pool := &smtp.Pool{Dialer: d, MaxConns: 4}
			defer pool.Close()
			const senders, each = 64, 50
			prefix := fmt.Sprintf("%s-pool-%v-", interop.Marker(t), chunking)
			sent := make([][]byte, senders*each)
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						n := s*each + i
						msg := interopMessage(fmt.Sprintf("%s%d", prefix, n), "sender@example.com", []string{"alice@example.com"}, "pooled", dotLines...)
						sent[n] = msg
						ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
						_, err := pool.Send(ctx, addr, &smtp.Envelope{From: "sender@example.com", To: smtp.Recipients("alice@example.com")}, bytes.NewReader(msg))
						cancel()
						assert.NoError(t, err, "Send %d", n)
					}
				})
			}
			wg.Wait()
			got := interop.WaitForAll(t, prefix, senders*each, 3*time.Minute, time.Second)
			for n, msg := range sent {
				id := fmt.Sprintf("%s%d@resmtp.test", prefix, n)
				if assert.Len(t, got[id], 1, "copies of message %d", n) {
					interop.CheckDelivered(t, got[id][0], msg)
				}
			}
			st := pool.Stats()
			require.Len(t, st, 1)
			assert.Equal(t, int64(senders*each), st[0].Delivered)
			assert.LessOrEqual(t, st[0].Dials, int64(4), "at most MaxConns connections")
		})
	}
}
