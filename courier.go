package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Defaults for a Courier.
const (
	// defaultRetryDelay is the least wait before reconnecting after a
	// broken connection: RFC 1123 §5.3.1.1's "at least 30 minutes", which
	// also leaves the server time to notice the broken connection and
	// release the transaction (RFC 1845 §3). Set Courier.RetryDelay lower
	// for links you know.
	defaultRetryDelay = 30 * time.Minute
	// defaultAttempts is how many connections a Courier tries in all.
	defaultAttempts = 5
	// defaultSpoolMemory is how much of a non-seekable message a Courier
	// keeps in memory before spooling the rest to a temporary file.
	defaultSpoolMemory = 8 << 20
)

// A Courier sends one message at a time and sees it through broken
// connections. When the server offers CHECKPOINT (RFC 1845), every
// transaction carries a TRANSID; if the connection breaks during or after
// the message data, the Courier waits RetryDelay, reconnects — to the same
// address first, then to the others (RFC 1845 §3, RFC 5321 §5.1) — and
// issues the same MAIL with the same TRANSID from the same EHLO name. A
// "355 <offset>" reply means the server holds the first offset octets: the
// Courier sends only the rest. A "250" means it holds nothing: the Courier
// sends the recipients and the whole message. A connection lost after the
// final "." but before its reply is resolved the same way (355 with the
// whole size, then an empty DATA), so a message is neither lost nor
// delivered twice.
//
// Without CHECKPOINT a broken transaction is sent again in full on a new
// connection; a message whose final reply was lost may then arrive twice
// (Result.PossibleCopies counts such resends), but success is never
// reported without the server's 250.
//
// The cost: a checkpointed message is never pipelined with the next
// command (RFC 1845 §3: the next MAIL, RSET or QUIT ends the server's
// hold), so with PIPELINING it takes two round trips instead of one. A
// restart reads the message again from the last resume point before the
// server's offset: a seekable message (an *os.File, a *bytes.Reader) is
// sought, at most about 24 KiB before the offset; any other is spooled as it is
// first read, in memory up to SpoolMemory octets and then in a temporary
// file.
//
// The zero value is ready to use. A Courier is safe for concurrent use if
// its fields are not changed; each Send uses its own connections.
type Courier struct {
	// Dialer connects; nil means a zero Dialer. Its LocalName is the EHLO
	// name kept with each TRANSID (RFC 1845 §2 pairs them).
	Dialer *Dialer
	// Resolver finds the servers of a domain for Deliver; nil means a zero
	// Resolver.
	Resolver *Resolver
	// MXPolicy, if not nil, decides for Deliver which mail exchangers may
	// be used and how their connections are protected (DANE, MTA-STS: see
	// the mx module). Without one, Deliver uses opportunistic STARTTLS
	// without authentication (RFC 7435).
	MXPolicy MXPolicy
	// RetryDelay is the least wait before reconnecting; zero means 30
	// minutes (RFC 5321 §4.5.4.1). The context's deadline bounds it.
	RetryDelay time.Duration
	// Attempts bounds the connections tried for one message, the first
	// included; zero means 5.
	Attempts int
	// Store keeps the checkpoint of each transaction in flight, so that a
	// program that crashed can Resume it; nil keeps them in memory only.
	// It is also the sender's ledger: a transaction with a server that
	// does not offer CHECKPOINT is recorded too, under a LocalID. Every
	// record is saved again as the data starts and every third of LeaseTTL
	// while it runs (PhaseData, with the resume points), and just before
	// the end of the data goes out (PhaseUnknown), so that whoever resumes
	// it knows whether the server may hold the message. That costs two
	// writes per message more than the first, and one per third of the
	// lease of a long transfer.
	Store CheckpointStore
	// SpoolMemory and SpoolDir say where a non-seekable message is kept
	// for restarts; zero and "" mean 8 MiB and os.TempDir().
	SpoolMemory int64
	SpoolDir    string
	// Reopen opens the message source that a Checkpoint's Source names
	// (see SourceRef), for a Resume without a message: another process
	// finishing a transaction. nil: Resume needs the message.
	Reopen func(ctx context.Context, ref string) (io.ReadSeekCloser, error)
	// Owner names this worker in the leases of a LeaseStore; "" means the
	// host name and process id.
	Owner string
	// LeaseTTL is how long a LeaseStore's lease outlives a worker that
	// stopped renewing it (renewals come every third of it); zero means
	// 30 seconds.
	LeaseTTL time.Duration
}

