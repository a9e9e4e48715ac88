package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
)

// workerEnv carries a worker process's job: what to do, and where.
const workerEnv = "RESMTP_PGSTORE_WORKER"

// job is a worker process's work order.
type job struct {
	Role   string // "send": A sends the message; "resume": B claims and finishes
	PG     string
	Table  string
	Server string
	File   string
	Owner  string
}

// outcome is what a worker process reports on its standard output.
type outcome struct {
	Claimed        bool
	Phase          smtp.Phase // the record's phase when B claimed it
	LocalID        bool       // the record was of a server without CHECKPOINT
	Transmitted    int64
	PossibleCopies int
	Code           int // the final reply's code, 0 if none
	Err            string
}

// takeoverTTL is the workers' lease: it expires at least two thirds of it
// after a worker's death (renewals come every third), later than the
// server notices the death even while it delays its reply to the ".".
// The servers of the runs delay their replies to RCPT and to the end of
// the data, so that kills land in the envelope and after the final "."
// too, not only in the data.
const (
	takeoverTTL = time.Second
	rcptDelay   = 300 * time.Millisecond
	replyDelay  = 500 * time.Millisecond
)

// TestWorkerProcess is one worker of TestTakeover_KilledWorker, run as a
// process of its own; it skips otherwise.
func TestWorkerProcess(t *testing.T) {
	raw := os.Getenv(workerEnv)
	if raw == "" {
		t.Skip("run by TestTakeover_KilledWorker")
	}
	var j job
	require.NoError(t, json.Unmarshal([]byte(raw), &j))
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, j.PG)
	require.NoError(t, err)
	defer pool.Close()
	s, err := New(pool, j.Table)
	require.NoError(t, err)
	k := &smtp.Courier{
		Dialer:   &smtp.Dialer{LocalName: "worker.example", TLSPolicy: smtp.TLSDisabled},
		Store:    s,
		Owner:    j.Owner,
		LeaseTTL: takeoverTTL,
		Attempts: 1,
		Reopen: func(_ context.Context, ref string) (io.ReadSeekCloser, error) {
			return os.Open(ref)
		},
	}
	var out outcome
	var res *smtp.Result
	switch j.Role {
	case "send":
		f, err := os.Open(j.File)
		require.NoError(t, err)
		defer f.Close()
		res, err = k.Send(ctx, []string{j.Server}, &smtp.Envelope{From: "a@worker.example", To: smtp.Recipients("b@example.org")}, smtp.SourceRef(j.File, f))
		if err != nil {
			out.Err = err.Error()
		}
	case "resume":
		var leases []*Lease
		deadline := time.Now().Add(5 * time.Second)
		for len(leases) == 0 && time.Now().Before(deadline) {
			leases, err = s.ClaimExpired(ctx, j.Owner, takeoverTTL, 1)
			require.NoError(t, err)
			if len(leases) == 0 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if len(leases) == 1 {
			out.Claimed, out.Phase, out.LocalID = true, leases[0].Phase, leases[0].Checkpoint.LocalID
			res, err = k.Resume(ctx, leases[0].Checkpoint, nil)
			if err != nil {
				out.Err = err.Error()
			}
		}
	}
	if res != nil {
		out.Transmitted, out.PossibleCopies = res.Transmitted, res.PossibleCopies
		if res.Reply != nil {
			out.Code = res.Reply.Code
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

// startWorker starts a worker process for j.
func startWorker(t *testing.T, j job) (*exec.Cmd, *bytes.Buffer) {
	raw, err := json.Marshal(j)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkerProcess$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), workerEnv+"="+string(raw))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	return cmd, &out
}

// parseOutcome finds the worker's report in its output.
func parseOutcome(t *testing.T, out string) outcome {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") {
			var o outcome
			require.NoError(t, json.Unmarshal([]byte(line), &o), line)
			return o
		}
	}
	require.FailNow(t, "no outcome from the worker", out)
	return outcome{}
}

