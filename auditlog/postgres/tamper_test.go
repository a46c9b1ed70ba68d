package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
)

// raw is SQL straight on a schema of the database, as anyone holding the
// role would run it.
type raw struct{ pool *pgxpool.Pool }

func newRaw(t testing.TB, url, schema string) raw {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return raw{pool}
}

// dollar turns ? placeholders into $n.
func dollar(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r raw) Exec(ctx context.Context, query string, args ...any) error {
	_, err := r.pool.Exec(ctx, dollar(query), args...)
	return err
}

func (r raw) Query(ctx context.Context, query string, args ...any) ([][]any, error) {
	rows, err := r.pool.Query(ctx, dollar(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}

func (raw) Text(col string) string { return col + "::text" }
func (raw) Millis(col string) string {
	return "(extract(epoch from " + col + ") * 1000)::bigint"
}
func (raw) AddMillis(col string) string {
	return col + " + (?::bigint * interval '1 millisecond')"
}

func TestTamperIsDetected(t *testing.T) {
	url := pgtest.URL(t)
	schemas := map[auditlog.Store]string{}
	open := func(t testing.TB) auditlog.Store {
		schema := pgtest.Schema(t, url)
		s, err := Open(context.Background(), url, WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		schemas[s] = schema
		return s
	}
	storetest.RunTamper(t, storetest.TamperHarness{
		Open: open,
		Copy: func(t testing.TB, s auditlog.Store) (auditlog.Store, storetest.Raw) {
			from, to := schemas[s], pgtest.Schema(t, url)
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			stmts := []string{`CREATE SCHEMA ` + to}
			for _, table := range []string{migrationsTable, "entries", "leaves", "entry_count", "tree_hashes", "checkpoints", "tree_state"} {
				stmts = append(stmts,
					`CREATE TABLE `+to+`.`+table+` (LIKE `+from+`.`+table+` INCLUDING ALL)`,
					`INSERT INTO `+to+`.`+table+` SELECT * FROM `+from+`.`+table)
			}
			for _, q := range stmts {
				if _, err := conn.Exec(context.Background(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			c, err := Open(context.Background(), url, WithSchema(to))
			if err != nil {
				t.Fatal(err)
			}
			return c, newRaw(t, url, to)
		},
		Raw: func(t testing.TB, s auditlog.Store) storetest.Raw { return newRaw(t, url, schemas[s]) },
	})
}
