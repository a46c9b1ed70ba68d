// Package postgres is an auditlog.Store in PostgreSQL, through pgx v5: the
// store for production and for several herald replicas sharing one log.
//
// Payloads and extra headers are JSONB; payload filters are containment
// queries served by a GIN index, so any top-level key can be filtered on.
// The schema is versioned (table herald_schema_migrations) and brought up to date
// by Open, under an advisory lock so that replicas starting together do
// not race.
package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is an auditlog.Store in a PostgreSQL database. It is safe for
// concurrent use, also from several processes.
type Store struct {
	pool *pgxpool.Pool
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
	return &Store{pool: pool}, nil
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

// zero is how an entry without createdAt is stored: the zero time, which
// sorts before every real one.
var zero = time.Time{}

// ms truncates t to the millisecond, the precision both stores keep.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return zero
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// ceilMs rounds up to the millisecond: createdAt ≥ t and createdAt < t
// hold for a stored millisecond m exactly when they hold for ceil(t).
func ceilMs(t time.Time) time.Time {
	m := ms(t)
	if t.Sub(m) > 0 {
		m = m.Add(time.Millisecond)
	}
	return m
}

func fromDB(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
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
	n := len(entries)
	var (
		ids      = make([]string, 0, n)
		names    = make([]string, 0, n)
		services = make([]string, 0, n)
		created  = make([]time.Time, 0, n)
		received = make([]time.Time, 0, n)
		users    = make([]string, 0, n)
		tenants  = make([]string, 0, n)
		headers  = make([]*string, 0, n)
		payloads = make([]string, 0, n)
		unknown  = make([]bool, 0, n)
		seen     = make(map[string]struct{}, n)
	)
	for _, e := range entries {
		if e.ID == "" {
			return 0, fmt.Errorf("append %s entry: no id", e.Name)
		}
		if _, dup := seen[e.ID]; dup {
			continue // the first copy wins, as it would across batches
		}
		seen[e.ID] = struct{}{}
		payload := e.Payload
		if len(payload) == 0 {
			payload = []byte("{}")
		}
		if !isObject(payload) {
			return 0, fmt.Errorf("append entry %s: payload is not a JSON object", e.ID)
		}
		var h *string
		if len(e.Headers) > 0 {
			if !isObject(e.Headers) {
				return 0, fmt.Errorf("append entry %s: headers are not a JSON object", e.ID)
			}
			hs := string(e.Headers)
			h = &hs
		}
		ids = append(ids, e.ID)
		names = append(names, e.Name)
		services = append(services, e.ServiceName)
		created = append(created, ms(e.CreatedAt))
		received = append(received, ms(e.ReceivedAt))
		users = append(users, e.User)
		tenants = append(tenants, e.Tenant)
		headers = append(headers, h)
		payloads = append(payloads, string(payload))
		unknown = append(unknown, e.Unknown)
	}

	// One statement, so one round trip and its own transaction. It locks
	// the count's row before it inserts a row (the insert's rows are
	// joined to the lock): appends take turns, seq order is commit order
	// (a reader that sees seq n has seen every seq below it), and
	// concurrent batches sharing ids cannot deadlock on each other.
	var added int64
	err := s.pool.QueryRow(ctx, `WITH turn AS (
			SELECT n FROM entry_count FOR UPDATE
		), added AS (
			INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown)
			SELECT r.* FROM turn, unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
				$6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::boolean[]) AS r
			ON CONFLICT (id) DO NOTHING
			RETURNING 1
		)
		UPDATE entry_count SET n = n + (SELECT count(*) FROM added) RETURNING (SELECT count(*) FROM added)`,
		ids, names, services, created, received, users, tenants, headers, payloads, unknown).Scan(&added)
	if err != nil {
		return 0, fmt.Errorf("append %d entries: %w", len(ids), err)
	}
	return int(added), nil
}

// isObject reports whether b is a valid JSON object.
func isObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '{':
			return json.Valid(b)
		}
		return false
	}
	return false
}

const columns = `seq, id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown`

