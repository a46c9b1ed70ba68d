package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"
)

// dialect is SQLite's: ? placeholders, times as milliseconds since the
// epoch, and payload terms as tokens of the contentless FTS5 table
// entry_terms, whose rowid is the entry's seq.
type dialect struct{}

var _ sqlstore.Dialect = dialect{}

func (dialect) Placeholder(int) string { return "?" }

// zeroMillis is how an entry without createdAt is stored: the zero time,
// which sorts before every real one.
var zeroMillis = time.Time{}.UnixMilli()

func (dialect) Time(t time.Time) any { return millis(t) }

func millis(t time.Time) int64 {
	if t.IsZero() {
		return zeroMillis
	}
	return t.UnixMilli() // rounds down
}

func (dialect) TimeDest() sqlstore.TimeDest { return new(millisDest) }

// millisDest receives a time column in milliseconds.
type millisDest struct{ ms int64 }

func (d *millisDest) Dest() any { return &d.ms }

func (d *millisDest) Time() time.Time {
	if d.ms == zeroMillis {
		return time.Time{}
	}
	return time.UnixMilli(d.ms).UTC()
}

func (dialect) Holds(b *sqlstore.Builder, terms []auditlog.Term, match sqlstore.Match) string {
	col := "seq"
	if match == sqlstore.ProbesAll {
		col = "+seq" // unary +: SQLite does not use it to look rows up
	}
	return col + ` IN (SELECT rowid FROM entry_terms WHERE entry_terms MATCH ` + b.Arg(ftsQuery(terms, match)) + `)`
}

func (dialect) CountHolding(b *sqlstore.Builder, terms []auditlog.Term) (string, bool) {
	return `SELECT count(*) FROM entry_terms WHERE entry_terms MATCH ` + b.Arg(ftsQuery(terms, sqlstore.HoldsAll)), true
}

func (dialect) SplitsScopeCount() bool { return false }

func (dialect) As(_, expr string) string { return expr }

// HoldsNested: the entries of the terms' names whose payload text holds
// one of their values as a JSON string (instr: LIKE ignores the case of
// ASCII letters), in one pass over those entries; the payload index has
// top-level terms only.
func (dialect) HoldsNested(b *sqlstore.Builder, ts []auditlog.NestedTerm) string {
	var names, values []string
	for _, t := range ts {
		names = append(names, t.Names...)
		values = append(values, sqlstore.JSONText(t.Value))
	}
	slices.Sort(names)
	slices.Sort(values)
	// Arguments in the order their placeholders appear.
	byName := sqlstore.In(b, "name", slices.Compact(names))
	return `(` + byName + ` AND ` + holdsAnyFunc + `(payload, ` + b.ArgList(slices.Compact(values)) + `))`
}

// holdsAnyFunc is the SQL function holdsAny, registered with the driver.
const holdsAnyFunc = "herald_holds_any"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(holdsAnyFunc, -1, holdsAny)
}

// holdsAny(text, needle…) is 1 when text holds one of the needles, else
// 0; NULL text holds none. It is instr(text, n) > 0 OR … in one call,
// with Go's substring search: an erasure's search of nested fields tests
// every flow document for each of a group's users' values, and SQLite's
// instr, one needle at a time, took ten times as long.
func holdsAny(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: no arguments", holdsAnyFunc)
	}
	var text string
	switch t := args[0].(type) {
	case nil:
		return int64(0), nil
	case string:
		text = t
	case []byte:
		text = string(t)
	default:
		return nil, fmt.Errorf("%s: text is %T", holdsAnyFunc, t)
	}
	for _, a := range args[1:] {
		var n string
		switch v := a.(type) {
		case string:
			n = v
		case []byte:
			n = string(v)
		default:
			continue
		}
		if n != "" && strings.Contains(text, n) {
			return int64(1), nil
		}
	}
	return int64(0), nil
}

func (dialect) UnionsTerms() bool { return false }

// Settle has nothing to do: FTS5 searches every segment as it is.
func (dialect) Settle(context.Context, sqlstore.Tx) error { return nil }

func (dialect) Reindex(ctx context.Context, tx sqlstore.Tx, entries []auditlog.Entry) error {
	seqs := make([]any, len(entries))
	var rows []any
	for i, e := range entries {
		seqs[i] = e.Seq
		fs, err := jsonobj.Fields(e.Payload)
		if err != nil {
			return fmt.Errorf("entry %s: %w", e.ID, err)
		}
		if t := tokens(fs); t != "" {
			rows = append(rows, e.Seq, t)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM entry_terms WHERE rowid IN (`+list("?", len(seqs))+`)`, seqs...); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO entry_terms (rowid, terms) VALUES `+list("(?, ?)", len(rows)/2), rows...)
	return err
}

// list is n copies of item, separated by commas.
func list(item string, n int) string {
	return strings.TrimSuffix(strings.Repeat(item+", ", n), ", ")
}

// token is the token entry_terms holds for a term: 32 hex digits of
// SHA-256(key NUL value). Keys hold no NUL, so different terms hash
// different input; finding two inputs with one 128-bit digest takes about
// 2^64 work, so a matching token is an exact match and the query need not
// read the payload to check it.
func token(t auditlog.Term) string {
	h := sha256.New()
	h.Write([]byte(t.Key))
	h.Write([]byte{0})
	h.Write([]byte(t.Value))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// ftsQuery is the FTS5 query of terms: all of their tokens, or any. The
// tokens are plain hex, so quoting them is enough.
func ftsQuery(terms []auditlog.Term, match sqlstore.Match) string {
	ts := make([]string, len(terms))
	for i, t := range terms {
		ts[i] = token(t)
	}
	slices.Sort(ts)
	op := `" AND "`
	if match == sqlstore.HoldsAny {
		op = `" OR "`
	}
	return `"` + strings.Join(ts, op) + `"`
}

// tokens returns the entry_terms text of a payload: the tokens of its
// terms, its top-level string values under valid payload keys.
func tokens(fs []jsonobj.Field) string {
	var b strings.Builder
	for _, f := range fs {
		if !auditlog.ValidPayloadKey(f.Key) {
			continue
		}
		v, ok := jsonobj.String(f.Raw)
		if !ok {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(token(auditlog.Term{Key: f.Key, Value: v}))
	}
	return b.String()
}