// Send sends msg to the first server of addrs ("host:port") that takes a
// connection, restarting as described on Courier. It returns the outcome as
// Batch.Send reports it, with Result.Restarts and Result.Transmitted
// telling how the message got there; an *Error for a refusal (a transient
// refusal of the transaction is returned, not retried); or the last failure
// once Attempts connections have been tried.
func (k *Courier) Send(ctx context.Context, addrs []string, env *Envelope, msg io.Reader) (*Result, error) {
	if len(addrs) == 0 {
		return nil, errors.New("smtp: no server address")
	}
	ts := make([]Target, len(addrs))
	for i, a := range addrs {
		ts[i].Addr = a
	}
	targets := func(context.Context) ([]Target, error) { return ts, nil }
	return k.run(ctx, targets, env, msg, nil)
}

// Deliver sends msg to the mail servers of domain (RFC 5321 §5.1, through
// Resolver), restarting as described on Courier; it resolves the domain
// again before each reconnection. It returns what Send returns, or the
// Resolver's error (ErrNullMX for a domain that accepts no mail).
func (k *Courier) Deliver(ctx context.Context, domain string, env *Envelope, msg io.Reader) (*Result, error) {
	targets := func(ctx context.Context) ([]Target, error) { return secureTargets(ctx, k.Resolver, k.MXPolicy, domain) }
	return k.run(ctx, targets, env, msg, nil)
}

// Resume finishes a transaction whose checkpoint a crashed program left in
// the Store: it reconnects to the server that holds it first, with the same
// EHLO name and TRANSID. msg must be the same message, read from its start;
// nil reopens the checkpoint's Source with Reopen (another process
// finishing the transaction). When the checkpoint has a Digest, a message
// whose digest differs is refused with an error matching ErrSourceChanged
// before anything is sent. A checkpoint with LocalID set (a server without
// CHECKPOINT) is sent again in full; if its Phase is PhaseUnknown the
// server may hold the message already, and Result.PossibleCopies says so.
func (k *Courier) Resume(ctx context.Context, cp *Checkpoint, msg io.Reader) (*Result, error) {
	if msg == nil {
		rs, err := k.reopen(ctx, cp)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		msg = SourceRef(cp.Source, rs)
	} else if rs, ok := msg.(io.ReadSeeker); ok && cp.Digest != "" {
		if sum, err := digest(rs); err != nil || sum != cp.Digest {
			return nil, fmt.Errorf("%w: the message given to Resume (digest %s, the checkpoint %s; %v)", ErrSourceChanged, sum, cp.Digest, err)
		}
	}
	targets := func(context.Context) ([]Target, error) { return []Target{{Addr: cp.Server}}, nil }
	env := cp.Envelope
	return k.run(ctx, targets, &env, msg, cp)
}

// courierRun is the state of one message through its attempts.
type courierRun struct {
	k        *Courier
	env      Envelope
	m        *message
	cp       *Checkpoint  // the record in the Store, if any
	saved    bool         // the Store took a record of this run once
	trace    *ClientTrace // the call's trace composed with the Dialer's
	last     string       // the address that holds the transaction
	held     bool         // a server may hold part of the message
	rcpts    []RcptResult
	res      Result
	restarts int
	doubt    bool   // the last attempt's end of data went out, its reply unread
	source   string // the message's SourceRef, and its digest
	digest   string
	lease    CheckpointLease // held while the run sends, with a LeaseStore
	hold     *holder
	cancel   context.CancelCauseFunc // ends the run: its lease was lost
}

