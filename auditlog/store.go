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
	"time"

	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
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

// An Edit changes an entry in place and reports whether it changed it.
// Store.Rewrite stores the Payload (a JSON object) and User of an entry
// an Edit changed; the other fields are the entry's identity and position
// and stay as they were. An error abandons the whole rewrite.
type Edit func(e *Entry) (changed bool, err error)

// Store keeps audit-log entries: it appends them, answers queries, and
// rewrites the entries it is told to. What to rewrite, and how, is the
// audit log's policy (Anonymise), not the store's. Implementations:
// auditlog/sqlite, auditlog/postgres; both pass auditlog/storetest.
type Store interface {
	// Append stores entries in one transaction, skipping any whose ID is
	// already stored (and repeats of an ID within entries: the first copy
	// wins), and returns how many were new. It returns only once the
	// transaction is durable. An entry without an ID, or whose payload or
	// headers are not a JSON object, fails the whole batch with an error
	// wrapping ErrInvalidEntry. New entries get seqs above every stored
	// one, committed in seq order.
	Append(ctx context.Context, entries []Entry) (int, error)
	// Query returns one page of entries. An invalid query fails with an
	// error wrapping ErrInvalidQuery.
	Query(ctx context.Context, q Query) (Page, error)
	// Rewrite passes every entry whose payload holds any of terms to edit,
	// in seq order, and stores what edit changed, all in one transaction
	// that takes turns with Append and with other rewrites: no append
	// commits between the entries being found and rewritten, and no two
	// rewrites of one entry lose either's change. Payload filters find a
	// rewritten entry by its new values only. It returns the number of
	// entries changed. Terms with an invalid key fail with an error
	// wrapping ErrInvalidQuery; a changed payload that is not a JSON object
	// with one wrapping ErrInvalidEntry, and nothing is stored.
	Rewrite(ctx context.Context, terms []Term, edit Edit) (int64, error)
	// Ping checks the store is reachable.
	Ping(ctx context.Context) error
	// Close releases the store; closing it again does nothing.
	Close() error
}

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
	for k := range q.Payload {
		if !ValidPayloadKey(k) {
			return fmt.Errorf("%w: payload key %q: want 1 to %d letters, digits, '_' or '-'", ErrInvalidQuery, k, MaxPayloadKeyLength)
		}
	}
	return nil
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
