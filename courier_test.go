package smtp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

var (
	extCheckpoint      = []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHECKPOINT", "SIZE 100000000"}
	extCheckpointChunk = append([]string{"CHUNKING"}, extCheckpoint...)
)

// RFC 1845 §3: cut during the data, the client reconnects, reissues MAIL
// with the same TRANSID, and on "355 offset" sends only the rest; the server
// ends up with exactly one byte-identical copy.
func TestCourier_ResumesAfterACut(t *testing.T) {
	msg := bigText(300 << 10)
	tests := []struct {
		name     string
		ext      []string
		seekable bool
		faults   smtptest.Faults
		resumed  bool
	}{
		{"DATA cut mid-data, seekable", extCheckpoint, true, smtptest.Faults{CloseAfterDataOctets: 200 << 10}, true},
		{"DATA cut mid-data, spooled", extCheckpoint, false, smtptest.Faults{CloseAfterDataOctets: 123457}, true},
		{"BDAT cut mid-data", extCheckpointChunk, true, smtptest.Faults{CloseAfterDataOctets: 150001}, true},
		{"final reply lost (DATA)", extCheckpoint, true, smtptest.Faults{CloseBeforeReply: "."}, true},
		{"final reply lost (BDAT)", extCheckpointChunk, false, smtptest.Faults{CloseBeforeReply: "."}, true},
		{"cut before the data", extCheckpoint, true, smtptest.Faults{CloseAfterCommand: "DATA"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: tt.ext, ConnFaults: map[int]smtptest.Faults{1: tt.faults}})
			var resumedAt []int64
			k := testCourier(&Dialer{ChunkSize: 64 << 10, Trace: &ClientTrace{Resumed: func(off int64, err error) {
				assert.NoError(t, err)
				resumedAt = append(resumedAt, off)
			}}})
			var body io.Reader = bytes.NewReader(msg)
			if !tt.seekable {
				body = onlyReader{body}
			}
			res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com", "c@example.com")}, body)
			require.NoError(t, err)
			msgs := srv.Messages()
			require.Equal(t, 1, len(msgs), "exactly one copy")
			assert.True(t, bytes.Equal(msg, msgs[0].Data), "byte-identical")
			assert.Equal(t, 1, res.Restarts)
			assert.Equal(t, 2, res.Accepted())
			require.NotNil(t, res.Reply)
			if tt.resumed {
				require.Len(t, resumedAt, 1)
				if tt.faults.CloseBeforeReply == "" { // else the server had completed it
					assert.Equal(t, msgs[0].ResumedAt, resumedAt)
				}
				assert.Less(t, res.Transmitted, 2*int64(len(msg)), "resumed, not resent (sweep_test.go checks the exact octets)")
			} else {
				assert.Empty(t, resumedAt)
			}
			assert.NotEmpty(t, msgs[0].TransID)
			assert.Zero(t, res.PossibleCopies, "the server said what it held")
		})
	}
}

// failingStore is a memStore whose Save fails from the failSaveFrom-th
// call on (0: never) and whose Delete always fails when failDelete.
type failingStore struct {
	memStore
	saves        int
	failSaveFrom int
	failDelete   bool
}

var errStoreBroken = errors.New("store: disk full")

func (s *failingStore) Save(ctx context.Context, cp *Checkpoint) error {
	s.saves++
	if s.failSaveFrom > 0 && s.saves >= s.failSaveFrom {
		return errStoreBroken
	}
	return s.memStore.Save(ctx, cp)
}

func (s *failingStore) Delete(ctx context.Context, transID string) error {
	if s.failDelete {
		return errStoreBroken
	}
	return s.memStore.Delete(ctx, transID)
}