func (k *Courier) run(ctx context.Context, targets func(context.Context) ([]Target, error), env *Envelope, msg io.Reader, cp *Checkpoint) (*Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r, d, err := k.newRun(ctx, env, msg, cp)
	if err != nil {
		return nil, err
	}
	r.cancel = cancel
	defer r.m.close()
	defer r.endLease()
	attempts := k.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}
	var lastErr error
	for n := 0; n < attempts; {
		if n > 0 {
			if err := k.wait(ctx); err != nil {
				return r.result(), fmt.Errorf("%w (after: %v)", err, lastErr)
			}
		}
		ts, err := targets(ctx)
		if err != nil {
			return nil, err
		}
		for _, target := range reorderForRestart(ts, r.last) {
			addr := target.Addr
			if n >= attempts {
				break
			}
			n++
			if n > 1 {
				r.restarts++
			}
			td := secureDialer(*d, target.Security)
			c, err := td.Dial(ctx, addr)
			reportTLS(target.Security, c, err)
			if err != nil {
				err = policyError(target.Security, err)
				lastErr = err
				r.attemptFailed(addr, err)
				if ctx.Err() != nil {
					return r.result(), err
				}
				continue // RFC 5321 §5.1: try the next address
			}
			if r.trace != nil && r.trace.Connected != nil {
				r.trace.Connected(addr, n)
			}
			res, err, cut := r.attempt(ctx, c, addr)
			if !cut {
				return res, err
			}
			lastErr = err
			r.attemptFailed(addr, err)
			if ctx.Err() != nil {
				return r.result(), err
			}
			break // wait before reconnecting
		}
	}
	return r.result(), fmt.Errorf("smtp: giving up after %d attempts: %w", attempts, lastErr)
}

// newRun readies a run for msg, resumable (a non-seekable source is
// spooled), from cp if it is not nil; it returns the Dialer to use, which
// greets with cp's EHLO name (RFC 1845 §2: the TRANSID goes with it).
func (k *Courier) newRun(ctx context.Context, env *Envelope, msg io.Reader, cp *Checkpoint) (*courierRun, *Dialer, error) {
	d := k.Dialer
	if d == nil {
		d = &Dialer{}
	}
	r := &courierRun{k: k, env: *env, m: newMessage(msg, env.Body == BodyBinaryMIME), cp: cp, trace: ContextClientTrace(ctx).compose(d.Trace)}
	var err error
	if k.Store != nil {
		if r.source, r.digest, err = sourceOf(msg); err != nil {
			return nil, nil, err
		}
	}
	mem := k.SpoolMemory
	if mem <= 0 {
		mem = defaultSpoolMemory
	}
	if err := r.m.makeResumable(mem, k.SpoolDir); err != nil {
		return nil, nil, err
	}
	if cp != nil {
		r.env.TransID = cp.TransID
		r.last, r.held, r.doubt = cp.Server, !cp.LocalID, cp.Phase == PhaseUnknown
		// The recipients in a checkpoint are those the server accepted.
		r.rcpts = make([]RcptResult, len(cp.Envelope.To))
		for i, rc := range cp.Envelope.To {
			r.rcpts[i].Addr = rc.Addr
		}
		r.m.points = append(r.m.points, cp.Points...)
		dd := *d
		dd.LocalName = cp.LocalName
		d = &dd
	}
	return r, d, nil
}

// attemptFailed calls the AttemptFailed hook.
func (r *courierRun) attemptFailed(addr string, err error) {
	if r.trace != nil && r.trace.AttemptFailed != nil {
		r.trace.AttemptFailed(addr, err)
	}
}

