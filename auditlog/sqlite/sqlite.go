// Package sqlite is an auditlog.Store in one SQLite file, through the pure
// Go driver modernc.org/sqlite (no cgo): herald's embedded default.
//
// The database runs in WAL mode with synchronous=FULL, so Append returns
// only once its transaction is on disk, and readers never wait for the
// writer. One connection writes, in turn; a pool of read-only connections
// answers queries. The schema is versioned (table schema_migrations) and
// brought up to date by Open.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/auditlog"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is an auditlog.Store in a SQLite database. It is safe for
// concurrent use.
type Store struct {
	w *sql.DB // one connection: writes are serialised here
	r *sql.DB // read-only connections

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // Append's, prepared on w
}

var _ auditlog.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	busyTimeout time.Duration
	readers     int
}

// WithBusyTimeout sets how long a statement waits for a lock another
// process holds on the database before failing (default 10s). Within one
// Store writes never contend: they take turns on one connection.
func WithBusyTimeout(d time.Duration) Option { return func(o *options) { o.busyTimeout = d } }

// WithReadConnections sets the most connections that answer queries at
// once (default: the number of CPUs, at least 4).
func WithReadConnections(n int) Option { return func(o *options) { o.readers = n } }

// Open opens, or creates, the audit log in the SQLite file at path and
// migrates its schema to this version.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{busyTimeout: 10 * time.Second, readers: max(4, runtime.NumCPU())}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("sqlite: a database path is required")
	}
	w, err := sql.Open("sqlite", dsn(path, o, false))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, o, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(1, o.readers))
	r.SetMaxIdleConns(max(1, o.readers))
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{w: w, r: r, stmts: map[string]*sql.Stmt{}}, nil
}

// dsn is the driver's connection string: the file as a URI, with the
// pragmas every connection sets. The writer begins its transactions with
// BEGIN IMMEDIATE, so a transaction never has to upgrade a read lock (and
// fail with SQLITE_BUSY) half-way.
func dsn(path string, o options, readOnly bool) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	return "file:" + p + "?" + q.Encode()
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// zeroMillis is how an entry without createdAt is stored: the zero time,
// which sorts before every real one.
var zeroMillis = time.Time{}.UnixMilli()

func millis(t time.Time) int64 {
	if t.IsZero() {
		return zeroMillis
	}
	return t.UnixMilli() // rounds down
}

// ceilMillis rounds up to the millisecond: createdAt ≥ t and createdAt < t
// hold for a stored millisecond m exactly when they hold for ceil(t).
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return ms
}

func fromMillis(ms int64) time.Time {
	if ms == zeroMillis {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// row is an entry ready to insert.
type row struct {
	e       auditlog.Entry
	payload string
	terms   string
}

// prepareRows validates a batch, drops repeats of an id within it (the
// first copy wins, as it would across batches) and computes each entry's
// terms.
func prepareRows(entries []auditlog.Entry) ([]row, error) {
	rows := make([]row, 0, len(entries))
	seen := make(map[string]struct{}, len(entries))
	for _, e := range entries {
		if e.ID == "" {
			return nil, fmt.Errorf("append %s entry: no id", e.Name)
		}
		if _, dup := seen[e.ID]; dup {
			continue
		}
		seen[e.ID] = struct{}{}
		payload := e.Payload
		if len(payload) == 0 {
			payload = []byte("{}")
		}
		fs, err := fields(payload)
		if err != nil {
			return nil, fmt.Errorf("append entry %s: %w", e.ID, err)
		}
		if len(e.Headers) > 0 {
			if _, err := fields(e.Headers); err != nil {
				return nil, fmt.Errorf("append entry %s: headers: %w", e.ID, err)
			}
		}
		rows = append(rows, row{e: e, payload: string(payload), terms: terms(fs)})
	}
	return rows, nil
}

// insertChunk is the most rows one INSERT statement carries (10
// parameters each, under SQLite's limit of 32,766).
const insertChunk = 500

// Append stores entries in one transaction and returns how many were new.
func (s *Store) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	rows, err := prepareRows(entries)
	if err != nil {
		return 0, err
	}
	// Prepare before the transaction takes the writer's one connection.
	type chunk struct {
		rows          []row
		entries, term *sql.Stmt // nil: run the text
	}
	var chunks []chunk
	for part := range slices.Chunk(rows, insertChunk) {
		c := chunk{rows: part}
		if len(part) == insertChunk {
			if c.entries, err = s.stmt(ctx, insertEntriesSQL(len(part))); err != nil {
				return 0, fmt.Errorf("append: prepare: %w", err)
			}
			if c.term, err = s.stmt(ctx, insertTermsSQL(len(part))); err != nil {
				return 0, fmt.Errorf("append: prepare: %w", err)
			}
		}
		chunks = append(chunks, c)
	}

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("append: begin: %w", err)
	}
	defer tx.Rollback()
	// New entries get seqs above every seq so far (AUTOINCREMENT); that is
	// how the payload index finds them below without RETURNING.
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM entries`).Scan(&last); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	var added int64
	for _, c := range chunks {
		args := make([]any, 0, 10*len(c.rows))
		for _, r := range c.rows {
			var headers any
			if len(r.e.Headers) > 0 {
				headers = string(r.e.Headers)
			}
			args = append(args, r.e.ID, r.e.Name, r.e.ServiceName, millis(r.e.CreatedAt), millis(r.e.ReceivedAt),
				r.e.User, r.e.Tenant, headers, r.payload, r.e.Unknown)
		}
		res, err := exec(ctx, tx, c.entries, insertEntriesSQL, len(c.rows), args)
		if err != nil {
			return 0, fmt.Errorf("append: insert: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("append: insert: %w", err)
		}
		added += n
	}
	if added == 0 {
		return 0, nil
	}
	for _, c := range chunks {
		args := make([]any, 0, 2*len(c.rows)+1)
		for _, r := range c.rows {
			args = append(args, r.e.ID, r.terms)
		}
		args = append(args, last)
		if _, err := exec(ctx, tx, c.term, insertTermsSQL, len(c.rows), args); err != nil {
			return 0, fmt.Errorf("append: index payloads: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE entry_count SET n = n + ?`, added); err != nil {
		return 0, fmt.Errorf("append: count: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append: commit: %w", err)
	}
	return int(added), nil
}