// A failing CheckpointStore is reported, never silently dropped: the first
// save's failure is Send's error before anything is sent; a failed save
// after a cut or a failed delete after delivery reach the StoreFailed hook
// while the message is still delivered exactly once.
func TestCourier_ReportsStoreFailures(t *testing.T) {
	msg := bigText(100 << 10)
	env := func() *Envelope { return &Envelope{From: "a@example.org", To: Recipients("b@example.com")} }
	tests := []struct {
		name      string
		store     *failingStore
		cut       bool
		wantErr   bool
		wantOps   []string
		delivered int
	}{
		{"first save fails: nothing sent", &failingStore{failSaveFrom: 1}, false, true, nil, 0},
		// The data's start, the progress after the cut, the restart, its
		// data's start and the record before the end (and one more before
		// the first attempt's end if it got out before the server's cut).
		{"saves after a cut fail", &failingStore{failSaveFrom: 2}, true, false, []string{"save", "save", "save", "save", "save"}, 1},
		{"delete after delivery fails", &failingStore{failDelete: true}, false, false, []string{"delete"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smtptest.Config{Extensions: extCheckpoint}
			if tt.cut {
				cfg.ConnFaults = map[int]smtptest.Faults{1: {CloseAfterDataOctets: 50 << 10}}
			}
			srv := newTestServer(t, cfg)
			var ops []string
			k := testCourier(&Dialer{Trace: &ClientTrace{StoreFailed: func(op, transID string, err error) {
				assert.ErrorIs(t, err, errStoreBroken)
				assert.NotEmpty(t, transID)
				ops = append(ops, op)
			}}})
			k.Store = tt.store
			_, err := k.Send(context.Background(), []string{srv.Addr}, env(), bytes.NewReader(msg))
			if tt.wantErr {
				require.ErrorIs(t, err, errStoreBroken)
			} else {
				require.NoError(t, err)
			}
			if tt.cut && len(ops) == len(tt.wantOps)+1 {
				ops = ops[1:] // the first attempt's record before its end
			}
			assert.Equal(t, tt.wantOps, ops)
			assert.Len(t, srv.Messages(), tt.delivered)
		})
	}
}

// Without CHECKPOINT a broken transaction goes again in full, and success
// is reported only with the server's 250.
func TestCourier_WithoutCheckpointResendsInFull(t *testing.T) {
	msg := bigText(100 << 10)
	srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING"}, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 50000}}})
	k := testCourier(nil)
	res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
	require.NoError(t, err)
	require.Equal(t, 1, len(srv.Messages()))
	assert.True(t, bytes.Equal(msg, srv.Messages()[0].Data))
	assert.Empty(t, srv.Messages()[0].TransID)
	assert.Greater(t, res.Transmitted, int64(len(msg)), "sent again in full")

	// Every attempt cut: the error says so, and no success is claimed.
	srv2 := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING"}, Faults: smtptest.Faults{CloseBeforeReply: "."}})
	_, err = k.Send(context.Background(), []string{srv2.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
	require.Error(t, err)
}

// An offset the message cannot have is a server fault: RSET and the whole
// message under a new TRANSID, never a corrupt copy (RFC 1845 §3).
func TestCourier_RefusesABadOffset(t *testing.T) {
	msg := bigText(64 << 10)
	for _, bad := range []string{"355 99999999 is the offset", "355 7 mid-line", "355 x"} {
		t.Run(bad, func(t *testing.T) {
			once := false
			srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint,
				ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 30000}},
				Handler: func(cmd smtptest.Command) (string, bool) {
					if cmd.Conn == 2 && cmd.Verb == "MAIL" && !once {
						once = true
						return bad, true
					}
					return "", false
				}})
			var refused []string
			k := testCourier(&Dialer{Trace: &ClientTrace{Resumed: func(_ int64, err error) {
				if err != nil {
					refused = append(refused, err.Error())
				}
			}}})
			_, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
			require.NoError(t, err)
			require.Len(t, refused, 1)
			msgs := srv.Messages()
			require.Equal(t, 1, len(msgs))
			assert.True(t, bytes.Equal(msg, msgs[0].Data))
		})
	}
}

