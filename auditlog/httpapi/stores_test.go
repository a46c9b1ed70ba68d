package httpapi

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/postgres"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
)

// forEachStore runs f as a subtest over each store: SQLite always, and
// PostgreSQL at HERALD_TEST_POSTGRES_URL (skipped without it, failed when
// HERALD_REQUIRE_SERVICES=1).
func forEachStore(t *testing.T, f func(t *testing.T, store auditlog.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newStore(t)) })
	t.Run("postgres", func(t *testing.T) { f(t, newPostgresStore(t)) })
}

// newPostgresStore opens a PostgreSQL store in a schema of its own,
// dropped when the test ends.
func newPostgresStore(t *testing.T) auditlog.Store {
	t.Helper()
	url := pgtest.URL(t)
	s, err := postgres.Open(context.Background(), url, postgres.WithSchema(pgtest.Schema(t, url)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
