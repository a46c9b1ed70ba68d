package postgres

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog/internal/migration"
)

// migrationsTable records the schema's versions. Its name is herald's own:
// the audit log's tables may share a schema (public, by default) with
// other programs, and schema_migrations, the name herald used first, is
// also the table of other migration tools.
const migrationsTable = "herald_schema_migrations"

// oldMigrationsTable is the name herald's versions were recorded under
// before migrationsTable.
const oldMigrationsTable = "schema_migrations"

// migrationFile is how herald names a migration: its version, then what
// it does.
var migrationFile = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_-]+\.sql$`)

// adoptOldMigrationsTable renames the schema_migrations table of an
// earlier herald in the current schema to migrationsTable, when
// migrationsTable does not exist yet. A schema_migrations table is taken
// as herald's only when it has herald's columns, exactly, and every row
// names a herald migration file under its own version; any other (another
// tool's) is left alone.
func adoptOldMigrationsTable(ctx context.Context, tx pgx.Tx, ms []migration.Migration) error {
	var haveNew, haveOld bool
	if err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1),
			EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $2)`,
		migrationsTable, oldMigrationsTable).Scan(&haveNew, &haveOld); err != nil {
		return fmt.Errorf("look for %s: %w", oldMigrationsTable, err)
	}
	if haveNew || !haveOld {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name`, oldMigrationsTable)
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", oldMigrationsTable, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read the columns of %s: %w", oldMigrationsTable, err)
	}
	if !slices.Equal(cols, []string{"applied_at", "name", "version"}) {
		return nil // another tool's
	}
	rows, err = tx.Query(ctx, `SELECT version::bigint, name::text FROM `+oldMigrationsTable)
	if err != nil {
		return fmt.Errorf("read %s: %w", oldMigrationsTable, err)
	}
	type row struct {
		Version int64
		Name    string
	}
	recorded, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return fmt.Errorf("read %s: %w", oldMigrationsTable, err)
	}
	if len(recorded) == 0 {
		return nil
	}
	for _, r := range recorded {
		m := migrationFile.FindStringSubmatch(r.Name)
		if m == nil {
			return nil
		}
		if v, err := strconv.ParseInt(strings.TrimLeft(m[1], "0"), 10, 64); err != nil || v != r.Version {
			return nil
		}
		if i := slices.IndexFunc(ms, func(k migration.Migration) bool { return int64(k.Version) == r.Version }); i >= 0 && ms[i].Name != r.Name {
			return nil
		}
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE `+oldMigrationsTable+` RENAME TO `+migrationsTable); err != nil {
		return fmt.Errorf("rename %s to %s: %w", oldMigrationsTable, migrationsTable, err)
	}
	return nil
}
