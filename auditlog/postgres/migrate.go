package postgres

import (
	"context"
	"embed"
	"fmt"
	"github.com/heraldhq/herald/auditlog/internal/migration"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, applied in order: the file
// NNNN_what.sql brings the schema to version NNNN. A released file is never
// edited; a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

func loadMigrations() ([]migration.Migration, error) { return migration.Load(migrations, "migrations") }

// migrate brings the schema up to date in one transaction, under an
// advisory lock, so that replicas starting together apply each version
// once and a failed migration leaves the previous version intact. On a
// database from a newer herald it fails rather than guess.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		lockSchema := schema
		if lockSchema == "" {
			lockSchema = "(search_path)"
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('herald.auditlog.migrate'), hashtext($1))`, lockSchema); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if schema != "" {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
		}
		if err := adoptOldMigrationsTable(ctx, tx, ms); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (
			version    integer     PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+migrationsTable).Scan(&current); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		pending, err := migration.Pending(ms, current)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for _, m := range pending {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("migrate to %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+migrationsTable+` (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migrate to %s: %w", m.Name, err)
			}
		}
		return nil
	})
}
