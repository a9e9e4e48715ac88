// Package pgstore keeps the checkpoints of RFC 1845 transactions in
// PostgreSQL, so that several worker processes, on several machines, share
// one ledger: a worker claims a transaction with a lease, renews it while
// it sends, advances the record as the data goes out, and releases or
// resolves it; when a worker dies, its lease expires and another claims the
// transaction and resumes it (RFC 1845 §3 ties a restart to the TRANSID and
// the EHLO name, not to a process).
//
// Every change to a claimed record is a compare-and-swap on the lease's
// fencing token, so a worker whose lease was taken over cannot overwrite
// the new owner's record; workers that look for abandoned transactions
// take them with SELECT … FOR UPDATE SKIP LOCKED, so two never take the
// same one.
//
// The schema, which Migrate creates (Table is "resmtp_checkpoints" unless
// set):
//
//	CREATE TABLE resmtp_checkpoints (
//	    transid     text PRIMARY KEY,         -- the TRANSID, angle brackets included
//	    record      jsonb NOT NULL,           -- the smtp.Checkpoint
//	    phase       text NOT NULL,            -- Phase: envelope, data, unknown, done
//	    owner       text,                     -- the lease holder, NULL when free
//	    lease_until timestamptz,              -- when the lease expires
//	    fence       bigint NOT NULL DEFAULT 0,-- the fencing token, +1 at each claim
//	    version     bigint NOT NULL DEFAULT 1,-- +1 at each write
//	    updated     timestamptz NOT NULL DEFAULT now()
//	);
//	CREATE INDEX resmtp_checkpoints_lease ON resmtp_checkpoints (lease_until) WHERE phase <> 'done';
//
// Times are the database server's (now()), so the workers' clocks need
// not agree.
//
// The table is the senders' ledger, servers without CHECKPOINT included
// (their records have LocalID set: the TRANSID is the client's own and was
// never sent). A Courier moves a record through the phases envelope, data
// and unknown (just before the end of the data goes out) to done, when it
// reads the final reply. A record claimed in phase unknown with LocalID set
// may already be delivered: Resume sends it again and reports a possible
// copy; a caller that prefers to risk a loss to a copy checks
// Lease.Phase and Lease.Checkpoint.LocalID, and Resolves it instead.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/resmtp/smtp"
)

// Phase is how far a transaction has gone, as a worker records it: the
// core's smtp.Phase, kept in the phase column.
type Phase = smtp.Phase

// The phases, as smtp defines them.
const (
	// PhaseEnvelope: MAIL and RCPT are being sent, the data not yet.
	PhaseEnvelope = smtp.PhaseEnvelope
	// PhaseData: the data was cut before its end; the record's Sent and
	// Points say how far.
	PhaseData = smtp.PhaseData
	// PhaseUnknown: the end of the data went out, or was about to, and its
	// reply was not read: with CHECKPOINT a restart with the same TRANSID
	// tells whether the server took the message; without (the record's
	// LocalID), the server may hold a copy.
	PhaseUnknown = smtp.PhaseUnknown
	// PhaseDone: the server's final reply was read (Resolve).
	PhaseDone = smtp.PhaseDone
)

// Errors of the lease operations: the core's, so that a Courier knows them.
var (
	// ErrLeaseHeld: another owner holds an unexpired lease on the record.
	ErrLeaseHeld = smtp.ErrLeaseHeld
	// ErrLeaseLost: the lease was taken over (its fencing token is old) or
	// the record is gone: the worker must stop sending.
	ErrLeaseLost = smtp.ErrLeaseLost
	// ErrDone: the transaction is complete; it is not claimed again.
	ErrDone = errors.New("pgstore: the transaction is complete")
)

// A Store is an smtp.CheckpointStore in PostgreSQL, with leases. It is
// safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	table string
}

