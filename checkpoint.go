package smtp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// A Checkpoint is what a client must remember to restart an interrupted
// transaction (RFC 1845 §3): the TRANSID and the EHLO name it was used
// with, the server that holds the transaction's state, the envelope to send
// again, and how far the message data had gone.
type Checkpoint struct {
	// TransID is the TRANSID, with its angle brackets.
	TransID string
	// LocalName is the EHLO name the TRANSID was used with; RFC 1845 §2
	// makes the pair the transaction's identity, so a restart must greet
	// with the same name.
	LocalName string
	// Server is the "ip:port" of the server that holds the state, to be
	// tried first on restart (RFC 1845 §3).
	Server string
	// Envelope is the transaction's envelope, sent again on restart.
	Envelope Envelope
	// Size is the canonical size of the message in octets if known, else
	// -1.
	Size int64
	// Sent is the number of canonical octets handed to the connection so
	// far.
	Sent int64
	// Points map canonical offsets at line starts to offsets in the
	// message source, in increasing order, so that the data can be resumed
	// at the offset a server's 355 reply names.
	Points []ResumePoint
	// Updated is when the record was last changed. The stores keep it as
	// given; the caller sets it.
	Updated time.Time
	// Source is the reference the caller gave the message with SourceRef,
	// which another process opens again (Courier.Reopen); "" if none.
	Source string
	// Digest is the hex SHA-256 of the message source, when Source is set:
	// a Resume refuses a reopened source with another digest.
	Digest string
	// Phase is how far the transaction had gone when the record was saved.
	Phase Phase
	// LocalID reports that the server did not offer CHECKPOINT: TransID is
	// the client's own key for the record and was never sent, the server
	// holds nothing to restart from, and a Resume sends the transaction
	// again in full.
	LocalID bool
}

// A Phase says how far a transaction had gone when its Checkpoint was
// saved: the ledger of a sender that must know which messages a server may
// hold.
type Phase string

// The phases of a transaction, in order.
const (
	// PhaseEnvelope: the envelope is being sent; no message data yet.
	PhaseEnvelope Phase = "envelope"
	// PhaseData: the data was cut before its end; Sent and Points say how
	// far it had gone. A server never delivers a message whose end it did
	// not receive.
	PhaseData Phase = "data"
	// PhaseUnknown: the end of the data went out, or was about to, and its
	// reply was not read. A server with CHECKPOINT says on restart whether
	// it holds the message; one without may have delivered it, and sending
	// it again may make a copy (Result.PossibleCopies).
	PhaseUnknown Phase = "unknown"
	// PhaseDone: the final reply was read. Only a store that keeps
	// completed records (a LeaseStore's CheckpointLease.Done) shows it; the
	// others delete the record.
	PhaseDone Phase = "done"
)

// A ResumePoint pairs an offset in the canonical message data (CRLF line
// endings, no dot-stuffing), at the start of a line, with the offset of the
// same octet in the message source.
type ResumePoint struct {
	Canonical, Source int64
}

// A CheckpointStore keeps Checkpoints, keyed by their case-sensitive
// TRANSID, for as long as the transaction may need to be restarted. The
// client deletes a record once the transaction is complete from its side,
// which RFC 1845 §3 says is when it sends QUIT, RSET or a new MAIL.
//
// Implementations must be safe for concurrent use, must not keep the
// *Checkpoint given to Save and must return a fresh copy from Load and List.
// Package store has two: in memory, and one file per record in a directory.
type CheckpointStore interface {
	// Save creates or replaces the record for cp.TransID. It returns an
	// error, and stores nothing, if cp is nil or cp.TransID is not a
	// valid TRANSID.
	Save(ctx context.Context, cp *Checkpoint) error
	// Load returns the record for transID, or an error that matches
	// ErrNoCheckpoint if there is none.
	Load(ctx context.Context, transID string) (*Checkpoint, error)
	// Delete removes the record for transID. It returns nil if there is
	// none.
	Delete(ctx context.Context, transID string) error
	// List returns every record, oldest Updated first.
	List(ctx context.Context) ([]*Checkpoint, error)
}

// ErrNoCheckpoint is matched by the error a CheckpointStore's Load returns
// for a TRANSID it holds no record for.
var ErrNoCheckpoint = errors.New("smtp: no checkpoint for this TRANSID")

// parseOffset reads the octet-offset at the start of a 355 reply (RFC 1845
// §3: the first thing on the first line, followed by white space).
func parseOffset(rep *Reply) (int64, bool) {
	if len(rep.Lines) == 0 {
		return 0, false
	}
	f := strings.Fields(rep.Lines[0])
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	return n, err == nil && n >= 0
}
