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
	Claimed     bool
	Resumed     bool
	Transmitted int64
	Err         string
}

const takeoverTTL = 700 * time.Millisecond

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
			out.Claimed = true
			res, err = k.Resume(ctx, leases[0].Checkpoint, nil)
			if err != nil {
				out.Err = err.Error()
			}
		}
	}
	if res != nil {
		out.Transmitted = res.Transmitted
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
// is reopened from shared storage and its digest checked). Every run ends
// with exactly one byte-identical copy, the second worker sends no more
// than the remainder and 64 KiB, and the two never send at once (the
// second claims only once the first's lease expired, after its death).
func TestTakeover_KilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: twenty 64 MiB takeovers take a minute")
	}
	s := newStore(t)
	url := os.Getenv("RESMTP_PG_URL")
	file := filepath.Join(t.TempDir(), "message.eml")
	msg := bigMessage(64 << 20)
	require.NoError(t, os.WriteFile(file, msg, 0o600))

	// How long a whole send takes, to spread the kills over it.
	srv0, err := smtptest.NewServer(smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME", "CHECKPOINT"}, Checkpoints: smtptest.NewCheckpointStore(), MaxMessageSize: 128 << 20})
	require.NoError(t, err)
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
	t.Logf("%-10s | %-34s | %-14s | %s", "kill at", "what B did", "re-sent by B", "copies")
	for run := range runs {
		srv, err := smtptest.NewServer(smtptest.Config{Extensions: []string{"PIPELINING", "8BITMIME", "CHECKPOINT"},
			Checkpoints: smtptest.NewCheckpointStore(), MaxMessageSize: 128 << 20, Faults: smtptest.Faults{Delay: map[string]time.Duration{".": 500 * time.Millisecond}}})
		require.NoError(t, err)
		killAt := time.Duration(rng.Int64N(int64(full + 500*time.Millisecond)))
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
		case o.Claimed && o.Err == "":
			what = "claimed, resumed, delivered"
		case o.Claimed:
			what = "claimed, failed: " + o.Err
		case !aDone && len(msgs) == 0:
			what = "nothing to claim: A died before its checkpoint"
		}
		resumedAt := int64(0)
		if len(msgs) == 1 && len(msgs[0].ResumedAt) > 0 {
			resumedAt = msgs[0].ResumedAt[len(msgs[0].ResumedAt)-1]
		}
		t.Logf("%-10v | %-34s | %-14d | %d", killAt.Round(time.Millisecond), what, o.Transmitted, len(msgs))

		if what == "nothing to claim: A died before its checkpoint" {
			// The queue still has the message: nothing was sent, nothing is lost.
			assert.Empty(t, msgs, "run %d", run)
		} else {
			assert.Empty(t, o.Err, "run %d", run)
			if assert.Len(t, msgs, 1, "run %d: exactly one copy", run) {
				assert.True(t, bytes.Equal(msg, msgs[0].Data), "run %d: byte-identical", run)
			}
			if o.Claimed {
				assert.LessOrEqual(t, o.Transmitted, int64(len(msg))-resumedAt+64<<10, "run %d: B sent the remainder only", run)
			}
		}
		srv.Close()
	}
}
