package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"github.com/heraldhq/herald/auditlog/internal/migration"
	"time"
)

// migrations are the schema's versions, applied in order: the file
// NNNN_what.sql brings the schema to version NNNN. A released file is never
// edited; a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

func loadMigrations() ([]migration.Migration, error) { return migration.Load(migrations, "migrations") }

// migrate brings the schema up to date in one transaction, so that a
// failed migration leaves the previous version intact. Running it on an
// up-to-date database changes nothing; on a database from a newer herald
// it fails rather than guess.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	pending, err := migration.Pending(ms, current)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("migrate to %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("migrate to %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
