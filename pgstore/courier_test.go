package pgstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

var extCheckpoint = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHECKPOINT", "CHUNKING"}

func bigMessage(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %07d of a large message, sent by one worker and finished by another\r\n", i)
	}
	return b.Bytes()
}

func courier(s *Store, owner string) *smtp.Courier {
	return &smtp.Courier{
		Dialer:     &smtp.Dialer{LocalName: "worker.example", TLSPolicy: smtp.TLSDisabled},
		Store:      s,
		Owner:      owner,
		LeaseTTL:   300 * time.Millisecond,
		RetryDelay: time.Millisecond,
		Attempts:   1,
	}
}

// A worker cut off mid-transfer gives the transaction up; another worker
// claims it from the ledger and finishes it with the same TRANSID and EHLO
// name, sending only what the server does not hold: one copy, byte for
// byte, and the record ends done.
func TestCourier_AnotherWorkerFinishes(t *testing.T) {
	s := newStore(t)
	msg := bigMessage(1 << 20)
	srv, err := smtptest.NewServer(smtptest.Config{Extensions: extCheckpoint, Checkpoints: smtptest.NewCheckpointStore(),
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 600000}}, Logf: t.Logf})
	require.NoError(t, err)
	defer srv.Close()
	ctx := context.Background()
	env := &smtp.Envelope{From: "a@worker.example", To: smtp.Recipients("b@example.org")}

	_, err = courier(s, "worker-a").Send(ctx, []string{srv.Addr}, env, bytes.NewReader(msg))
	require.Error(t, err, "cut, and no attempt left")

	leases, err := s.ClaimExpired(ctx, "worker-b", time.Minute, 10)
	require.NoError(t, err)
	require.Len(t, leases, 1, "released by A, claimed by B")
	cp := leases[0].Checkpoint
	assert.Equal(t, "worker.example", cp.LocalName)

	res, err := courier(s, "worker-b").Resume(ctx, cp, bytes.NewReader(msg))
	require.NoError(t, err)
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.True(t, bytes.Equal(msg, msgs[0].Data), "byte-identical")
	assert.NotEmpty(t, msgs[0].ResumedAt, "resumed, not sent again")
	assert.LessOrEqual(t, res.Transmitted, int64(len(msg))-msgs[0].ResumedAt[0]+64<<10, "B sent the remainder")
	_, err = s.Claim(ctx, cp.TransID, "worker-c", time.Minute)
	require.ErrorIs(t, err, ErrDone)
}

// stallingReader gives its first n octets, then waits for release.
type stallingReader struct {
	r       io.Reader
	n       int
	release chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		<-s.release
		return s.r.Read(p)
	}
	if len(p) > s.n {
		p = p[:s.n]
	}
	n, err := s.r.Read(p)
	s.n -= n
	return n, err
}

// A worker whose lease another owner took over stops sending: its renewal
// fails, its transfer ends with ErrLeaseLost, and the server never gets
// the message from it.
func TestCourier_StopsWhenItsLeaseIsTaken(t *testing.T) {
	s := newStore(t)
	msg := bigMessage(256 << 10)
	srv, err := smtptest.NewServer(smtptest.Config{Extensions: extCheckpoint, Checkpoints: smtptest.NewCheckpointStore(), Logf: t.Logf})
	require.NoError(t, err)
	defer srv.Close()
	ctx := context.Background()
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		body := &stallingReader{r: bytes.NewReader(msg), n: 64 << 10, release: release}
		_, err := courier(s, "worker-a").Send(ctx, []string{srv.Addr}, &smtp.Envelope{From: "a@worker.example", To: smtp.Recipients("b@example.org")}, body)
		done <- err
	}()
	var transID string
	require.Eventually(t, func() bool {
		cps, err := s.List(ctx)
		if err != nil || len(cps) == 0 {
			return false
		}
		transID = cps[0].TransID
		return true
	}, 5*time.Second, 10*time.Millisecond)
	// Another owner takes it over (as after a lease it thought expired).
	_, err = s.pool.Exec(ctx, "UPDATE "+s.table+" SET owner = 'thief', fence = fence + 1 WHERE transid = $1", transID)
	require.NoError(t, err)
	// A renews every 100 ms; once it has found its lease gone, its source
	// gives the rest of the message, which must not reach the server.
	time.Sleep(400 * time.Millisecond)
	close(release)
	select {
	case err := <-done:
		require.ErrorIs(t, err, smtp.ErrLeaseLost)
	case <-time.After(5 * time.Second):
		require.FailNow(t, "worker A did not stop")
	}
	assert.Len(t, srv.Messages(), 0, "nothing delivered by the worker that lost its lease")
}