var _ smtp.LeaseStore = (*Store)(nil)

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// New returns a Store on pool in table ("" means "resmtp_checkpoints"). It
// returns an error for a table name that is not a plain lower-case SQL
// identifier.
func New(pool *pgxpool.Pool, table string) (*Store, error) {
	if table == "" {
		table = "resmtp_checkpoints"
	}
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("pgstore: bad table name %q", table)
	}
	return &Store{pool: pool, table: table}, nil
}

// Migrate creates the table and its index if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
	transid     text PRIMARY KEY,
	record      jsonb NOT NULL,
	phase       text NOT NULL DEFAULT 'envelope',
	owner       text,
	lease_until timestamptz,
	fence       bigint NOT NULL DEFAULT 0,
	version     bigint NOT NULL DEFAULT 1,
	updated     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS %[1]s_lease ON %[1]s (lease_until) WHERE phase <> 'done';`, s.table))
	if err != nil {
		return fmt.Errorf("pgstore: migrating %s: %w", s.table, err)
	}
	return nil
}

// encode checks cp and encodes it for the record column.
func encode(cp *smtp.Checkpoint) ([]byte, error) {
	if cp == nil {
		return nil, errors.New("pgstore: nil checkpoint")
	}
	if err := smtp.ValidateTransID(cp.TransID); err != nil {
		return nil, fmt.Errorf("pgstore: cannot save checkpoint: %w", err)
	}
	return json.Marshal(cp)
}

func decode(data []byte) (*smtp.Checkpoint, error) {
	var cp smtp.Checkpoint
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, fmt.Errorf("pgstore: corrupt record: %w", err)
	}
	return &cp, nil
}

// Save creates or replaces the record for cp.TransID in cp.Phase
// (PhaseEnvelope if it has none), keeping its lease. It is the
// CheckpointStore operation, for a single worker; a worker holding a lease
// uses Advance.
func (s *Store) Save(ctx context.Context, cp *smtp.Checkpoint) error {
	data, err := encode(cp)
	if err != nil {
		return err
	}
	phase := cp.Phase
	if phase == "" {
		phase = PhaseEnvelope
	}
	_, err = s.pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (transid, record, phase) VALUES ($1, $2, $3)
		ON CONFLICT (transid) DO UPDATE SET record = EXCLUDED.record, phase = EXCLUDED.phase, version = %[1]s.version + 1, updated = now()`, s.table),
		cp.TransID, data, string(phase))
	if err != nil {
		return fmt.Errorf("pgstore: saving %s: %w", cp.TransID, err)
	}
	return nil
}

// Load returns the record for transID, or an error that matches
// smtp.ErrNoCheckpoint.
func (s *Store) Load(ctx context.Context, transID string) (*smtp.Checkpoint, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT record FROM %s WHERE transid = $1`, s.table), transID).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", smtp.ErrNoCheckpoint, transID)
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: loading %s: %w", transID, err)
	}
	return decode(data)
}

// Delete removes the record for transID, if there is one.
func (s *Store) Delete(ctx context.Context, transID string) error {
	if _, err := s.pool.Exec(ctx, fmt.Sprintf(`DELETE FROM %s WHERE transid = $1`, s.table), transID); err != nil {
		return fmt.Errorf("pgstore: deleting %s: %w", transID, err)
	}
	return nil
}

// List returns every record, oldest Updated first (ties in TransID order).
func (s *Store) List(ctx context.Context) ([]*smtp.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT record FROM %s ORDER BY (record->>'Updated')::timestamptz, transid`, s.table))
	if err != nil {
		return nil, fmt.Errorf("pgstore: listing: %w", err)
	}
	defer rows.Close()
	var cps []*smtp.Checkpoint
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, fmt.Errorf("pgstore: listing: %w", err)
		}
		cp, err := decode(data)
		if err != nil {
			return nil, err
		}
		cps = append(cps, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pgstore: listing: %w", err)
	}
	return cps, nil
}

