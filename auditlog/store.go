// Package auditlog is the audit-log service: it records audited events
// from the bus in a Store, answers queries with tenant isolation, and
// anonymises a deleted user's entries.
package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
	"github.com/heraldhq/herald/event"
)

// Entry is one stored event.
type Entry struct {
	// Seq is assigned by the store, increasing in insertion order; stores
	// commit appends in seq order, so a reader that sees seq n has seen
	// every entry below it.
	Seq         int64
	ID          string
	Name        string
	ServiceName string
	// CreatedAt is the publisher's createdAt (zero when it sent none).
	CreatedAt time.Time
	// ReceivedAt is when the audit log received the event.
	ReceivedAt time.Time
	// User and Tenant are the reserved payload fields, for access control.
	User   string
	Tenant string
	// Headers holds the extra headers the publisher sent (beyond name,
	// serviceName, createdAt, id), as a JSON object, or nil.
	Headers json.RawMessage
	// Payload is the event payload, a JSON object.
	Payload json.RawMessage
	// Unknown marks an event whose name is not in the catalogue.
	Unknown bool

	// LeafIndex is the entry's position in the log's Merkle tree (0, 1,
	// 2, … in the order the integrator took entries), or NotIntegrated.
	// Append ignores it.
	LeafIndex int64
	// LeafHash is the entry's RFC 6962 leaf hash (32 bytes), computed by
	// Seal when it is appended and never changed after: erasure and
	// retention keep it.
	LeafHash []byte
	// Seed is the entry's random seed (SeedSize bytes), from which the
	// salt of every scalar of its content derives. After an erasure the
	// seed is gone and Salts holds the salts of the fields that remain,
	// Erased the commitments of the erased ones.
	Seed   []byte
	Salts  map[string][]byte
	Erased map[string]Commitment
	// ContentHash is set once retention has pruned the entry: its headers
	// and payload are gone, and the leaf is recomputed from the envelope
	// and this hash.
	ContentHash []byte
}

// Order is the sort order of a query: by createdAt then seq, or by seq
// alone (the order entries were stored in).
type Order int

// Orders.
const (
	NewestFirst Order = iota // -createdAt, the default
	OldestFirst              // createdAt
	// BySeq is the order entries were stored in, first stored first: what
	// a reader following the log reads by. A cursor's CreatedAt is ignored
	// in it and in BySeqDesc.
	BySeq
	BySeqDesc // last stored first
)

// Scope restricts a query to what a non-admin caller may see: entries whose
// payload user is User, or whose payload tenant is Tenant (when Tenant is
// not empty). A nil *Scope means no restriction (an admin).
type Scope struct {
	User   string
	Tenant string
}

// Cursor is a position in a query's order: the (createdAt, seq) of the
// last entry of a page. Pages that start after a cursor are keyset pages:
// as fast at page 10,000 as at page 1.
type Cursor struct {
	CreatedAt time.Time
	Seq       int64
}

// Query selects entries. Empty fields do not filter.
type Query struct {
	Scope *Scope
	// ID selects the entry with this event id.
	ID      string
	Service string // headers.serviceName
	Name    string
	Tenant  string
	User    string
	// Payload filters on top-level payload keys, exact string match: only
	// string values match (a number 42 does not match "42", as in OIH's
	// MongoDB query). Keys must match ^[A-Za-z0-9_-]{1,64}$, else the
	// query fails with ErrInvalidQuery.
	Payload map[string]string
	// From and To bound createdAt (inclusive From, exclusive To).
	From, To time.Time
	Order    Order
	// Limit is the page size (0: no limit); Offset the entries skipped
	// (page numbers). Negative values fail with ErrInvalidQuery.
	// After, when set, starts the page after that position instead, and
	// Offset is ignored.
	Limit  int
	Offset int
	After  *Cursor
	// AfterSeq, when above 0, selects only the entries stored after that
	// position (seq > AfterSeq).
	AfterSeq int64
	// SkipTotal leaves Page.Total 0: a reader that wants only the entries
	// saves the count.
	SkipTotal bool
	// MaxBytes, when above 0, ends a page early once the headers and
	// payloads of its entries reach MaxBytes bytes (the entry that
	// reaches it included: a page holds at least one entry), with Next
	// set to continue after it: what a page can hold of memory is then
	// bounded by the budget, not by Limit times the largest entry.
	// Offset paging does not see what a page cut short left out; follow
	// Next.
	MaxBytes int
}

