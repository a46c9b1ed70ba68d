package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/event"
)

// VerifySource is what Verify reads: every checkpoint and every entry, in
// order, and (optionally) the stored tree hashes. A Store is one; so is
// the admin export of the HTTP API.
type VerifySource interface {
	Checkpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	Leaves(ctx context.Context, afterSeq int64, limit int) ([]Entry, error)
	// ReadHashes returns stored tree hashes. A source without them
	// returns ErrNoStoredHashes, and Verify does not check them.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// ErrNoStoredHashes is returned by a VerifySource that has no stored tree
// hashes to check.
var ErrNoStoredHashes = errors.New("no stored tree hashes")

// What verification can find wrong.
const (
	ContentChanged    = "content changed"
	EntryMissing      = "entry missing"
	OrderChanged      = "order changed"
	ExtraEntry        = "extra entry"
	BadSignature      = "bad signature"
	CheckpointMissing = "checkpoint missing"
	Fork              = "fork"
	StoredHashChanged = "stored hash changed"
	AccessChanged     = "access columns changed"
	PrunedUnrecorded  = "pruned without a record"
)

// Failure is the first thing Verify found wrong.
type Failure struct {
	// What is one of the constants above.
	What string `json:"what"`
	// EntryID and LeafIndex name the entry (LeafIndex -1 when none);
	// Checkpoint the checkpoint's size (-1 when none).
	EntryID    string `json:"entryId,omitempty"`
	LeafIndex  int64  `json:"leafIndex"`
	Checkpoint int64  `json:"checkpoint"`
	Detail     string `json:"detail"`
}

func (f *Failure) Error() string {
	s := f.What
	if f.EntryID != "" {
		s += fmt.Sprintf(": entry %s", f.EntryID)
	}
	if f.LeafIndex >= 0 {
		s += fmt.Sprintf(" (leaf %d)", f.LeafIndex)
	}
	if f.Checkpoint >= 0 {
		s += fmt.Sprintf(", checkpoint of size %d", f.Checkpoint)
	}
	if f.Detail != "" {
		s += ": " + f.Detail
	}
	return s
}

// Report is what Verify found.
type Report struct {
	// Entries counts every entry read; Integrated those in the tree;
	// Pending those not yet integrated; Erased those with erased fields;
	// Pruned those whose content retention deleted.
	Entries, Integrated, Pending, Erased, Pruned int64
	// ErasedFields lists the erased fields (pointers) per entry id, for
	// the first 100 erased entries.
	ErasedFields map[string][]string
	// Checkpoints counts the checkpoints verified; TreeSize is the
	// largest.
	Checkpoints int64
	TreeSize    int64
	// Roots holds the recomputed root of every checkpoint's size.
	Roots map[int64]tlog.Hash
	// Failure is the first thing found wrong; nil when all holds.
	Failure *Failure
	Elapsed time.Duration
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Progress, when set, is called now and then with the entries read.
	Progress func(entries int64)
	// Page is how many entries are read at a time (default 5000).
	Page int
	// RootsAt are tree sizes, besides the checkpoints', whose recomputed
	// roots Report.Roots holds.
	RootsAt []int64
}

// Verify recomputes every leaf from what src stores of its entry, rebuilds
// the tree (RFC 6962, written here apart from the stored hashes it
// checks), checks every checkpoint's signature with v, that each names
// the one before it, and that its root is the rebuilt tree's at its size;
// checks the stored tree hashes and leaf hashes against the rebuilt ones,
// and each entry's access columns against its payload. The first thing
// wrong ends it, in Report.Failure; an error is returned only when src
// cannot be read.
func Verify(ctx context.Context, src VerifySource, v note.Verifier, opts VerifyOptions) (*Report, error) {
	start := time.Now()
	if opts.Page <= 0 {
		opts.Page = 5000
	}
	r := &Report{Roots: map[int64]tlog.Hash{}, ErasedFields: map[string][]string{}}
	defer func() { r.Elapsed = time.Since(start) }()
	cps, err := verifyCheckpoints(ctx, src, v, r, nil)
	if err != nil || r.Failure != nil {
		return r, err
	}
	w := &treeWalk{src: src, v: v, r: r, cps: cps, hints: true, rootsAt: map[int64]bool{}}
	for _, n := range opts.RootsAt {
		w.rootsAt[n] = true
	}
	if w.rootsAt[0] {
		r.Roots[0] = w.tree.root()
	}
	for w.next < len(cps) && cps[w.next].Size == 0 {
		w.reach(cps[w.next])
		w.next++
	}
	var after int64
	for reread := 0; ; reread++ {
		if err := w.walk(ctx, opts, after); err != nil || r.Failure != nil {
			return r, err
		}
		// A checkpoint read during the walk covers entries the walk read
		// before they were integrated (the last page of a log being
		// written): read those entries again, a few times at most.
		if w.seenPending == nil || w.next >= len(w.cps) || reread == 3 {
			break
		}
		after = w.seenPending.Seq - 1
		r.Entries -= r.Pending
		r.Pending, w.seenPending = 0, nil
	}
	w.finish()
	return r, nil
}

// verifyCheckpoints reads and checks every checkpoint: signature, size,
// and the chain of predecessors.
func verifyCheckpoints(ctx context.Context, src VerifySource, v note.Verifier, r *Report, out []Checkpoint) ([]Checkpoint, error) {
	after := int64(-1)
	if len(out) > 0 {
		after = out[len(out)-1].Size
	}
	for {
		page, err := src.Checkpoints(ctx, after, 10000)
		if err != nil {
			return nil, fmt.Errorf("read checkpoints: %w", err)
		}
		for _, stored := range page {
			cp, err := OpenCheckpoint(stored.Note, v)
			if err != nil {
				r.Failure = &Failure{What: BadSignature, LeafIndex: -1, Checkpoint: stored.Size, Detail: err.Error()}
				return nil, nil
			}
			if cp.Size != stored.Size {
				r.Failure = &Failure{What: BadSignature, LeafIndex: -1, Checkpoint: stored.Size, Detail: fmt.Sprintf("stored as size %d, signed for size %d", stored.Size, cp.Size)}
				return nil, nil
			}
			prev := int64(0)
			if len(out) > 0 {
				prev = out[len(out)-1].Size
			}
			if cp.Prev != prev && !(len(out) == 0 && cp.Prev == 0) {
				r.Failure = &Failure{What: CheckpointMissing, LeafIndex: -1, Checkpoint: cp.Prev,
					Detail: fmt.Sprintf("the checkpoint of size %d names it as the one before, and it is not stored", cp.Size)}
				return nil, nil
			}
			if len(out) == 0 && cp.Prev != 0 {
				r.Failure = &Failure{What: CheckpointMissing, LeafIndex: -1, Checkpoint: cp.Prev,
					Detail: fmt.Sprintf("the first stored checkpoint (size %d) names it as the one before", cp.Size)}
				return nil, nil
			}
			out = append(out, cp)
			after = stored.Size
		}
		if len(page) < 10000 {
			break
		}
	}
	r.Checkpoints = int64(len(out))
	if len(out) > 0 {
		r.TreeSize = out[len(out)-1].Size
	}
	return out, nil
}

// treeWalk rebuilds the tree from the entries in seq order.
type treeWalk struct {
	src VerifySource
	v   note.Verifier
	// noMore is set once a look for checkpoints issued during the walk
	// found none.
	noMore  bool
	r       *Report
	cps     []Checkpoint
	next    int // the next checkpoint to reach
	hints   bool
	rootsAt map[int64]bool

	tree        compactRange
	size        int64
	seenPending *Entry
	// firstSuspect is the first leaf whose recomputed hash differs from
	// what the store kept of it: where a root mismatch is explained.
	firstSuspect *Failure
	prunedUpTo   time.Time
	prunes       []time.Time // cutoffs recorded by pruning entries
}

func (w *treeWalk) fail(f Failure) {
	if w.r.Failure == nil {
		w.r.Failure = &f
	}
}

// walk checks the entries after seq after, page by page.
func (w *treeWalk) walk(ctx context.Context, opts VerifyOptions, after int64) error {
	type page struct {
		entries []Entry
		hashes  []tlog.Hash
		err     error
	}
	// Read ahead one page while the previous is checked; hash each page
	// on every CPU.
	pages := make(chan page, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(pages)
		for {
			es, err := w.src.Leaves(ctx, after, opts.Page)
			if err != nil {
				pages <- page{err: err}
				return
			}
			if len(es) == 0 {
				return
			}
			full := len(es) == opts.Page
			if i := slices.IndexFunc(es, func(e Entry) bool { return e.LeafIndex == NotIntegrated }); full && i > 0 {
				// Entries not yet integrated end the integrated ones at
				// the time of this read. More pages follow, read later:
				// the integrator may have placed these by then, and
				// later entries with them. Read them again with the
				// next page, so that each page is one moment of the log.
				es = es[:i]
			}
			p := page{entries: es, hashes: leafHashes(es)}
			select {
			case pages <- p:
			case <-ctx.Done():
				return
			}
			after = es[len(es)-1].Seq
			if !full {
				return
			}
		}
	}()
	for p := range pages {
		if p.err != nil {
			return fmt.Errorf("read entries: %w", p.err)
		}
		if err := w.page(ctx, p.entries, p.hashes); err != nil {
			return err
		}
		if w.r.Failure != nil {
			return nil
		}
		if opts.Progress != nil {
			opts.Progress(w.r.Entries)
		}
	}
	return nil
}

// leafHashes recomputes the entries' leaf hashes on every CPU; a zero hash
// with an error where one cannot be.
func leafHashes(es []Entry) []tlog.Hash {
	out := make([]tlog.Hash, len(es))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	chunk := (len(es) + workers - 1) / workers
	for lo := 0; lo < len(es); lo += chunk {
		hi := min(lo+chunk, len(es))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if h, err := LeafHash(es[i]); err == nil {
					out[i] = h
				}
			}
		})
	}
	wg.Wait()
	return out
}