func scanEntries(rows pgx.Rows) ([]auditlog.Entry, error) {
	defer rows.Close()
	var out []auditlog.Entry
	for rows.Next() {
		var e auditlog.Entry
		var headers, payload []byte
		if err := rows.Scan(&e.Seq, &e.ID, &e.Name, &e.ServiceName, &e.CreatedAt, &e.ReceivedAt, &e.User, &e.Tenant, &headers, &payload, &e.Unknown); err != nil {
			return nil, err
		}
		e.CreatedAt, e.ReceivedAt = fromDB(e.CreatedAt), fromDB(e.ReceivedAt)
		if len(headers) > 0 {
			e.Headers = headers
		}
		e.Payload = payload
		out = append(out, e)
	}
	return out, rows.Err()
}

// denseMatches is the count above which a payload filter's page is read
// by walking the createdAt order (or another filter's index) and testing
// each entry, rather than through the GIN index: the planner cannot
// estimate a containment's selectivity and otherwise fetches and sorts
// every match, 150 ms for 80,000 of a million entries.
var denseMatches int64 = 5000 // a variable for the test that forces the walk

// Query returns one page of entries. The count and the page are read from
// one snapshot; without payload filters, in one round trip.
func (s *Store) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	if err := q.Validate(); err != nil {
		return auditlog.Page{}, err
	}
	var page auditlog.Page
	countSQL, countArgs := countSQL(q)
	if len(q.Payload) == 0 {
		var batch pgx.Batch
		batch.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
		batch.Queue(countSQL, countArgs...).QueryRow(func(r pgx.Row) error { return r.Scan(&page.Total) })
		query, args := pageSQL(q, false)
		batch.Queue(query, args...).Query(func(rows pgx.Rows) error {
			var err error
			page.Entries, err = scanEntries(rows)
			return err
		})
		batch.Queue(`COMMIT`)
		// A failed batch leaves its connection inside the transaction;
		// the pool closes such a connection rather than reuse it.
		if err := s.pool.SendBatch(ctx, &batch).Close(); err != nil {
			return auditlog.Page{}, fmt.Errorf("query: %w", err)
		}
	} else {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, countSQL, countArgs...).Scan(&page.Total); err != nil {
				return err
			}
			if page.Total == 0 {
				return nil
			}
			query, args := pageSQL(q, page.Total > denseMatches)
			rows, err := tx.Query(ctx, query, args...)
			if err != nil {
				return err
			}
			page.Entries, err = scanEntries(rows)
			return err
		})
		if err != nil {
			return auditlog.Page{}, fmt.Errorf("query: %w", err)
		}
	}
	if q.Limit > 0 && len(page.Entries) > q.Limit {
		page.Entries = page.Entries[:q.Limit]
		last := page.Entries[len(page.Entries)-1]
		page.Next = &auditlog.Cursor{CreatedAt: last.CreatedAt, Seq: last.Seq}
	}
	return page, nil
}

// countSQL counts what q selects.
func countSQL(q auditlog.Query) (string, []any) {
	if q.Scope == nil && filterless(q) {
		return `SELECT n FROM entry_count`, nil
	}
	var c conds
	if sc := q.Scope; sc != nil && sc.User != "" && sc.Tenant != "" && onlyTime(q) {
		// own + tenant's − both: three index-only counts, where the OR
		// form fetches every row of the tenant (35 ms for 3,300 at a
		// million entries, against 3 ms).
		filters(&c, q, false)
		c.add(`"user" = ` + c.arg(sc.User))
		own := c.sql()
		filters(&c, q, false)
		c.add(`tenant = ` + c.arg(sc.Tenant))
		ten := c.sql()
		filters(&c, q, false)
		c.add(`"user" = ` + c.arg(sc.User) + ` AND tenant = ` + c.arg(sc.Tenant))
		both := c.sql()
		return `SELECT (SELECT count(*) FROM entries WHERE ` + own + `) + (SELECT count(*) FROM entries WHERE ` + ten +
			`) - (SELECT count(*) FROM entries WHERE ` + both + `)`, c.args
	}
	where(&c, q, false)
	query := `SELECT count(*) FROM entries WHERE ` + c.sql()
	return query, c.args
}

// onlyTime reports whether q filters on nothing but a createdAt range.
func onlyTime(q auditlog.Query) bool {
	q.From, q.To = time.Time{}, time.Time{}
	return filterless(q)
}

func filterless(q auditlog.Query) bool {
	return q.ID == "" && q.Service == "" && q.Name == "" && q.Tenant == "" && q.User == "" && len(q.Payload) == 0 && q.From.IsZero() && q.To.IsZero()
}

