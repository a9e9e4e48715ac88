// Package storetest is the conformance suite of smtp.CheckpointStore: the
// stores of package store and of the pgstore module run it.
package storetest

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resmtp/smtp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var checkpointEpoch = time.Date(2025, 11, 22, 9, 0, 0, 0, time.UTC)

// Sample returns a Checkpoint with every kind of field set, for id and
// updated the given number of minutes after a fixed time.
func Sample(id string, minute int) *smtp.Checkpoint {
	return &smtp.Checkpoint{
		TransID:   id,
		LocalName: "client.example",
		Server:    "192.0.2.25:25",
		Envelope: smtp.Envelope{
			From: "bulk@client.example",
			To: []smtp.Recipient{
				{Addr: "a@example.org", Notify: []smtp.DSNNotify{smtp.DSNFailure, smtp.DSNDelay}, ORCPT: "a@example.org"},
				{Addr: "b@example.org"},
			},
			Size:  12345,
			Body:  smtp.Body8BitMIME,
			Ret:   "HDRS",
			EnvID: "env-1",
		},
		Size:    12345,
		Sent:    6135,
		Points:  []smtp.ResumePoint{{Canonical: 0, Source: 0}, {Canonical: 4096, Source: 4000}, {Canonical: 6135, Source: 6000}},
		Updated: checkpointEpoch.Add(time.Duration(minute) * time.Minute),
	}
}

// fillNonZero sets every exported field reachable from v to a value that is
// not the zero value, so that a field added to smtp.Checkpoint or smtp.Envelope that
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

// Run tests the behaviour every smtp.CheckpointStore must have, on stores
// that open returns: each call must return an empty store of its own.
func Run(t *testing.T, open func(t *testing.T) smtp.CheckpointStore) {
	tests := []struct {
		name string
		test func(t *testing.T, s smtp.CheckpointStore)
	}{
		{"SaveLoad", testSaveLoad},
		{"AllFields", testAllFields},
		{"EmptyAndNil", testEmptyAndNil},
		{"Replace", testReplace},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"List", testList},
		{"CopiesNotAliases", testCopiesNotAliases},
		{"Invalid", testInvalid},
		{"CaseSensitive", testCaseSensitive},
		{"OddCharacters", testOddCharacters},
		{"Canceled", testCanceled},
		{"Concurrent", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, open(t)) })
	}
}

func testSaveLoad(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	cp := Sample("<1@client.example>", 0)
	require.NoError(t, s.Save(ctx, cp))
	got, err := s.Load(ctx, cp.TransID)
	require.NoError(t, err)
	require.Equal(t, cp, got)
}

func testAllFields(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	var cp smtp.Checkpoint
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
}

func testEmptyAndNil(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	cp := &smtp.Checkpoint{TransID: "<bare@x>", Size: -1}
	require.NoError(t, s.Save(ctx, cp))
	got, err := s.Load(ctx, cp.TransID)
	require.NoError(t, err)
	require.Equal(t, cp, got)
	cp = &smtp.Checkpoint{TransID: "<empty@x>", Size: -1, Points: []smtp.ResumePoint{}, Envelope: smtp.Envelope{To: []smtp.Recipient{}}}
	require.NoError(t, s.Save(ctx, cp))
	got, err = s.Load(ctx, cp.TransID)
	require.NoError(t, err)
	require.Equal(t, cp, got)
}

func testReplace(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	cp := Sample("<1@client.example>", 0)
	require.NoError(t, s.Save(ctx, cp))
	cp2 := Sample(cp.TransID, 1)
	cp2.Sent = 9000
	cp2.Points = append(cp2.Points, smtp.ResumePoint{Canonical: 9000, Source: 8800})
	require.NoError(t, s.Save(ctx, cp2))
	got, err := s.Load(ctx, cp.TransID)
	require.NoError(t, err)
	require.Equal(t, cp2, got)
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{cp2}, all)
}

func testMissing(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	for _, id := range []string{"<nope@x>", "", "garbage", "../../etc/passwd", strings.Repeat("<", 500)} {
		got, err := s.Load(ctx, id)
		require.ErrorIs(t, err, smtp.ErrNoCheckpoint, "%q", id)
		require.Nil(t, got)
		require.NoError(t, s.Delete(ctx, id))
	}
}