func (w *treeWalk) page(ctx context.Context, es []Entry, hs []tlog.Hash) error {
	// The stored tree hashes these leaves touch, to check them as the
	// tree is rebuilt.
	var stored map[int64]tlog.Hash
	if w.hints {
		k := int64(0)
		for _, e := range es {
			if e.LeafIndex >= 0 {
				k++
			}
		}
		lo, hi := tlog.StoredHashCount(w.size), tlog.StoredHashCount(w.size+k)
		if hi > lo {
			idx := make([]int64, 0, hi-lo)
			for i := lo; i < hi; i++ {
				idx = append(idx, i)
			}
			got, err := readStored(ctx, w.src, idx)
			switch {
			case errors.Is(err, ErrNoStoredHashes):
				w.hints = false
			case err != nil:
				return err
			default:
				stored = got
			}
		}
	}
	for i := range es {
		e := &es[i]
		w.r.Entries++
		if e.LeafIndex == NotIntegrated {
			// Not in the tree yet, but its leaf hash was computed when it
			// was appended: the integrator will place that one.
			if h := hs[i]; h == (tlog.Hash{}) || !bytes.Equal(h[:], e.LeafHash) {
				w.fail(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: -1, Checkpoint: -1,
					Detail: "not yet integrated, and it no longer recomputes to the leaf hash computed when it was appended"})
				return nil
			}
			w.r.Pending++
			if w.seenPending == nil {
				w.seenPending = e
			}
			continue
		}
		w.r.Integrated++
		if w.seenPending != nil {
			w.fail(Failure{What: ExtraEntry, EntryID: w.seenPending.ID, LeafIndex: -1, Checkpoint: -1,
				Detail: fmt.Sprintf("it has no leaf index, yet entry %s after it (seq %d) is at leaf %d", e.ID, e.Seq, e.LeafIndex)})
			return nil
		}
		h := hs[i]
		if e.LeafIndex >= w.lastSize() && !w.noMore {
			// A log still being written: the integrator commits leaves and
			// their checkpoint together, so a leaf read after the
			// checkpoints were has its checkpoint stored by now.
			n := len(w.cps)
			cps, err := verifyCheckpoints(ctx, w.src, w.v, w.r, w.cps)
			if err != nil || w.r.Failure != nil {
				return err
			}
			w.cps = cps
			w.noMore = len(cps) == n
			w.r.Checkpoints, w.r.TreeSize = int64(len(cps)), w.lastSize()
		}
		if e.LeafIndex != w.size {
			what := EntryMissing
			detail := fmt.Sprintf("leaf %d expected next in seq order; leaves %d to %d are absent", w.size, w.size, e.LeafIndex-1)
			if tree, ok := stored[tlog.StoredHashIndex(0, w.size)]; ok && tree == h {
				what, detail = OrderChanged, fmt.Sprintf("its leaf index says %d, but it is leaf %d of the tree", e.LeafIndex, w.size)
			} else if e.LeafIndex < w.size {
				what, detail = OrderChanged, fmt.Sprintf("leaf %d comes after leaf %d in seq order", e.LeafIndex, w.size-1)
			}
			w.fail(Failure{What: what, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: detail})
			return nil
		}
		if h == (tlog.Hash{}) {
			_, err := LeafHash(*e)
			w.fail(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "cannot recompute the leaf: " + fmt.Sprint(err)})
			return nil
		}
		w.check(e, h, stored)
		if w.r.Failure != nil {
			return nil
		}
		merged := w.tree.push(h)
		if stored != nil {
			for _, m := range merged {
				idx := tlog.StoredHashIndex(m.level, m.n)
				if got, ok := stored[idx]; !ok || got != m.hash {
					w.suspect(Failure{What: StoredHashChanged, LeafIndex: -1, Checkpoint: -1, Detail: fmt.Sprintf("stored tree hash %d (level %d) is not the rebuilt tree's", idx, m.level)})
				}
			}
		}
		w.size++
		if w.rootsAt[w.size] {
			w.r.Roots[w.size] = w.tree.root()
		}
		for w.next < len(w.cps) && w.cps[w.next].Size == w.size {
			w.reach(w.cps[w.next])
			if w.r.Failure != nil {
				return nil
			}
			w.next++
		}
	}
	return nil
}

