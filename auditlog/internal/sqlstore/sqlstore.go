// Package sqlstore is the SQL of herald's audit-log stores, written once:
// the query builder, the scan of entries, the checks on appended entries,
// and Query and Rewrite over a transaction. auditlog/sqlite and
// auditlog/postgres each supply a Dialect — what truly differs between
// SQLite and PostgreSQL — and keep what is theirs: opening the database,
// its migrations, and Append, whose fastest form differs by driver.
//
// A new entry column is read in one place (columns and ScanEntries); a
// new condition on entries is written once, in the builder, for both
// databases.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
)

// Dialect is what differs between the databases: how a statement names
// and types its arguments, how a time is stored, which count of a scope is
// fastest, and how payloads are indexed.
type Dialect interface {
	// Placeholder is the text of a statement's n-th argument, from 1
	// ("?" or "$n").
	Placeholder(n int) string
	// Time is the value a created_at or received_at column holds for t,
	// at millisecond precision (rounded down). The zero time, an entry
	// without createdAt, sorts before every other.
	Time(t time.Time) any
	// TimeDest returns a destination for Scan of such a column, reused
	// for every row.
	TimeDest() TimeDest
	// SplitsScopeCount reports whether a non-admin's count (their own
	// entries or their tenant's) is faster as own + tenant's − both, three
	// index-only counts, than as one count of the OR: on PostgreSQL, whose
	// OR of two indexes visits every row it counts; not on SQLite, which
	// unions the two indexes' rowids without reading a row, where the
	// "both" count would read each of the user's rows for its tenant.
	SplitsScopeCount() bool
	// As types expr, an argument's placeholder, as a value of the entries
	// column col, where the database cannot infer the type (in a VALUES
	// list).
	As(col, expr string) string
	// UnionsTerms reports whether Rewrite finds the entries holding any of
	// many terms faster as a union of one query per term than as one OR
	// of them: on PostgreSQL, whose planner estimates each containment at
	// about 1% of the table, so that an OR of a few hundred (one erasure
	// of a batch's deleted users) is planned as a scan of the whole table
	// testing every one on every row (470 ms for 20,000 entries, 20 users),
	// where the union's index scans take 25 ms. Not on SQLite, whose
	// payload index answers an OR of terms in one FTS5 query.
	UnionsTerms() bool
	// HoldsNested returns the condition that an entry is selected by any
	// of ts (auditlog.NestedTerm), adding its arguments to b.
	HoldsNested(b *Builder, ts []auditlog.NestedTerm) string
	PayloadIndex
}

// A TimeDest receives a time column: Scan fills Dest, Time reads the time
// back (the zero time as time.Time{}).
type TimeDest interface {
	Dest() any
	Time() time.Time
}

// PayloadIndex finds entries by the terms of their payloads (FTS5 tokens
// on SQLite, GIN containment on PostgreSQL).
type PayloadIndex interface {
	// Holds returns the condition that an entry's payload holds terms, as
	// match says, adding its arguments to b.
	Holds(b *Builder, terms []auditlog.Term, match Match) string
	// CountHolding returns a statement counting the entries whose payload
	// holds every one of terms, adding its arguments to b, and whether it
	// counts from the index alone rather than visiting every match.
	CountHolding(b *Builder, terms []auditlog.Term) (query string, indexOnly bool)
	// Reindex brings the index up to date with the new payloads of
	// entries (at their Seq), after Rewrite changed them, in tx.
	Reindex(ctx context.Context, tx Tx, entries []auditlog.Entry) error
	// Settle readies the index, in tx, for a search of many terms at once
	// (Rewrite's, an erasure's): it brings in what the index keeps aside
	// for later, which every search would otherwise read through.
	Settle(ctx context.Context, tx Tx) error
}

// Match is how a condition on payload terms matches.
type Match int

// Matches.
const (
	// HoldsAll selects entries holding every term, and lets the payload
	// index find them.
	HoldsAll Match = iota
	// ProbesAll selects entries holding every term, written so that the
	// payload index does not drive the query: an ordered index (createdAt,
	// or another filter's) is walked and each entry tested against the
	// index. See Store.DenseMatches.
	ProbesAll
	// HoldsAny selects entries holding at least one term.
	HoldsAny
)

