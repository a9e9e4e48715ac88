package smtp_test

// Interop tests of the pipelined, chunked and bulk paths against a real
// Postfix smtpd and smtp-sink (see interop_test.go).

import (
	"bytes"
	"context"
	"fmt"
	"testing"

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

// The Pool against Postfix: concurrent senders share a few connections and
// every message arrives once, byte-identical.
func TestInteropPool(t *testing.T) {
	addr := interop.Postfix(t)
	pool := &smtp.Pool{Dialer: &smtp.Dialer{LocalName: "client.resmtp.test", TLSPolicy: smtp.TLSDisabled}, MaxConns: 3}
	defer pool.Close()
	const senders, each = 4, 5
	type sent struct {
		marker string
		msg    []byte
	}
	results := make(chan error, senders*each)
	msgs := make(chan sent, senders*each)
	for s := 0; s < senders; s++ {
		go func(s int) {
			for i := 0; i < each; i++ {
				marker := fmt.Sprintf("%s-%d-%d", interop.Marker(t), s, i)
				msg := interopMessage(marker, "sender@example.com", []string{"alice@example.com"}, "pooled", dotLines...)
				ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
				_, err := pool.Send(ctx, addr, &smtp.Envelope{From: "sender@example.com", To: smtp.Recipients("alice@example.com")}, bytes.NewReader(msg))
				cancel()
				if err == nil {
					msgs <- sent{marker, msg}
				}
				results <- err
			}
		}(s)
	}
	for i := 0; i < senders*each; i++ {
		assert.NoError(t, <-results, "Send")
	}
	close(msgs)
	for m := range msgs {
		checkDelivered(t, []string{"alice@example.com"}, m.marker, m.msg)
	}
}