// conds is a conjunction of SQL conditions; args are numbered across
// every conds of a statement, so one conds collects a whole statement's.
type conds struct {
	terms []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *conds) add(term string) { c.terms = append(c.terms, term) }

// sql returns the conjunction and clears it, keeping the arguments.
func (c *conds) sql() string {
	s := "true"
	if len(c.terms) > 0 {
		s = strings.Join(c.terms, " AND ")
	}
	c.terms = nil
	return s
}

// where adds the query's filters and its scope.
func where(c *conds, q auditlog.Query, dense bool) {
	filters(c, q, dense)
	if sc := q.Scope; sc != nil {
		switch {
		case sc.User != "" && sc.Tenant != "":
			c.add(`("user" = ` + c.arg(sc.User) + ` OR tenant = ` + c.arg(sc.Tenant) + `)`)
		case sc.User != "":
			c.add(`"user" = ` + c.arg(sc.User))
		case sc.Tenant != "":
			c.add(`tenant = ` + c.arg(sc.Tenant))
		default:
			c.add(`false`) // a caller who is nobody sees nothing
		}
	}
}

// filters adds the query's filters, without scope or cursor.
func filters(c *conds, q auditlog.Query, dense bool) {
	if q.ID != "" {
		c.add(`id = ` + c.arg(q.ID))
	}
	if q.Service != "" {
		c.add(`service_name = ` + c.arg(q.Service))
	}
	if q.Name != "" {
		c.add(`name = ` + c.arg(q.Name))
	}
	if q.Tenant != "" {
		c.add(`tenant = ` + c.arg(q.Tenant))
	}
	if q.User != "" {
		c.add(`"user" = ` + c.arg(q.User))
	}
	if !q.From.IsZero() {
		c.add(`created_at >= ` + c.arg(ceilMs(q.From)))
	}
	if !q.To.IsZero() {
		c.add(`created_at < ` + c.arg(ceilMs(q.To)))
	}
	if len(q.Payload) > 0 {
		// One containment for all keys: {"k":"v",…} matches string values
		// only, exactly, as OIH's Mongo query did.
		obj, _ := json.Marshal(q.Payload)
		col := "payload"
		if dense {
			col = "coalesce(payload, '{}')" // the same value, not the indexed expression
		}
		c.add(col + ` @> ` + c.arg(string(obj)) + `::jsonb`)
	}
}

// keyset adds the condition of a page after cursor a, as a row
// comparison the (…, created_at, seq) indexes seek to.
func keyset(c *conds, order auditlog.Order, a *auditlog.Cursor) {
	if a == nil {
		return
	}
	op := "<"
	if order == auditlog.OldestFirst {
		op = ">"
	}
	c.add(`(created_at, seq) ` + op + ` (` + c.arg(ms(a.CreatedAt)) + `::timestamptz, ` + c.arg(a.Seq) + `::bigint)`)
}

func orderBy(order auditlog.Order) string {
	if order == auditlog.OldestFirst {
		return ` ORDER BY created_at, seq`
	}
	return ` ORDER BY created_at DESC, seq DESC`
}

// pageSQL returns the SELECT of one page, reading one entry more than the
// limit to learn whether a next page exists.
//
// With dense set, payload filters are written so that the GIN index does
// not serve them (see denseMatches).
func pageSQL(q auditlog.Query, dense bool) (string, []any) {
	order := orderBy(q.Order)
	offset := q.Offset
	if q.After != nil {
		offset = 0
	}
	var c conds
	limit := func() string {
		s := ""
		if q.Limit > 0 {
			s += ` LIMIT ` + c.arg(q.Limit+1)
		}
		if offset > 0 {
			s += ` OFFSET ` + c.arg(offset)
		}
		return s
	}
	if sc := q.Scope; sc != nil && sc.User != "" && sc.Tenant != "" && q.Limit > 0 {
		// The caller's own entries and their tenant's, as two ordered
		// index walks of at most offset+limit+1 entries each, merged:
		// the OR form would fetch and sort every entry of the tenant.
		filters(&c, q, dense)
		c.add(`"user" = ` + c.arg(sc.User))
		keyset(&c, q.Order, q.After)
		own := `SELECT seq FROM (SELECT seq, created_at FROM entries WHERE ` + c.sql() + order + ` LIMIT ` + c.arg(offset+q.Limit+1) + `) own`
		filters(&c, q, dense)
		c.add(`tenant = ` + c.arg(sc.Tenant) + ` AND "user" <> ` + c.arg(sc.User))
		keyset(&c, q.Order, q.After)
		ten := `SELECT seq FROM (SELECT seq, created_at FROM entries WHERE ` + c.sql() + order + ` LIMIT ` + c.arg(offset+q.Limit+1) + `) ten`
		query := `SELECT ` + columns + ` FROM entries WHERE seq IN (` + own + ` UNION ALL ` + ten + `)` + order + limit()
		return query, c.args
	}
	where(&c, q, dense)
	keyset(&c, q.Order, q.After)
	query := `SELECT ` + columns + ` FROM entries WHERE ` + c.sql() + order + limit()
	return query, c.args
}