// lastSize is the size of the latest checkpoint read.
func (w *treeWalk) lastSize() int64 {
	if len(w.cps) == 0 {
		return 0
	}
	return w.cps[len(w.cps)-1].Size
}

// reach checks a checkpoint once the rebuilt tree has its size.
func (w *treeWalk) reach(cp Checkpoint) {
	root := w.tree.root()
	w.r.Roots[cp.Size] = root
	if root == cp.Root {
		return
	}
	if f := w.firstSuspect; f != nil {
		f.Checkpoint = cp.Size
		w.fail(*f)
		return
	}
	w.fail(Failure{What: ContentChanged, LeafIndex: -1, Checkpoint: cp.Size,
		Detail: fmt.Sprintf("the rebuilt tree's root differs from the signed one: the leaves below %d were rewritten, with the stored hashes to match", cp.Size)})
}

// erasedShown checks that every erased field of e shows what an erasure
// writes (IsReplacement): the leaf covers the field's commitment, not that
// text. It returns the first field that does not, and what it shows.
func erasedShown(e *Entry) (string, string, bool) {
	doc, err := document(e, &parser{})
	if err != nil {
		// The leaf hash fails on it too.
		return "", "", true
	}
	for _, p := range slices.Sorted(maps.Keys(e.Erased)) {
		n := doc.find(p)
		if n == nil {
			return p, "(nothing)", false
		}
		if n.kind != KindString || !IsReplacement(string(n.value)) {
			return p, string(n.value), false
		}
	}
	return "", "", true
}

