package smtp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// This file holds what lets another process finish a transaction: the
// message source's reference and digest in the Checkpoint, and the Courier's
// Reopen, with which the new owner reads the same bytes.

// ErrSourceChanged is matched by the error of Courier.Resume when the
// reopened message source is not the one the checkpoint was made for (its
// digest differs): resuming would splice two messages.
var ErrSourceChanged = errors.New("smtp: the message source changed since the checkpoint")

// refSource is a message source with a reference another process can
// reopen.
type refSource struct {
	io.ReadSeeker
	ref string
}

// SourceRef marks msg as the content that ref names, an opaque reference
// that another process can reopen (a path on shared storage, an object
// key, a queue id). A Courier with a Store records ref and the SHA-256
// digest of msg in the transaction's Checkpoint (reading msg once more for
// it), so that another worker can Resume the transaction with
// Courier.Reopen when this one dies. msg must be at the start of the
// message.
func SourceRef(ref string, msg io.ReadSeeker) io.Reader {
	return &refSource{ReadSeeker: msg, ref: ref}
}

// digest returns the hex SHA-256 of rs from its current offset to its
// end, and seeks it back.
func digest(rs io.ReadSeeker) (string, error) {
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, rs); err != nil {
		return "", err
	}
	if _, err := rs.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sourceOf returns the reference and digest of msg, if SourceRef made it.
func sourceOf(msg io.Reader) (ref, sum string, err error) {
	rs, ok := msg.(*refSource)
	if !ok {
		return "", "", nil
	}
	sum, err = digest(rs.ReadSeeker)
	if err != nil {
		return "", "", fmt.Errorf("smtp: reading the message for its digest: %w", err)
	}
	return rs.ref, sum, nil
}

// reopen opens the source cp names with k.Reopen and checks its digest.
func (k *Courier) reopen(ctx context.Context, cp *Checkpoint) (io.ReadSeekCloser, error) {
	if cp.Source == "" || k.Reopen == nil {
		return nil, errors.New("smtp: Resume without a message needs a checkpoint with a Source and a Courier with Reopen")
	}
	rs, err := k.Reopen(ctx, cp.Source)
	if err != nil {
		return nil, fmt.Errorf("smtp: reopening %q: %w", cp.Source, err)
	}
	sum, err := digest(rs)
	if err == nil && sum != cp.Digest {
		err = fmt.Errorf("%w: %q has digest %s, the checkpoint %s", ErrSourceChanged, cp.Source, sum, cp.Digest)
	}
	if err != nil {
		rs.Close()
		return nil, err
	}
	return rs, nil
}
