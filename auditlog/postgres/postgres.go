// Package postgres is an auditlog.Store in PostgreSQL, through pgx v5: the
// store for production and for several herald replicas sharing one log.
//
// Payloads and extra headers are JSONB; payload filters are containment
// queries served by a GIN index, so any top-level key can be filtered on.
// The schema is versioned (table herald_schema_migrations) and brought up to date
// by Open, under an advisory lock so that replicas starting together do
// not race.
//
// Queries and rewrites are the SQL every store shares
// (auditlog/internal/sqlstore), in PostgreSQL's dialect (dialect.go).
// Append (one unnest statement) and the one-round-trip Query without
// payload filters are PostgreSQL's own.
package postgres

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"
)

// Store is an auditlog.Store in a PostgreSQL database. It is safe for
// concurrent use, also from several processes.
type Store struct {
	pool *pgxpool.Pool
	sql  *sqlstore.Store
	// schema names the log in the integrator's advisory lock: one
	// integrator per schema.
	schema string
}

var _ auditlog.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	schema   string
	maxConns int32
}

// WithSchema keeps the audit log's tables in the named schema, created if
// missing, instead of the first schema of the connection's search_path
// (normally public). Every connection of the store sets its search_path
// to it. Names are 1 to 63 lower-case letters, digits and '_', starting
// with a letter or '_'.
func WithSchema(name string) Option { return func(o *options) { o.schema = name } }

// WithMaxConnections bounds the store's connection pool (default: pgx's,
// the larger of 4 and the number of CPUs; a pool_max_conns parameter in
// the URL also sets it).
func WithMaxConnections(n int32) Option { return func(o *options) { o.maxConns = n } }

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to the database at url (a PostgreSQL URL or key=value
// connection string) and migrates the audit log's schema to this version.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if o.schema != "" {
		if !schemaName.MatchString(o.schema) {
			return nil, fmt.Errorf("postgres: schema name %q: want 1 to 63 lower-case letters, digits and '_'", o.schema)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = o.schema
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool, o.schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	lockSchema := o.schema
	if lockSchema == "" {
		lockSchema = "(search_path)"
	}
	return &Store{pool: pool, sql: sqlstore.New(dialect{}, db{pool}), schema: lockSchema}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Append stores entries in one transaction and returns how many were new.
//
// The rows travel as one array per column through unnest, one statement
// whatever the batch size (prepared once): measured against a multi-row
// VALUES upsert and COPY into a temporary table, see bench_test.go.
func (s *Store) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	rows, err := sqlstore.Prepare(entries, false)
	if err != nil {
		return 0, err
	}
	n := len(rows)
	var (
		ids      = make([]string, n)
		names    = make([]string, n)
		services = make([]string, n)
		created  = make([]time.Time, n)
		received = make([]time.Time, n)
		users    = make([]string, n)
		tenants  = make([]string, n)
		headers  = make([]*string, n)
		payloads = make([]string, n)
		unknown  = make([]bool, n)
		seeds    = make([][]byte, n)
		leaves   = make([][]byte, n)
		salts    = make([]*string, n)
		erased   = make([]*string, n)
	)
	for i, r := range rows {
		e := r.Entry
		if len(e.Headers) > 0 {
			h := string(e.Headers)
			headers[i] = &h
		}
		ids[i], names[i], services[i] = e.ID, e.Name, e.ServiceName
		created[i], received[i] = ms(e.CreatedAt), ms(e.ReceivedAt)
		users[i], tenants[i] = e.User, e.Tenant
		payloads[i], unknown[i] = string(e.Payload), e.Unknown
		seeds[i], leaves[i] = e.Seed, e.LeafHash
		// An entry erased before it was stored (auditlog.Eraser.Prepare)
		// comes with its salts and kept commitments.
		sa, er, err := sqlstore.EncodeCommitments(e)
		if err != nil {
			return 0, fmt.Errorf("append entry %s: %w", e.ID, err)
		}
		if sa != nil {
			v := sa.(string)
			salts[i] = &v
		}
		if er != nil {
			v := er.(string)
			erased[i] = &v
		}
	}

	// One statement, so one round trip and its own transaction. It locks
	// the count's row before it inserts a row (the insert's rows are
	// joined to the lock): appends take turns, seq order is commit order
	// (a reader that sees seq n has seen every seq below it), and
	// concurrent batches sharing ids cannot deadlock on each other.
	var added int64
	err = s.pool.QueryRow(ctx, `WITH turn AS (
			SELECT n FROM entry_count FOR UPDATE
		), added AS (
			INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown, seed, leaf_hash, salts, erased)
			SELECT r.* FROM turn, unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
				$6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::boolean[], $11::bytea[], $12::bytea[], $13::text[], $14::text[]) AS r
			ON CONFLICT (id) DO NOTHING
			RETURNING 1
		)
		UPDATE entry_count SET n = n + (SELECT count(*) FROM added) RETURNING (SELECT count(*) FROM added)`,
		ids, names, services, created, received, users, tenants, headers, payloads, unknown, seeds, leaves, salts, erased).Scan(&added)
	if err != nil {
		return 0, fmt.Errorf("append %d entries: %w", len(ids), err)
	}
	return int(added), nil
}

// Query returns one page of entries, the count and the page from one
// snapshot. Without payload filters it is one round trip: the
// transaction, the count and the page go to the server as one batch,
// where the shared path takes four (BenchmarkQuery at 100,000 entries,
// newest 50: a median of 0.14 ms against 0.30 ms).
func (s *Store) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	if len(q.Payload) > 0 {
		return s.sql.Query(ctx, q)
	}
	if err := q.Validate(); err != nil {
		return auditlog.Page{}, err
	}
	var page auditlog.Page
	var batch pgx.Batch
	batch.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	if !q.SkipTotal {
		countSQL, countArgs := sqlstore.CountSQL(dialect{}, q)
		batch.Queue(countSQL, countArgs...).QueryRow(func(r pgx.Row) error { return r.Scan(&page.Total) })
	}
	query, args := sqlstore.PageSQL(dialect{}, q, sqlstore.HoldsAll)
	var cut bool
	batch.Queue(query, args...).Query(func(rows pgx.Rows) error {
		var err error
		page.Entries, cut, err = sqlstore.ScanPage(dialect{}, rows, q.MaxBytes)
		return err
	})
	batch.Queue(`COMMIT`)
	// A failed batch leaves its connection inside the transaction; the
	// pool closes such a connection rather than reuse it.
	if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
		return auditlog.Page{}, fmt.Errorf("query: %w", err)
	}
	sqlstore.Finish(q, &page, cut)
	return page, nil
}