// A Lease is a worker's claim on a transaction.
type Lease struct {
	TransID string
	Owner   string
	// Fence is the fencing token: every claim raises it, and every write
	// under the lease requires it unchanged.
	Fence int64
	// Checkpoint is the record as claimed.
	Checkpoint *smtp.Checkpoint
	// Phase is the record's phase as claimed.
	Phase Phase
}

// Create inserts a record for a new transaction, claimed by owner for ttl.
// It returns an error if a record with that TRANSID exists.
func (s *Store) Create(ctx context.Context, cp *smtp.Checkpoint, owner string, ttl time.Duration) (*Lease, error) {
	data, err := encode(cp)
	if err != nil {
		return nil, err
	}
	_, err = s.pool.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (transid, record, phase, owner, lease_until, fence)
		VALUES ($1, $2, 'envelope', $3, now() + $4::interval, 1)`, s.table), cp.TransID, data, owner, ttl.String())
	if err != nil {
		return nil, fmt.Errorf("pgstore: creating %s: %w", cp.TransID, err)
	}
	return &Lease{TransID: cp.TransID, Owner: owner, Fence: 1, Checkpoint: cp, Phase: PhaseEnvelope}, nil
}

// Claim takes the lease on transID for owner, for ttl, if no other owner
// holds an unexpired one; the fencing token goes up, so the previous
// owner's writes fail from now on. It returns an error matching
// ErrLeaseHeld when the lease is held, smtp.ErrNoCheckpoint when there is
// no such record.
func (s *Store) Claim(ctx context.Context, transID, owner string, ttl time.Duration) (*Lease, error) {
	row := s.pool.QueryRow(ctx, fmt.Sprintf(`UPDATE %s SET owner = $2, lease_until = now() + $3::interval, fence = fence + 1, version = version + 1
		WHERE transid = $1 AND phase <> 'done' AND (owner IS NULL OR owner = $2 OR lease_until < now())
		RETURNING fence, record, phase`, s.table), transID, owner, ttl.String())
	l, err := scanLease(row, transID, owner)
	if errors.Is(err, pgx.ErrNoRows) {
		var phase string
		err := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT phase FROM %s WHERE transid = $1`, s.table), transID).Scan(&phase)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("%w: %q", smtp.ErrNoCheckpoint, transID)
		case err != nil:
			return nil, fmt.Errorf("pgstore: claiming %s: %w", transID, err)
		case Phase(phase) == PhaseDone:
			return nil, fmt.Errorf("%w: %s", ErrDone, transID)
		}
		return nil, fmt.Errorf("%w: %s", ErrLeaseHeld, transID)
	}
	return l, err
}

func scanLease(row pgx.Row, transID, owner string) (*Lease, error) {
	var l Lease
	var data []byte
	if err := row.Scan(&l.Fence, &data, &l.Phase); err != nil {
		return nil, err
	}
	cp, err := decode(data)
	if err != nil {
		return nil, err
	}
	cp.Phase = l.Phase // the column is the truth (Resolve sets it alone)
	l.TransID, l.Owner, l.Checkpoint = transID, owner, cp
	if l.TransID == "" {
		l.TransID = cp.TransID
	}
	return &l, nil
}

// ClaimExpired claims, for owner and ttl, up to limit unfinished
// transactions whose lease expired or that nobody holds, oldest first; two
// workers calling it at once never get the same transaction (SKIP LOCKED).
func (s *Store) ClaimExpired(ctx context.Context, owner string, ttl time.Duration, limit int) ([]*Lease, error) {
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`WITH free AS (
			SELECT transid FROM %[1]s WHERE phase <> 'done' AND (owner IS NULL OR lease_until < now())
			ORDER BY updated LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE %[1]s t SET owner = $1, lease_until = now() + $2::interval, fence = t.fence + 1, version = t.version + 1
		FROM free WHERE t.transid = free.transid
		RETURNING t.fence, t.record, t.phase`, s.table), owner, ttl.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("pgstore: claiming: %w", err)
	}
	defer rows.Close()
	var ls []*Lease
	for rows.Next() {
		l, err := scanLease(rows, "", owner)
		if err != nil {
			return nil, fmt.Errorf("pgstore: claiming: %w", err)
		}
		ls = append(ls, l)
	}
	return ls, rows.Err()
}

