package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
)

// Integrate is auditlog.Integrator's Integrate, in tx (which it commits or
// rolls back): the caller holds the integrator's role.
func (s *Store) Integrate(ctx context.Context, tx Tx, max int, sign auditlog.SignFunc) (auditlog.Checkpoint, int, error) {
	defer tx.Rollback(ctx)
	var size, lastSeq int64
	rows, err := tx.Query(ctx, `SELECT size, last_seq FROM tree_state`)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	if rows.Next() {
		err = rows.Scan(&size, &lastSeq)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: tree state: %w", err)
	}

	b := NewBuilder(s.d)
	rows, err = tx.Query(ctx, `SELECT seq, leaf_hash FROM entries WHERE seq > `+b.Arg(lastSeq)+` ORDER BY seq LIMIT `+b.Arg(max), b.Args()...)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	type leaf struct {
		seq  int64
		hash []byte
	}
	var leaves []leaf
	for rows.Next() {
		var l leaf
		if err := rows.Scan(&l.seq, &l.hash); err != nil {
			rows.Close()
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
		}
		leaves = append(leaves, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}

	if len(leaves) == 0 {
		cp, err := s.checkpoint(ctx, tx, -1)
		if errors.Is(err, auditlog.ErrNoCheckpoint) && size == 0 {
			var empty tlog.Hash
			if empty, err = tlog.TreeHash(0, nil); err == nil {
				cp, err = s.storeCheckpoint(ctx, tx, 0, empty, 0, sign)
			}
			if err == nil {
				err = tx.Commit(ctx)
			}
		}
		if err != nil {
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
		}
		return cp, 0, nil
	}

	// Entries appended before leaf hashes existed are sealed now.
	var unsealed []int64
	for _, l := range leaves {
		if l.hash == nil {
			unsealed = append(unsealed, l.seq)
		}
	}
	if len(unsealed) > 0 {
		sealed, err := s.seal(ctx, tx, unsealed)
		if err != nil {
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
		}
		for i := range leaves {
			if h, ok := sealed[leaves[i].seq]; ok {
				leaves[i].hash = h
			}
		}
	}

	r := &hashCache{ctx: ctx, tx: tx, d: s.d, m: map[int64]tlog.Hash{}}
	if err := r.loadFrontier(size); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	first := tlog.StoredHashCount(size)
	next := first
	for i, l := range leaves {
		var h tlog.Hash
		if len(l.hash) != len(h) {
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: entry seq %d: leaf hash has %d bytes", l.seq, len(l.hash))
		}
		copy(h[:], l.hash)
		hs, err := tlog.StoredHashesForRecordHash(size+int64(i), h, r)
		if err != nil {
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
		}
		for _, x := range hs {
			r.m[next] = x
			next++
		}
	}
	newSize := size + int64(len(leaves))
	root, err := tlog.TreeHash(newSize, r)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}

	// The new stored hashes, and each entry's leaf index.
	if err := writeTiles(ctx, tx, s.d, r, first, next); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: tree hashes: %w", err)
	}
	// The leaves are every entry in (lastSeq, last leaf's seq], in seq
	// order: numbered by the database in one statement.
	b = NewBuilder(s.d)
	if _, err := tx.Exec(ctx, `INSERT INTO leaves (seq, leaf_index) SELECT seq, `+b.Arg(size)+` + row_number() OVER (ORDER BY seq) - 1 `+
		`FROM entries WHERE seq > `+b.Arg(lastSeq)+` AND seq <= `+b.Arg(leaves[len(leaves)-1].seq), b.Args()...); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: leaf indexes: %w", err)
	}
	b = NewBuilder(s.d)
	if _, err := tx.Exec(ctx, `UPDATE tree_state SET size = `+b.Arg(newSize)+`, last_seq = `+b.Arg(leaves[len(leaves)-1].seq), b.Args()...); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: tree state: %w", err)
	}
	prev := size
	if size > 0 {
		last, err := s.checkpoint(ctx, tx, -1)
		if err != nil {
			return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
		}
		prev = last.Size
	}
	cp, err := s.storeCheckpoint(ctx, tx, newSize, root, prev, sign)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: commit: %w", err)
	}
	return cp, len(leaves), nil
}

// integrateChunk is the most rows one statement of Integrate writes.
const integrateChunk = 500

