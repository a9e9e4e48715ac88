package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/storetest"
)

// newStore returns a Store in a table of its own on the PostgreSQL of
// RESMTP_PG_URL (.ci/pg-up.sh starts one); the tests skip without it,
// except in CI.
func newStore(t *testing.T) *Store {
	t.Helper()
	url := os.Getenv("RESMTP_PG_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("RESMTP_PG_URL is not set: .ci/run must start .ci/pg-up.sh")
		}
		t.Skip("no PostgreSQL (source .ci/postfix-up.sh and .ci/pg-up.sh, then resmtp_pg_up)")
	}
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	var b [6]byte
	rand.Read(b[:])
	s, err := New(pool, "cp_"+hex.EncodeToString(b[:]))
	require.NoError(t, err)
	require.NoError(t, s.Migrate(context.Background()))
	require.NoError(t, s.Migrate(context.Background()), "Migrate twice")
	t.Cleanup(func() { pool.Exec(context.Background(), "DROP TABLE "+s.table) })
	return s
}

// The behaviour every CheckpointStore has, as store.Memory and store.Dir.
func TestStore_Conformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) smtp.CheckpointStore { return newStore(t) })
}

// Claim, renew, advance, release and resolve, each guarded by the fencing
// token: after a takeover the old owner can change nothing.
func TestStore_Leases(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	cp := storetest.Sample("<lease@client.example>", 0)
	a, err := s.Create(ctx, cp, "worker-a", time.Hour)
	require.NoError(t, err)
	_, err = s.Create(ctx, cp, "worker-b", time.Hour)
	require.Error(t, err, "one record per TRANSID")

	_, err = s.Claim(ctx, cp.TransID, "worker-b", time.Hour)
	require.ErrorIs(t, err, ErrLeaseHeld)
	cp.Sent = 9000
	require.NoError(t, s.Advance(ctx, a, cp, PhaseData))
	require.NoError(t, s.Renew(ctx, a, 50*time.Millisecond))

	time.Sleep(100 * time.Millisecond) // a dies: its lease expires
	b, err := s.Claim(ctx, cp.TransID, "worker-b", time.Hour)
	require.NoError(t, err)
	assert.Greater(t, b.Fence, a.Fence)
	assert.Equal(t, PhaseData, b.Phase)
	assert.Equal(t, int64(9000), b.Checkpoint.Sent, "b resumes from a's last record")

	stale := *cp
	stale.Sent = 1
	require.ErrorIs(t, s.Advance(ctx, a, &stale, PhaseData), ErrLeaseLost, "a stale owner's write is refused")
	require.ErrorIs(t, s.Renew(ctx, a, time.Hour), ErrLeaseLost)
	require.ErrorIs(t, s.Release(ctx, a), ErrLeaseLost)
	got, err := s.Load(ctx, cp.TransID)
	require.NoError(t, err)
	assert.Equal(t, int64(9000), got.Sent)

	require.NoError(t, s.Release(ctx, b))
	c, err := s.Claim(ctx, cp.TransID, "worker-c", time.Hour)
	require.NoError(t, err, "released: claimed at once")
	require.NoError(t, s.Resolve(ctx, c))
	_, err = s.Claim(ctx, cp.TransID, "worker-d", time.Hour)
	require.ErrorIs(t, err, ErrDone, "a resolved transaction is not claimed again")
	_, err = s.Claim(ctx, "<none@client.example>", "worker-d", time.Hour)
	require.ErrorIs(t, err, smtp.ErrNoCheckpoint)
}

// Many goroutines over several connections claim the same expired lease:
// exactly one wins.
func TestStore_ConcurrentClaimsOneWinner(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for round := range 5 {
		cp := storetest.Sample(fmt.Sprintf("<race%d@client.example>", round), 0)
		_, err := s.Create(ctx, cp, "dead", time.Millisecond)
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for w := range 40 {
			wg.Go(func() {
				_, err := s.Claim(ctx, cp.TransID, fmt.Sprintf("w%d", w), time.Hour)
				if err == nil {
					wins.Add(1)
				} else {
					assert.ErrorIs(t, err, ErrLeaseHeld)
				}
			})
		}
		wg.Wait()
		assert.EqualValues(t, 1, wins.Load(), "round %d", round)
	}
}

// Workers looking for abandoned transactions at the same time take each
// exactly once (SKIP LOCKED), and never one whose lease is alive.
func TestStore_ClaimExpiredSplitsTheWork(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const n = 60
	for i := range n {
		_, err := s.Create(ctx, storetest.Sample(fmt.Sprintf("<job%d@client.example>", i), i), "dead", time.Millisecond)
		require.NoError(t, err)
	}
	alive := storetest.Sample("<alive@client.example>", 0)
	_, err := s.Create(ctx, alive, "busy", time.Hour)
	require.NoError(t, err)
	time.Sleep(5 * time.Millisecond)
	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			owner := fmt.Sprintf("w%d", w)
			for {
				ls, err := s.ClaimExpired(ctx, owner, time.Hour, 4)
				if !assert.NoError(t, err) || len(ls) == 0 {
					return
				}
				mu.Lock()
				for _, l := range ls {
					assert.Empty(t, claimed[l.TransID], "%s claimed twice", l.TransID)
					claimed[l.TransID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Len(t, claimed, n)
	assert.NotContains(t, claimed, alive.TransID)
}
