package smtp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// 32 goroutines send through one Pool to a server that cuts connections at
// random points: every message is either reported delivered, with exactly
// one copy on the server carrying the queue id the client was given, or
// reported failed with no copy, or reported in doubt (ErrNoFinalReply) with
// at most one copy; none is lost without a report.
//
// The Pool pipelines the Sends, so a cut at the next transaction's command
// can take the previous message's final reply with it: without CHECKPOINT
// the client cannot know whether the server kept that message, and says
// so (the Courier's tests resolve it with CHECKPOINT). A cut after the end
// of the data but before its reply is left out of the faults for the same
// reason.
func TestPool_ConcurrentSendersAgainstRandomCuts(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 32 000 sends take seconds; go test without -short runs them")
	}
	senders, each := 32, 1000
	if raceEnabled {
		each = 100
	}
	rng := rand.New(rand.NewPCG(1, 2))
	faults := map[int]smtptest.Faults{}
	for n := 1; n <= senders*each; n++ {
		switch rng.IntN(8) {
		case 0:
			faults[n] = smtptest.Faults{CloseAfterCommand: []string{"MAIL", "RCPT", "DATA", "BDAT", "RSET"}[rng.IntN(5)]}
		case 1:
			faults[n] = smtptest.Faults{CloseAfterDataOctets: int64(1 + rng.IntN(60))}
		case 2:
			faults[n] = smtptest.Faults{CloseBeforeReply: []string{"MAIL", "RCPT", "RSET"}[rng.IntN(3)]}
		}
	}
	for _, ext := range [][]string{{"PIPELINING", "8BITMIME"}, {"PIPELINING", "CHUNKING"}} {
		t.Run(strings.Join(ext, "+"), func(t *testing.T) {
			srv, err := smtptest.NewServer(smtptest.Config{Extensions: ext, ConnFaults: faults})
			require.NoError(t, err)
			defer srv.Close()
			// Short-lived connections, so that many of them meet a fault.
			pool := &Pool{Dialer: &Dialer{LocalName: "client.example", TLSPolicy: TLSDisabled}, MaxConns: 8, MaxMessagesPerConn: 10}
			defer pool.Close()
			type outcome struct {
				queueID string
				err     error
			}
			results := make([][]outcome, senders)
			var wg sync.WaitGroup
			for s := 0; s < senders; s++ {
				wg.Add(1)
				go func(s int) {
					defer wg.Done()
					results[s] = make([]outcome, each)
					for i := 0; i < each; i++ {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						body := fmt.Sprintf("Subject: %d/%d\r\n\r\nmessage %d of sender %d\r\n", s, i, i, s)
						res, err := pool.Send(ctx, srv.Addr, &Envelope{From: fmt.Sprintf("s%d@example.org", s), To: Recipients("r@example.com")}, strings.NewReader(body))
						cancel()
						o := outcome{err: err}
						if err == nil {
							f := strings.Fields(res.Reply.Text())
							o.queueID = f[len(f)-1]
						}
						results[s][i] = o
					}
				}(s)
			}
			wg.Wait()
			copies := map[string][]smtptest.Message{}
			for _, m := range srv.Messages() {
				subject := strings.TrimPrefix(strings.SplitN(string(m.Data), "\r\n", 2)[0], "Subject: ")
				copies[subject] = append(copies[subject], m)
			}
			delivered, failed, doubtful := 0, 0, 0
			for s := range results {
				for i, o := range results[s] {
					key := fmt.Sprintf("%d/%d", s, i)
					got := copies[key]
					if o.err == nil {
						delivered++
						if assert.Len(t, got, 1, "%s reported delivered", key) {
							assert.Equal(t, o.queueID, got[0].QueueID, key)
						}
					} else if errors.Is(o.err, ErrNoFinalReply) {
						doubtful++
						assert.LessOrEqual(t, len(got), 1, "%s in doubt (%v) but the server has it twice", key, o.err)
					} else {
						failed++
						assert.Empty(t, got, "%s reported failed (%v) but the server has it", key, o.err)
					}
				}
			}
			t.Logf("%d delivered, %d failed, %d in doubt, %d connections", delivered, failed, doubtful, srv.Conns())
			assert.Equal(t, senders*each, delivered+failed+doubtful)
			assert.Greater(t, failed+doubtful, 0, "the faults should fail some")
			assert.Greater(t, delivered, senders*each/2)
		})
	}
}