func (k *Courier) wait(ctx context.Context) error {
	d := k.RetryDelay
	if d <= 0 {
		d = defaultRetryDelay
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("smtp: waiting to reconnect: %w", context.Cause(ctx))
	}
}

func (r *courierRun) result() *Result {
	res := r.res
	res.Recipients = r.rcpts
	res.Restarts = r.restarts
	return &res
}

// attempt runs the transaction on a new connection. cut reports a broken
// connection, after which the message may be tried again.
func (r *courierRun) attempt(ctx context.Context, c *Client, addr string) (res *Result, err error, cut bool) {
	defer c.Close()
	env := r.env
	b, lines, size, err, cut := r.prepare(ctx, c, addr, &env)
	if err != nil {
		return nil, err, cut
	}
	defer b.Close()
	var out struct {
		res *Result
		err error
		got bool
	}
	done := func(res *Result, err error) { out.res, out.err, out.got = res, err, true }
	var x *Cmd
	var held *holding
	doubt := r.doubt
	r.doubt = false
	if r.held {
		var answer restartAnswer
		var off int64
		answer, x, off, err = b.restart(lines.mail, r.m)
		switch {
		case err != nil:
			return nil, err, c.err != nil
		case answer == restartBadOffset:
			// RSET done; the whole transaction again, under a new TRANSID
			// so that the server's doubtful state cannot answer it.
			x = nil
			if lines, err = r.renew(ctx, c, addr, &env, size); err != nil {
				return nil, err, false
			}
		case answer == restartHeld:
			held, x = &holding{mail: x, offset: off, rcpts: r.rcpts}, nil
		}
		// restartFresh: MAIL accepted anew, the recipients and the whole
		// message follow; restartRefused: reported to done.
	}
	if doubt && held == nil && (x == nil || x.Err == nil) {
		// The whole message again, after an end whose reply was lost,
		// to a server that cannot say whether it took it.
		r.res.PossibleCopies++
	}
	r.last, r.held = addr, env.TransID != ""
	if r.cp != nil {
		r.m.ending = func() error { return r.record(ctx, addr, PhaseUnknown) }
		r.m.advance = func() error { return r.record(ctx, addr, PhaseData) }
		r.m.advanceEvery, r.m.advanced = r.k.leaseTTL()/3, time.Time{}
	}
	t, err := b.sendCheckpointed(env.To, lines, r.m, x, held, done)
	got := out.got
	if err != nil {
		b.Close() // collects the replies read before the failure
	}
	if rc := t.rcptResults(); t.held == nil && len(t.rcpts) == len(t.to) && t.rcpts[len(t.rcpts)-1].done {
		r.rcpts = rc
	}
	if got {
		if out.err == nil {
			// Complete from the client's side: QUIT ends the server's
			// hold (RFC 1845 §3), then the checkpoint goes.
			b.Quit()
			r.forget(ctx)
		} else if refused(out.err) {
			// Refused: the final reply was read, so the transaction is
			// over too, and no other worker may take it up again.
			r.forget(ctx)
		}
		r.res.Transmitted += out.res.Transmitted
		return r.outcome(out.res), out.err, false
	}
	if err == nil {
		err = errors.New("smtp: internal error: no outcome")
	}
	r.res.Transmitted += t.transmitted(r.m)
	r.doubt = t.inDoubt()
	r.saveProgress(ctx, addr)
	var se *sourceError
	return nil, err, c.err != nil && !errors.As(err, &se)
}