// Rows is what a query returns, as both *sql.Rows (wrapped for Close) and
// pgx.Rows have it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Tx is a transaction of either driver.
type Tx interface {
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// DB starts the two kinds of transaction the stores run.
type DB interface {
	// BeginRead starts a read-only transaction that sees one snapshot.
	BeginRead(ctx context.Context) (Tx, error)
	// BeginWrite starts a transaction holding the append lock: the lock
	// Append takes, so that appends, and everything else that writes
	// entries, take turns, and seq order is commit order.
	BeginWrite(ctx context.Context) (Tx, error)
}

// Store is Query and Rewrite of an auditlog.Store, on db in dialect d.
type Store struct {
	d  Dialect
	db DB
	// DenseMatches is the number of payload matches above which a page is
	// read by walking the ordered index of the other filters (or
	// createdAt's) and testing each entry (ProbesAll), rather than by
	// fetching every match and sorting: fetching costs per match, walking
	// per entry passed over, and with more matches than this a page of 50
	// passes over few entries. PostgreSQL's planner cannot estimate a
	// containment's selectivity and would otherwise fetch and sort every
	// match, 150 ms for 80,000 of a million entries. A field so that tests
	// can force the walk.
	DenseMatches int64
}

// New returns the shared part of a store.
func New(d Dialect, db DB) *Store {
	return &Store{d: d, db: db, DenseMatches: 5000}
}

// Query returns one page of entries: the count and the page from one
// snapshot.
func (s *Store) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	if err := q.Validate(); err != nil {
		return auditlog.Page{}, err
	}
	tx, err := s.db.BeginRead(ctx)
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	defer tx.Rollback(ctx)
	page, err := s.query(ctx, tx, q)
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	return page, nil
}

func (s *Store) query(ctx context.Context, tx Tx, q auditlog.Query) (auditlog.Page, error) {
	var page auditlog.Page
	var total int64
	if !q.SkipTotal {
		count, args := CountSQL(s.d, q)
		var err error
		if total, err = queryInt(ctx, tx, count, args...); err != nil {
			return page, fmt.Errorf("count: %w", err)
		}
		page.Total = total
		if total == 0 {
			return page, nil
		}
	}
	match := HoldsAll
	var err error
	if len(q.Payload) > 0 && !q.SkipTotal {
		// The payload filter's own matches decide; with other filters,
		// total is their estimate unless the index counts them cheaply.
		matches := total
		b := NewBuilder(s.d)
		if query, indexOnly := s.d.CountHolding(b, payloadTerms(q)); indexOnly && !onlyPayload(q) {
			if matches, err = queryInt(ctx, tx, query, b.Args()...); err != nil {
				return page, fmt.Errorf("count: %w", err)
			}
		}
		if matches > s.DenseMatches {
			match = ProbesAll
		}
	}
	query, args := PageSQL(s.d, q, match)
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return page, err
	}
	var cut bool
	if page.Entries, cut, err = ScanPage(s.d, rows, q.MaxBytes); err != nil {
		return page, err
	}
	Finish(q, &page, cut)
	return page, nil
}

// Finish cuts a page read with one entry more than q.Limit (PageSQL's) to
// the limit, and sets the cursor of the next page when there is one: also
// when ScanPage cut the page at its byte budget (cut).
func Finish(q auditlog.Query, page *auditlog.Page, cut bool) {
	if q.Limit > 0 && len(page.Entries) > q.Limit {
		page.Entries = page.Entries[:q.Limit]
		cut = true
	}
	if cut && len(page.Entries) > 0 {
		last := page.Entries[len(page.Entries)-1]
		page.Next = &auditlog.Cursor{CreatedAt: last.CreatedAt, Seq: last.Seq}
	}
}

