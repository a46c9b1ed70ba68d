package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"
)

// dialect is PostgreSQL's: $n placeholders, timestamptz times, and
// payload terms found by JSONB containment, which the GIN index
// entries_payload serves for any key.
type dialect struct{}

var _ sqlstore.Dialect = dialect{}

func (dialect) Placeholder(n int) string { return "$" + strconv.Itoa(n) }

func (dialect) Time(t time.Time) any { return ms(t) }

// ms truncates t to the millisecond, the precision both stores keep; the
// zero time stays the zero time (0001-01-01, before every real one).
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func (dialect) TimeDest() sqlstore.TimeDest { return new(timeDest) }

// timeDest receives a timestamptz column.
type timeDest struct{ t time.Time }

func (d *timeDest) Dest() any { return &d.t }

func (d *timeDest) Time() time.Time {
	if d.t.IsZero() {
		return time.Time{}
	}
	return d.t.UTC()
}

func (dialect) Holds(b *sqlstore.Builder, terms []auditlog.Term, match sqlstore.Match) string {
	switch match {
	case sqlstore.HoldsAny:
		conds := make([]string, len(terms))
		for i, t := range terms {
			conds[i] = `payload @> ` + b.Arg(containment(t)) + `::jsonb`
		}
		return `(` + strings.Join(conds, ` OR `) + `)`
	case sqlstore.ProbesAll:
		// The same value, but not the indexed expression: the planner
		// walks another index and tests each entry.
		return `coalesce(payload, '{}') @> ` + b.Arg(containment(terms...)) + `::jsonb`
	default:
		// One containment for all terms: {"k":"v",…} matches string
		// values only, exactly, as OIH's MongoDB query did.
		return `payload @> ` + b.Arg(containment(terms...)) + `::jsonb`
	}
}

// CountHolding counts through the GIN index, which cannot count from the
// index alone: every match is visited.
func (d dialect) CountHolding(b *sqlstore.Builder, terms []auditlog.Term) (string, bool) {
	return `SELECT count(*) FROM entries WHERE ` + d.Holds(b, terms, sqlstore.HoldsAll), false
}

func (dialect) SplitsScopeCount() bool { return true }

// HoldsNested is an OR of containments, which the payload's GIN index
// answers at any depth: {"owners":[{"id":"u1"}]} for owners, *, id.
func (dialect) HoldsNested(b *sqlstore.Builder, ts []auditlog.NestedTerm) string {
	var conds []string
	for _, t := range ts {
		var doc any = t.Value
		for i := len(t.Path) - 1; i >= 0; i-- {
			if t.Path[i] == "*" {
				doc = []any{doc}
			} else {
				doc = map[string]any{t.Path[i]: doc}
			}
		}
		j, _ := json.Marshal(doc) // strings, maps and slices always encode
		conds = append(conds, `payload @> `+b.Arg(string(j))+`::jsonb`)
	}
	return `(` + strings.Join(conds, ` OR `) + `)`
}

// As casts where PostgreSQL would take a VALUES list's arguments for text.
func (dialect) As(col, expr string) string {
	switch col {
	case "seq":
		return expr + "::bigint"
	case "payload", "headers":
		return expr + "::jsonb"
	case "seed", "content_hash":
		return expr + "::bytea"
	case "salts", "erased", "user":
		return expr + "::text"
	}
	return expr
}

// Settle merges the GIN payload index's pending list into the index.
// PostgreSQL adds the keys of new rows to that list (fastupdate) and
// merges it when it reaches gin_pending_list_limit (4 MB): until then
// every search of the index reads the whole list, some 30,000 keys of
// entries at ingest rates, so that the planner rightly prefers reading
// the whole table to an erasure's OR of containments (90 ms per
// deletion for 20,000 entries, against 0.2 ms once merged). Merging it
// here, with the append lock held, costs what the next automatic merge
// would have.
//
// It also turns JIT compilation off for the rest of the transaction: the
// union of a few hundred index scans (UnionsTerms) is estimated costly
// enough to be compiled, which took 500 ms, twenty times the time the
// query runs.
func (dialect) Settle(ctx context.Context, tx sqlstore.Tx) error {
	if _, err := tx.Exec(ctx, `SELECT gin_clean_pending_list('entries_payload'::regclass)`); err != nil {
		return fmt.Errorf("merge the payload index's pending list: %w", err)
	}
	if _, err := tx.Exec(ctx, `SET LOCAL jit = off`); err != nil {
		return fmt.Errorf("turn JIT off: %w", err)
	}
	return nil
}

func (dialect) UnionsTerms() bool { return true }

// Reindex has nothing to do: PostgreSQL keeps the GIN index up to date.
func (dialect) Reindex(context.Context, sqlstore.Tx, []auditlog.Entry) error { return nil }

// containment is the JSON object {"key":"value",…} of terms.
func containment(terms ...auditlog.Term) string {
	obj := make(map[string]string, len(terms))
	for _, t := range terms {
		obj[t.Key] = t.Value
	}
	b, _ := json.Marshal(obj) // a map of strings always encodes
	return string(b)
}

// db starts the shared code's transactions on the pool.
type db struct{ pool *pgxpool.Pool }

func (d db) BeginRead(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	return pgTx{tx}, nil
}

// BeginWrite takes the append lock, the row lock on entry_count that
// Append takes first.
func (d db) BeginWrite(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT n FROM entry_count FOR UPDATE`); err != nil {
		tx.Rollback(ctx)
		return nil, fmt.Errorf("append lock: %w", err)
	}
	return pgTx{tx}, nil
}

type pgTx struct{ pgx.Tx }

func (t pgTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return t.Tx.Query(ctx, query, args...)
}

func (t pgTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.Tx.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}
