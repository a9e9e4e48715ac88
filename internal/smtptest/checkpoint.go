package smtptest

import (
	"bytes"
	"sync"
)

// CheckpointStore holds the RFC 1845 transaction state of CHECKPOINT
// transactions, keyed by TRANSID value (treated as an opaque, case-sensitive
// string, angle brackets included).
//
// A Server uses its own store unless Config.Checkpoints supplies one. Passing
// the same store to a second Server simulates a server restart with
// persistent checkpoint state; giving the new Server no store (or calling
// Forget) simulates a restart that lost it.
//
// Following RFC 1845 section 3, an entry is deleted only when the transaction
// is known to be complete from the client's perspective: when the client, on
// the connection that owns the transaction, sends RSET, EHLO/HELO, STARTTLS, a
// new MAIL, or QUIT, or when the client has been sent a final failure reply
// for it. In particular an entry survives a successful final 250 reply if the
// connection then breaks, so that a client which never saw that reply can
// resume it without the message being stored twice.
type CheckpointStore struct {
	mu sync.Mutex
	m  map[string]*cpEntry
}

// Checkpoint is a snapshot of one stored CHECKPOINT transaction.
type Checkpoint struct {
	TransID    string
	From       string
	MailParams []string
	To         []string
	RcptParams [][]string
	// Data holds the canonical (un-stuffed) message octets stored so far.
	Data []byte
	// Via is the command ("DATA" or "BDAT") that transferred the stored data.
	Via string
	// DataStarted reports whether any data transfer command was accepted;
	// only such transactions are resumed with a 355 reply.
	DataStarted bool
	// Complete reports that the final 250 reply was sent (QueueID names it).
	Complete bool
	QueueID  string
	// ResumedAt lists the offsets announced by 355 replies so far.
	ResumedAt []int64
}

type cpEntry struct {
	Checkpoint
	owner uint64 // token of the owning connection
	abort func()
}

// claim kinds
const (
	claimFresh = iota
	claimPartial
	claimComplete
)

// NewCheckpointStore returns an empty store.
func NewCheckpointStore() *CheckpointStore {
	return &CheckpointStore{m: make(map[string]*cpEntry)}
}

// Len returns the number of stored transactions.
func (st *CheckpointStore) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.m)
}

// Forget drops all stored state, as a server restart without persistent
// storage would.
func (st *CheckpointStore) Forget() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.m = make(map[string]*cpEntry)
}

// Lookup returns a copy of the state stored for transID.
func (st *CheckpointStore) Lookup(transID string) (Checkpoint, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.m[transID]
	if !ok {
		return Checkpoint{}, false
	}
	return e.Checkpoint.clone(), true
}

func (cp Checkpoint) clone() Checkpoint {
	cp.MailParams = append([]string(nil), cp.MailParams...)
	cp.To = append([]string(nil), cp.To...)
	rp := make([][]string, len(cp.RcptParams))
	for i, p := range cp.RcptParams {
		rp[i] = append([]string(nil), p...)
	}
	cp.RcptParams = rp
	cp.Data = bytes.Clone(cp.Data)
	cp.ResumedAt = append([]int64(nil), cp.ResumedAt...)
	return cp
}

// claim looks transID up for a MAIL command on the connection identified by
// token. An unknown transaction, or one whose data phase never started, is
// (re)created fresh with the given envelope. Otherwise the connection takes
// ownership (aborting a previous owner that may still be alive), DATA-stored
// data is truncated back to the last line start, and a snapshot is returned.
func (st *CheckpointStore) claim(transID string, token uint64, abort func(), from string, mailParams []string) (int, Checkpoint) {
	st.mu.Lock()
	e, ok := st.m[transID]
	if !ok || (!e.DataStarted && !e.Complete) {
		st.m[transID] = &cpEntry{
			Checkpoint: Checkpoint{TransID: transID, From: from, MailParams: append([]string(nil), mailParams...)},
			owner:      token,
			abort:      abort,
		}
		st.mu.Unlock()
		return claimFresh, Checkpoint{}
	}
	var old func()
	if e.owner != token {
		old = e.abort
	}
	e.owner, e.abort = token, abort
	kind := claimComplete
	if !e.Complete {
		kind = claimPartial
		if e.Via == "DATA" {
			e.Data = e.Data[:lineStart(e.Data)]
		}
	}
	e.ResumedAt = append(e.ResumedAt, int64(len(e.Data)))
	snap := e.Checkpoint.clone()
	st.mu.Unlock()
	if old != nil {
		old()
	}
	return kind, snap
}

// lineStart returns the length of the longest prefix of b ending in CRLF.
func lineStart(b []byte) int {
	i := bytes.LastIndex(b, []byte("\r\n"))
	if i < 0 {
		return 0
	}
	return i + 2
}

// update applies f to the entry if token still owns it. It reports false if
// another connection has taken the transaction over; a missing entry (e.g.
// after Forget) counts as owned so the transaction can proceed unpersisted.
func (st *CheckpointStore) update(transID string, token uint64, f func(e *Checkpoint)) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	e, ok := st.m[transID]
	if !ok {
		return true
	}
	if e.owner != token {
		return false
	}
	f(&e.Checkpoint)
	return true
}

// release deletes the entry if token owns it.
func (st *CheckpointStore) release(transID string, token uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.m[transID]; ok && e.owner == token {
		delete(st.m, transID)
	}
}