// RFC 1845 §3: try the address that holds the transaction first; if
// another server answers, it has no state and gets the whole message.
func TestCourier_ReconnectsToTheOriginalFirst(t *testing.T) {
	msg := bigText(64 << 10)
	store := smtptest.NewCheckpointStore()
	a := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, Checkpoints: store, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 30000}}})
	b := newTestServer(t, smtptest.Config{Extensions: extCheckpoint})
	var conns []string
	k := testCourier(&Dialer{Trace: &ClientTrace{Connected: func(addr string, _ int) { conns = append(conns, addr) }}})
	_, err := k.Send(context.Background(), []string{a.Addr, b.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
	require.NoError(t, err)
	assert.Equal(t, []string{a.Addr, a.Addr}, conns)
	require.Equal(t, 1, len(a.Messages()))
	assert.Empty(t, b.Messages())

	// The original is gone: the next address gets it in full.
	c := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 30000}, 2: {CloseAfterCommand: "GREETING"}}})
	d := newTestServer(t, smtptest.Config{Extensions: extCheckpoint})
	conns = nil
	res, err := k.Send(context.Background(), []string{c.Addr, d.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
	require.NoError(t, err)
	require.Equal(t, 1, len(d.Messages()))
	assert.True(t, bytes.Equal(msg, d.Messages()[0].Data))
	assert.Empty(t, c.Messages())
	assert.Equal(t, 2, res.Restarts)
}

// A bulk Batch with TRANSIDs never sends the next MAIL before the final
// reply (RFC 1845 §3): two round trips per message.
func TestBatch_TransIDHoldsTheNextMAIL(t *testing.T) {
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint})
	c := dialTest(t, srv, nil)
	b, err := c.NewBatch(context.Background())
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		id, err := NewTransID("client.example")
		require.NoError(t, err)
		require.NoError(t, b.Send(&Envelope{From: "a@example.org", To: Recipients("b@example.com"), TransID: id}, strings.NewReader(testMessage(i)), nil))
	}
	require.NoError(t, b.Quit())
	assert.Equal(t, 2+5*2+1, srv.Flushes(1))
	var last string
	for _, l := range srv.Transcript(1) {
		if strings.HasPrefix(l, "C: ") {
			if strings.HasPrefix(l, "C: MAIL") || l == "C: QUIT" {
				assert.NotContains(t, last, "<data", "MAIL or QUIT right after the data, before its reply")
			}
			last = l
		} else if strings.HasPrefix(l, "S: ") {
			last = l
		}
	}
	assert.Equal(t, 5, len(srv.Messages()))
}

// Deliver resolves the domain (RFC 5321 §5.1), resolves it again before
// reconnecting, and resumes there; a null MX (RFC 7505) is refused before
// any connection.
func TestCourier_DeliverResolvesTheDomain(t *testing.T) {
	msg := bigText(100 << 10)
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 60000}}})
	_, port, _ := net.SplitHostPort(srv.Addr)
	dns := &resFakeDNS{
		mx: map[string]resMX{"bücher.example.": {records: resMXs("mx.xn--bcher-kva.example.", 10)}, "nomail.example.": {records: resMXs(".", 0)}},
		ip: map[string]resIP{"mx.xn--bcher-kva.example.": {addrs: resIPs("127.0.0.1")}},
	}
	dns.mx["xn--bcher-kva.example."] = dns.mx["bücher.example."]
	k := testCourier(nil)
	k.Resolver = &Resolver{DNS: dns, Port: port}
	res, err := k.Deliver(context.Background(), "bücher.example", &Envelope{From: "a@example.org", To: Recipients("b@xn--bcher-kva.example")}, bytes.NewReader(msg))
	require.NoError(t, err)
	assert.Equal(t, 1, res.Restarts)
	require.Equal(t, 1, len(srv.Messages()))
	assert.True(t, bytes.Equal(msg, srv.Messages()[0].Data))
	mxQueries := 0
	for _, q := range dns.asked {
		if strings.HasPrefix(q, "MX ") {
			mxQueries++
		}
	}
	assert.Equal(t, 2, mxQueries, "resolved again before reconnecting")

	_, err = k.Deliver(context.Background(), "nomail.example", &Envelope{From: "a@example.org", To: Recipients("b@nomail.example")}, bytes.NewReader(msg))
	require.ErrorIs(t, err, ErrNullMX)
	assert.Equal(t, 2, srv.Conns(), "no connection for a null MX")
}

// ledgerStore is a memStore that keeps a copy of every record saved.
type ledgerStore struct {
	memStore
	saved []Checkpoint
}

func (s *ledgerStore) Save(ctx context.Context, cp *Checkpoint) error {
	s.mu.Lock()
	s.saved = append(s.saved, *cp)
	s.mu.Unlock()
	return s.memStore.Save(ctx, cp)
}

// phases returns the phases of the records saved, in order, each run of
// one phase once (a slow machine may record the data's progress twice).
func (s *ledgerStore) phases() []Phase {
	var ps []Phase
	for _, cp := range s.saved {
		ps = append(ps, cp.Phase)
	}
	return slices.Compact(ps)
}