// Page is one page of a query's results.
type Page struct {
	Entries []Entry
	// Total counts every entry the query selects (filters and scope
	// applied), not only this page, and not only those after Query.After.
	Total int64
	// Next is the cursor of the following page, nil on the last.
	Next *Cursor
}

// Term is a top-level payload key holding a string value, the unit the
// stores index payloads by: a payload filter selects the entries holding
// every term it names, Store.Rewrite the entries holding any of its terms.
// Only string values are terms (a number 42 is not the term "42"), and
// only keys ValidPayloadKey accepts.
type Term struct {
	Key, Value string
}

// Selection selects the entries Store.Rewrite edits: those whose payload
// holds any of Terms, any of Nested, and those whose id is one of IDs. An
// empty Selection selects nothing.
type Selection struct {
	Terms  []Term
	Nested []NestedTerm
	IDs    []string
}

// NestedTerm selects the entries called one of Names whose payload holds
// Value, a string, at Path: the keys from the payload down, "*" standing
// for any item of an array (owners, *, id). It finds what the index of
// top-level terms cannot; a store may select more (any entry of Names
// whose payload text holds the value), and the Edit decides.
type NestedTerm struct {
	Names []string
	Path  []string
	Value string
}

// An Edit changes an entry in place and reports whether it changed it.
// Store.Rewrite stores the Payload (a JSON object), Headers, User and the
// commitments (Seed, Salts, Erased) of an entry an Edit changed; the other
// fields are the entry's identity and position and stay as they were. An
// error abandons the whole rewrite. An edit that changes content does it
// through Erase, which keeps the leaf hash: any other change of content
// is what herald verify reports as tampering.
type Edit func(e *Entry) (changed bool, err error)

// Store keeps audit-log entries: it appends them, answers queries, and
// rewrites the entries it is told to. What to rewrite, and how, is the
// audit log's policy (Anonymise), not the store's. Implementations:
// auditlog/sqlite, auditlog/postgres; both pass auditlog/storetest.
type Store interface {
	// Append stores entries in one transaction, skipping any whose ID is
	// already stored (and repeats of an ID within entries: the first copy
	// wins), and returns how many were new. It returns only once the
	// transaction is durable. An entry without an ID, whose payload or
	// headers are not a JSON object, or whose content Seal refuses, fails
	// the whole batch with an error wrapping ErrInvalidEntry. Entries
	// without a LeafHash are sealed; the seed and leaf hash are stored
	// with the entry, and so are the salts and kept commitments of an
	// entry erased before it was appended (Eraser.Prepare). New entries get seqs above every stored one,
	// committed in seq order, and no leaf index: the integrator gives it.
	// A store that keeps entries byte for byte (sqlite) may, when every
	// entry was new, set each of entries to the entry as a read would
	// return it, Seq included (AppendedAsStored): a live feed hands them
	// on without reading them back. Others leave Seq 0.
	Append(ctx context.Context, entries []Entry) (int, error)
	// Query returns one page of entries. An invalid query fails with an
	// error wrapping ErrInvalidQuery.
	Query(ctx context.Context, q Query) (Page, error)
	// Rewrite passes every entry sel selects to edit, in seq order, and
	// stores what edit changed, all in one transaction that takes turns
	// with Append and with other rewrites: no append commits between the
	// entries being found and rewritten, and no two rewrites of one entry
	// lose either's change. Payload filters find a rewritten entry by its
	// new values only: the payload index is rebuilt for it. It returns the
	// number of entries changed. Terms with an invalid key fail with an
	// error wrapping ErrInvalidQuery; a changed payload that is not a JSON
	// object with one wrapping ErrInvalidEntry, and nothing is stored.
	Rewrite(ctx context.Context, sel Selection, edit Edit) (int64, error)
	// Prune deletes the content (headers, payload, seed, salts) of up to
	// limit entries received before before, oldest first, keeping their
	// envelope and content hash (auditlog.Prune), and returns how many it
	// pruned. Leaf hashes, checkpoints and proofs stay valid.
	Prune(ctx context.Context, before time.Time, limit int) (int64, error)
	Tree
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store; closing it again does nothing.
	Close() error
}

