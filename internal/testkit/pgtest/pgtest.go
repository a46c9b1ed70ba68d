// Package pgtest gives tests a PostgreSQL schema of their own at
// HERALD_TEST_POSTGRES_URL. It is apart from testkit so that tests which
// need no database do not link a PostgreSQL driver.
//
// It is imported by tests only.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/internal/testkit"
)

// URL returns HERALD_TEST_POSTGRES_URL, skipping the test when it is not
// set (failing instead when HERALD_REQUIRE_SERVICES=1).
func URL(t testing.TB) string {
	t.Helper()
	return testkit.Need(t, "HERALD_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
}

// Schema returns a fresh schema name at url, dropped (with everything in
// it) when the test ends. The schema is not created: herald's store
// creates it on open. A store opened on it should be closed by a cleanup
// registered after Schema (cleanups run last first), or before the test
// ends.
func Schema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	schema := "herald_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
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
	return schema
}
