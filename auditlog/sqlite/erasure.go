package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

var (
	_ auditlog.ErasureState = (*Store)(nil)
	_ auditlog.Scrubber     = (*Store)(nil)
)

// RecordErased records erased identifiers (auditlog.ErasureState).
func (s *Store) RecordErased(ctx context.Context, values []auditlog.ErasedValue) error {
	if len(values) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().UnixMilli()
	for _, v := range values {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO herald_erasures (digest, replacement, erased_at) VALUES (?, ?, ?)`,
			v.Digest, v.Replacement, now); err != nil {
			return fmt.Errorf("record erasure: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record erasure: %w", err)
	}
	return nil
}

// Erased returns those of digests that are recorded, with their
// replacements (auditlog.ErasureState).
func (s *Store) Erased(ctx context.Context, digests [][]byte) (map[string]string, error) {
	out := map[string]string{}
	// Well below SQLite's limit of arguments per statement.
	for len(digests) > 0 {
		part := digests[:min(len(digests), 500)]
		digests = digests[len(part):]
		args := make([]any, len(part))
		for i, d := range part {
			args[i] = d
		}
		rows, err := s.r.QueryContext(ctx, `SELECT digest, replacement FROM herald_erasures WHERE digest IN (?`+strings.Repeat(",?", len(part)-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("erased: %w", err)
		}
		for rows.Next() {
			var d []byte
			var r string
			if err := rows.Scan(&d, &r); err != nil {
				rows.Close()
				return nil, fmt.Errorf("erased: %w", err)
			}
			out[string(d)] = r
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("erased: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("erased: %w", err)
		}
	}
	return out, nil
}

// Scrub removes the old bytes of rewritten entries from the database's
// files (auditlog.Scrubber): the writer runs with secure_delete, so that
// freed space in the database file is zeroed; the payload index deletes
// tokens from its segments (FTS5 secure-delete) and is merged into one
// segment, which rewrites the segments' keys; and a TRUNCATE
// checkpoint copies the WAL into the database and empties it, which
// takes the WAL's copies of the old pages.
func (s *Store) Scrub(ctx context.Context) error {
	// secure-delete takes a deleted token out of its segment's leaf, but
	// a leaf's first term also keys the segment's index: merging every
	// segment into one writes the index anew, without the deleted terms.
	// It costs a pass over the whole payload index.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO entry_terms (entry_terms) VALUES ('optimize')`); err != nil {
		return fmt.Errorf("scrub: payload index: %w", err)
	}
	// One attempt: a reader holding an old snapshot (ingest reads all the
	// time) makes the checkpoint stop short; the old frames then go with
	// the next erasure's checkpoint or SQLite's automatic one, and waiting
	// here would hold up the deletion's delivery.
	var busy, logFrames, done int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
		return fmt.Errorf("scrub: checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("scrub: checkpoint: readers kept the WAL busy; %d of %d frames copied", done, logFrames)
	}
	return nil
}