// suspect remembers the first leaf that differs from what the store kept.
func (w *treeWalk) suspect(f Failure) {
	if w.firstSuspect == nil {
		w.firstSuspect = &f
	}
}

// check compares one recomputed leaf with what the store kept of it, and
// the entry's access columns with its payload.
func (w *treeWalk) check(e *Entry, h tlog.Hash, stored map[int64]tlog.Hash) {
	if e.Pruned() {
		w.r.Pruned++
		if e.ReceivedAt.After(w.prunedUpTo) {
			w.prunedUpTo = e.ReceivedAt
		}
	} else {
		if len(e.Erased) > 0 {
			w.r.Erased++
			if len(w.r.ErasedFields) < 100 {
				for p := range e.Erased {
					w.r.ErasedFields[e.ID] = append(w.r.ErasedFields[e.ID], p)
				}
			}
		}
		user, tenant := (&event.Event{Payload: e.Payload}).Reserved()
		if (e.User != user && e.User != Redacted) || e.Tenant != tenant {
			w.fail(Failure{What: AccessChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1,
				Detail: fmt.Sprintf("user %q and tenant %q, where the payload says %q and %q", e.User, e.Tenant, user, tenant)})
			return
		}
		if len(e.Erased) > 0 {
			if p, shown, ok := erasedShown(e); !ok {
				w.fail(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1,
					Detail: fmt.Sprintf("erased field %s shows %.40q, not what an erasure writes", p, shown)})
				return
			}
		}
		if e.Name == PrunedEvent {
			if t, ok := pruneCutoff(e.Payload); ok {
				w.prunes = append(w.prunes, t)
			}
		}
	}
	kept := e.LeafHash
	var tree tlog.Hash
	inTree := false
	if stored != nil {
		tree, inTree = stored[tlog.StoredHashIndex(0, e.LeafIndex)]
	}
	switch {
	case bytes.Equal(kept, h[:]) && (!inTree || tree == h):
		return
	case inTree && tree != h && bytes.Equal(kept, tree[:]):
		w.suspect(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "its recomputed leaf hash is not the one stored when it was appended"})
	case inTree && tree != h && bytes.Equal(kept, h[:]):
		// The entry is intact, but the tree held another leaf here.
		if next, ok := stored[tlog.StoredHashIndex(0, e.LeafIndex+1)]; ok && next == h {
			w.suspect(Failure{What: EntryMissing, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: fmt.Sprintf("this entry was leaf %d: the one before it is gone", e.LeafIndex+1)})
		} else if e.LeafIndex > 0 && stored[tlog.StoredHashIndex(0, e.LeafIndex-1)] == h {
			w.suspect(Failure{What: ExtraEntry, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: fmt.Sprintf("this entry was leaf %d: an entry was inserted before it", e.LeafIndex-1)})
		} else {
			w.suspect(Failure{What: OrderChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "the entry is intact, but the tree held another leaf at its index"})
		}
	case !bytes.Equal(kept, h[:]) && !inTree:
		w.suspect(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "its recomputed leaf hash is not the one stored when it was appended"})
	case !bytes.Equal(kept, h[:]) && tree == h:
		w.suspect(Failure{What: StoredHashChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "its stored leaf hash is not its recomputed one"})
	default:
		w.suspect(Failure{What: ContentChanged, EntryID: e.ID, LeafIndex: e.LeafIndex, Checkpoint: -1, Detail: "its recomputed leaf hash matches nothing stored"})
	}
}

