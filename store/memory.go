package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/resmtp/smtp"
)

var _ smtp.CheckpointStore = (*Memory)(nil)

// A Memory is a CheckpointStore in memory: its records last as long as
// the process. It is safe for concurrent use and hands out copies, never
// its own records. The zero Memory is empty and ready to use.
type Memory struct {
	mu sync.Mutex
	m  map[string]*smtp.Checkpoint
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{m: make(map[string]*smtp.Checkpoint)}
}

// Save stores a copy of cp, replacing any record with the same TransID. It
// returns ctx's error if ctx is done, and an error if cp is nil or its
// TransID is not a valid TRANSID.
func (s *Memory) Save(ctx context.Context, cp *smtp.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	c := cloneCheckpoint(cp)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*smtp.Checkpoint)
	}
	s.m[c.TransID] = c
	return nil
}

// Load returns a copy of the record for transID, or an error that matches
// smtp.ErrNoCheckpoint if there is none, or ctx's error if ctx is done.
func (s *Memory) Load(ctx context.Context, transID string) (*smtp.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.m[transID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", smtp.ErrNoCheckpoint, transID)
	}
	return cloneCheckpoint(cp), nil
}

// Delete removes the record for transID, if there is one. Its only error is
// ctx's, if ctx is done.
func (s *Memory) Delete(ctx context.Context, transID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, transID)
	return nil
}

// List returns copies of all records, oldest Updated first (ties in
// TransID order). Its only error is ctx's, if ctx is done.
func (s *Memory) List(ctx context.Context) ([]*smtp.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	cps := make([]*smtp.Checkpoint, 0, len(s.m))
	for _, cp := range s.m {
		cps = append(cps, cloneCheckpoint(cp))
	}
	s.mu.Unlock()
	sortCheckpoints(cps)
	return cps, nil
}
