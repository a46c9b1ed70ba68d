package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

var _ auditlog.Forgetter = (*Store)(nil)

// forgottenTable holds the digests of deleted users (auditlog.Forgetter).
// It is created by the first Forget: a store where nobody was ever
// deleted has none, and Forgotten then finds nothing.
const forgottenTable = "herald_forgotten"

// Forget records digests.
func (s *Store) Forget(ctx context.Context, digests [][]byte) error {
	if len(digests) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("forget: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+forgottenTable+` (
		digest       BLOB    PRIMARY KEY,
		forgotten_at INTEGER NOT NULL
	) WITHOUT ROWID`); err != nil {
		return fmt.Errorf("forget: %w", err)
	}
	now := time.Now().UnixMilli()
	for _, d := range digests {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO `+forgottenTable+` (digest, forgotten_at) VALUES (?, ?)`, d, now); err != nil {
			return fmt.Errorf("forget: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("forget: %w", err)
	}
	return nil
}

// Forgotten returns those of digests that are recorded.
func (s *Store) Forgotten(ctx context.Context, digests [][]byte) ([][]byte, error) {
	if len(digests) == 0 {
		return nil, nil
	}
	var exists bool
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?)`, forgottenTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("forgotten: %w", err)
	}
	if !exists {
		return nil, nil // nobody forgotten yet
	}
	args := make([]any, len(digests))
	for i, d := range digests {
		args[i] = d
	}
	rows, err := s.r.QueryContext(ctx, `SELECT digest FROM `+forgottenTable+` WHERE digest IN (?`+strings.Repeat(",?", len(digests)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("forgotten: %w", err)
	}
	defer rows.Close()
	var found [][]byte
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("forgotten: %w", err)
		}
		found = append(found, d)
	}
	return found, rows.Err()
}