// A worker process sending a 64 MiB message is killed with SIGKILL at a
// random point — during the envelope, the data, or after the final "."
// while its reply is delayed — and another process claims the expired
// lease and finishes the transaction from the ledger alone (the message
// is reopened from shared storage and its digest checked).
//
// With CHECKPOINT every run ends with exactly one byte-identical copy, and
// the second worker sends no more than the remainder and 64 KiB. Without,
// the second worker sends the message again in full: one copy, unless the
// first had sent the end of the data (the ledger says PhaseUnknown), when
// the server may hold two and the Result says so (PossibleCopies). Either
// way success is reported only with a 250, and the server's log shows the
// two workers never on one transaction at once: its spans do not overlap
// and no connection was cut by a takeover.
func TestTakeover_KilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: forty 64 MiB takeovers take two minutes")
	}
	file := filepath.Join(t.TempDir(), "message.eml")
	msg := bigMessage(64 << 20)
	require.NoError(t, os.WriteFile(file, msg, 0o600))
	for _, tt := range []struct {
		name string
		ext  []string
	}{
		{"CHECKPOINT", []string{"PIPELINING", "8BITMIME", "CHECKPOINT"}},
		{"without CHECKPOINT", []string{"PIPELINING", "8BITMIME"}},
	} {
		t.Run(tt.name, func(t *testing.T) { takeovers(t, tt.ext, file, msg) })
	}
}

// newTakeoverServer starts an smtptest server with ext that delays its
// replies as delay says.
func newTakeoverServer(t *testing.T, ext []string, delay map[string]time.Duration) *smtptest.Server {
	cfg := smtptest.Config{Extensions: ext, MaxMessageSize: 128 << 20, Faults: smtptest.Faults{Delay: delay}}
	if slices.Contains(ext, "CHECKPOINT") {
		cfg.Checkpoints = smtptest.NewCheckpointStore()
	}
	srv, err := smtptest.NewServer(cfg)
	require.NoError(t, err)
	return srv
}

// takeovers runs the killed-worker runs against servers with ext.
func takeovers(t *testing.T, ext []string, file string, msg []byte) {
	s := newStore(t)
	url := os.Getenv("RESMTP_PG_URL")
	checkpoint := slices.Contains(ext, "CHECKPOINT")

	// How long a whole send takes, to spread the kills over it.
	srv0 := newTakeoverServer(t, ext, nil)
	start := time.Now()
	cmd, out := startWorker(t, job{Role: "send", PG: url, Table: s.table, Server: srv0.Addr, File: file, Owner: "calibrate"})
	require.NoError(t, cmd.Wait(), out.String())
	require.Empty(t, parseOutcome(t, out.String()).Err)
	full := time.Since(start)
	srv0.Close()
	t.Logf("a whole send takes %v", full.Round(time.Millisecond))

	rng := rand.New(rand.NewPCG(7, 11))
	runs := 20
	if raceEnabled {
		runs = 4 // the workers run the race-instrumented binary too: slower
	}
	t.Logf("%-10s | %-58s | %-12s | %s", "kill at", "what B did", "re-sent by B", "copies")
	for run := range runs {
		srv := newTakeoverServer(t, ext, map[string]time.Duration{"RCPT": rcptDelay, ".": replyDelay})
		killAt := time.Duration(rng.Int64N(int64(full + rcptDelay + replyDelay)))
		a, aout := startWorker(t, job{Role: "send", PG: url, Table: s.table, Server: srv.Addr, File: file, Owner: fmt.Sprintf("A%d", run)})
		time.Sleep(killAt)
		a.Process.Signal(syscall.SIGKILL)
		a.Wait()
		aDone := strings.Contains(aout.String(), `"Err":""`)

		b, bout := startWorker(t, job{Role: "resume", PG: url, Table: s.table, Server: srv.Addr, File: file, Owner: fmt.Sprintf("B%d", run)})
		require.NoError(t, b.Wait(), bout.String())
		o := parseOutcome(t, bout.String())
		msgs := srv.Messages()
		what := "nothing to claim: A had finished"
		switch {
		case o.Claimed && o.Err != "":
			what = "claimed, failed: " + o.Err
		case o.Claimed && !checkpoint:
			what = fmt.Sprintf("claimed (%s), sent again in full", o.Phase)
		case o.Claimed:
			what = fmt.Sprintf("claimed (%s), resumed, delivered", o.Phase)
		case !aDone && len(msgs) == 0:
			what = "nothing to claim: A died before its checkpoint"
		}
		if o.PossibleCopies > 0 {
			what += " (a possible copy)"
		}
		resumedAt := int64(0)
		if len(msgs) == 1 && len(msgs[0].ResumedAt) > 0 {
			resumedAt = msgs[0].ResumedAt[len(msgs[0].ResumedAt)-1]
		}
		t.Logf("%-10v | %-58s | %-12d | %d", killAt.Round(time.Millisecond), what, o.Transmitted, len(msgs))
		checkTakeover(t, run, checkpoint, what, o, msgs, msg, resumedAt)
		checkSpans(t, run, checkpoint, srv.Spans())
		srv.Close()
	}
}

