package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/resmtp/smtp"
	"github.com/resmtp/smtp/internal/smtptest"
	"github.com/resmtp/smtp/internal/storetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDirRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool", "checkpoints")
	s1, err := OpenDir(dir)
	require.NoError(t, err)
	a, b, c := storetest.Sample("<a@x>", 0), storetest.Sample("<b@x>", 1), storetest.Sample("<c@x>", 2)
	for _, cp := range []*smtp.Checkpoint{a, b, c} {
		require.NoError(t, s1.Save(ctx, cp))
	}
	require.NoError(t, s1.Delete(ctx, b.TransID))

	s2, err := OpenDir(dir) // the process restarted
	require.NoError(t, err)
	all, err := s2.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{a, c}, all)
	got, err := s2.Load(ctx, c.TransID)
	require.NoError(t, err)
	require.Equal(t, c, got)

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
		ents, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range ents {
			fi, err := e.Info()
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), e.Name())
		}
	}
}

func TestDirFileNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	ids := []string{"<!#$%&'*+-^_`{|}~@x>", "<A@b>", "<a@b>", "<" + strings.Repeat("q", 76) + "@y>"}
	for _, id := range ids {
		require.NoError(t, s.Save(ctx, storetest.Sample(id, 0)))
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, len(ids))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		require.Regexp(t, `\Acp-[0-9a-f]+\.json\z`, e.Name())
	}
	for _, id := range ids {
		require.Contains(t, names, "cp-"+hex.EncodeToString([]byte(id))+".json")
	}
}

func TestDirLeftoverTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	cp := storetest.Sample("<a@x>", 0)
	require.NoError(t, s.Save(ctx, cp))

	// A crashed Save leaves a partly written temporary file; another Save
	// may be in progress.
	stale := filepath.Join(dir, checkpointTempPrefix+"123456")
	fresh := filepath.Join(dir, checkpointTempPrefix+"789012")
	require.NoError(t, os.WriteFile(stale, []byte(`{"version":1,"transid":"<a@`), 0o600))
	require.NoError(t, os.WriteFile(fresh, []byte(`{"vers`), 0o600))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))

	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{cp}, all)

	s, err = OpenDir(dir) // restart
	require.NoError(t, err)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "stale temporary file not removed")
	_, err = os.Stat(fresh)
	require.NoError(t, err, "a temporary file in use was removed")
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{cp}, all)
}

func TestDirSaveFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	cp := storetest.Sample("<a@x>", 0)
	// A directory where the record's file should be: the rename fails.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "cp-"+hex.EncodeToString([]byte(cp.TransID))+".json"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cp-"+hex.EncodeToString([]byte(cp.TransID))+".json", "x"), nil, 0o600))
	err = s.Save(ctx, cp)
	require.Error(t, err)
	require.Contains(t, err.Error(), cp.TransID)
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "the temporary file was left behind")
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

func TestDirCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenDir(dir)
	require.NoError(t, err)
	good := storetest.Sample("<good@x>", 0)
	require.NoError(t, s.Save(ctx, good))
	other := storetest.Sample("<other@x>", 1)
	require.NoError(t, s.Save(ctx, other))
	otherData, err := os.ReadFile(s.path(other.TransID))
	require.NoError(t, err)
	require.NoError(t, s.Delete(ctx, other.TransID))

	bad := map[string]struct {
		data   []byte
		reason string
	}{
		"<junk@x>":      {[]byte("{not json"), "corrupt checkpoint file"},
		"<empty@x>":     {nil, "corrupt checkpoint file"},
		"<truncated@x>": {otherData[:len(otherData)/2], "corrupt checkpoint file"},
		"<moved@x>":     {otherData, `holds TRANSID "<other@x>", not "<moved@x>"`},
		"<future@x>":    {[]byte(`{"version":2,"transid":"<future@x>"}`), "unsupported version 2"},
		"<array@x>":     {[]byte(`[1,2,3]`), "corrupt checkpoint file"},
	}
	for id, b := range bad {
		require.NoError(t, os.WriteFile(s.path(id), b.data, 0o600))
	}
	// Files that are not records are ignored.
	for _, name := range []string{"README", "cp-zz.json", "cp-3C613E.json", "cp-" + hex.EncodeToString([]byte("<a>")) + ".json", "cp-.json", "cp-" + hex.EncodeToString([]byte("<x@y>"))} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "cp-"+hex.EncodeToString([]byte("<dir@x>"))+".json"), 0o700))

	for id, b := range bad {
		cp, err := s.Load(ctx, id)
		require.Error(t, err, id)
		require.Nil(t, cp)
		require.NotErrorIs(t, err, smtp.ErrNoCheckpoint)
		require.Contains(t, err.Error(), s.path(id), id)
		require.Contains(t, err.Error(), b.reason, id)
	}
	all, err := s.List(ctx)
	require.Error(t, err)
	require.Equal(t, []*smtp.Checkpoint{good}, all, "List returns the readable records")
	for id, b := range bad {
		require.Contains(t, err.Error(), s.path(id))
		require.Contains(t, err.Error(), b.reason)
	}
	// A corrupt record can be replaced or deleted.
	require.NoError(t, s.Save(ctx, storetest.Sample("<junk@x>", 5)))
	for id := range bad {
		require.NoError(t, s.Delete(ctx, id))
	}
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{good}, all)
}