// storeCheckpoint signs and stores the checkpoint of a tree of size with
// root, issued after the checkpoint of size prev.
func (s *Store) storeCheckpoint(ctx context.Context, tx Tx, size int64, root tlog.Hash, prev int64, sign auditlog.SignFunc) (auditlog.Checkpoint, error) {
	cp, err := sign(size, root, prev)
	if err != nil {
		return auditlog.Checkpoint{}, err
	}
	b := NewBuilder(s.d)
	if _, err := tx.Exec(ctx, `INSERT INTO checkpoints (size, note, created_at) VALUES (`+b.Arg(size)+`, `+b.Arg(string(cp.Note))+`, `+b.Arg(s.d.Time(time.Now()))+`)`, b.Args()...); err != nil {
		return auditlog.Checkpoint{}, fmt.Errorf("store checkpoint %d: %w", size, err)
	}
	return cp, nil
}

// seal gives entries appended before leaf hashes existed their seed and
// leaf hash, and returns the hashes by seq.
func (s *Store) seal(ctx context.Context, tx Tx, seqs []int64) (map[int64][]byte, error) {
	out := map[int64][]byte{}
	for part := range slices.Chunk(seqs, integrateChunk) {
		b := NewBuilder(s.d)
		ph := make([]string, len(part))
		for i, q := range part {
			ph[i] = b.Arg(q)
		}
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM entries WHERE seq IN (`+strings.Join(ph, `, `)+`)`, b.Args()...)
		if err != nil {
			return nil, err
		}
		entries, err := ScanEntries(s.d, rows)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if err := auditlog.Seal(&e); err != nil {
				return nil, err
			}
			b := NewBuilder(s.d)
			if _, err := tx.Exec(ctx, `UPDATE entries SET seed = `+b.Arg(e.Seed)+`, leaf_hash = `+b.Arg(e.LeafHash)+` WHERE seq = `+b.Arg(e.Seq), b.Args()...); err != nil {
				return nil, err
			}
			out[e.Seq] = e.LeafHash
		}
	}
	return out, nil
}

// hashCache is a tlog.HashReader over the tree's stored hashes: those
// computed in this integration, those loaded, and the database for the
// rest.
type hashCache struct {
	ctx context.Context
	tx  Tx
	d   Dialect
	m   map[int64]tlog.Hash
}

// loadFrontier loads the hashes a tree of size n is extended from: the
// roots of its complete subtrees, one per bit of n.
func (c *hashCache) loadFrontier(n int64) error {
	var need []int64
	var start int64
	for l := 63 - bits.LeadingZeros64(uint64(n)); l >= 0 && n > 0; l-- {
		if n&(1<<l) != 0 {
			need = append(need, tlog.StoredHashIndex(l, start>>l))
			start += 1 << l
		}
	}
	_, err := c.ReadHashes(need)
	return err
}

func (c *hashCache) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var missing []int64
	for _, i := range indexes {
		if _, ok := c.m[i]; !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		got, err := readHashes(c.ctx, c.tx, c.d, missing)
		if err != nil {
			return nil, err
		}
		for i, h := range got {
			c.m[missing[i]] = h
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = c.m[x]
	}
	return out, nil
}

// tileSize is how many stored hashes one row of tree_hashes holds.
const tileSize = 32

// writeTiles stores the hashes of indexes first to next-1, which r holds:
// the tiles they fall in, the first one completed with what it already
// held.
func writeTiles(ctx context.Context, tx Tx, d Dialect, r *hashCache, first, next int64) error {
	if next <= first {
		return nil
	}
	lo := first / tileSize * tileSize
	if lo < first {
		// The hashes before first in its tile are stored; read them.
		idx := make([]int64, 0, first-lo)
		for i := lo; i < first; i++ {
			idx = append(idx, i)
		}
		if _, err := r.ReadHashes(idx); err != nil {
			return err
		}
	}
	type tile struct {
		n      int64
		hashes []byte
	}
	var tiles []tile
	for t := lo / tileSize; t*tileSize < next; t++ {
		b := make([]byte, 0, tileSize*len(tlog.Hash{}))
		for i := t * tileSize; i < min((t+1)*tileSize, next); i++ {
			h := r.m[i]
			b = append(b, h[:]...)
		}
		tiles = append(tiles, tile{t, b})
	}
	for part := range slices.Chunk(tiles, integrateChunk) {
		b := NewBuilder(d)
		values := make([]string, len(part))
		for i, t := range part {
			values[i] = `(` + b.Arg(t.n) + `, ` + b.Arg(t.hashes) + `)`
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tree_hashes (tile, hashes) VALUES `+strings.Join(values, `, `)+
			` ON CONFLICT (tile) DO UPDATE SET hashes = excluded.hashes`, b.Args()...); err != nil {
			return err
		}
	}
	return nil
}