// With a Store, a transaction with a server that does not offer CHECKPOINT
// is in the ledger too, under a TransID of the client's own that is never
// sent: its record says PhaseUnknown before the end of the data goes out,
// so a lost final reply is known for what it is. The message is then sent
// again in full, and Result.PossibleCopies says the server may hold a copy
// more; a cut before the end makes none. Either way success comes only
// with a 250, and the record goes once it is read.
func TestCourier_LedgerWithoutCheckpoint(t *testing.T) {
	msg := bigText(16 << 20) // more than the socket buffers: a cut at 64 KiB stops the client before the end
	tests := []struct {
		name   string
		faults smtptest.Faults
		phases []Phase
		copies int
	}{
		{"final reply lost", smtptest.Faults{CloseBeforeReply: "."},
			[]Phase{PhaseEnvelope, PhaseData, PhaseUnknown, PhaseEnvelope, PhaseData, PhaseUnknown}, 1},
		{"cut during the data", smtptest.Faults{CloseAfterDataOctets: 64 << 10},
			[]Phase{PhaseEnvelope, PhaseData, PhaseEnvelope, PhaseData, PhaseUnknown}, 0},
		{"cut before the data", smtptest.Faults{CloseAfterCommand: "DATA"},
			[]Phase{PhaseEnvelope, PhaseData, PhaseUnknown}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME"}, MaxMessageSize: 64 << 20,
				ConnFaults: map[int]smtptest.Faults{1: tt.faults}})
			st := &ledgerStore{}
			k := testCourier(nil)
			k.Store = st
			res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
			require.NoError(t, err)
			require.NotNil(t, res.Reply)
			assert.Equal(t, 250, res.Reply.Code)
			assert.Equal(t, tt.copies, res.PossibleCopies)
			msgs := srv.Messages()
			require.Len(t, msgs, 1+tt.copies, "the copies the server holds are those Result admits")
			for _, m := range msgs {
				assert.Empty(t, m.TransID, "the ledger's key is never sent")
				assert.True(t, bytes.Equal(msg, m.Data))
			}
			assert.Equal(t, tt.phases, st.phases())
			for _, cp := range st.saved {
				assert.True(t, cp.LocalID)
				assert.Equal(t, st.saved[0].TransID, cp.TransID, "one record for the message")
			}
			assert.Empty(t, st.m, "the record goes once the 250 is read")
		})
	}
}

// Resuming a record of a server without CHECKPOINT sends the transaction
// again in full; a record in PhaseUnknown makes a possible copy, one cut
// before the end does not.
func TestCourier_ResumeLocalRecord(t *testing.T) {
	msg := bigText(64 << 10)
	for _, phase := range []Phase{PhaseData, PhaseUnknown} {
		t.Run(string(phase), func(t *testing.T) {
			srv := newTestServer(t, smtptest.Config{Extensions: []string{"PIPELINING"}})
			st := &ledgerStore{}
			k := testCourier(nil)
			k.Store = st
			id, err := NewTransID("client.example")
			require.NoError(t, err)
			cp := &Checkpoint{TransID: id, LocalName: "client.example", Server: srv.Addr, LocalID: true, Phase: phase, Sent: 4096,
				Envelope: Envelope{From: "a@example.org", To: Recipients("b@example.com")}}
			require.NoError(t, st.Save(context.Background(), cp))
			res, err := k.Resume(context.Background(), cp, bytes.NewReader(msg))
			require.NoError(t, err)
			want := 0
			if phase == PhaseUnknown {
				want = 1
			}
			assert.Equal(t, want, res.PossibleCopies)
			assert.Equal(t, int64(len(msg)), res.Transmitted, "sent in full")
			require.Len(t, srv.Messages(), 1)
			assert.Empty(t, srv.Messages()[0].TransID)
			assert.Empty(t, st.m)
		})
	}
}

// A CHECKPOINT server that lost the transaction (a restart without its
// state) answers the restart's MAIL with 250 although the end of the data
// had reached it: the Courier sends the message again in full and counts a
// possible copy, which the server indeed holds.
func TestCourier_RestartAnswered250AfterALostReplyIsAPossibleCopy(t *testing.T) {
	msg := bigText(64 << 10)
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, ConnFaults: map[int]smtptest.Faults{1: {CloseBeforeReply: "."}}})
	k := testCourier(&Dialer{Trace: &ClientTrace{AttemptFailed: func(string, error) { srv.Checkpoints().Forget() }}})
	res, err := k.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")}, bytes.NewReader(msg))
	require.NoError(t, err)
	assert.Equal(t, 1, res.PossibleCopies)
	assert.Len(t, srv.Messages(), 2, "the copy the Result admits")
	assert.Equal(t, 1, res.Restarts)
}