func testDelete(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	a, b := Sample("<a@x>", 0), Sample("<b@x>", 1)
	require.NoError(t, s.Save(ctx, a))
	require.NoError(t, s.Save(ctx, b))
	require.NoError(t, s.Delete(ctx, a.TransID))
	_, err := s.Load(ctx, a.TransID)
	require.ErrorIs(t, err, smtp.ErrNoCheckpoint)
	require.NoError(t, s.Delete(ctx, a.TransID))
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{b}, all)
	require.NoError(t, s.Delete(ctx, b.TransID))
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

func testList(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
	c := Sample("<c@x>", 2)
	b := Sample("<b@x>", 1)
	a2 := Sample("<a2@x>", 0)
	a1 := Sample("<a1@x>", 0)
	for _, cp := range []*smtp.Checkpoint{c, a2, b, a1} {
		require.NoError(t, s.Save(ctx, cp))
	}
	all, err = s.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []*smtp.Checkpoint{a1, a2, b, c}, all)
}

func testCopiesNotAliases(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	cp := Sample("<1@x>", 0)
	want := Sample("<1@x>", 0)
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
	require.Equal(t, []*smtp.Checkpoint{want}, all)
	all[0].Envelope.To[0].Notify[0] = "changed"
	all[0].Points[2] = smtp.ResumePoint{}
	got, err = s.Load(ctx, want.TransID)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func testInvalid(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	require.Error(t, s.Save(ctx, nil))
	for _, id := range []string{"", "no-brackets@x", "<a b@x>", "<[192.0.2.1]@x>", "<" + strings.Repeat("a", 80) + "@x>"} {
		err := s.Save(ctx, Sample(id, 0))
		require.ErrorIs(t, err, smtp.ErrInvalidTransID, "%q", id)
	}
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Empty(t, all)
}

func testCaseSensitive(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	up, low := Sample("<ABC@Example.COM>", 0), Sample("<abc@example.com>", 1)
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
	require.ErrorIs(t, err, smtp.ErrNoCheckpoint)
}

func testOddCharacters(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	ids := []string{
		"<!#$%&'*+-^_`{|}~@x>",
		"<a|b*c@d~e>",
		"<%2F%2e%2e@x>",
		"<" + strings.Repeat("z", 76) + "@y>",
		"<CON@NUL.aux>",
	}
	for i, id := range ids {
		require.NoError(t, s.Save(ctx, Sample(id, i)), id)
	}
	for i, id := range ids {
		got, err := s.Load(ctx, id)
		require.NoError(t, err, id)
		require.Equal(t, Sample(id, i), got)
	}
	all, err := s.List(ctx)
	require.NoError(t, err)
	require.Len(t, all, len(ids))
}

func testCanceled(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	cp := Sample("<1@x>", 0)
	require.ErrorIs(t, s.Save(cctx, cp), context.Canceled)
	_, err := s.Load(cctx, cp.TransID)
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, s.Delete(cctx, cp.TransID), context.Canceled)
	_, err = s.List(cctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Load(ctx, cp.TransID)
	require.ErrorIs(t, err, smtp.ErrNoCheckpoint)
}

func testConcurrent(t *testing.T, s smtp.CheckpointStore) {
	ctx := context.Background()
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				own := Sample(fmt.Sprintf("<w%d@x>", w), r)
				own.Sent = int64(r)
				assert.NoError(t, s.Save(ctx, own))
				shared := Sample("<shared@x>", 0)
				shared.Sent = int64(w*rounds + r)
				assert.NoError(t, s.Save(ctx, shared))
				got, err := s.Load(ctx, own.TransID)
				assert.NoError(t, err)
				assert.Equal(t, own, got)
				_, err = s.Load(ctx, shared.TransID)
				assert.NoError(t, err)
				tmp := fmt.Sprintf("<tmp%d.%d@x>", w, r)
				assert.NoError(t, s.Save(ctx, Sample(tmp, 0)))
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
}