// Tree is the Merkle tree side of a Store: the integrator, checkpoints,
// the tree's stored hashes, and every entry in order for verification.
type Tree interface {
	// Integrator blocks until the caller is the log's one integrator, or
	// ctx ends. On SQLite that is the Store's own; on PostgreSQL the
	// holder of a session advisory lock on a connection of its own, which
	// the database releases when that connection dies, so that a replica
	// killed while integrating hands over at once.
	Integrator(ctx context.Context) (Integrator, error)
	// Checkpoint returns the checkpoint of a tree of size entries (size
	// < 0: the latest), or an error wrapping ErrNoCheckpoint.
	Checkpoint(ctx context.Context, size int64) (Checkpoint, error)
	// Checkpoints returns up to limit checkpoints of sizes above after,
	// in size order. Their Size and Note are set, as stored; nothing is
	// verified.
	Checkpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	// ReadHashes returns the tree's stored hashes at indexes
	// (tlog.StoredHashIndex), a tlog.HashReader with a context.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// Leaves returns up to limit entries with seqs above afterSeq, in seq
	// order, integrated or not, with every column: what verify reads.
	Leaves(ctx context.Context, afterSeq int64, limit int) ([]Entry, error)
}

// Integrator places committed entries in the tree. Only one exists at a
// time per log (Tree.Integrator).
type Integrator interface {
	// Integrate gives up to max committed entries that have no leaf index
	// yet the next leaf indexes, in seq order, stores the tree's new
	// hashes and the checkpoint sign returns for the new size, all in one
	// transaction, and returns that checkpoint and the number of entries
	// placed. With nothing to place it returns the latest checkpoint, and
	// signs the empty tree's when the log has none.
	Integrate(ctx context.Context, max int, sign SignFunc) (Checkpoint, int, error)
	// Close gives up the role.
	Close() error
}

// SignFunc signs the checkpoint of a tree of size with root, the one
// after the checkpoint of size prev (Signer.Sign).
type SignFunc func(size int64, root tlog.Hash, prev int64) (Checkpoint, error)

// ErrInvalidQuery is wrapped by errors for queries a store refuses (an
// invalid payload key, say).
var ErrInvalidQuery = errors.New("invalid query")

// ErrInvalidEntry is wrapped by errors for entries a store refuses to
// write: no id, or a payload or headers that are not a JSON object.
var ErrInvalidEntry = errors.New("invalid entry")

// MaxPayloadKeyLength is the longest payload key a filter may name.
const MaxPayloadKeyLength = 64