// prepare readies an attempt on c: a TRANSID where the server offers
// CHECKPOINT (none, and nothing to resume, where it does not), a Batch, the
// envelope's lines for the declared size, and the checkpoint saved. cut
// reports an error of the connection.
func (r *courierRun) prepare(ctx context.Context, c *Client, addr string, env *Envelope) (b *Batch, lines *envelopeLines, size int64, err error, cut bool) {
	checkpoint := c.ext.has("CHECKPOINT")
	if checkpoint && env.TransID == "" {
		if env.TransID, err = NewTransID(transIDDomain(c.localName)); err != nil {
			return nil, nil, 0, err, false
		}
		r.env.TransID = env.TransID
	}
	if !checkpoint {
		env.TransID = ""
		r.held = false // no server state to resume: start over
		if r.k.Store != nil && r.env.TransID == "" {
			// The ledger's own key, never sent: the record says whether
			// the message may have reached the server.
			if r.env.TransID, err = NewTransID(transIDDomain(c.localName)); err != nil {
				return nil, nil, 0, err, false
			}
		}
	}
	if b, err = c.NewBatch(ctx); err != nil {
		return nil, nil, 0, err, true
	}
	size = env.Size
	if size <= 0 {
		size = r.m.size
	}
	if lines, err = c.buildEnvelope(env, size); err == nil && r.env.TransID != "" {
		err = r.save(ctx, c, addr, env.TransID == "")
	}
	if err != nil {
		b.Close()
		return nil, nil, 0, err, false
	}
	return b, lines, size, nil, false
}

// renew gives the transaction a new TRANSID after a server held a doubtful
// state under the old one, records it, and returns the new lines.
func (r *courierRun) renew(ctx context.Context, c *Client, addr string, env *Envelope, size int64) (*envelopeLines, error) {
	r.forget(ctx)
	id, err := NewTransID(transIDDomain(c.localName))
	if err != nil {
		return nil, err
	}
	env.TransID, r.env.TransID = id, id
	lines, err := c.buildEnvelope(env, size)
	if err != nil {
		return nil, err
	}
	return lines, r.save(ctx, c, addr, false)
}

// outcome merges an attempt's result into the run's.
func (r *courierRun) outcome(res *Result) *Result {
	if res != nil {
		if !res.resumed {
			r.rcpts = res.Recipients
		}
		r.res.Reply = res.Reply
		r.res.Octets = res.Octets
	}
	return r.result()
}

// save records the transaction's checkpoint before the server can hold any
// of it; local says the server did not offer CHECKPOINT.
func (r *courierRun) save(ctx context.Context, c *Client, addr string, local bool) error {
	if r.k.Store == nil {
		return nil
	}
	cp := &Checkpoint{TransID: r.env.TransID, LocalName: c.localName, Server: addr, Envelope: r.env,
		Size: r.m.canonical, Sent: r.m.written, Points: r.m.points, Updated: time.Now(), Source: r.source, Digest: r.digest,
		Phase: PhaseEnvelope, LocalID: local}
	r.cp = cp
	var err error
	switch ls, ok := r.k.Store.(LeaseStore); {
	case r.lease != nil:
		err = r.lease.Save(ctx, cp)
	case ok:
		err = r.takeLease(ctx, ls, cp)
	default:
		err = r.k.Store.Save(ctx, cp)
	}
	if err != nil && r.saved && !errors.Is(err, ErrLeaseLost) {
		// Only the first save is a condition of sending; after it, the
		// run goes on without the chance to Resume from another process.
		r.storeFailed("save", cp.TransID, err)
		return nil
	}
	r.saved = r.saved || err == nil
	return err
}

// saveProgress records the resume points and the phase after a cut.
func (r *courierRun) saveProgress(ctx context.Context, addr string) {
	if r.k.Store == nil || r.cp == nil {
		return
	}
	r.cp.Server, r.cp.Points, r.cp.Size, r.cp.Sent, r.cp.Updated = addr, r.m.points, r.m.canonical, r.m.written, time.Now()
	switch {
	case r.doubt:
		r.cp.Phase = PhaseUnknown
	case r.cp.Sent > 0:
		r.cp.Phase = PhaseData
	}
	if r.rcpts != nil {
		// Keep the recipients the server accepted: a resumed transaction
		// has them and no others (RFC 1845 §3).
		var to []Recipient
		for i, rr := range r.rcpts {
			if rr.Err == nil && i < len(r.env.To) {
				to = append(to, r.env.To[i])
			}
		}
		r.cp.Envelope.To = to
	}
	r.update(ctx)
}

