package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
	"github.com/jackc/pgx/v5"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	url := pgtest.URL(t)
	s, err := Open(context.Background(), url, WithSchema(pgtest.Schema(t, url)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, func(t testing.TB) auditlog.Store { return openTest(t) })
}

func TestTreeConformance(t *testing.T) {
	pgtest.URL(t)
	storetest.RunIntegrity(t, func(t testing.TB) auditlog.Store { return openTest(t) })
}

// TestStoreConformanceWalkingForPayloadMatches runs the suite again with
// every payload filter read the way many matches are (the suite's few
// matches otherwise take the other plan).
func TestStoreConformanceWalkingForPayloadMatches(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, func(t testing.TB) auditlog.Store {
		s := openTest(t)
		s.sql.DenseMatches = -1
		return s
	})
}

func TestOpenMigratesOnceUnderConcurrentStarts(t *testing.T) {
	url := pgtest.URL(t)
	schema := pgtest.Schema(t, url)
	ctx := context.Background()
	errs := make(chan error, 4)
	stores := make(chan *Store, 4)
	for range 4 {
		go func() {
			s, err := Open(ctx, url, WithSchema(schema))
			errs <- err
			stores <- s
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent open: %v", err)
		}
		if s := <-stores; s != nil {
			defer s.Close()
		}
	}
	s, err := Open(ctx, url, WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var versions int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM `+migrationsTable).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	ms, _ := loadMigrations()
	if versions != len(ms) {
		t.Errorf("%d migrations recorded, want %d", versions, len(ms))
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO `+migrationsTable+` (version, name) VALUES (9999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url, WithSchema(schema)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open of a newer schema: %v, want an error saying it is newer", err)
	}
}

func TestWithSchemaRefusesUnsafeNames(t *testing.T) {
	for _, name := range []string{"Public", `a"b`, "a;drop", "1abc", strings.Repeat("a", 64), "a-b"} {
		if _, err := Open(context.Background(), "postgres://127.0.0.1:1/none", WithSchema(name)); err == nil || !strings.Contains(err.Error(), "schema name") {
			t.Errorf("schema %q: %v, want a schema name error", name, err)
		}
	}
}

// TestQueriesUseTheirIndex guards the plans the benchmarks measured.
func TestQueriesUseTheirIndex(t *testing.T) {
	s := openTest(t)
	defer s.Close()
	ctx := context.Background()
	d := storetest.NewDataset(1, 5000)
	d.Fill(ctx, t, s, 1000)
	if _, err := s.pool.Exec(ctx, `ANALYZE entries`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		q    auditlog.Query
		want []string
	}{
		{"cursor", auditlog.Query{Limit: 50, After: &auditlog.Cursor{CreatedAt: d.Day(3), Seq: 10}}, []string{"entries_created"}},
		{"tenant", auditlog.Query{Tenant: d.Tenant(1), Limit: 50}, []string{"entries_tenant"}},
		{"scope", auditlog.Query{Scope: &auditlog.Scope{User: d.User(1), Tenant: d.Tenant(1)}, Limit: 50}, []string{"entries_user", "entries_tenant"}},
		{"name and day", auditlog.Query{Name: d.Name(1), From: d.Day(1), To: d.Day(2), Limit: 50}, []string{"entries_name"}},
		{"payload", auditlog.Query{Payload: map[string]string{"flowId": d.Flow(1)}, Limit: 50}, []string{"entries_payload"}},
	}
	for _, tt := range tests {
		query, args := sqlstore.PageSQL(dialect{}, tt.q, sqlstore.HoldsAll)
		rows, err := s.pool.Query(ctx, `EXPLAIN `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("%s:\n%s", tt.name, plan)
		for _, w := range tt.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan does not use %s:\n%s", tt.name, w, plan)
			}
		}
		if strings.Contains(plan, "Seq Scan") {
			t.Errorf("%s: plan scans the table:\n%s", tt.name, plan)
		}
	}
}
