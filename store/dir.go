package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/resmtp/smtp"
)

var _ smtp.CheckpointStore = (*Dir)(nil)

const (
	// checkpointFilePrefix and checkpointFileSuffix frame the hex-encoded
	// TRANSID in a record's file name.
	checkpointFilePrefix = "cp-"
	checkpointFileSuffix = ".json"
	// checkpointTempPrefix starts the name of the temporary file of a
	// Save, which os.CreateTemp completes with checkpointTempPattern.
	checkpointTempPrefix  = ".tmp-cp-"
	checkpointTempPattern = checkpointTempPrefix + "*"
	// staleTempAge is how old a temporary file must be before OpenDir
	// takes it for the remains of a crashed Save and removes it; a younger
	// one may belong to a Save in progress.
	staleTempAge = time.Minute
	// checkpointFileVersion is the version of the file format.
	checkpointFileVersion = 1
)

// checkpointFile is the content of a record's file. The resume points are
// pairs [canonical, source], which keeps a long list compact.
type checkpointFile struct {
	Version   int           `json:"version"`
	TransID   string        `json:"transid"`
	LocalName string        `json:"local_name"`
	Server    string        `json:"server"`
	Envelope  smtp.Envelope `json:"envelope"`
	Size      int64         `json:"size"`
	Sent      int64         `json:"sent"`
	Points    [][2]int64    `json:"points"`
	Updated   time.Time     `json:"updated"`
	Source    string        `json:"source,omitempty"`
	Digest    string        `json:"digest,omitempty"`
	Phase     smtp.Phase    `json:"phase,omitempty"`
	LocalID   bool          `json:"local_id,omitempty"`
}

func toCheckpointFile(cp *smtp.Checkpoint) *checkpointFile {
	f := &checkpointFile{
		Version:   checkpointFileVersion,
		TransID:   cp.TransID,
		LocalName: cp.LocalName,
		Server:    cp.Server,
		Envelope:  cp.Envelope,
		Size:      cp.Size,
		Sent:      cp.Sent,
		Updated:   cp.Updated,
		Source:    cp.Source,
		Digest:    cp.Digest,
		Phase:     cp.Phase,
		LocalID:   cp.LocalID,
	}
	if cp.Points != nil {
		f.Points = make([][2]int64, len(cp.Points))
		for i, p := range cp.Points {
			f.Points[i] = [2]int64{p.Canonical, p.Source}
		}
	}
	return f
}

func (f *checkpointFile) checkpoint() *smtp.Checkpoint {
	cp := &smtp.Checkpoint{
		TransID:   f.TransID,
		LocalName: f.LocalName,
		Server:    f.Server,
		Envelope:  f.Envelope,
		Size:      f.Size,
		Sent:      f.Sent,
		Updated:   f.Updated,
		Source:    f.Source,
		Digest:    f.Digest,
		Phase:     f.Phase,
		LocalID:   f.LocalID,
	}
	if f.Points != nil {
		cp.Points = make([]smtp.ResumePoint, len(f.Points))
		for i, p := range f.Points {
			cp.Points[i] = smtp.ResumePoint{Canonical: p[0], Source: p[1]}
		}
	}
	return cp
}

// A Dir is a CheckpointStore that keeps each record in its own JSON
// file in a directory, so that records outlive the process: a client that
// crashes finds them again with a new Dir on the same directory.
//
// A record's file is named "cp-" and the TRANSID in lower-case hex, then
// ".json", since a TRANSID may hold characters that are unsafe in file
// names, and two TRANSIDs that differ only in case must not share a file on
// a case-insensitive file system. Save writes a temporary file, syncs it,
// renames it over the record's file and syncs the directory, so a crash
// leaves either the old record or the new one, never a mix. Files are
// created with mode 0600, since envelopes hold addresses.
//
// A Dir is safe for concurrent use within a process. Files in the
// directory that are not records are ignored.
type Dir struct {
	dir string
}

// OpenDir returns a Dir that keeps its records in dir, creating
// dir (mode 0700) if it does not exist. It removes temporary files left
// there by Saves that crashed more than a minute ago. It returns an error if
// dir cannot be created or read.
func OpenDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("store: empty checkpoint directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: checkpoint directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: checkpoint directory: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), checkpointTempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &Dir{dir: dir}, nil
}

