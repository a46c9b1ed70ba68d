package auditlog

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// HashReader reads a tree's stored hashes through ctx: the tlog.HashReader
// of a Tree.
func HashReader(ctx context.Context, t Tree) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		return t.ReadHashes(ctx, indexes)
	})
}

// ErrNotIntegrated is returned for a proof of an entry that is not in the
// tree of the size asked for (yet).
var ErrNotIntegrated = errors.New("entry not in the tree of that size")

// Inclusion is an entry's inclusion proof against a checkpoint.
type Inclusion struct {
	LeafIndex  int64
	LeafHash   tlog.Hash
	Checkpoint Checkpoint
	Proof      tlog.RecordProof
}

// ProveInclusion returns the inclusion proof of e (read from t, so with
// its LeafIndex and LeafHash) against the checkpoint of size (< 0: the
// latest). The checkpoint's Origin, Root and Prev are parsed from its
// note, not verified: the caller verifies with the log's key.
func ProveInclusion(ctx context.Context, t Tree, e Entry, size int64) (Inclusion, error) {
	cp, err := StoredCheckpoint(ctx, t, size)
	if err != nil {
		return Inclusion{}, err
	}
	if e.LeafIndex < 0 || e.LeafIndex >= cp.Size || len(e.LeafHash) != len(tlog.Hash{}) {
		return Inclusion{}, fmt.Errorf("entry %s, tree of %d: %w", e.ID, cp.Size, ErrNotIntegrated)
	}
	p, err := tlog.ProveRecord(cp.Size, e.LeafIndex, HashReader(ctx, t))
	if err != nil {
		return Inclusion{}, fmt.Errorf("prove entry %s in tree of %d: %w", e.ID, cp.Size, err)
	}
	in := Inclusion{LeafIndex: e.LeafIndex, Checkpoint: cp, Proof: p}
	copy(in.LeafHash[:], e.LeafHash)
	return in, nil
}

// Consistency is the proof that the tree of one checkpoint extends the
// tree of an earlier one.
type Consistency struct {
	From, To Checkpoint
	Proof    tlog.TreeProof
}

// ProveConsistency returns the consistency proof from the tree of size
// from to the checkpoint of size to (to < 0: the latest); from must not
// exceed to. From's checkpoint is set when one of that size is stored.
func ProveConsistency(ctx context.Context, t Tree, from, to int64) (Consistency, error) {
	cpTo, err := StoredCheckpoint(ctx, t, to)
	if err != nil {
		return Consistency{}, err
	}
	if from < 0 || from > cpTo.Size {
		return Consistency{}, fmt.Errorf("consistency from %d to %d: %w", from, cpTo.Size, ErrNoCheckpoint)
	}
	// From need not be a stored checkpoint's size: a saved checkpoint the
	// log has lost must still be answered, with the root the log has now.
	cpFrom, err := StoredCheckpoint(ctx, t, from)
	if errors.Is(err, ErrNoCheckpoint) {
		cpFrom = Checkpoint{Size: from}
		cpFrom.Root, err = tlog.TreeHash(from, HashReader(ctx, t))
	}
	if err != nil {
		return Consistency{}, err
	}
	p, err := tlog.ProveTree(cpTo.Size, cpFrom.Size, HashReader(ctx, t))
	if err != nil {
		return Consistency{}, fmt.Errorf("prove consistency from %d to %d: %w", cpFrom.Size, cpTo.Size, err)
	}
	return Consistency{From: cpFrom, To: cpTo, Proof: p}, nil
}

// StoredCheckpoint reads the checkpoint of size (< 0: the latest) and
// parses its note, without verifying its signature.
func StoredCheckpoint(ctx context.Context, t Tree, size int64) (Checkpoint, error) {
	cp, err := t.Checkpoint(ctx, size)
	if err != nil {
		return Checkpoint{}, err
	}
	parsed, err := ParseCheckpoint(NoteText(cp.Note))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("stored checkpoint %d: %w", cp.Size, err)
	}
	if parsed.Size != cp.Size {
		return Checkpoint{}, fmt.Errorf("stored checkpoint %d: its note says size %d", cp.Size, parsed.Size)
	}
	parsed.Note = cp.Note
	return parsed, nil
}

// NoteText is the text of a signed note, without its signatures.
func NoteText(msg []byte) string {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == '\n' && msg[i+1] == '\n' {
			return string(msg[:i+1])
		}
	}
	return string(msg)
}