// Rewrite edits the entries sel selects, in one transaction that
// holds the append lock.
func (s *Store) Rewrite(ctx context.Context, sel auditlog.Selection, edit auditlog.Edit) (int64, error) {
	return s.sql.Rewrite(ctx, sel, edit)
}

// Prune deletes the content of entries received before before, keeping
// their leaf hashes.
func (s *Store) Prune(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.sql.Prune(ctx, before, limit)
}

// Integrator waits for the integrator's advisory lock, a session lock
// taken on a connection of its own (out of the pool): when the process
// holding it dies, its connection closes and PostgreSQL releases the lock,
// and the next replica waiting in pg_advisory_lock gets it at once.
func (s *Store) Integrator(ctx context.Context) (auditlog.Integrator, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("integrator: %w", err)
	}
	conn := c.Hijack()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('herald.auditlog.integrator'), hashtext($1))`, s.schema); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("integrator: lock: %w", err)
	}
	return &integrator{s: s, conn: conn}, nil
}

type integrator struct {
	s    *Store
	conn *pgx.Conn
}

func (in *integrator) Integrate(ctx context.Context, max int, sign auditlog.SignFunc) (auditlog.Checkpoint, int, error) {
	tx, err := in.conn.Begin(ctx)
	if err != nil {
		return auditlog.Checkpoint{}, 0, fmt.Errorf("integrate: %w", err)
	}
	return in.s.sql.Integrate(ctx, pgTx{tx}, max, sign)
}

// Close closes the lock's connection, which releases the lock.
func (in *integrator) Close() error {
	return in.conn.Close(context.Background())
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
