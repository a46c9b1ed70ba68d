package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/postgres"
	"github.com/heraldhq/herald/internal/testkit"
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
	url := testkit.Need(t, "HERALD_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	var b [6]byte
	rand.Read(b[:])
	schema := "herald_test_" + hex.EncodeToString(b[:])
	s, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return s
}