// path returns the name of the file for transID.
func (s *Dir) path(transID string) string {
	return filepath.Join(s.dir, checkpointFilePrefix+hex.EncodeToString([]byte(transID))+checkpointFileSuffix)
}

// transIDFromName returns the TRANSID a record's file name stands for, and
// false if name is not one.
func transIDFromName(name string) (string, bool) {
	h, ok := strings.CutPrefix(name, checkpointFilePrefix)
	if !ok {
		return "", false
	}
	h, ok = strings.CutSuffix(h, checkpointFileSuffix)
	if !ok || h != strings.ToLower(h) {
		return "", false
	}
	b, err := hex.DecodeString(h)
	if err != nil || smtp.ValidateTransID(string(b)) != nil {
		return "", false
	}
	return string(b), true
}

// Save writes cp to its file, replacing any record with the same TransID,
// atomically and durably: when Save returns nil the record survives a
// crash. It returns ctx's error if ctx is done, an error if cp is nil or
// its TransID is not a valid TRANSID, and any error from the file system,
// in which case the previous record, if any, is left as it was.
func (s *Dir) Save(ctx context.Context, cp *smtp.Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkCheckpoint(cp); err != nil {
		return err
	}
	data, err := json.Marshal(toCheckpointFile(cp))
	if err != nil {
		return fmt.Errorf("store: encoding checkpoint %s: %w", cp.TransID, err)
	}
	data = append(data, '\n')
	target := s.path(cp.TransID)
	if err := writeFileAtomic(s.dir, target, data); err != nil {
		return fmt.Errorf("store: saving checkpoint %s: %w", cp.TransID, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in dir, syncs it, renames
// it to target and syncs dir.
func writeFileAtomic(dir, target string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, checkpointTempPattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, target); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes the creation, renaming and removal of files in dir durable.
// Windows cannot sync a directory, and does not need to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Load reads the record for transID. It returns an error that matches
// smtp.ErrNoCheckpoint if there is none, ctx's error if ctx is done, and an
// error naming the file if the file cannot be read or does not hold a
// record for transID.
func (s *Dir) Load(ctx context.Context, transID string) (*smtp.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if smtp.ValidateTransID(transID) != nil {
		// Save never stores one, and it may not make a file name.
		return nil, fmt.Errorf("%w: %q", smtp.ErrNoCheckpoint, transID)
	}
	cp, err := readCheckpointFile(s.path(transID), transID)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %q", smtp.ErrNoCheckpoint, transID)
	}
	return cp, err
}

// readCheckpointFile reads and checks the record in the file at path, which
// should be for transID.
func readCheckpointFile(path, transID string) (*smtp.Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store: reading checkpoint: %w", err)
	}
	var rec checkpointFile
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("store: corrupt checkpoint file %s: %w", path, err)
	}
	switch {
	case rec.Version != checkpointFileVersion:
		return nil, fmt.Errorf("store: checkpoint file %s: unsupported version %d", path, rec.Version)
	case rec.TransID != transID:
		return nil, fmt.Errorf("store: corrupt checkpoint file %s: holds TRANSID %q, not %q", path, rec.TransID, transID)
	}
	return rec.checkpoint(), nil
}

// Delete removes the record for transID, if there is one, durably. It
// returns ctx's error if ctx is done, and any error from the file system
// other than the file's absence.
func (s *Dir) Delete(ctx context.Context, transID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if smtp.ValidateTransID(transID) != nil {
		return nil
	}
	err := os.Remove(s.path(transID))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("store: deleting checkpoint %s: %w", transID, err)
	}
	return nil
}

// List returns all records, oldest Updated first (ties in TransID order).
// Files that are not records, such as the temporary file of a Save in
// progress or one a crash left behind, are skipped. If some record files
// cannot be read or are corrupt, List still returns the records it could
// read, together with an error that names each bad file. It returns ctx's
// error if ctx is done and an error if the directory cannot be read.
func (s *Dir) List(ctx context.Context) ([]*smtp.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("store: listing checkpoints: %w", err)
	}
	var cps []*smtp.Checkpoint
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, ok := transIDFromName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		cp, err := readCheckpointFile(path, id)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted since ReadDir
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cps = append(cps, cp)
	}
	sortCheckpoints(cps)
	return cps, errors.Join(errs...)
}