// readHashes reads stored hashes from their tiles; a missing one is an
// error.
func readHashes(ctx context.Context, tx Tx, d Dialect, indexes []int64) ([]tlog.Hash, error) {
	var tiles []int64
	for _, x := range indexes {
		tiles = append(tiles, x/tileSize)
	}
	slices.Sort(tiles)
	tiles = slices.Compact(tiles)
	found := make(map[int64][]byte, len(tiles))
	for part := range slices.Chunk(tiles, integrateChunk) {
		b := NewBuilder(d)
		ph := make([]string, len(part))
		for i, x := range part {
			ph[i] = b.Arg(x)
		}
		rows, err := tx.Query(ctx, `SELECT tile, hashes FROM tree_hashes WHERE tile IN (`+strings.Join(ph, `, `)+`)`, b.Args()...)
		if err != nil {
			return nil, fmt.Errorf("read tree hashes: %w", err)
		}
		for rows.Next() {
			var t int64
			var h []byte
			if err := rows.Scan(&t, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read tree hashes: %w", err)
			}
			found[t] = h
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read tree hashes: %w", err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	size := len(tlog.Hash{})
	for i, x := range indexes {
		t := found[x/tileSize]
		off := int(x%tileSize) * size
		if off+size > len(t) {
			return nil, fmt.Errorf("read tree hashes: hash %d is not stored", x)
		}
		copy(out[i][:], t[off:off+size])
	}
	return out, nil
}

// ReadHashes is auditlog.Tree's ReadHashes.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	tx, err := s.db.BeginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	return readHashes(ctx, tx, s.d, indexes)
}

// Checkpoint is auditlog.Tree's Checkpoint.
func (s *Store) Checkpoint(ctx context.Context, size int64) (auditlog.Checkpoint, error) {
	tx, err := s.db.BeginRead(ctx)
	if err != nil {
		return auditlog.Checkpoint{}, err
	}
	defer tx.Rollback(ctx)
	return s.checkpoint(ctx, tx, size)
}

func (s *Store) checkpoint(ctx context.Context, tx Tx, size int64) (auditlog.Checkpoint, error) {
	b := NewBuilder(s.d)
	q := `SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1`
	if size >= 0 {
		q = `SELECT size, note FROM checkpoints WHERE size = ` + b.Arg(size)
	}
	cps, err := scanCheckpoints(ctx, tx, q, b.Args()...)
	if err != nil {
		return auditlog.Checkpoint{}, err
	}
	if len(cps) == 0 {
		what := "the log has none"
		if size >= 0 {
			what = "none of size " + strconv.FormatInt(size, 10)
		}
		return auditlog.Checkpoint{}, fmt.Errorf("%w: %s", auditlog.ErrNoCheckpoint, what)
	}
	return cps[0], nil
}

// Checkpoints is auditlog.Tree's Checkpoints.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]auditlog.Checkpoint, error) {
	tx, err := s.db.BeginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	b := NewBuilder(s.d)
	return scanCheckpoints(ctx, tx, `SELECT size, note FROM checkpoints WHERE size > `+b.Arg(after)+` ORDER BY size LIMIT `+b.Arg(limit), b.Args()...)
}

func scanCheckpoints(ctx context.Context, tx Tx, q string, args ...any) ([]auditlog.Checkpoint, error) {
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	defer rows.Close()
	var out []auditlog.Checkpoint
	for rows.Next() {
		var cp auditlog.Checkpoint
		var note string
		if err := rows.Scan(&cp.Size, &note); err != nil {
			return nil, fmt.Errorf("checkpoints: %w", err)
		}
		cp.Note = []byte(note)
		out = append(out, cp)
	}
	return out, rows.Err()
}

// Leaves is auditlog.Tree's Leaves.
func (s *Store) Leaves(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Entry, error) {
	tx, err := s.db.BeginRead(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	b := NewBuilder(s.d)
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM entries WHERE seq > `+b.Arg(afterSeq)+` ORDER BY seq LIMIT `+b.Arg(limit), b.Args()...)
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", err)
	}
	return ScanEntries(s.d, rows)
}

// Prune is auditlog.Store's Prune: the entries received before before
// whose content is still there, oldest first, pruned in one write
// transaction.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int64, error) {
	tx, err := s.db.BeginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	defer tx.Rollback(ctx)
	b := NewBuilder(s.d)
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM entries WHERE received_at < `+b.Arg(s.d.Time(before))+
		` AND content_hash IS NULL ORDER BY seq LIMIT `+b.Arg(limit), b.Args()...)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	entries, err := ScanEntries(s.d, rows)
	if err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	for i := range entries {
		if err := auditlog.Prune(&entries[i]); err != nil {
			return 0, err
		}
	}
	if err := s.store(ctx, tx, entries); err != nil {
		return 0, fmt.Errorf("prune: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("prune: commit: %w", err)
	}
	return int64(len(entries)), nil
}