// record saves how far the data to addr has gone while it goes: PhaseData
// with the resume points, when it starts and then every third of the lease
// (so a worker taking over after a crash skips what the server holds
// without reading it); PhaseUnknown before its end goes out, so that a
// worker taking the transaction over knows the server may hold the message.
// Only a lost lease stops the data.
func (r *courierRun) record(ctx context.Context, addr string, phase Phase) error {
	r.cp.Server, r.cp.Points, r.cp.Sent, r.cp.Updated, r.cp.Phase = addr, r.m.points, r.m.written, time.Now(), phase
	if phase == PhaseUnknown {
		r.cp.Size = r.m.written // all of it
	}
	if err := r.update(ctx); errors.Is(err, ErrLeaseLost) {
		return fmt.Errorf("smtp: the message data stopped: %w", err)
	}
	return nil
}

// update writes r.cp to the Store, under the lease if there is one. It
// reports a failure to the trace; a lost lease also ends the run (another
// worker has the transaction now).
func (r *courierRun) update(ctx context.Context) error {
	save := r.k.Store.Save
	if r.lease != nil {
		save = r.lease.Save
	}
	err := save(ctx, r.cp)
	if err != nil {
		r.storeFailed("save", r.cp.TransID, err)
		if errors.Is(err, ErrLeaseLost) {
			r.cancel(err)
		}
	}
	return err
}

// storeFailed reports a failure of the CheckpointStore that the Courier
// goes on after.
func (r *courierRun) storeFailed(op, transID string, err error) {
	if r.trace != nil && r.trace.StoreFailed != nil {
		r.trace.StoreFailed(op, transID, err)
	}
}

// forget drops the checkpoint once the transaction is complete from the
// client's side (RFC 1845 §3).
func (r *courierRun) forget(ctx context.Context) {
	if r.lease != nil {
		r.hold.stop()
		if err := r.lease.Done(ctx); err != nil {
			r.storeFailed("done", r.env.TransID, err)
		}
		r.lease, r.hold = nil, nil
		return
	}
	if r.k.Store != nil && r.env.TransID != "" {
		if err := r.k.Store.Delete(ctx, r.env.TransID); err != nil {
			r.storeFailed("delete", r.env.TransID, err)
		}
	}
}

// takeLease creates or claims the record of cp in ls for this worker and
// keeps the lease renewed until the run ends.
func (r *courierRun) takeLease(ctx context.Context, ls LeaseStore, cp *Checkpoint) error {
	owner, ttl := r.k.Owner, r.k.leaseTTL()
	if owner == "" {
		owner = defaultOwner()
	}
	l, err := ls.Lease(ctx, cp, owner, ttl)
	if err != nil {
		return err
	}
	r.lease, r.hold = l, &holder{lease: l, ttl: ttl, cancel: r.cancel}
	r.hold.start()
	return nil
}

// leaseTTL returns LeaseTTL or its default.
func (k *Courier) leaseTTL() time.Duration {
	if k.LeaseTTL <= 0 {
		return defaultLeaseTTL
	}
	return k.LeaseTTL
}

// endLease stops renewing the run's lease and, if the transaction is not
// complete and the lease still this worker's, releases it for another.
func (r *courierRun) endLease() {
	if r.lease == nil {
		return
	}
	if r.hold.stop() == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.lease.Release(ctx); err != nil {
			r.storeFailed("release", r.env.TransID, err)
		}
	}
	r.lease, r.hold = nil, nil
}

// refused reports whether err is the server's refusal of a transaction
// (an *Error, or every recipient refused), not a failure of the connection
// or of the message source.
func refused(err error) bool {
	var e *Error
	var re *RecipientsError
	return !errors.Is(err, ErrNoFinalReply) && (errors.As(err, &e) || errors.As(err, &re))
}
