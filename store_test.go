package smtp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var checkpointStores = []struct {
	name string
	open func(t *testing.T) CheckpointStore
}{
	{"Memory", func(*testing.T) CheckpointStore { return NewMemoryStore() }},
	{"File", func(t *testing.T) CheckpointStore {
		s, err := NewFileStore(t.TempDir())
		require.NoError(t, err)
		return s
	}},
}

var checkpointEpoch = time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)

func sampleCheckpoint(id string, minute int) *Checkpoint {
	return &Checkpoint{
		TransID:   id,
		LocalName: "client.example",
		Server:    "192.0.2.25:25",
		Envelope: Envelope{
			From: "bulk@client.example",
			To: []Recipient{
				{Addr: "a@example.org", Notify: []DSNNotify{DSNFailure, DSNDelay}, ORCPT: "a@example.org"},
				{Addr: "b@example.org"},
			},
			Size:  12345,
			Body:  Body8BitMIME,
			Ret:   "HDRS",
			EnvID: "env-1",
		},
		Size:    12345,
		Sent:    6135,
		Points:  []ResumePoint{{0, 0}, {4096, 4000}, {6135, 6000}},
		Updated: checkpointEpoch.Add(time.Duration(minute) * time.Minute),
	}
}

// fillNonZero sets every exported field reachable from v to a value that is
// not the zero value, so that a field added to Checkpoint or Envelope that
// a store forgets to copy or persist fails the tests. A kind it does not
// know fails too: cloneCheckpoint would need to learn it.
func fillNonZero(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fillNonZero(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(checkpointEpoch.Add(time.Duration(*n) * time.Second)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillNonZero(t, v.Field(i), n)
			}
		}
	default:
		t.Fatalf("fillNonZero: %s of kind %s: teach cloneCheckpoint and this test about it", v.Type(), v.Kind())
	}
}