// finish checks what can be checked only at the end.
func (w *treeWalk) finish() {
	if w.r.Failure != nil {
		return
	}
	if w.next < len(w.cps) {
		cp := w.cps[w.next]
		w.fail(Failure{What: EntryMissing, LeafIndex: w.size, Checkpoint: cp.Size,
			Detail: fmt.Sprintf("the checkpoint covers %d leaves, the log holds %d", cp.Size, w.size)})
		return
	}
	if len(w.cps) > 0 && w.size > w.cps[len(w.cps)-1].Size || len(w.cps) == 0 && w.size > 0 {
		last := int64(0)
		if len(w.cps) > 0 {
			last = w.cps[len(w.cps)-1].Size
		}
		w.fail(Failure{What: ExtraEntry, LeafIndex: last, Checkpoint: -1,
			Detail: fmt.Sprintf("leaves %d to %d are in the tree, but no checkpoint covers them (each integration signs one)", last, w.size-1)})
		return
	}
	if w.firstSuspect != nil {
		// Every signed root holds, yet a stored hash differs: the proofs'
		// cache, or a leaf-hash column, was edited.
		w.fail(*w.firstSuspect)
		return
	}
	if w.r.Pruned > 0 {
		covered := false
		for _, t := range w.prunes {
			if w.prunedUpTo.Before(t) {
				covered = true
			}
		}
		if !covered {
			w.fail(Failure{What: PrunedUnrecorded, LeafIndex: -1, Checkpoint: -1,
				Detail: fmt.Sprintf("%d entries, received up to %s, have no content, and no %s entry records a pruning that covers them", w.r.Pruned, w.prunedUpTo.Format(time.RFC3339), PrunedEvent)})
		}
	}
}