// write runs an update guarded by l's fencing token and returns
// ErrLeaseLost when it changed nothing.
func (s *Store) write(ctx context.Context, l *Lease, set string, args ...any) error {
	args = append([]any{l.TransID, l.Owner, l.Fence}, args...)
	tag, err := s.pool.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s, version = version + 1 WHERE transid = $1 AND owner = $2 AND fence = $3`, s.table, set), args...)
	if err != nil {
		return fmt.Errorf("pgstore: %s: %w", l.TransID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s (fence %d)", ErrLeaseLost, l.TransID, l.Fence)
	}
	return nil
}

// Renew extends l by ttl from now. It returns an error matching
// ErrLeaseLost when another owner took the lease over.
func (s *Store) Renew(ctx context.Context, l *Lease, ttl time.Duration) error {
	return s.write(ctx, l, "lease_until = now() + $4::interval", ttl.String())
}

// Advance records cp and phase under l: how far the transaction has gone.
// It returns an error matching ErrLeaseLost when another owner took the
// lease over: the caller must stop sending.
func (s *Store) Advance(ctx context.Context, l *Lease, cp *smtp.Checkpoint, phase Phase) error {
	data, err := encode(cp)
	if err != nil {
		return err
	}
	return s.write(ctx, l, "record = $4, phase = $5, updated = now()", data, string(phase))
}

// Release gives l up, leaving the record for another worker to claim at
// once.
func (s *Store) Release(ctx context.Context, l *Lease) error {
	return s.write(ctx, l, "owner = NULL, lease_until = NULL")
}

// Resolve ends the transaction of l: the server's final reply was read.
// The record stays, in phase done and without a lease, as the sender's
// ledger of completed transactions; Delete removes it.
func (s *Store) Resolve(ctx context.Context, l *Lease) error {
	return s.write(ctx, l, "phase = 'done', owner = NULL, lease_until = NULL, updated = now()")
}

// Lease is the smtp.LeaseStore operation: it creates the record of cp held
// by owner, or claims the existing one (Claim), and returns a handle for
// the Courier.
func (s *Store) Lease(ctx context.Context, cp *smtp.Checkpoint, owner string, ttl time.Duration) (smtp.CheckpointLease, error) {
	l, err := s.Create(ctx, cp, owner, ttl)
	if err != nil && cp != nil {
		var exists bool
		if qerr := s.pool.QueryRow(ctx, fmt.Sprintf(`SELECT true FROM %s WHERE transid = $1`, s.table), cp.TransID).Scan(&exists); qerr == nil && exists {
			l, err = s.Claim(ctx, cp.TransID, owner, ttl)
		}
	}
	if err != nil {
		return nil, err
	}
	return &handle{s: s, l: l}, nil
}

// handle is a Lease as the Courier uses it.
type handle struct {
	s *Store
	l *Lease
}

func (h *handle) Renew(ctx context.Context, ttl time.Duration) error { return h.s.Renew(ctx, h.l, ttl) }

// Save records cp in its phase (PhaseEnvelope if it has none).
func (h *handle) Save(ctx context.Context, cp *smtp.Checkpoint) error {
	phase := cp.Phase
	if phase == "" {
		phase = PhaseEnvelope
	}
	return h.s.Advance(ctx, h.l, cp, phase)
}

func (h *handle) Done(ctx context.Context) error    { return h.s.Resolve(ctx, h.l) }
func (h *handle) Release(ctx context.Context) error { return h.s.Release(ctx, h.l) }
