package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two CREATE TABLE IF NOT EXISTS at once can both try to create
		// it; deletions are rare enough to take turns.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('herald.auditlog.forget'))`); err != nil {
			return fmt.Errorf("forget: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+forgottenTable+` (
			digest       bytea       PRIMARY KEY,
			forgotten_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("forget: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO `+forgottenTable+` (digest) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING`, digests); err != nil {
			return fmt.Errorf("forget: %w", err)
		}
		return nil
	})
}

// Forgotten returns those of digests that are recorded.
func (s *Store) Forgotten(ctx context.Context, digests [][]byte) ([][]byte, error) {
	if len(digests) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT digest FROM `+forgottenTable+` WHERE digest = ANY($1::bytea[])`, digests)
	if err == nil {
		var found [][]byte
		found, err = pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err == nil {
			return found, nil
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: nobody forgotten yet
		return nil, nil
	}
	return nil, fmt.Errorf("forgotten: %w", err)
}
