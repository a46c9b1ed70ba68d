// Package sqlite is an auditlog.Store in one SQLite file, through the pure
// Go driver modernc.org/sqlite (no cgo): herald's embedded default.
//
// The database runs in WAL mode with synchronous=FULL, so Append returns
// only once its transaction is on disk, and readers never wait for the
// writer. One connection writes, in turn; a pool of read-only connections
// answers queries. The schema is versioned (table schema_migrations) and
// brought up to date by Open.
//
// Queries and rewrites are the SQL every store shares
// (auditlog/internal/sqlstore), in SQLite's dialect (payload.go): payload
// terms are tokens of an FTS5 table. Append is SQLite's own: multi-row
// INSERTs prepared once per batch size.
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

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is an auditlog.Store in a SQLite database. It is safe for
// concurrent use.
type Store struct {
	w   *sql.DB // one connection: writes are serialised here
	r   *sql.DB // read-only connections
	sql *sqlstore.Store

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // Append's, prepared on w

	integrator chan struct{} // holds a token while an Integrator is open
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
	return &Store{w: w, r: r, sql: sqlstore.New(dialect{}, db{w: w, r: r}), stmts: map[string]*sql.Stmt{}, integrator: make(chan struct{}, 1)}, nil
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
	// Freed space is zeroed, so that an erased value does not stay in the
	// file (docs/privacy.md).
	q.Add("_pragma", "secure_delete(1)")
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

// insertChunk is the most rows one INSERT statement carries (14
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
		args := make([]any, 0, 14*len(c.rows))
		for _, r := range c.rows {
			var headers any
			if len(r.e.Headers) > 0 {
				headers = string(r.e.Headers)
			}
			// An entry erased before it was stored (auditlog.Eraser.Prepare)
			// comes with its salts and kept commitments.
			salts, erased, err := sqlstore.EncodeCommitments(r.e)
			if err != nil {
				return 0, fmt.Errorf("append entry %s: %w", r.e.ID, err)
			}
			args = append(args, r.e.ID, r.e.Name, r.e.ServiceName, millis(r.e.CreatedAt), millis(r.e.ReceivedAt),
				r.e.User, r.e.Tenant, headers, string(r.e.Payload), r.e.Unknown, r.e.Seed, r.e.LeafHash, salts, erased)
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
			args = append(args, r.e.ID, r.tokens)
		}
		args = append(args, last)
		if _, err := exec(ctx, tx, c.term, insertTermsSQL, len(c.rows), args); err != nil {
			return 0, fmt.Errorf("append: index payloads: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE entry_count SET n = n + ?`, added); err != nil {
		return 0, fmt.Errorf("append: count: %w", err)
	}
	// When every entry was new, their seqs are last+1, last+2, … in
	// order, unless AUTOINCREMENT skipped past seqs deleted since: the
	// highest seq says which.
	asStored := false
	if int(added) == len(entries) {
		var high int64
		if err := tx.QueryRowContext(ctx, `SELECT max(seq) FROM entries`).Scan(&high); err != nil {
			return 0, fmt.Errorf("append: %w", err)
		}
		asStored = high == last+added
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("append: commit: %w", err)
	}
	if asStored {
		for i, r := range rows {
			entries[i] = stored(r.e, last+1+int64(i))
		}
	}
	return int(added), nil
}

// stored returns e as a read gives it back once stored with seq: its
// times to the millisecond, in UTC, not integrated yet, and with none of
// what an erasure leaves (Append stores none of it).
func stored(e auditlog.Entry, seq int64) auditlog.Entry {
	e.Seq, e.LeafIndex = seq, auditlog.NotIntegrated
	e.Salts, e.Erased, e.ContentHash = nil, nil, nil
	e.CreatedAt = (&millisDest{millis(e.CreatedAt)}).Time()
	e.ReceivedAt = (&millisDest{millis(e.ReceivedAt)}).Time()
	return e
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
	b.WriteString(`INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown, seed, leaf_hash, salts, erased) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
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

// row is an entry ready to insert, with its payload's entry_terms text.
type row struct {
	e      auditlog.Entry
	tokens string
}

// prepareRows checks a batch, drops repeats of an id within it, and
// computes each entry's tokens.
func prepareRows(entries []auditlog.Entry) ([]row, error) {
	prepared, err := sqlstore.Prepare(entries, true)
	if err != nil {
		return nil, err
	}
	rows := make([]row, len(prepared))
	for i, p := range prepared {
		rows[i] = row{e: p.Entry, tokens: tokens(p.Fields)}
	}
	return rows, nil
}

// Query returns one page of entries, the count and the page from one
// snapshot.
func (s *Store) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	return s.sql.Query(ctx, q)
}

// Rewrite edits the entries sel selects, in one write
// transaction.
func (s *Store) Rewrite(ctx context.Context, sel auditlog.Selection, edit auditlog.Edit) (int64, error) {
	return s.sql.Rewrite(ctx, sel, edit)
}

// db starts the shared code's transactions: reads on the read-only pool,
// writes on the one writer connection, whose transactions begin with
// BEGIN IMMEDIATE and so hold the database's write lock from the start.
type db struct{ w, r *sql.DB }

func (d db) BeginRead(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx}, nil
}

func (d db) BeginWrite(ctx context.Context) (sqlstore.Tx, error) {
	tx, err := d.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx}, nil
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTx) Commit(context.Context) error   { return t.tx.Commit() }
func (t sqlTx) Rollback(context.Context) error { return t.tx.Rollback() }

// sqlRows is *sql.Rows with pgx's Close, which returns nothing: what goes
// wrong while reading shows in Err, which the shared code checks.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

// Prune deletes the content of entries received before before, keeping
// their leaf hashes.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.sql.Prune(ctx, before, limit)
}

// Integrator returns the Store's one integrator, once the previous one is
// closed: on SQLite one process writes the log.
func (s *Store) Integrator(ctx context.Context) (auditlog.Integrator, error) {
	select {
	case s.integrator <- struct{}{}:
		return &integrator{s: s}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type integrator struct {
	s      *Store
	closed sync.Once
}

func (in *integrator) Integrate(ctx context.Context, max int, sign auditlog.SignFunc) (auditlog.Checkpoint, int, error) {
	tx, err := db{w: in.s.w, r: in.s.r}.BeginWrite(ctx)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	return in.s.sql.Integrate(ctx, tx, max, sign)
}

func (in *integrator) Close() error {
	in.closed.Do(func() { <-in.s.integrator })
	return nil
}

// Checkpoint returns the checkpoint of size (< 0: the latest).
func (s *Store) Checkpoint(ctx context.Context, size int64) (auditlog.Checkpoint, error) {
	return s.sql.Checkpoint(ctx, size)
}

// Checkpoints returns checkpoints above size after, in order.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]auditlog.Checkpoint, error) {
	return s.sql.Checkpoints(ctx, after, limit)
}

// ReadHashes reads the tree's stored hashes.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return s.sql.ReadHashes(ctx, indexes)
}

// Leaves returns entries above afterSeq in seq order, with every column.
func (s *Store) Leaves(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Entry, error) {
	return s.sql.Leaves(ctx, afterSeq, limit)
}
