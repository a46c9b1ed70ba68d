package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/storetest"
)

// raw is SQL straight on the database file, as anyone who can write the
// file (the sqlite3 CLI, say) would run it.
type raw struct{ db *sql.DB }

func newRaw(t testing.TB, path string) raw {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, options{busyTimeout: 10e9}, false))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return raw{db}
}

func (r raw) Exec(ctx context.Context, query string, args ...any) error {
	_, err := r.db.ExecContext(ctx, query, args...)
	return err
}

func (r raw) Query(ctx context.Context, query string, args ...any) ([][]any, error) {
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

func (raw) Text(col string) string      { return col }
func (raw) Millis(col string) string    { return col }
func (raw) AddMillis(col string) string { return col + " + ?" }

func TestTamperIsDetected(t *testing.T) {
	paths := map[auditlog.Store]string{}
	open := func(t testing.TB) auditlog.Store {
		path := filepath.Join(t.TempDir(), "audit.db")
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		paths[s] = path
		return s
	}
	storetest.RunTamper(t, storetest.TamperHarness{
		Open: open,
		Copy: func(t testing.TB, s auditlog.Store) (auditlog.Store, storetest.Raw) {
			path := filepath.Join(t.TempDir(), "copy.db")
			if _, err := s.(*Store).w.Exec(`VACUUM INTO ?`, path); err != nil {
				t.Fatal(err)
			}
			c, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			return c, newRaw(t, path)
		},
		Raw: func(t testing.TB, s auditlog.Store) storetest.Raw { return newRaw(t, paths[s]) },
	})
}
