// Package store holds two CheckpointStores for the Courier of
// github.com/resmtp/smtp: Memory, whose records last as long as the
// process, and Dir, which keeps each record in a file so that a program
// that crashed mid-transfer finds its checkpoints again when it restarts
// (RFC 1845 §2: the restarted client must present the same TRANSID).
//
// Both are built only on the smtp package's public API; a store of your own
// (a database, a shared cache) implements smtp.CheckpointStore the same
// way. The module github.com/resmtp/smtp/pgstore keeps them in PostgreSQL.
package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/resmtp/smtp"
)

// checkCheckpoint returns an error if cp cannot be saved.
func checkCheckpoint(cp *smtp.Checkpoint) error {
	if cp == nil {
		return errors.New("store: nil checkpoint")
	}
	if err := smtp.ValidateTransID(cp.TransID); err != nil {
		return fmt.Errorf("store: cannot save checkpoint: %w", err)
	}
	return nil
}

// cloneCheckpoint returns a deep copy of cp.
func cloneCheckpoint(cp *smtp.Checkpoint) *smtp.Checkpoint {
	c := *cp
	c.Envelope.To = slices.Clone(cp.Envelope.To)
	for i := range c.Envelope.To {
		c.Envelope.To[i].Notify = slices.Clone(c.Envelope.To[i].Notify)
	}
	c.Points = slices.Clone(cp.Points)
	return &c
}

// sortCheckpoints orders cps by Updated, then by TransID.
func sortCheckpoints(cps []*smtp.Checkpoint) {
	slices.SortFunc(cps, func(a, b *smtp.Checkpoint) int {
		if c := a.Updated.Compare(b.Updated); c != 0 {
			return c
		}
		return strings.Compare(a.TransID, b.TransID)
	})
}