// queryInt runs a query of one integer.
func queryInt(ctx context.Context, tx Tx, query string, args ...any) (int64, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

// Rewrite is auditlog.Store's Rewrite.
func (s *Store) Rewrite(ctx context.Context, sel auditlog.Selection, edit auditlog.Edit) (int64, error) {
	for _, t := range sel.Terms {
		if !auditlog.ValidPayloadKey(t.Key) {
			return 0, fmt.Errorf("rewrite: %w: payload key %q", auditlog.ErrInvalidQuery, t.Key)
		}
	}
	if len(sel.Terms) == 0 && len(sel.Nested) == 0 && len(sel.IDs) == 0 {
		return 0, nil
	}
	tx, err := s.db.BeginWrite(ctx)
	if err != nil {
		return 0, fmt.Errorf("rewrite: %w", err)
	}
	defer tx.Rollback(ctx)
	if len(sel.Terms) > 0 || len(sel.Nested) > 0 {
		if err := s.d.Settle(ctx, tx); err != nil {
			return 0, fmt.Errorf("rewrite: %w", err)
		}
	}
	b := NewBuilder(s.d)
	union := s.d.UnionsTerms()
	conds := eachOrAll(sel.Terms, union, func(ts []auditlog.Term) string { return s.d.Holds(b, ts, HoldsAny) })
	conds = append(conds, eachOrAll(sel.Nested, union, func(ts []auditlog.NestedTerm) string { return s.d.HoldsNested(b, ts) })...)
	if len(sel.IDs) > 0 {
		conds = append(conds, In(b, "id", sel.IDs))
	}
	// One OR of conditions that each have an index (the payload index, a
	// containment on PostgreSQL, the name or id index), so that the
	// database can combine the indexes, or read the table once when it is
	// small: a union of them read it once per condition. Where the
	// dialect says so (UnionsTerms), a union of one query per term
	// instead.
	where := strings.Join(conds, ` OR `)
	if union && len(conds) > 1 {
		where = `seq IN (SELECT seq FROM entries WHERE ` + strings.Join(conds, ` UNION SELECT seq FROM entries WHERE `) + `)`
	}
	rows, err := tx.Query(ctx, `SELECT `+columns+` FROM entries WHERE `+where+` ORDER BY seq`, b.Args()...)
	if err != nil {
		return 0, fmt.Errorf("rewrite: %w", err)
	}
	entries, err := ScanEntries(s.d, rows)
	if err != nil {
		return 0, fmt.Errorf("rewrite: %w", err)
	}
	var changed []auditlog.Entry
	for _, e := range entries {
		ok, err := edit(&e)
		if err != nil {
			return 0, fmt.Errorf("rewrite: %w", err)
		}
		if !ok {
			continue
		}
		if !jsonobj.IsObject(e.Payload) {
			return 0, fmt.Errorf("rewrite entry %s: %w: payload is not a JSON object", e.ID, auditlog.ErrInvalidEntry)
		}
		changed = append(changed, e)
	}
	if err := s.store(ctx, tx, changed); err != nil {
		return 0, fmt.Errorf("rewrite: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("rewrite: commit: %w", err)
	}
	return int64(len(changed)), nil
}

// rewriteChunk is the most entries one statement of store writes: 8
// arguments each, far below both databases' limits.
const rewriteChunk = 500

// store writes back what an edit (Rewrite) or retention (Prune) changed
// of entries: their content, user and commitments. Many rows per
// statement: the append lock is held while they are written.
func (s *Store) store(ctx context.Context, tx Tx, entries []auditlog.Entry) error {
	for part := range slices.Chunk(entries, rewriteChunk) {
		b := NewBuilder(s.d)
		values := make([]string, len(part))
		for i, e := range part {
			salts, erased, err := EncodeCommitments(e)
			if err != nil {
				return fmt.Errorf("entry %s: %w", e.ID, err)
			}
			var headers any
			if len(e.Headers) > 0 {
				headers = string(e.Headers)
			}
			values[i] = `(` + s.d.As("seq", b.Arg(e.Seq)) + `, ` + s.d.As("payload", b.Arg(string(e.Payload))) + `, ` +
				s.d.As("user", b.Arg(e.User)) + `, ` + s.d.As("headers", b.Arg(headers)) + `, ` + s.d.As("seed", b.Arg(e.Seed)) + `, ` +
				s.d.As("salts", b.Arg(salts)) + `, ` + s.d.As("erased", b.Arg(erased)) + `, ` + s.d.As("content_hash", b.Arg(e.ContentHash)) + `)`
		}
		update := `UPDATE entries SET payload = v.column2, "user" = v.column3, headers = v.column4, seed = v.column5, salts = v.column6, ` +
			`erased = v.column7, content_hash = v.column8 FROM (VALUES ` + strings.Join(values, `, `) + `) AS v WHERE entries.seq = v.column1`
		if _, err := tx.Exec(ctx, update, b.Args()...); err != nil {
			return fmt.Errorf("write %d entries: %w", len(part), err)
		}
		if err := s.d.Reindex(ctx, tx, part); err != nil {
			return fmt.Errorf("write %d entries: index: %w", len(part), err)
		}
	}
	return nil
}

// eachOrAll returns the conditions cond makes of ts: one per item when
// each is set, else one of them all; none when ts is empty.
func eachOrAll[T any](ts []T, each bool, cond func([]T) string) []string {
	if len(ts) == 0 {
		return nil
	}
	if !each {
		return []string{cond(ts)}
	}
	out := make([]string, len(ts))
	for i := range ts {
		out[i] = cond(ts[i : i+1])
	}
	return out
}

// In is the condition that column col holds one of vals, adding them to b.
func In(b *Builder, col string, vals []string) string {
	if len(vals) == 0 {
		return `FALSE`
	}
	return col + ` IN (` + b.ArgList(vals) + `)`
}

// EncodeCommitments is how the salts and erased columns hold an entry's
// explicit salts and kept commitments: JSON, or NULL when there are none.
func EncodeCommitments(e auditlog.Entry) (salts, erased any, err error) {
	if e.Salts != nil {
		b, err := json.Marshal(e.Salts)
		if err != nil {
			return nil, nil, err
		}
		salts = string(b)
	}
	if len(e.Erased) > 0 {
		b, err := json.Marshal(e.Erased)
		if err != nil {
			return nil, nil, err
		}
		erased = string(b)
	}
	return salts, erased, nil
}

// columns are an entry's columns, in ScanEntries's order.
const columns = `seq, id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown, ` +
	`(SELECT leaf_index FROM leaves WHERE leaves.seq = entries.seq), leaf_hash, seed, salts, erased, content_hash`

// ScanEntries reads entries selected as columns, and closes rows.
func ScanEntries(d Dialect, rows Rows) ([]auditlog.Entry, error) {
	out, _, err := ScanPage(d, rows, 0)
	return out, err
}

// ScanPage reads rows as ScanEntries does, but stops once the headers and
// payloads read reach maxBytes (above 0), reporting that it cut the page
// short when rows were left unread.
func ScanPage(d Dialect, rows Rows, maxBytes int) (out []auditlog.Entry, cut bool, err error) {
	defer rows.Close()
	size := 0
	created, received := d.TimeDest(), d.TimeDest()
	for rows.Next() {
		var e auditlog.Entry
		var headers, payload, salts, erased []byte
		var leaf sql.NullInt64
		if err := rows.Scan(&e.Seq, &e.ID, &e.Name, &e.ServiceName, created.Dest(), received.Dest(), &e.User, &e.Tenant, &headers, &payload, &e.Unknown,
			&leaf, &e.LeafHash, &e.Seed, &salts, &erased, &e.ContentHash); err != nil {
			return nil, false, err
		}
		e.LeafIndex = auditlog.NotIntegrated
		if leaf.Valid {
			e.LeafIndex = leaf.Int64
		}
		if len(salts) > 0 {
			if err := json.Unmarshal(salts, &e.Salts); err != nil {
				return nil, false, fmt.Errorf("entry %s: salts: %w", e.ID, err)
			}
		}
		if len(erased) > 0 {
			if err := json.Unmarshal(erased, &e.Erased); err != nil {
				return nil, false, fmt.Errorf("entry %s: erased: %w", e.ID, err)
			}
		}
		e.CreatedAt, e.ReceivedAt = created.Time(), received.Time()
		if len(headers) > 0 {
			e.Headers = headers
		}
		e.Payload = payload
		out = append(out, e)
		if size += len(headers) + len(payload); maxBytes > 0 && size >= maxBytes {
			cut = rows.Next() // an entry is left: the page ends here
			break
		}
	}
	return out, cut, rows.Err()
}

// Row is an entry ready to append.
type Row struct {
	// Entry is the entry, with a missing payload made the empty object.
	Entry auditlog.Entry
	// Fields are the payload's members, when Prepare was asked to split
	// them out (for a payload index that needs them).
	Fields []jsonobj.Field
}

// Prepare checks a batch for Append and drops repeats of an id within it
// (the first copy wins, as it would across batches); with split set, it
// also splits each payload into its members, which checks it in the same
// pass. It seals the entries not sealed yet (auditlog.Seal). Errors wrap
// auditlog.ErrInvalidEntry.
func Prepare(entries []auditlog.Entry, split bool) ([]Row, error) {
	rows := make([]Row, 0, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		if e.ID == "" {
			return nil, fmt.Errorf("append %s entry: %w: no id", e.Name, auditlog.ErrInvalidEntry)
		}
		if _, dup := seen[e.ID]; dup {
			continue
		}
		seen[e.ID] = struct{}{}
		if len(e.Payload) == 0 {
			e.Payload = []byte("{}")
		}
		var fs []jsonobj.Field
		if split {
			var err error
			if fs, err = jsonobj.Fields(e.Payload); err != nil {
				return nil, fmt.Errorf("append entry %s: %w: payload: %w", e.ID, auditlog.ErrInvalidEntry, err)
			}
		} else if !jsonobj.IsObject(e.Payload) {
			return nil, fmt.Errorf("append entry %s: %w: payload is not a JSON object", e.ID, auditlog.ErrInvalidEntry)
		}
		if len(e.Headers) > 0 && !jsonobj.IsObject(e.Headers) {
			return nil, fmt.Errorf("append entry %s: %w: headers are not a JSON object", e.ID, auditlog.ErrInvalidEntry)
		}
		if e.LeafHash == nil {
			if err := auditlog.Seal(&e); err != nil {
				return nil, fmt.Errorf("append: %w", err)
			}
		}
		rows = append(rows, Row{Entry: e, Fields: fs})
	}
	return rows, nil
}

// JSONText is s as a JSON string, as a payload's text writes it: quoted,
// with only the escapes JSON requires.
func JSONText(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
