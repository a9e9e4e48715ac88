package smtp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// A LeaseStore is a CheckpointStore that several workers share, on several
// machines: a worker holds a transaction's record with a lease while it
// sends, and when it dies another worker claims the record once the lease
// expires and resumes the transaction (RFC 1845 §3 ties the restart to the
// TRANSID and the EHLO name, not to a process). A Courier whose Store is a
// LeaseStore uses it instead of Save and Delete. The module
// github.com/resmtp/smtp/pgstore has one, in PostgreSQL.
type LeaseStore interface {
	CheckpointStore
	// Lease creates the record of cp.TransID, held by owner for ttl, or
	// claims the existing one if no other owner holds an unexpired lease.
	// It returns an error matching ErrLeaseHeld when one does.
	Lease(ctx context.Context, cp *Checkpoint, owner string, ttl time.Duration) (CheckpointLease, error)
}

// A CheckpointLease is a worker's hold on one record. Every method returns
// an error matching ErrLeaseLost once another owner has taken the record
// over: the worker must then stop sending.
type CheckpointLease interface {
	// Renew extends the lease by ttl from now.
	Renew(ctx context.Context, ttl time.Duration) error
	// Save replaces the record, under the lease.
	Save(ctx context.Context, cp *Checkpoint) error
	// Done records that the transaction is complete from the client's
	// side (its final reply was read, QUIT sent) and ends the lease.
	Done(ctx context.Context) error
	// Release ends the lease and leaves the record for another worker.
	Release(ctx context.Context) error
}

// Errors of a LeaseStore.
var (
	// ErrLeaseHeld is matched when another worker holds the record.
	ErrLeaseHeld = errors.New("smtp: the checkpoint is leased to another worker")
	// ErrLeaseLost is matched when another worker took the record over.
	ErrLeaseLost = errors.New("smtp: the checkpoint lease was lost")
)

// defaultLeaseTTL is how long a Courier's lease lasts without renewal.
const defaultLeaseTTL = 30 * time.Second

// holder keeps a Courier run's lease alive: it renews the lease every
// third of its ttl until stop, and cancels the run's context with
// ErrLeaseLost when a renewal finds it taken over.
type holder struct {
	lease  CheckpointLease
	ttl    time.Duration
	cancel context.CancelCauseFunc
	stopc  chan struct{}
	wg     sync.WaitGroup
	lost   error
	mu     sync.Mutex
}

func (h *holder) start() {
	h.stopc = make(chan struct{})
	h.wg.Go(func() {
		t := time.NewTicker(h.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-h.stopc:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), h.ttl/3)
				err := h.lease.Renew(ctx, h.ttl)
				cancel()
				if errors.Is(err, ErrLeaseLost) {
					h.mu.Lock()
					h.lost = err
					h.mu.Unlock()
					h.cancel(err)
					return
				}
			}
		}
	})
}

// stop ends the renewals and reports whether the lease was lost.
func (h *holder) stop() error {
	if h == nil || h.stopc == nil {
		return nil
	}
	close(h.stopc)
	h.wg.Wait()
	h.stopc = nil
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// defaultOwner names this process for a lease: host name and process id.
func defaultOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