// exec runs st in tx, or the text of n rows when st is nil.
func exec(ctx context.Context, tx *sql.Tx, st *sql.Stmt, text func(n int) string, n int, args []any) (sql.Result, error) {
	if st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, text(n), args...)
}

// insertEntriesSQL inserts n entries, skipping known ids.
func insertEntriesSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?)")
	}
	b.WriteString(` ON CONFLICT (id) DO NOTHING`)
	return b.String()
}

// insertTermsSQL indexes the payloads of n entries, given as (id, terms)
// pairs and the last seq before the transaction: only the entries it
// inserted, found by id.
func insertTermsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO entry_terms (rowid, terms) SELECT e.seq, v.column2 FROM (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?)")
	}
	b.WriteString(`) AS v JOIN entries e ON e.id = v.column1 WHERE e.seq > ? AND v.column2 <> ''`)
	return b.String()
}

// stmt returns query prepared on the writer, once. Append keeps its
// full-chunk statements (the batch size the ingester sends under load):
// parsing a 500-row INSERT costs ~5% of running it.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	if s.stmts == nil {
		return nil, errors.New("store closed")
	}
	st, err := s.w.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

const columns = `seq, id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown`

func scanEntries(rows *sql.Rows) ([]auditlog.Entry, error) {
	defer rows.Close()
	var out []auditlog.Entry
	for rows.Next() {
		var e auditlog.Entry
		var created, received int64
		var headers, payload []byte
		if err := rows.Scan(&e.Seq, &e.ID, &e.Name, &e.ServiceName, &created, &received, &e.User, &e.Tenant, &headers, &payload, &e.Unknown); err != nil {
			return nil, err
		}
		e.CreatedAt, e.ReceivedAt = fromMillis(created), fromMillis(received)
		if len(headers) > 0 {
			e.Headers = headers
		}
		e.Payload = payload
		out = append(out, e)
	}
	return out, rows.Err()
}

// denseMatches is the number of payload matches above which a page is
// read by walking the ordered index of the other filters (or createdAt's)
// and probing the matches, rather than by fetching every match and
// sorting: fetching costs per match, walking per entry passed over, and
// with more matches than this a page of 50 passes over few entries.
var denseMatches int64 = 5000 // a variable for the test that forces the walk