func readStored(ctx context.Context, src VerifySource, idx []int64) (map[int64]tlog.Hash, error) {
	out := make(map[int64]tlog.Hash, len(idx))
	for lo := 0; lo < len(idx); lo += 2000 {
		part := idx[lo:min(lo+2000, len(idx))]
		hs, err := src.ReadHashes(ctx, part)
		if errors.Is(err, ErrNoStoredHashes) {
			return nil, err
		}
		if err != nil {
			// A missing stored hash is itself a finding: leave it out, and
			// the walk reports it.
			for _, x := range part {
				if h, err := src.ReadHashes(ctx, []int64{x}); err == nil && len(h) == 1 {
					out[x] = h[0]
				}
			}
			continue
		}
		for i, x := range part {
			out[x] = hs[i]
		}
	}
	return out, nil
}

// compactRange is the right edge of an RFC 6962 tree: the roots of its
// complete subtrees, largest first, each with its level and index at that
// level (tlog.StoredHashIndex(level, n) is where the store keeps it).
type compactRange struct {
	nodes []rangeNode
	size  int64
}

type rangeNode struct {
	level int
	n     int64
	hash  tlog.Hash
}

// push appends a leaf and returns the nodes it completes, the leaf first.
func (c *compactRange) push(h tlog.Hash) []rangeNode {
	leaf := rangeNode{level: 0, n: c.size, hash: h}
	made := []rangeNode{leaf}
	c.nodes = append(c.nodes, leaf)
	for len(c.nodes) >= 2 {
		l, r := c.nodes[len(c.nodes)-2], c.nodes[len(c.nodes)-1]
		if l.level != r.level {
			break
		}
		p := rangeNode{level: l.level + 1, n: l.n >> 1, hash: tlog.NodeHash(l.hash, r.hash)}
		c.nodes = append(c.nodes[:len(c.nodes)-2], p)
		made = append(made, p)
	}
	c.size++
	return made
}

// root is the tree's root hash (RFC 6962 MTH): the subtrees folded from
// the right.
func (c *compactRange) root() tlog.Hash {
	if len(c.nodes) == 0 {
		h, _ := tlog.TreeHash(0, nil)
		return h
	}
	h := c.nodes[len(c.nodes)-1].hash
	for i := len(c.nodes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.nodes[i].hash, h)
	}
	return h
}

// PrunedEvent is the catalogue event that records a pruning by retention:
// {before, count}, the entries received before before lost their content.
const PrunedEvent = "audit-log.entries.pruned"

// pruneCutoff reads the cutoff a pruning entry records.
func pruneCutoff(payload []byte) (time.Time, bool) {
	var p struct {
		Before string `json:"before"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, p.Before)
	return t, err == nil
}