// checkTakeover checks one run's outcome.
func checkTakeover(t *testing.T, run int, checkpoint bool, what string, o outcome, msgs []smtptest.Message, msg []byte, resumedAt int64) {
	if what == "nothing to claim: A died before its checkpoint" {
		// The queue still has the message: nothing was sent, nothing is lost.
		assert.Empty(t, msgs, "run %d", run)
		return
	}
	assert.Empty(t, o.Err, "run %d", run)
	for _, m := range msgs {
		assert.True(t, bytes.Equal(msg, m.Data), "run %d: byte-identical", run)
	}
	if !o.Claimed {
		assert.Len(t, msgs, 1, "run %d: exactly one copy", run)
		return
	}
	assert.Equal(t, 250, o.Code, "run %d: delivered means a 250", run)
	assert.Equal(t, !checkpoint, o.LocalID, "run %d", run)
	switch {
	case checkpoint:
		assert.Len(t, msgs, 1, "run %d: exactly one copy", run)
		assert.Zero(t, o.PossibleCopies, "run %d", run)
		assert.LessOrEqual(t, o.Transmitted, int64(len(msg))-resumedAt+64<<10, "run %d: B sent the remainder only", run)
	case o.Phase == smtp.PhaseUnknown:
		// A sent the end: the server may have taken it, and B says so.
		assert.Equal(t, 1, o.PossibleCopies, "run %d", run)
		assert.Contains(t, []int{1, 2}, len(msgs), "run %d: one copy, or two when A's final reply was lost", run)
		assert.Equal(t, int64(len(msg)), o.Transmitted, "run %d: sent again in full", run)
	default:
		assert.Zero(t, o.PossibleCopies, "run %d", run)
		assert.Len(t, msgs, 1, "run %d: cut before the end: exactly one copy", run)
		assert.Equal(t, int64(len(msg)), o.Transmitted, "run %d: sent again in full", run)
	}
}

// checkSpans checks from the server's log that no two connections worked
// on one transaction at once: each span of a TRANSID (every span, without
// CHECKPOINT, where the server sees none) ends before the next begins, and
// the server never cut a connection for a takeover.
func checkSpans(t *testing.T, run int, checkpoint bool, spans []smtptest.Span) {
	last := map[string]smtptest.Span{}
	for _, sp := range spans {
		assert.False(t, sp.Aborted, "run %d: connection %d cut by a takeover", run, sp.Conn)
		assert.Equal(t, checkpoint, sp.TransID != "", "run %d", run)
		if prev, ok := last[sp.TransID]; ok {
			assert.True(t, prev.End.Before(sp.Start), "run %d: connections %d and %d on %q at once", run, prev.Conn, sp.Conn, sp.TransID)
		}
		last[sp.TransID] = sp
	}
}