// sharedMemory returns the path to a slice that a and b share, or "".
func sharedMemory(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && b.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := 0; i < a.Len() && i < b.Len(); i++ {
			if p := sharedMemory(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := sharedMemory(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	case reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			return path
		}
	}
	return ""
}

func TestCheckpointStores(t *testing.T) {
	ctx := context.Background()
	for _, st := range checkpointStores {
		t.Run(st.name, func(t *testing.T) {
			t.Run("SaveLoad", func(t *testing.T) {
				s := st.open(t)
				cp := sampleCheckpoint("<1@client.example>", 0)
				require.NoError(t, s.Save(ctx, cp))
				got, err := s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Equal(t, cp, got)
			})
			t.Run("AllFields", func(t *testing.T) {
				s := st.open(t)
				var cp Checkpoint
				n := 0
				fillNonZero(t, reflect.ValueOf(&cp).Elem(), &n)
				cp.TransID = "<all.fields@client.example>"
				require.NoError(t, s.Save(ctx, &cp))
				got, err := s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Equal(t, &cp, got)
				require.Empty(t, sharedMemory(reflect.ValueOf(cp), reflect.ValueOf(*got), "Checkpoint"))
				again, err := s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Empty(t, sharedMemory(reflect.ValueOf(*got), reflect.ValueOf(*again), "Checkpoint"))
			})
			t.Run("EmptyAndNil", func(t *testing.T) {
				s := st.open(t)
				cp := &Checkpoint{TransID: "<bare@x>", Size: -1}
				require.NoError(t, s.Save(ctx, cp))
				got, err := s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Equal(t, cp, got)
				cp = &Checkpoint{TransID: "<empty@x>", Size: -1, Points: []ResumePoint{}, Envelope: Envelope{To: []Recipient{}}}
				require.NoError(t, s.Save(ctx, cp))
				got, err = s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Equal(t, cp, got)
			})
			t.Run("Replace", func(t *testing.T) {
				s := st.open(t)
				cp := sampleCheckpoint("<1@client.example>", 0)
				require.NoError(t, s.Save(ctx, cp))
				cp2 := sampleCheckpoint(cp.TransID, 1)
				cp2.Sent = 9000
				cp2.Points = append(cp2.Points, ResumePoint{9000, 8800})
				require.NoError(t, s.Save(ctx, cp2))
				got, err := s.Load(ctx, cp.TransID)
				require.NoError(t, err)
				require.Equal(t, cp2, got)
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Equal(t, []*Checkpoint{cp2}, all)
			})
			t.Run("Missing", func(t *testing.T) {
				s := st.open(t)
				for _, id := range []string{"<nope@x>", "", "garbage", "../../etc/passwd", strings.Repeat("<", 500)} {
					got, err := s.Load(ctx, id)
					require.ErrorIs(t, err, ErrNoCheckpoint, "%q", id)
					require.Nil(t, got)
					require.NoError(t, s.Delete(ctx, id))
				}
			})
			t.Run("Delete", func(t *testing.T) {
				s := st.open(t)
				a, b := sampleCheckpoint("<a@x>", 0), sampleCheckpoint("<b@x>", 1)
				require.NoError(t, s.Save(ctx, a))
				require.NoError(t, s.Save(ctx, b))
				require.NoError(t, s.Delete(ctx, a.TransID))
				_, err := s.Load(ctx, a.TransID)
				require.ErrorIs(t, err, ErrNoCheckpoint)
				require.NoError(t, s.Delete(ctx, a.TransID))
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Equal(t, []*Checkpoint{b}, all)
				require.NoError(t, s.Delete(ctx, b.TransID))
				all, err = s.List(ctx)
				require.NoError(t, err)
				require.Empty(t, all)
			})
			t.Run("List", func(t *testing.T) {
				s := st.open(t)
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Empty(t, all)
				c := sampleCheckpoint("<c@x>", 2)
				b := sampleCheckpoint("<b@x>", 1)
				a2 := sampleCheckpoint("<a2@x>", 0)
				a1 := sampleCheckpoint("<a1@x>", 0)
				for _, cp := range []*Checkpoint{c, a2, b, a1} {
					require.NoError(t, s.Save(ctx, cp))
				}
				all, err = s.List(ctx)
				require.NoError(t, err)
				require.Equal(t, []*Checkpoint{a1, a2, b, c}, all)
			})
			t.Run("CopiesNotAliases", func(t *testing.T) {
				s := st.open(t)
				cp := sampleCheckpoint("<1@x>", 0)
				want := sampleCheckpoint("<1@x>", 0)
				require.NoError(t, s.Save(ctx, cp))
				cp.LocalName = "changed"
				cp.Envelope.To[0].Addr = "changed"
				cp.Envelope.To[0].Notify[0] = "changed"
				cp.Points[1].Source = -5
				got, err := s.Load(ctx, want.TransID)
				require.NoError(t, err)
				require.Equal(t, want, got)

				got.Envelope.To[1].Addr = "changed"
				got.Envelope.To[0].Notify[1] = "changed"
				got.Points[0].Canonical = 99
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Equal(t, []*Checkpoint{want}, all)
				all[0].Envelope.To[0].Notify[0] = "changed"
				all[0].Points[2] = ResumePoint{}
				got, err = s.Load(ctx, want.TransID)
				require.NoError(t, err)
				require.Equal(t, want, got)
			})
			t.Run("Invalid", func(t *testing.T) {
				s := st.open(t)
				require.Error(t, s.Save(ctx, nil))
				for _, id := range []string{"", "no-brackets@x", "<a b@x>", "<[192.0.2.1]@x>", "<" + strings.Repeat("a", 80) + "@x>"} {
					err := s.Save(ctx, sampleCheckpoint(id, 0))
					var te *TransIDError
					require.True(t, errors.As(err, &te), "%q: %v", id, err)
				}
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Empty(t, all)
			})
			t.Run("CaseSensitive", func(t *testing.T) {
				s := st.open(t)
				up, low := sampleCheckpoint("<ABC@Example.COM>", 0), sampleCheckpoint("<abc@example.com>", 1)
				low.Sent = 1
				require.NoError(t, s.Save(ctx, up))
				require.NoError(t, s.Save(ctx, low))
				got, err := s.Load(ctx, up.TransID)
				require.NoError(t, err)
				require.Equal(t, up, got)
				got, err = s.Load(ctx, low.TransID)
				require.NoError(t, err)
				require.Equal(t, low, got)
				_, err = s.Load(ctx, "<Abc@example.com>")
				require.ErrorIs(t, err, ErrNoCheckpoint)
			})
			t.Run("OddCharacters", func(t *testing.T) {
				s := st.open(t)
				ids := []string{
					"<!#$%&'*+-^_`{|}~@x>",
					"<a|b*c@d~e>",
					"<%2F%2e%2e@x>",
					"<" + strings.Repeat("z", 76) + "@y>",
					"<CON@NUL.aux>",
				}
				for i, id := range ids {
					require.NoError(t, s.Save(ctx, sampleCheckpoint(id, i)), id)
				}
				for i, id := range ids {
					got, err := s.Load(ctx, id)
					require.NoError(t, err, id)
					require.Equal(t, sampleCheckpoint(id, i), got)
				}
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Len(t, all, len(ids))
			})
			t.Run("Canceled", func(t *testing.T) {
				s := st.open(t)
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				cp := sampleCheckpoint("<1@x>", 0)
				require.ErrorIs(t, s.Save(cctx, cp), context.Canceled)
				_, err := s.Load(cctx, cp.TransID)
				require.ErrorIs(t, err, context.Canceled)
				require.ErrorIs(t, s.Delete(cctx, cp.TransID), context.Canceled)
				_, err = s.List(cctx)
				require.ErrorIs(t, err, context.Canceled)
				_, err = s.Load(ctx, cp.TransID)
				require.ErrorIs(t, err, ErrNoCheckpoint)
			})
			t.Run("Concurrent", func(t *testing.T) {
				s := st.open(t)
				const workers, rounds = 8, 25
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						for r := range rounds {
							own := sampleCheckpoint(fmt.Sprintf("<w%d@x>", w), r)
							own.Sent = int64(r)
							assert.NoError(t, s.Save(ctx, own))
							shared := sampleCheckpoint("<shared@x>", 0)
							shared.Sent = int64(w*rounds + r)
							assert.NoError(t, s.Save(ctx, shared))
							got, err := s.Load(ctx, own.TransID)
							assert.NoError(t, err)
							assert.Equal(t, own, got)
							_, err = s.Load(ctx, shared.TransID)
							assert.NoError(t, err)
							tmp := fmt.Sprintf("<tmp%d.%d@x>", w, r)
							assert.NoError(t, s.Save(ctx, sampleCheckpoint(tmp, 0)))
							assert.NoError(t, s.Delete(ctx, tmp))
							_, err = s.List(ctx)
							assert.NoError(t, err)
						}
					})
				}
				wg.Wait()
				all, err := s.List(ctx)
				require.NoError(t, err)
				require.Len(t, all, workers+1)
				for _, cp := range all {
					if cp.TransID != "<shared@x>" {
						require.Equal(t, int64(rounds-1), cp.Sent)
					}
				}
			})
		})
	}
}

func TestFileStoreRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "spool", "checkpoints")
	s1, err := NewFileStore(dir)
	require.NoError(t, err)
	a, b, c := sampleCheckpoint("<a@x>", 0), sampleCheckpoint("<b@x>", 1), sampleCheckpoint("<c@x>", 2)
	for _, cp := range []*Checkpoint{a, b, c} {
		require.NoError(t, s1.Save(ctx, cp))
	}
	require.NoError(t, s1.Delete(ctx, b.TransID))

	s2, err := NewFileStore(dir) // the process restarted
	require.NoError(t, err)
	all, err := s2.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*Checkpoint{a, c}, all)
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

func TestFileStoreFileNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	ids := []string{"<!#$%&'*+-^_`{|}~@x>", "<A@b>", "<a@b>", "<" + strings.Repeat("q", 76) + "@y>"}
	for _, id := range ids {
		require.NoError(t, s.Save(ctx, sampleCheckpoint(id, 0)))
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

func TestFileStoreLeftoverTemp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	cp := sampleCheckpoint("<a@x>", 0)
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
	require.Equal(t, []*Checkpoint{cp}, all)

	s, err = NewFileStore(dir) // restart
	require.NoError(t, err)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist, "stale temporary file not removed")
	_, err = os.Stat(fresh)
	require.NoError(t, err, "a temporary file in use was removed")
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*Checkpoint{cp}, all)
}

func TestFileStoreSaveFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	cp := sampleCheckpoint("<a@x>", 0)
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

func TestFileStoreCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	require.NoError(t, err)
	good := sampleCheckpoint("<good@x>", 0)
	require.NoError(t, s.Save(ctx, good))
	other := sampleCheckpoint("<other@x>", 1)
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
		require.NotErrorIs(t, err, ErrNoCheckpoint)
		require.Contains(t, err.Error(), s.path(id), id)
		require.Contains(t, err.Error(), b.reason, id)
	}
	all, err := s.List(ctx)
	require.Error(t, err)
	require.Equal(t, []*Checkpoint{good}, all, "List returns the readable records")
	for id, b := range bad {
		require.Contains(t, err.Error(), s.path(id))
		require.Contains(t, err.Error(), b.reason)
	}
	// A corrupt record can be replaced or deleted.
	require.NoError(t, s.Save(ctx, sampleCheckpoint("<junk@x>", 5)))
	for id := range bad {
		require.NoError(t, s.Delete(ctx, id))
	}
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*Checkpoint{good}, all)
}

func TestNewFileStoreErrors(t *testing.T) {
	_, err := NewFileStore("")
	require.Error(t, err)
	f := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(f, nil, 0o600))
	_, err = NewFileStore(f)
	require.Error(t, err)
	_, err = NewFileStore(filepath.Join(f, "sub"))
	require.Error(t, err)
}