// userEvents are the events whose payload id and username name a user.
var userEvents = []string{"iam.user.created", "iam.user.modified"}

// Usernames returns the usernames of userID's iam.user.created and
// iam.user.modified entries, sorted.
func (s *Store) Usernames(ctx context.Context, userID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	id, _ := json.Marshal(map[string]string{"id": userID})
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT payload->>'username' FROM entries
		WHERE payload @> $1::jsonb AND name = ANY($2) AND jsonb_typeof(payload->'username') = 'string'`,
		string(id), userEvents)
	if err != nil {
		return nil, fmt.Errorf("usernames of %s: %w", userID, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("usernames of %s: %w", userID, err)
	}
	names = slices.DeleteFunc(names, func(u string) bool { return u == "" || u == auditlog.Redacted })
	slices.Sort(names)
	return names, nil
}

// Anonymise redacts a deleted user's entries, in one statement: the GIN
// index finds them, jsonb_each rewrites each payload's top level.
func (s *Store) Anonymise(ctx context.Context, a auditlog.Anonymisation) (int64, error) {
	var c conds
	match := func(key, value string) string {
		obj, _ := json.Marshal(map[string]string{key: value})
		return `payload @> ` + c.arg(string(obj)) + `::jsonb`
	}
	var selectors []string
	if a.UserID != "" {
		for _, k := range []string{"user", "id", "account"} {
			selectors = append(selectors, match(k, a.UserID))
		}
	}
	usernames := make([]string, 0, len(a.Usernames))
	for _, u := range a.Usernames {
		if u != "" {
			usernames = append(usernames, u)
			selectors = append(selectors, match("user", u), match("username", u))
		}
	}
	if len(selectors) == 0 {
		return 0, nil
	}
	id := c.arg(a.UserID)
	names := c.arg(usernames)
	redacted := c.arg(auditlog.Redacted)
	// A top-level string equal to the id or a username is redacted, and
	// so is a username that is set (truthy, as OIH tests it).
	tag, err := s.pool.Exec(ctx, `WITH target AS (
		SELECT seq, payload, "user" FROM entries WHERE `+strings.Join(selectors, " OR ")+`
	), redacted AS (
		SELECT t.seq,
			(SELECT jsonb_object_agg(j.k, CASE
				WHEN jsonb_typeof(j.v) = 'string' AND j.v #>> '{}' NOT IN ('', `+redacted+`)
					AND (j.v #>> '{}' = `+id+` OR j.v #>> '{}' = ANY(`+names+`::text[]))
				THEN to_jsonb(`+redacted+`::text)
				WHEN j.k = 'username' AND j.v NOT IN ('null'::jsonb, 'false'::jsonb, '""'::jsonb, '0'::jsonb, to_jsonb(`+redacted+`::text))
				THEN to_jsonb(`+redacted+`::text)
				ELSE j.v END)
			 FROM jsonb_each(t.payload) AS j(k, v)) AS payload,
			CASE WHEN t."user" <> '' AND (t."user" = `+id+` OR t."user" = ANY(`+names+`::text[])) THEN `+redacted+` ELSE t."user" END AS "user"
		FROM target t
	)
	UPDATE entries e SET payload = r.payload, "user" = r."user"
	FROM redacted r WHERE e.seq = r.seq AND e.payload IS DISTINCT FROM r.payload`, c.args...)
	if err != nil {
		return 0, fmt.Errorf("anonymise %s: %w", a.UserID, err)
	}
	return tag.RowsAffected(), nil
}