// Query returns one page of entries.
func (s *Store) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	if err := validate(q); err != nil {
		return auditlog.Page{}, err
	}
	tx, err := s.r.BeginTx(ctx, nil) // one snapshot for the count and the page
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	defer tx.Rollback()

	var page auditlog.Page
	if q.Scope == nil && filterless(q) {
		err = tx.QueryRowContext(ctx, `SELECT n FROM entry_count`).Scan(&page.Total)
	} else if onlyPayload(q) {
		// Only payload filters: the index alone counts, without reading
		// an entry per match.
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM entry_terms WHERE entry_terms MATCH ?`, payloadMatch(q.Payload)).Scan(&page.Total)
	} else {
		w := where(q, false)
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM entries WHERE `+w.sql(), w.args...).Scan(&page.Total)
	}
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: count: %w", err)
	}
	if page.Total == 0 {
		return page, nil
	}

	dense := false
	if len(q.Payload) > 0 {
		matches := page.Total
		if !onlyPayload(q) {
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM entry_terms WHERE entry_terms MATCH ?`, payloadMatch(q.Payload)).Scan(&matches)
			if err != nil {
				return auditlog.Page{}, fmt.Errorf("query: count: %w", err)
			}
		}
		dense = matches > denseMatches
	}
	query, args := pageSQL(q, dense)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	entries, err := scanEntries(rows)
	if err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
		last := entries[len(entries)-1]
		page.Next = &auditlog.Cursor{CreatedAt: last.CreatedAt, Seq: last.Seq}
	}
	page.Entries = entries
	return page, tx.Commit()
}

func validate(q auditlog.Query) error {
	return q.Validate()
}

func filterless(q auditlog.Query) bool {
	return q.ID == "" && q.Service == "" && q.Name == "" && q.Tenant == "" && q.User == "" && len(q.Payload) == 0 && q.From.IsZero() && q.To.IsZero()
}

// onlyPayload reports whether payload filters are all a query has.
func onlyPayload(q auditlog.Query) bool {
	p := q.Payload
	q.Payload = nil
	return len(p) > 0 && q.Scope == nil && filterless(q)
}

// conds is a conjunction of SQL conditions and their arguments.
type conds struct {
	terms []string
	args  []any
}

func (c *conds) add(term string, args ...any) {
	c.terms = append(c.terms, term)
	c.args = append(c.args, args...)
}

func (c conds) sql() string {
	if len(c.terms) == 0 {
		return "1"
	}
	return strings.Join(c.terms, " AND ")
}

// where returns the query's filters and scope; with dense set, the
// payload filter is written so that it does not drive the loop (unary +
// keeps SQLite from using it to look rows up), and the ordered index does.
func where(q auditlog.Query, dense bool) conds {
	c := filters(q, dense)
	if sc := q.Scope; sc != nil {
		switch {
		case sc.User != "" && sc.Tenant != "":
			// Counted by a multi-index OR over the two covering indexes
			// (rowids only); pageSQL reads pages another way.
			c.add(`("user" = ? OR tenant = ?)`, sc.User, sc.Tenant)
		case sc.User != "":
			c.add(`"user" = ?`, sc.User)
		case sc.Tenant != "":
			c.add(`tenant = ?`, sc.Tenant)
		default:
			c.add(`0`) // a caller who is nobody sees nothing
		}
	}
	return c
}

// filters returns the query's filters, without scope or cursor.
func filters(q auditlog.Query, dense bool) conds {
	var c conds
	if q.ID != "" {
		c.add(`id = ?`, q.ID)
	}
	if q.Service != "" {
		c.add(`service_name = ?`, q.Service)
	}
	if q.Name != "" {
		c.add(`name = ?`, q.Name)
	}
	if q.Tenant != "" {
		c.add(`tenant = ?`, q.Tenant)
	}
	if q.User != "" {
		c.add(`"user" = ?`, q.User)
	}
	if !q.From.IsZero() {
		c.add(`created_at >= ?`, ceilMillis(q.From))
	}
	if !q.To.IsZero() {
		c.add(`created_at < ?`, ceilMillis(q.To))
	}
	if len(q.Payload) > 0 {
		col := "seq"
		if dense {
			col = "+seq"
		}
		c.add(col+` IN (SELECT rowid FROM entry_terms WHERE entry_terms MATCH ?)`, payloadMatch(q.Payload))
	}
	return c
}

// payloadMatch is the FTS5 query of payload filters: all their tokens.
func payloadMatch(payload map[string]string) string {
	tokens := make([]string, 0, len(payload))
	for k, v := range payload {
		tokens = append(tokens, term(k, v))
	}
	slices.Sort(tokens)
	return matchAll(tokens)
}

// keyset adds the condition of a page after cursor a.
func keyset(c *conds, order auditlog.Order, a *auditlog.Cursor) {
	if a == nil {
		return
	}
	// The row value form: SQLite seeks the (created_at, seq) index to it,
	// where the equivalent OR form scans.
	op := "<"
	if order == auditlog.OldestFirst {
		op = ">"
	}
	c.add(`(created_at, seq) `+op+` (?, ?)`, millis(a.CreatedAt), a.Seq)
}

func orderBy(order auditlog.Order) string {
	if order == auditlog.OldestFirst {
		return ` ORDER BY created_at, seq`
	}
	return ` ORDER BY created_at DESC, seq DESC`
}

// pageSQL returns the SELECT of one page, reading one entry more than the
// limit to learn whether a next page exists.
func pageSQL(q auditlog.Query, dense bool) (string, []any) {
	order := orderBy(q.Order)
	var limit string
	var limitArgs []any
	offset := q.Offset
	if q.After != nil {
		offset = 0
	}
	switch {
	case q.Limit > 0:
		limit = ` LIMIT ? OFFSET ?`
		limitArgs = []any{q.Limit + 1, offset}
	case offset > 0:
		limit = ` LIMIT -1 OFFSET ?`
		limitArgs = []any{offset}
	}

	if sc := q.Scope; sc != nil && sc.User != "" && sc.Tenant != "" && q.Limit > 0 {
		// The caller's own entries and their tenant's, as two ordered
		// index walks of at most offset+limit+1 entries each, merged:
		// the OR form would fetch and sort every entry of the tenant.
		arm := func(cond string, args ...any) (string, []any) {
			c := filters(q, dense)
			c.add(cond, args...)
			keyset(&c, q.Order, q.After)
			return `SELECT seq FROM (SELECT seq FROM entries WHERE ` + c.sql() + order + ` LIMIT ?)`,
				append(c.args, offset+q.Limit+1)
		}
		own, ownArgs := arm(`"user" = ?`, sc.User)
		tenant, tenantArgs := arm(`tenant = ? AND "user" <> ?`, sc.Tenant, sc.User)
		args := append(ownArgs, tenantArgs...)
		return `SELECT ` + columns + ` FROM entries WHERE seq IN (` + own + ` UNION ALL ` + tenant + `)` + order + limit,
			append(args, limitArgs...)
	}
	c := where(q, dense)
	keyset(&c, q.Order, q.After)
	return `SELECT ` + columns + ` FROM entries WHERE ` + c.sql() + order + limit, append(c.args, limitArgs...)
}

// userEvents are the events whose payload id and username name a user.
var userEvents = []any{"iam.user.created", "iam.user.modified"}

// Usernames returns the usernames of userID's iam.user.created and
// iam.user.modified entries, sorted.
func (s *Store) Usernames(ctx context.Context, userID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT json_extract(payload, '$.username') FROM entries
		WHERE seq IN (SELECT rowid FROM entry_terms WHERE entry_terms MATCH ?)
		AND name IN (?, ?) AND json_type(payload, '$.username') = 'text'`,
		append([]any{matchAll([]string{term("id", userID)})}, userEvents...)...)
	if err != nil {
		return nil, fmt.Errorf("usernames of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("usernames of %s: %w", userID, err)
		}
		if u != "" && u != auditlog.Redacted {
			out = append(out, u)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usernames of %s: %w", userID, err)
	}
	slices.Sort(out)
	return out, nil
}

// Anonymise redacts a deleted user's entries, in one transaction.
func (s *Store) Anonymise(ctx context.Context, a auditlog.Anonymisation) (int64, error) {
	tokens := anonymiseTokens(a)
	if len(tokens) == 0 {
		return 0, nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("anonymise %s: %w", a.UserID, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, "user", payload FROM entries
		WHERE seq IN (SELECT rowid FROM entry_terms WHERE entry_terms MATCH ?)`, matchAny(tokens))
	if err != nil {
		return 0, fmt.Errorf("anonymise %s: %w", a.UserID, err)
	}
	type change struct {
		seq           int64
		user, payload string
		terms         string
	}
	var changes []change
	for rows.Next() {
		var c change
		var payload []byte
		if err := rows.Scan(&c.seq, &c.user, &payload); err != nil {
			rows.Close()
			return 0, fmt.Errorf("anonymise %s: %w", a.UserID, err)
		}
		fs, err := fields(payload)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("anonymise %s: entry %d: %w", a.UserID, c.seq, err)
		}
		p, changed := redact(fs, a)
		if !changed {
			continue
		}
		c.payload, c.terms = string(p), terms(fs)
		if c.user != "" && (c.user == a.UserID || slices.Contains(a.Usernames, c.user)) {
			c.user = auditlog.Redacted
		}
		changes = append(changes, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("anonymise %s: %w", a.UserID, err)
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `UPDATE entries SET payload = ?, "user" = ? WHERE seq = ?`, c.payload, c.user, c.seq); err != nil {
			return 0, fmt.Errorf("anonymise %s: entry %d: %w", a.UserID, c.seq, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM entry_terms WHERE rowid = ?`, c.seq); err != nil {
			return 0, fmt.Errorf("anonymise %s: entry %d: %w", a.UserID, c.seq, err)
		}
		if c.terms != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO entry_terms (rowid, terms) VALUES (?, ?)`, c.seq, c.terms); err != nil {
				return 0, fmt.Errorf("anonymise %s: entry %d: %w", a.UserID, c.seq, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("anonymise %s: commit: %w", a.UserID, err)
	}
	return int64(len(changes)), nil
}