// ValidPayloadKey reports whether a payload filter may name key: 1 to 64
// ASCII letters, digits, '_' or '-'. Such keys are safe in any query
// language the stores use, and are what OIH's payloads hold.
func ValidPayloadKey(key string) bool {
	if key == "" || len(key) > MaxPayloadKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks what every store refuses: a negative limit, offset or
// AfterSeq, an unknown order, and payload keys ValidPayloadKey refuses.
// Errors wrap ErrInvalidQuery.
func (q Query) Validate() error {
	if q.Limit < 0 || q.Offset < 0 || q.AfterSeq < 0 {
		return fmt.Errorf("%w: negative limit, offset or AfterSeq", ErrInvalidQuery)
	}
	if q.Order < NewestFirst || q.Order > BySeqDesc {
		return fmt.Errorf("%w: unknown order %d", ErrInvalidQuery, q.Order)
	}
	for k, v := range q.Payload {
		if !ValidPayloadKey(k) {
			return fmt.Errorf("%w: payload key %q: want 1 to %d letters, digits, '_' or '-'", ErrInvalidQuery, k, MaxPayloadKeyLength)
		}
		if !storableText(v) {
			return fmt.Errorf("%w: payload filter %s holds NUL or invalid UTF-8", ErrInvalidQuery, k)
		}
	}
	for _, f := range []struct{ name, v string }{{"id", q.ID}, {"service", q.Service}, {"name", q.Name}, {"tenant", q.Tenant}, {"user", q.User}} {
		if !storableText(f.v) {
			return fmt.Errorf("%w: %s holds NUL or invalid UTF-8", ErrInvalidQuery, f.name)
		}
	}
	if sc := q.Scope; sc != nil && (!storableText(sc.User) || !storableText(sc.Tenant)) {
		return fmt.Errorf("%w: scope holds NUL or invalid UTF-8", ErrInvalidQuery)
	}
	for _, t := range []time.Time{q.From, q.To} {
		if !t.IsZero() && (t.Before(event.MinTime) || t.After(event.MaxTime)) {
			return fmt.Errorf("%w: from or to outside years 1 to 9999", ErrInvalidQuery)
		}
	}
	return nil
}

// storableText reports whether s is text both stores hold alike: valid
// UTF-8 without NUL (PostgreSQL takes neither).
func storableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// CreatedRange returns the bounds a store compares createdAt with: From
// and To rounded up to the millisecond, the precision createdAt is
// stored at. createdAt >= From and createdAt < To hold for a stored
// millisecond m exactly when they hold for the rounded bounds. A zero
// bound stays zero (no bound).
func (q Query) CreatedRange() (from, to time.Time) {
	return ceilMillis(q.From), ceilMillis(q.To)
}

func ceilMillis(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	m := time.UnixMilli(t.UnixMilli())
	if t.After(m) {
		m = m.Add(time.Millisecond)
	}
	return m
}

// Matches reports whether q selects e as a store's Query does: its
// filters, scope and AfterSeq, not its order or paging. e is an entry as
// a store returns it (createdAt at millisecond precision). A reader of
// new entries (Feed) filters them with it instead of asking the store
// once per query; auditlog/storetest checks that both agree.
func (q Query) Matches(e Entry) bool {
	if q.AfterSeq > 0 && e.Seq <= q.AfterSeq {
		return false
	}
	if sc := q.Scope; sc != nil && !(sc.User != "" && e.User == sc.User || sc.Tenant != "" && e.Tenant == sc.Tenant) {
		return false
	}
	for _, f := range [...]struct{ want, got string }{
		{q.ID, e.ID}, {q.Service, e.ServiceName}, {q.Name, e.Name}, {q.Tenant, e.Tenant}, {q.User, e.User},
	} {
		if f.want != "" && f.want != f.got {
			return false
		}
	}
	from, to := q.CreatedRange()
	if !from.IsZero() && e.CreatedAt.Before(from) || !to.IsZero() && !e.CreatedAt.Before(to) {
		return false
	}
	if len(q.Payload) == 0 {
		return true
	}
	fs, err := jsonobj.Fields(e.Payload)
	if err != nil {
		return false
	}
	for k, v := range q.Payload {
		if !slices.ContainsFunc(fs, func(f jsonobj.Field) bool {
			s, ok := jsonobj.String(f.Raw)
			return ok && f.Key == k && s == v
		}) {
			return false
		}
	}
	return true
}
