package smtp

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/resmtp/smtp/internal/smtptest"
)

// nopCloser makes a ReadSeeker a ReadSeekCloser.
type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// Another process finishes a transaction from its checkpoint alone: the
// checkpoint names the message (SourceRef) and its digest, Reopen reads it
// again, and a source whose content changed is refused before anything is
// sent.
func TestCourier_ResumeReopensTheSource(t *testing.T) {
	msg := bigText(300 << 10)
	srv := newTestServer(t, smtptest.Config{Extensions: extCheckpoint, Checkpoints: smtptest.NewCheckpointStore(),
		ConnFaults: map[int]smtptest.Faults{1: {CloseAfterDataOctets: 150000}}})
	st := &memStore{}
	a := testCourier(nil)
	a.Store, a.Attempts = st, 1
	_, err := a.Send(context.Background(), []string{srv.Addr}, &Envelope{From: "a@example.org", To: Recipients("b@example.com")},
		SourceRef("spool/msg-1", bytes.NewReader(msg)))
	require.Error(t, err, "cut, no attempt left: the worker \"dies\"")
	cps, err := st.List(context.Background())
	require.NoError(t, err)
	require.Len(t, cps, 1)
	cp := cps[0]
	assert.Equal(t, "spool/msg-1", cp.Source)
	assert.Len(t, cp.Digest, 64)

	changed := append([]byte("X"), msg[1:]...)
	b := testCourier(nil)
	b.Store = st
	b.Reopen = func(_ context.Context, ref string) (io.ReadSeekCloser, error) {
		assert.Equal(t, "spool/msg-1", ref)
		return nopCloser{bytes.NewReader(changed)}, nil
	}
	_, err = b.Resume(context.Background(), cp, nil)
	require.ErrorIs(t, err, ErrSourceChanged)
	_, err = b.Resume(context.Background(), cp, bytes.NewReader(changed))
	require.ErrorIs(t, err, ErrSourceChanged, "a message given to Resume is checked too")
	assert.Equal(t, 1, srv.Conns(), "nothing sent for a changed source")

	b.Reopen = func(context.Context, string) (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(msg)}, nil }
	res, err := b.Resume(context.Background(), cp, nil)
	require.NoError(t, err)
	msgs := srv.Messages()
	require.Len(t, msgs, 1)
	assert.True(t, bytes.Equal(msg, msgs[0].Data))
	assert.NotEmpty(t, msgs[0].ResumedAt)
	assert.Less(t, res.Transmitted, int64(len(msg)))
	_, err = b.Resume(context.Background(), &Checkpoint{TransID: cp.TransID}, nil)
	require.Error(t, err, "no Source to reopen")
}
