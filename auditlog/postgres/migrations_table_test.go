package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
)

// inSchema runs sql on a connection whose search_path is schema, created
// here.
func inSchema(t *testing.T, url, schema string, sql ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{schema}.Sanitize()
	for _, q := range append([]string{`CREATE SCHEMA ` + id, `SET search_path TO ` + id}, sql...) {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func tableExists(t *testing.T, s *Store, name string) bool {
	t.Helper()
	var ok bool
	if err := s.pool.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name = $1)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestAnEarlierHeraldsMigrationsTableIsTakenOverUnderHeraldsName(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, url)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	// The schema as an earlier herald left it: version 1 recorded in
	// schema_migrations, and one entry.
	inSchema(t, url, schema, ms[0].SQL,
		`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
		`INSERT INTO schema_migrations (version, name) VALUES (1, '`+ms[0].Name+`')`,
		`INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, payload, unknown)
			VALUES ('e1', 'iam.user.created', 'accounts', now(), now(), '', '', '{}', false)`,
		`UPDATE entry_count SET n = 1`)

	s, err := Open(context.Background(), url, WithSchema(schema))
	if err != nil {
		t.Fatalf("open the earlier herald's schema: %v", err)
	}
	defer s.Close()
	if !tableExists(t, s, migrationsTable) || tableExists(t, s, "schema_migrations") {
		t.Errorf("want %s and no schema_migrations after opening", migrationsTable)
	}
	var version int
	if err := s.pool.QueryRow(context.Background(), `SELECT max(version) FROM `+migrationsTable).Scan(&version); err != nil || version != ms[len(ms)-1].Version {
		t.Errorf("%s at version %d (%v), want %d", migrationsTable, version, err, ms[len(ms)-1].Version)
	}
	if p, err := s.Query(context.Background(), auditlog.Query{Limit: 1}); err != nil || p.Total != 1 {
		t.Errorf("the earlier entry: total %d, %v; want it kept", p.Total, err)
	}
}

func TestAnotherToolsSchemaMigrationsTableIsLeftAlone(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, url)
	// As golang-migrate keeps it.
	inSchema(t, url, schema,
		`CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (20240101120000, false)`)

	s, err := Open(context.Background(), url, WithSchema(schema))
	if err != nil {
		t.Fatalf("open a schema where another tool keeps schema_migrations: %v", err)
	}
	defer s.Close()
	var version int64
	var dirty bool
	if err := s.pool.QueryRow(context.Background(), `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil || version != 20240101120000 {
		t.Errorf("the other tool's table: version %d, %v; want it untouched", version, err)
	}
	if !tableExists(t, s, migrationsTable) {
		t.Errorf("no %s", migrationsTable)
	}
}