func TestOpenDirErrors(t *testing.T) {
	_, err := OpenDir("")
	require.Error(t, err)
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	_, err = OpenDir(f)
	require.Error(t, err)
	_, err = OpenDir(filepath.Join(f, "sub"))
	require.Error(t, err)
}

// A program that crashed mid-transfer resumes from the checkpoint it left
// in a Dir, with the same EHLO name and TRANSID (RFC 1845 §2), and sends
// only what the server does not hold.
func TestDir_CourierResumesAfterACrash(t *testing.T) {
	var msg bytes.Buffer
	for i := 0; msg.Len() < 200<<10; i++ {
		fmt.Fprintf(&msg, "line %06d of the message, with some words to make it longer\r\n", i)
	}
	srv, err := smtptest.NewServer(smtptest.Config{
		Extensions:  []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHECKPOINT"},
		Checkpoints: smtptest.NewCheckpointStore(),
		ConnFaults:  map[int]smtptest.Faults{1: {CloseAfterDataOctets: 100000}},
		Logf:        t.Logf,
	})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	courier := func(name string, store smtp.CheckpointStore) *smtp.Courier {
		d := &smtp.Dialer{LocalName: name, TLSPolicy: smtp.TLSDisabled}
		return &smtp.Courier{Dialer: d, Store: store, RetryDelay: time.Millisecond, Attempts: 1}
	}
	ctx := context.Background()

	s1, err := OpenDir(dir)
	require.NoError(t, err)
	env := &smtp.Envelope{From: "a@example.org", To: smtp.Recipients("b@example.com")}
	_, err = courier("client.example", s1).Send(ctx, []string{srv.Addr}, env, bytes.NewReader(msg.Bytes()))
	require.Error(t, err, "one attempt, cut: the program \"crashes\"")

	s2, err := OpenDir(dir) // the program restarts
	require.NoError(t, err)
	cps, err := s2.List(ctx)
	require.NoError(t, err)
	require.Len(t, cps, 1)
	assert.Equal(t, "client.example", cps[0].LocalName)
	assert.Equal(t, srv.Addr, cps[0].Server)
	// The record says how far the data had gone: the cut came after about
	// 100 000 octets (wire octets, a few more than canonical ones).
	assert.Greater(t, cps[0].Sent, int64(50000))
	assert.LessOrEqual(t, cps[0].Sent, int64(msg.Len()))

	res, err := courier("other-name.example", s2).Resume(ctx, cps[0], bytes.NewReader(msg.Bytes()))
	require.NoError(t, err)
	require.Len(t, srv.Messages(), 1)
	got := srv.Messages()[0]
	assert.True(t, bytes.Equal(msg.Bytes(), got.Data))
	assert.Equal(t, "client.example", got.Helo, "the EHLO name kept with the TRANSID")
	assert.NotEmpty(t, got.ResumedAt)
	assert.Less(t, res.Transmitted, int64(msg.Len()))
	cps, err = s2.List(ctx)
	require.NoError(t, err)
	assert.Empty(t, cps, "the record goes once the transaction is complete")
}
