// Package storetest is the conformance suite every auditlog.Store passes:
// the same cases, run against each store, so "works on SQLite" and "works
// on PostgreSQL" mean the same thing. A store adds one call to Run in its
// own test. The package also holds the realistic data set and the query
// latency benchmark both stores report.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/internal/testkit"
)

// Run runs the conformance suite. open returns a new, empty store for one
// case; Run closes every store it gets (after which open's own cleanups,
// registered on the t it was given, run).
func Run(t *testing.T, open func(t testing.TB) auditlog.Store) {
	cases := []struct {
		name string
		run  func(t *testing.T, s auditlog.Store)
	}{
		{"AppendReadsBackEveryField", testAppendReadsBackEveryField},
		{"AppendSkipsKnownIDs", testAppendSkipsKnownIDs},
		{"AppendRefusesEntriesWithoutIDOrObjectPayload", testAppendRefusesBadEntries},
		{"SeqIncreasesInInsertionOrder", testSeqIncreases},
		{"FiltersSelectMatchingEntries", testFilters},
		{"InvalidPayloadKeyIsRefused", testInvalidPayloadKey},
		{"NegativeLimitOrOffsetIsRefused", testNegativePaging},
		{"TextNoStoreHoldsIsRefused", testUnstorableQueryText},
		{"OrderIsNewestFirstWithSeqTieBreak", testOrder},
		{"LimitAndOffsetSelectAPage", testLimitOffset},
		{"CursorPagingWalksTheSetOnce", testCursorPaging},
		{"PageByteBudgetCutsPagesAndNextContinues", testPageByteBudget},
		{"TotalCountsTheFilteredScopedSet", testTotal},
		{"ScopeShowsOwnAndTenantEntries", testScope},
		{"TenantlessUserSeesOnlyOwnEntries", testTenantlessScope},
		{"RewriteEditsTheEntriesHoldingAnyTerm", testRewrite},
		{"RewriteStoresNothingWhenAnEditFails", testRewriteAtomic},
		{"RewriteRefusesInvalidTermsAndPayloads", testRewriteRefuses},
		{"ConcurrentRewritesKeepEveryChange", testConcurrentRewrites},
		{"LargeRewriteChangesEveryEntry", testLargeRewrite},
		{"AnonymiseRedactsTheDeletedUser", testAnonymise},
		{"UsernamesAreLearnedFromUserEvents", testUsernames},
		{"ConcurrentAppendsKeepEveryEntryOnce", testConcurrentAppend},
		{"AppendsCommitInSeqOrder", testSeqCommitOrder},
		{"ReadingBySeqFollowsTheLog", testSeqOrder},
		{"EntriesAppendedAsStoredAreWhatAReadReturns", testAppendedAsStored},
		{"MatchesSelectsWhatTheStoreSelects", testMatches},
		{"PingAnswersUntilClosed", testPing},
		{"LargeBatchAppendsInOneCall", testLargeBatch},
		{"ErasureStateIsKeptOnce", testErasureState},
		{"ErasureLeavesNoIdentifierWhateverTheOrder", testErasureOrder},
		{"PushedIdentityEventsEraseNobody", testErasureTrust},
		{"DeletingATenantErasesEachOfItsUsers", testTenantErasure},
		{"UsernameLearnedLateIsErasedWhenItsRewriteIsRetried", testInterruptedLearning},
	}
	runCases(t, open, cases)
}

// RunIntegrity runs the conformance cases of the Merkle tree side of a
// store (integration, proofs, erasure, pruning, refused content, one
// integrator, verify), each on a new store from open.
func RunIntegrity(t *testing.T, open func(t testing.TB) auditlog.Store) {
	runCases(t, open, integrityCases)
}

func runCases(t *testing.T, open func(t testing.TB) auditlog.Store, cases []struct {
	name string
	run  func(t *testing.T, s auditlog.Store)
}) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			c.run(t, s)
		})
	}
}

// base is the createdAt the cases build on; a fixed instant keeps failures
// reproducible.
var base = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// at returns base plus n milliseconds.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Millisecond) }

// entry builds an entry with User and Tenant taken from the payload, as
// auditlog.EntryFromEvent does.
func entry(id, name string, createdAt time.Time, payload map[string]any) auditlog.Entry {
	if payload == nil {
		payload = map[string]any{}
	}
	p, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	e := auditlog.Entry{
		ID:          id,
		Name:        name,
		ServiceName: strings.SplitN(name, ".", 2)[0],
		CreatedAt:   createdAt,
		ReceivedAt:  createdAt.Add(3 * time.Millisecond),
		Payload:     p,
	}
	if u, ok := payload["user"].(string); ok {
		e.User = u
	}
	if tn, ok := payload["tenant"].(string); ok {
		e.Tenant = tn
	}
	return e
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func mustAppend(t testing.TB, s auditlog.Store, entries ...auditlog.Entry) int {
	t.Helper()
	n, err := s.Append(ctx(t), entries)
	if err != nil {
		t.Fatalf("append %d entries: %v", len(entries), err)
	}
	return n
}

func mustQuery(t testing.TB, s auditlog.Store, q auditlog.Query) auditlog.Page {
	t.Helper()
	p, err := s.Query(ctx(t), q)
	if err != nil {
		t.Fatalf("query %+v: %v", q, err)
	}
	return p
}

func ids(entries []auditlog.Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func payloadOf(t testing.TB, e auditlog.Entry) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Payload, &m); err != nil {
		t.Fatalf("payload of %s: %v", e.ID, err)
	}
	return m
}

func testAppendReadsBackEveryField(t *testing.T, s auditlog.Store) {
	created := time.Date(2025, 3, 14, 9, 26, 53, 123_456_789, time.FixedZone("CET", 3600))
	full := auditlog.Entry{
		ID:          "0195b2c4-7a00-7000-8000-000000000001",
		Name:        "flowrepo.flow.created",
		ServiceName: "flow-repository",
		CreatedAt:   created,
		ReceivedAt:  created.Add(1500 * time.Microsecond),
		User:        "u1",
		Tenant:      "t1",
		Headers:     json.RawMessage(`{"x-trace":"abc","retry":2}`),
		Payload:     json.RawMessage(`{"user":"u1","tenant":"t1","flow":{"id":"f1","nodes":[1,2,{"a":null}]},"n":1.5,"ok":true,"big":12345678901234567}`),
		Unknown:     true,
	}
	bare := auditlog.Entry{
		// A ferryman event: no createdAt, no headers, no user or tenant.
		ID:         "derived-1",
		Name:       "provenance",
		ReceivedAt: created,
		Payload:    json.RawMessage(`{}`),
	}
	if n := mustAppend(t, s, full, bare); n != 2 {
		t.Fatalf("append returned %d, want 2", n)
	}
	p := mustQuery(t, s, auditlog.Query{Order: auditlog.OldestFirst})
	if len(p.Entries) != 2 {
		t.Fatalf("read back %d entries, want 2", len(p.Entries))
	}
	got := map[string]auditlog.Entry{}
	for _, e := range p.Entries {
		got[e.ID] = e
	}
	for _, want := range []auditlog.Entry{full, bare} {
		g, ok := got[want.ID]
		if !ok {
			t.Fatalf("entry %s not read back", want.ID)
		}
		if g.Seq <= 0 {
			t.Errorf("%s: seq %d, want > 0", want.ID, g.Seq)
		}
		if g.Name != want.Name || g.ServiceName != want.ServiceName || g.User != want.User || g.Tenant != want.Tenant || g.Unknown != want.Unknown {
			t.Errorf("%s: read back %+v, want %+v", want.ID, g, want)
		}
		if !g.CreatedAt.Equal(want.CreatedAt.Truncate(time.Millisecond)) || g.CreatedAt.IsZero() != want.CreatedAt.IsZero() {
			t.Errorf("%s: createdAt %v, want %v (at ms precision)", want.ID, g.CreatedAt, want.CreatedAt.Truncate(time.Millisecond))
		}
		if !g.ReceivedAt.Equal(want.ReceivedAt.Truncate(time.Millisecond)) {
			t.Errorf("%s: receivedAt %v, want %v (at ms precision)", want.ID, g.ReceivedAt, want.ReceivedAt.Truncate(time.Millisecond))
		}
		if !testkit.JSONEqual(g.Payload, want.Payload) {
			t.Errorf("%s: payload %s, want %s", want.ID, g.Payload, want.Payload)
		}
		if !testkit.JSONEqual(g.Headers, want.Headers) {
			t.Errorf("%s: headers %s, want %s", want.ID, g.Headers, want.Headers)
		}
	}
	if g := got[bare.ID]; !g.CreatedAt.IsZero() {
		t.Errorf("an entry without createdAt reads back with %v, want the zero time", g.CreatedAt)
	}
	// A nil payload is stored as the empty object.
	mustAppend(t, s, auditlog.Entry{ID: "nil-payload", Name: "a.b", ReceivedAt: created})
	p = mustQuery(t, s, auditlog.Query{Name: "a.b"})
	if len(p.Entries) != 1 || !testkit.JSONEqual(p.Entries[0].Payload, []byte(`{}`)) {
		t.Errorf("nil payload read back as %+v, want {}", p.Entries)
	}
}

func testAppendSkipsKnownIDs(t *testing.T, s auditlog.Store) {
	a := entry("a", "x.created", at(1), map[string]any{"k": "1"})
	b := entry("b", "x.created", at(2), map[string]any{"k": "2"})
	c := entry("c", "x.created", at(3), map[string]any{"k": "3"})
	d := entry("d", "x.created", at(4), map[string]any{"k": "4"})
	if n := mustAppend(t, s, a, b); n != 2 {
		t.Errorf("first batch: %d new, want 2", n)
	}
	// b again, with another payload: the first copy stays.
	b2 := b
	b2.Payload = json.RawMessage(`{"k":"changed"}`)
	if n := mustAppend(t, s, b2, c); n != 1 {
		t.Errorf("batch repeating b: %d new, want 1", n)
	}
	if n := mustAppend(t, s, d, d, d); n != 1 {
		t.Errorf("batch holding d three times: %d new, want 1", n)
	}
	if n := mustAppend(t, s, a, b, c, d); n != 0 {
		t.Errorf("batch of stored entries: %d new, want 0", n)
	}
	if n := mustAppend(t, s); n != 0 {
		t.Errorf("empty batch: %d new, want 0", n)
	}
	p := mustQuery(t, s, auditlog.Query{Order: auditlog.OldestFirst})
	if got := ids(p.Entries); !slices.Equal(got, []string{"a", "b", "c", "d"}) || p.Total != 4 {
		t.Fatalf("stored %v (total %d), want [a b c d] once each", got, p.Total)
	}
	if !testkit.JSONEqual(p.Entries[1].Payload, b.Payload) {
		t.Errorf("b's payload became %s, want the first copy %s", p.Entries[1].Payload, b.Payload)
	}
}

func testAppendRefusesBadEntries(t *testing.T, s auditlog.Store) {
	for _, e := range []auditlog.Entry{
		{Name: "a.b", Payload: json.RawMessage(`{}`)},
		{ID: "x", Name: "a.b", Payload: json.RawMessage(`[1]`)},
		{ID: "y", Name: "a.b", Payload: json.RawMessage(`{"a":`)},
		{ID: "z", Name: "a.b", Payload: json.RawMessage(`{}`), Headers: json.RawMessage(`"h"`)},
	} {
		if _, err := s.Append(ctx(t), []auditlog.Entry{entry("ok", "a.b", at(0), nil), e}); !errors.Is(err, auditlog.ErrInvalidEntry) {
			t.Errorf("append of %+v: error %v, want ErrInvalidEntry", e, err)
		}
	}
	if p := mustQuery(t, s, auditlog.Query{}); p.Total != 0 {
		t.Errorf("a refused batch stored %d entries, want none", p.Total)
	}
}

func testSeqIncreases(t *testing.T, s auditlog.Store) {
	// createdAt runs backwards: seq follows insertion, not time.
	var batch []auditlog.Entry
	for i := range 10 {
		batch = append(batch, entry(fmt.Sprintf("e%02d", i), "x.y", at(100-i), nil))
	}
	mustAppend(t, s, batch[:4]...)
	mustAppend(t, s, batch[4:]...)
	p := mustQuery(t, s, auditlog.Query{Order: auditlog.OldestFirst})
	bySeq := slices.Clone(p.Entries)
	slices.SortFunc(bySeq, func(a, b auditlog.Entry) int { return int(a.Seq - b.Seq) })
	for i, e := range bySeq {
		if want := fmt.Sprintf("e%02d", i); e.ID != want {
			t.Fatalf("in seq order entry %d is %s, want %s", i, e.ID, want)
		}
		if i > 0 && e.Seq <= bySeq[i-1].Seq {
			t.Fatalf("seq %d after %d", e.Seq, bySeq[i-1].Seq)
		}
	}
}

// filterData is a small log with known attributes.
func filterData() []auditlog.Entry {
	return []auditlog.Entry{
		entry("f1", "flowrepo.flow.created", at(10), map[string]any{"user": "alice", "tenant": "t1", "flowId": "F1", "status": "42"}),
		entry("f2", "flowrepo.flow.deleted", at(20), map[string]any{"user": "alice", "tenant": "t1", "flowId": "F2", "count": 42}),
		entry("f3", "flowrepo.flow.created", at(30), map[string]any{"user": "bob", "tenant": "t2", "flowId": "F1"}),
		entry("f4", "iam.user.created", at(40), map[string]any{"id": "carol", "username": "carol@example.com"}),
		entry("f5", "iam.user.loginFailed", at(50), map[string]any{"user": "carol@example.com"}),
		entry("f6", "secrets.secret.created", at(60), map[string]any{"user": "bob", "tenant": "t1", "nested": map[string]any{"flowId": "F1"}}),
		entry("f7", "flowrepo.flow.created", at(70), map[string]any{"user": "dave", "flowId": "F1", "ok": true, "flag": "true"}),
	}
}

func testFilters(t *testing.T, s auditlog.Store) {
	data := filterData()
	data[3].ServiceName = "accounts" // IAM publishes as accounts
	data[4].ServiceName = "accounts"
	mustAppend(t, s, data...)
	tests := []struct {
		name string
		q    auditlog.Query
		want []string // newest first
	}{
		{"no filter", auditlog.Query{}, []string{"f7", "f6", "f5", "f4", "f3", "f2", "f1"}},
		{"id", auditlog.Query{ID: "f3"}, []string{"f3"}},
		{"id of no entry", auditlog.Query{ID: "f9"}, nil},
		{"id and another attribute", auditlog.Query{ID: "f3", Tenant: "t1"}, nil},
		{"service", auditlog.Query{Service: "accounts"}, []string{"f5", "f4"}},
		{"name", auditlog.Query{Name: "flowrepo.flow.created"}, []string{"f7", "f3", "f1"}},
		{"tenant", auditlog.Query{Tenant: "t1"}, []string{"f6", "f2", "f1"}},
		{"user", auditlog.Query{User: "bob"}, []string{"f6", "f3"}},
		{"user holding an e-mail", auditlog.Query{User: "carol@example.com"}, []string{"f5"}},
		{"payload string", auditlog.Query{Payload: map[string]string{"flowId": "F1"}}, []string{"f7", "f3", "f1"}},
		{"payload user key", auditlog.Query{Payload: map[string]string{"user": "alice"}}, []string{"f2", "f1"}},
		{"payload tenant key", auditlog.Query{Payload: map[string]string{"tenant": "t2"}}, []string{"f3"}},
		{"two payload keys", auditlog.Query{Payload: map[string]string{"flowId": "F1", "user": "bob"}}, []string{"f3"}},
		{"payload key and name", auditlog.Query{Name: "flowrepo.flow.created", Payload: map[string]string{"tenant": "t1"}}, []string{"f1"}},
		// Filters are exact string matches, as OIH's (a query string
		// value never equals a JSON number or boolean).
		{"payload string that looks like a number", auditlog.Query{Payload: map[string]string{"status": "42"}}, []string{"f1"}},
		{"payload number never matches", auditlog.Query{Payload: map[string]string{"count": "42"}}, nil},
		{"payload boolean never matches", auditlog.Query{Payload: map[string]string{"ok": "true"}}, nil},
		{"payload string true", auditlog.Query{Payload: map[string]string{"flag": "true"}}, []string{"f7"}},
		{"payload prefix never matches", auditlog.Query{Payload: map[string]string{"flowId": "F"}}, nil},
		{"payload case matters", auditlog.Query{Payload: map[string]string{"flowId": "f1"}}, nil},
		{"absent payload attribute", auditlog.Query{Payload: map[string]string{"missing": "F1"}}, nil},
		{"nested values are not top-level keys", auditlog.Query{Payload: map[string]string{"nested": "F1"}}, nil},
		{"from is inclusive", auditlog.Query{From: at(30)}, []string{"f7", "f6", "f5", "f4", "f3"}},
		{"to is exclusive", auditlog.Query{To: at(30)}, []string{"f2", "f1"}},
		{"from and to", auditlog.Query{From: at(20), To: at(50)}, []string{"f4", "f3", "f2"}},
		{"from below a millisecond", auditlog.Query{From: at(29).Add(time.Microsecond)}, []string{"f7", "f6", "f5", "f4", "f3"}},
		{"to below a millisecond", auditlog.Query{To: at(30).Add(-time.Microsecond)}, []string{"f2", "f1"}},
		{"everything", auditlog.Query{Service: "flowrepo", Name: "flowrepo.flow.created", Tenant: "t2", User: "bob", From: at(30), To: at(31), Payload: map[string]string{"flowId": "F1"}}, []string{"f3"}},
		{"nothing matches", auditlog.Query{Tenant: "t1", User: "dave"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			p := mustQuery(t, s, tt.q)
			if got := ids(p.Entries); !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if p.Total != int64(len(tt.want)) {
				t.Errorf("total %d, want %d", p.Total, len(tt.want))
			}
		})
	}
}

func testInvalidPayloadKey(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, filterData()...)
	for _, key := range []string{"", "a.b", "$where", "user'--", "a b", `a"b`, "ключ", strings.Repeat("k", 65), "a[b]", "a\x00"} {
		_, err := s.Query(ctx(t), auditlog.Query{Payload: map[string]string{key: "x"}})
		if !errors.Is(err, auditlog.ErrInvalidQuery) {
			t.Errorf("payload key %q: error %v, want ErrInvalidQuery", key, err)
		}
	}
	// The longest valid key and every allowed character.
	for _, key := range []string{strings.Repeat("k", 64), "A-z_0-9"} {
		if _, err := s.Query(ctx(t), auditlog.Query{Payload: map[string]string{key: "x"}}); err != nil {
			t.Errorf("payload key %q: %v", key, err)
		}
	}
	// Values are plain strings, whatever they hold.
	for _, v := range []string{`{"$ne":null}`, "' OR 1=1 --", `"`, "%", "_", `\`} {
		p, err := s.Query(ctx(t), auditlog.Query{Payload: map[string]string{"user": v}})
		if err != nil || len(p.Entries) != 0 {
			t.Errorf("payload value %q: %d entries, error %v; want none and no error", v, len(p.Entries), err)
		}
	}
}

// testUnstorableQueryText: a filter value with NUL or invalid UTF-8, or
// a time outside years 1 to 9999, is ErrInvalidQuery on every store
// (PostgreSQL would fail otherwise, SQLite answer).
func testUnstorableQueryText(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, filterData()...)
	for _, v := range []string{"a\x00", "\xff", "\xed\xa0\x80", "\x00"} {
		for name, q := range map[string]auditlog.Query{
			"id": {ID: v}, "service": {Service: v}, "name": {Name: v}, "tenant": {Tenant: v}, "user": {User: v},
			"payload": {Payload: map[string]string{"flowId": v}},
			"scope":   {Scope: &auditlog.Scope{User: "u", Tenant: v}},
		} {
			if _, err := s.Query(ctx(t), q); !errors.Is(err, auditlog.ErrInvalidQuery) {
				t.Errorf("%s %q: error %v, want ErrInvalidQuery", name, v, err)
			}
		}
	}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []auditlog.Query{{From: far}, {To: far}, {From: time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)}} {
		if _, err := s.Query(ctx(t), q); !errors.Is(err, auditlog.ErrInvalidQuery) {
			t.Errorf("from %s to %s: error %v, want ErrInvalidQuery", q.From, q.To, err)
		}
	}
}

func testNegativePaging(t *testing.T, s auditlog.Store) {
	for _, q := range []auditlog.Query{{Limit: -1}, {Offset: -1}} {
		if _, err := s.Query(ctx(t), q); !errors.Is(err, auditlog.ErrInvalidQuery) {
			t.Errorf("query %+v: error %v, want ErrInvalidQuery", q, err)
		}
	}
}

func testOrder(t *testing.T, s auditlog.Store) {
	// Inserted out of time order, with ties on createdAt broken by seq, and
	// one entry without createdAt (the oldest of all).
	mustAppend(t, s,
		entry("mid", "x.y", at(50), nil),
		entry("new", "x.y", at(90), nil),
		entry("tie1", "x.y", at(70), nil),
	)
	mustAppend(t, s,
		entry("tie2", "x.y", at(70), nil),
		entry("old", "x.y", at(10), nil),
		entry("none", "x.y", time.Time{}, nil),
		entry("tie3", "x.y", at(70), nil),
	)
	newest := []string{"new", "tie3", "tie2", "tie1", "mid", "old", "none"}
	if got := ids(mustQuery(t, s, auditlog.Query{}).Entries); !slices.Equal(got, newest) {
		t.Errorf("default order %v, want newest first %v", got, newest)
	}
	if got := ids(mustQuery(t, s, auditlog.Query{Order: auditlog.NewestFirst}).Entries); !slices.Equal(got, newest) {
		t.Errorf("NewestFirst %v, want %v", got, newest)
	}
	oldest := slices.Clone(newest)
	slices.Reverse(oldest)
	if got := ids(mustQuery(t, s, auditlog.Query{Order: auditlog.OldestFirst}).Entries); !slices.Equal(got, oldest) {
		t.Errorf("OldestFirst %v, want %v", got, oldest)
	}
}

func testLimitOffset(t *testing.T, s auditlog.Store) {
	var all []auditlog.Entry
	for i := range 12 {
		all = append(all, entry(fmt.Sprintf("e%02d", i), "x.y", at(i), nil))
	}
	mustAppend(t, s, all...)
	tests := []struct {
		q    auditlog.Query
		want []string
		next bool
	}{
		{auditlog.Query{Limit: 5}, []string{"e11", "e10", "e09", "e08", "e07"}, true},
		{auditlog.Query{Limit: 5, Offset: 5}, []string{"e06", "e05", "e04", "e03", "e02"}, true},
		{auditlog.Query{Limit: 5, Offset: 10}, []string{"e01", "e00"}, false},
		{auditlog.Query{Limit: 5, Offset: 7}, []string{"e04", "e03", "e02", "e01", "e00"}, false},
		{auditlog.Query{Limit: 5, Offset: 12}, nil, false},
		{auditlog.Query{Limit: 3, Offset: 2, Order: auditlog.OldestFirst}, []string{"e02", "e03", "e04"}, true},
		{auditlog.Query{Offset: 9}, []string{"e02", "e01", "e00"}, false}, // no limit
	}
	for _, tt := range tests {
		p := mustQuery(t, s, tt.q)
		if got := ids(p.Entries); !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
			t.Errorf("limit %d offset %d: got %v, want %v", tt.q.Limit, tt.q.Offset, got, tt.want)
		}
		if p.Total != 12 {
			t.Errorf("limit %d offset %d: total %d, want 12", tt.q.Limit, tt.q.Offset, p.Total)
		}
		if (p.Next != nil) != tt.next {
			t.Errorf("limit %d offset %d: next %v, want a next page: %v", tt.q.Limit, tt.q.Offset, p.Next, tt.next)
		}
	}
}

// pagingData holds 57 entries with many ties on createdAt, a few without
// createdAt, over three tenants and users.
func pagingData() []auditlog.Entry {
	var out []auditlog.Entry
	for i := range 57 {
		created := at(i / 4) // four entries per millisecond
		if i%19 == 0 {
			created = time.Time{}
		}
		out = append(out, entry(fmt.Sprintf("p%02d", i), "x.y", created, map[string]any{
			"user":   fmt.Sprintf("u%d", i%3),
			"tenant": fmt.Sprintf("t%d", i%2),
			"parity": fmt.Sprint(i % 2),
		}))
	}
	// Insert in a shuffled order, in several batches, so seq and createdAt
	// disagree.
	slices.SortFunc(out, func(a, b auditlog.Entry) int { return strings.Compare(reverse(a.ID), reverse(b.ID)) })
	return out
}

func reverse(s string) string {
	r := []byte(s)
	slices.Reverse(r)
	return string(r)
}

// testPageByteBudget: a page stops at Query.MaxBytes of headers and
// payloads (holding at least one entry), and following Next walks the
// whole set once, with or without the scope's merged form.
func testPageByteBudget(t *testing.T, s auditlog.Store) {
	data := pagingData()
	mustAppend(t, s, data...)
	size := len(data[0].Payload) // every payload is about this size
	for name, q := range map[string]auditlog.Query{
		"all":     {},
		"scope":   {Scope: &auditlog.Scope{User: "u2", Tenant: "t0"}},
		"payload": {Payload: map[string]string{"parity": "0"}},
	} {
		whole := mustQuery(t, s, q)
		for _, budget := range []int{1, size * 3, size * 10} {
			q := q
			q.Limit, q.MaxBytes = 1000, budget
			var walked []string
			for pages := 0; ; pages++ {
				if pages > len(whole.Entries)+1 {
					t.Fatalf("%s, budget %d: paging does not end", name, budget)
				}
				p := mustQuery(t, s, q)
				if len(p.Entries) == 0 && len(whole.Entries) > 0 {
					t.Fatalf("%s, budget %d: an empty page", name, budget)
				}
				var bytes int
				for _, e := range p.Entries[:max(len(p.Entries)-1, 0)] {
					bytes += len(e.Headers) + len(e.Payload)
				}
				if bytes >= budget {
					t.Errorf("%s, budget %d: page of %d entries holds %d bytes before its last", name, budget, len(p.Entries), bytes)
				}
				walked = append(walked, ids(p.Entries)...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if !slices.Equal(walked, ids(whole.Entries)) {
				t.Errorf("%s, budget %d: walked %v, want %v", name, budget, walked, ids(whole.Entries))
			}
		}
	}
}

func testCursorPaging(t *testing.T, s auditlog.Store) {
	data := pagingData()
	mustAppend(t, s, data[:20]...)
	mustAppend(t, s, data[20:]...)
	queries := map[string]auditlog.Query{
		"all":     {},
		"tenant":  {Tenant: "t1"},
		"payload": {Payload: map[string]string{"parity": "0"}},
		"scope":   {Scope: &auditlog.Scope{User: "u2", Tenant: "t0"}},
		"range":   {From: at(2), To: at(11)},
	}
	for name, q := range queries {
		for _, order := range []auditlog.Order{auditlog.NewestFirst, auditlog.OldestFirst} {
			t.Run(fmt.Sprintf("%s/order%d", name, order), func(t *testing.T) {
				q := q
				q.Order = order
				whole := mustQuery(t, s, q)
				if len(whole.Entries) == 0 || whole.Next != nil {
					t.Fatalf("whole set: %d entries, next %v", len(whole.Entries), whole.Next)
				}
				for _, size := range []int{1, 4, 7, len(whole.Entries)} {
					// By cursor.
					var byCursor []string
					q.Limit, q.Offset, q.After = size, 0, nil
					for pages := 0; ; pages++ {
						if pages > len(whole.Entries)+1 {
							t.Fatalf("size %d: cursor paging does not end", size)
						}
						p := mustQuery(t, s, q)
						if p.Total != int64(len(whole.Entries)) {
							t.Fatalf("size %d: total %d on a cursor page, want %d", size, p.Total, len(whole.Entries))
						}
						byCursor = append(byCursor, ids(p.Entries)...)
						if p.Next == nil {
							break
						}
						last := p.Entries[len(p.Entries)-1]
						if p.Next.Seq != last.Seq || !p.Next.CreatedAt.Equal(last.CreatedAt) {
							t.Fatalf("size %d: next %+v is not the last entry's position (%v, %d)", size, *p.Next, last.CreatedAt, last.Seq)
						}
						q.After = p.Next
						q.Offset = 3 // ignored with a cursor
					}
					if !slices.Equal(byCursor, ids(whole.Entries)) {
						t.Errorf("size %d: cursor pages %v, want %v", size, byCursor, ids(whole.Entries))
					}
					// By offset.
					var byOffset []string
					q.After = nil
					for off := 0; off < len(whole.Entries); off += size {
						q.Offset = off
						byOffset = append(byOffset, ids(mustQuery(t, s, q).Entries)...)
					}
					if !slices.Equal(byOffset, byCursor) {
						t.Errorf("size %d: offset pages %v differ from cursor pages %v", size, byOffset, byCursor)
					}
				}
			})
		}
	}
}

func testTotal(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, filterData()...)
	tests := []struct {
		name string
		q    auditlog.Query
		want int64
	}{
		{"whole log", auditlog.Query{Limit: 1}, 7},
		{"filtered", auditlog.Query{Name: "flowrepo.flow.created", Limit: 1}, 3},
		{"payload filtered", auditlog.Query{Payload: map[string]string{"flowId": "F1"}, Limit: 1}, 3},
		{"scoped", auditlog.Query{Scope: &auditlog.Scope{User: "alice"}, Limit: 1}, 2},
		{"scoped with tenant", auditlog.Query{Scope: &auditlog.Scope{User: "dave", Tenant: "t1"}, Limit: 1}, 4},
		{"scoped, own entries inside the tenant", auditlog.Query{Scope: &auditlog.Scope{User: "alice", Tenant: "t1"}, Limit: 1}, 3},
		{"scoped with tenant and time", auditlog.Query{Scope: &auditlog.Scope{User: "dave", Tenant: "t1"}, From: at(20), To: at(70), Limit: 1}, 2},
		{"scoped and filtered", auditlog.Query{Scope: &auditlog.Scope{User: "dave", Tenant: "t1"}, Name: "flowrepo.flow.created", Limit: 1}, 2},
		{"past the end", auditlog.Query{Name: "flowrepo.flow.created", Limit: 1, Offset: 10}, 3},
		{"none", auditlog.Query{Name: "no.such.event"}, 0},
	}
	for _, tt := range tests {
		if p := mustQuery(t, s, tt.q); p.Total != tt.want {
			t.Errorf("%s: total %d, want %d", tt.name, p.Total, tt.want)
		}
	}
}

func testScope(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, filterData()...)
	tests := []struct {
		name  string
		scope *auditlog.Scope
		q     auditlog.Query
		want  []string
	}{
		{"admin sees all", nil, auditlog.Query{}, []string{"f7", "f6", "f5", "f4", "f3", "f2", "f1"}},
		{"own and tenant's", &auditlog.Scope{User: "bob", Tenant: "t1"}, auditlog.Query{}, []string{"f6", "f3", "f2", "f1"}},
		{"tenant's entries of other users", &auditlog.Scope{User: "erin", Tenant: "t1"}, auditlog.Query{}, []string{"f6", "f2", "f1"}},
		{"own only", &auditlog.Scope{User: "dave", Tenant: "t9"}, auditlog.Query{}, []string{"f7"}},
		{"filters narrow the scope", &auditlog.Scope{User: "bob", Tenant: "t1"}, auditlog.Query{Name: "flowrepo.flow.created"}, []string{"f3", "f1"}},
		{"a filter cannot widen it", &auditlog.Scope{User: "bob", Tenant: "t1"}, auditlog.Query{Tenant: "t2", User: "bob"}, []string{"f3"}},
		{"a tenant filter outside the scope", &auditlog.Scope{User: "alice", Tenant: "t1"}, auditlog.Query{Tenant: "t2"}, nil},
		{"a payload filter cannot widen it", &auditlog.Scope{User: "alice"}, auditlog.Query{Payload: map[string]string{"flowId": "F1"}}, []string{"f1"}},
		{"empty scope sees nothing", &auditlog.Scope{}, auditlog.Query{}, nil},
		{"tenant only", &auditlog.Scope{Tenant: "t2"}, auditlog.Query{}, []string{"f3"}},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			q := tt.q
			q.Scope = tt.scope
			for _, limit := range []int{0, 2} {
				q.Limit = limit
				p := mustQuery(t, s, q)
				want := tt.want
				if limit > 0 && len(want) > limit {
					want = want[:limit]
				}
				if got := ids(p.Entries); !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
					t.Errorf("limit %d: got %v, want %v", limit, got, want)
				}
				if p.Total != int64(len(tt.want)) {
					t.Errorf("limit %d: total %d, want %d", limit, p.Total, len(tt.want))
				}
			}
		})
	}
}

// testTenantlessScope is the case OIH gets wrong: there a user without a
// tenant matches {'payload.tenant': null}, i.e. every entry without a
// tenant, which is most IAM and secret events.
func testTenantlessScope(t *testing.T, s auditlog.Store) {
	mustAppend(t, s,
		entry("mine", "flowrepo.flow.created", at(1), map[string]any{"user": "me"}),
		entry("iam", "iam.user.created", at(2), map[string]any{"id": "someone", "username": "someone@example.com"}),
		entry("secret", "secrets.secret.created", at(3), map[string]any{"user": "other"}),
		entry("empty-tenant", "x.y", at(4), map[string]any{"user": "other", "tenant": ""}),
		entry("no-user", "x.y", at(5), map[string]any{"user": ""}),
		entry("tenant", "x.y", at(6), map[string]any{"user": "other", "tenant": "t1"}),
	)
	p := mustQuery(t, s, auditlog.Query{Scope: &auditlog.Scope{User: "me", Tenant: ""}})
	if got := ids(p.Entries); !slices.Equal(got, []string{"mine"}) || p.Total != 1 {
		t.Errorf("a tenant-less user sees %v (total %d), want only [mine]", got, p.Total)
	}
	// And a caller with neither user nor tenant sees nothing, not the
	// entries whose user and tenant are empty.
	p = mustQuery(t, s, auditlog.Query{Scope: &auditlog.Scope{}})
	if len(p.Entries) != 0 || p.Total != 0 {
		t.Errorf("an empty scope sees %v (total %d), want nothing", ids(p.Entries), p.Total)
	}
}

const (
	deleted      = "u-deleted"
	deletedMail  = "deleted@example.com"
	deletedMail2 = "deleted.new@example.com"
	other        = "u-other"
	otherMail    = "other@example.com"
	admin        = "u-admin"
)

// anonymiseData is a log touching the deleted user in every way OIH's IAM
// records them, and another user beside.
func anonymiseData() []auditlog.Entry {
	return []auditlog.Entry{
		entry("created", "iam.user.created", at(1), map[string]any{"id": deleted, "username": deletedMail}),
		entry("modified", "iam.user.modified", at(2), map[string]any{"id": deleted, "username": deletedMail2, "user": admin}),
		entry("login", "iam.user.loginFailed", at(3), map[string]any{"user": deletedMail}),
		entry("token", "iam.token.deleted", at(4), map[string]any{"account": deleted}),
		entry("flow", "flowrepo.flow.created", at(5), map[string]any{"user": deleted, "tenant": "t1", "flowId": "F1", "owner": deleted, "n": 7}),
		entry("deleted", "iam.user.deleted", at(6), map[string]any{"id": deleted, "user": admin}),
		entry("other-flow", "flowrepo.flow.created", at(7), map[string]any{"user": other, "tenant": "t1", "flowId": "F2"}),
		entry("other-created", "iam.user.created", at(8), map[string]any{"id": other, "username": otherMail}),
		entry("other-login", "iam.user.loginFailed", at(9), map[string]any{"user": otherMail}),
		entry("other-nested", "x.y", at(10), map[string]any{"user": other, "details": map[string]any{"user": deleted}}),
	}
}

func testAnonymise(t *testing.T, s auditlog.Store) {
	data := anonymiseData()
	mustAppend(t, s, data...)
	n, err := auditlog.Anonymise(ctx(t), s, deleted)
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("anonymised %d entries, want 6", n)
	}
	R := auditlog.Redacted
	want := map[string]string{
		"created":       `{"id":"` + R + `","username":"` + R + `"}`,
		"modified":      `{"id":"` + R + `","username":"` + R + `","user":"` + admin + `"}`,
		"login":         `{"user":"` + R + `"}`,
		"token":         `{"account":"` + R + `"}`,
		"flow":          `{"user":"` + R + `","tenant":"t1","flowId":"F1","owner":"` + R + `","n":7}`,
		"deleted":       `{"id":"` + R + `","user":"` + admin + `"}`,
		"other-flow":    string(data[6].Payload),
		"other-created": string(data[7].Payload),
		"other-login":   string(data[8].Payload),
		"other-nested":  string(data[9].Payload),
	}
	wantUser := map[string]string{"modified": admin, "login": R, "flow": R, "deleted": admin, "other-flow": other, "other-login": otherMail, "other-nested": other}
	p := mustQuery(t, s, auditlog.Query{})
	for _, e := range p.Entries {
		if !testkit.JSONEqual(e.Payload, []byte(want[e.ID])) {
			t.Errorf("%s: payload %s, want %s", e.ID, e.Payload, want[e.ID])
		}
		if e.User != wantUser[e.ID] {
			t.Errorf("%s: user column %q, want %q", e.ID, e.User, wantUser[e.ID])
		}
	}
	// The deleted user's sub and e-mail no longer find anything, by scope,
	// user filter or payload filter; the redacted entries stay findable
	// by what was not redacted.
	for name, q := range map[string]auditlog.Query{
		"scope":          {Scope: &auditlog.Scope{User: deleted}},
		"scope e-mail":   {Scope: &auditlog.Scope{User: deletedMail}},
		"user":           {User: deleted},
		"payload user":   {Payload: map[string]string{"user": deleted}},
		"payload id":     {Payload: map[string]string{"id": deleted}},
		"payload e-mail": {Payload: map[string]string{"username": deletedMail}},
		"payload owner":  {Payload: map[string]string{"owner": deleted}},
	} {
		if p := mustQuery(t, s, q); p.Total != 0 || len(p.Entries) != 0 {
			t.Errorf("%s: still finds %v after anonymisation", name, ids(p.Entries))
		}
	}
	if got := ids(mustQuery(t, s, auditlog.Query{Payload: map[string]string{"flowId": "F1"}}).Entries); !slices.Equal(got, []string{"flow"}) {
		t.Errorf("flowId F1 finds %v after anonymisation, want [flow]", got)
	}
	if got := ids(mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": R}}).Entries); !slices.Equal(got, []string{"flow", "login"}) {
		t.Errorf("payload user %s finds %v, want [flow login]", R, got)
	}
	if got := ids(mustQuery(t, s, auditlog.Query{Scope: &auditlog.Scope{User: other}}).Entries); !slices.Equal(got, []string{"other-nested", "other-flow"}) {
		t.Errorf("the other user's scope finds %v, want [other-nested other-flow]", got)
	}
	if names, err := auditlog.Usernames(ctx(t), s, nil, deleted); err != nil || len(names) != 0 {
		t.Errorf("usernames after anonymisation: %v, %v; want none", names, err)
	}
	// Idempotent.
	n, err = auditlog.Anonymise(ctx(t), s, deleted)
	if err != nil || n != 0 {
		t.Errorf("second anonymisation changed %d entries (error %v), want 0", n, err)
	}
	// A user unknown to the log.
	if n, err := auditlog.Anonymise(ctx(t), s, "nobody"); err != nil || n != 0 {
		t.Errorf("anonymising an unknown user changed %d entries (error %v), want 0", n, err)
	}
	// An empty user id anonymises nothing (entries without a user must not match).
	mustAppend(t, s, entry("blank", "x.y", at(20), map[string]any{"user": "", "id": ""}))
	if n, err := auditlog.Anonymise(ctx(t), s, ""); err != nil || n != 0 {
		t.Errorf("anonymising an empty user changed %d entries (error %v), want 0", n, err)
	}
}

func testUsernames(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, anonymiseData()...)
	mustAppend(t, s,
		entry("again", "iam.user.modified", at(20), map[string]any{"id": deleted, "username": deletedMail}),
		entry("not-a-user-event", "iam.token.created", at(21), map[string]any{"id": deleted, "username": "ignored@example.com"}),
		entry("not-a-string", "iam.user.modified", at(22), map[string]any{"id": deleted, "username": 12}),
	)
	// Pushed by someone other than IAM (POST /logs by a non-admin).
	pushed := entry("pushed", "iam.user.created", at(23), map[string]any{"id": deleted, "username": "victim@example.com"})
	pushed.ServiceName = "mallory@example.com"
	mustAppend(t, s, pushed)
	tests := map[string][]string{
		deleted: {deletedMail2, deletedMail},
		other:   {otherMail},
		"none":  nil,
		"":      nil,
	}
	for id, want := range tests {
		got, err := auditlog.Usernames(ctx(t), s, nil, id)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Errorf("usernames of %q: %v, want %v", id, got, want)
		}
	}
}

func testConcurrentAppend(t *testing.T, s auditlog.Store) {
	const writers, batches, size = 6, 8, 25
	var wg sync.WaitGroup
	counts := make([]int, writers)
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var batch []auditlog.Entry
				for i := range size {
					// Writers w and w+1 share half their ids: both try to
					// store them, one wins.
					id := fmt.Sprintf("w%d-b%d-%d", w, b, i)
					if i%2 == 1 {
						id = fmt.Sprintf("shared-%d-b%d-%d", w/2, b, i)
					}
					batch = append(batch, entry(id, "x.y", at(b*size+i), map[string]any{"writer": fmt.Sprint(w)}))
				}
				n, err := s.Append(ctx(t), batch)
				if err != nil {
					errs[w] = err
					return
				}
				counts[w] += n
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	// Per writer pair: 2 × 13 own ids + 12 shared ids per batch.
	want := (writers / 2) * batches * (2*13 + 12)
	if total != want {
		t.Errorf("appends reported %d new entries, want %d", total, want)
	}
	p := mustQuery(t, s, auditlog.Query{})
	if p.Total != int64(want) || len(p.Entries) != want {
		t.Errorf("stored %d entries (total %d), want %d", len(p.Entries), p.Total, want)
	}
	seen := map[string]bool{}
	seqs := map[int64]bool{}
	for _, e := range p.Entries {
		if seen[e.ID] || seqs[e.Seq] {
			t.Fatalf("entry %s (seq %d) stored twice", e.ID, e.Seq)
		}
		seen[e.ID], seqs[e.Seq] = true, true
	}
}

func testPing(t *testing.T, s auditlog.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Errorf("ping: %v", err)
	}
	// A store that cannot answer says so (Run closes it again: Close is
	// idempotent).
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.Ping(ctx(t)); err == nil {
		t.Error("ping of a closed store succeeded")
	}
}

func testLargeBatch(t *testing.T, s auditlog.Store) {
	d := NewDataset(7, 2000)
	batch := d.Entries(0, 2000)
	batch = append(batch, batch[10]) // one repeat within the batch
	if n := mustAppend(t, s, batch...); n != 2000 {
		t.Errorf("append of 2,000 entries returned %d", n)
	}
	p := mustQuery(t, s, auditlog.Query{Limit: 10})
	if p.Total != 2000 {
		t.Errorf("total %d, want 2000", p.Total)
	}
	// Every entry is findable by its payload.
	e := batch[1234]
	p = mustQuery(t, s, auditlog.Query{Payload: map[string]string{"id": payloadOf(t, e)["id"].(string)}})
	if !slices.Contains(ids(p.Entries), e.ID) {
		t.Errorf("entry %s of a large batch not found by its payload id", e.ID)
	}
}

// rewriteData is a log whose entries hold the terms user=alice and
// flowId=F2 in every way a payload can, and cannot.
func rewriteData() []auditlog.Entry {
	hdr := entry("holds-both", "x.created", at(3), map[string]any{"user": "alice", "tenant": "t1", "flowId": "F2"})
	hdr.Headers = json.RawMessage(`{"trace":"abc"}`)
	return []auditlog.Entry{
		entry("holds-user", "x.created", at(1), map[string]any{"user": "alice", "tenant": "t1", "note": "n"}),
		entry("holds-flow", "x.created", at(2), map[string]any{"user": "bob", "flowId": "F2"}),
		hdr,
		entry("other-user", "x.created", at(4), map[string]any{"user": "alicia", "flowId": "F1"}),
		entry("other-key", "x.created", at(5), map[string]any{"owner": "alice"}),
		entry("nested", "x.created", at(6), map[string]any{"details": map[string]any{"user": "alice"}}),
		entry("not-a-string", "x.created", at(7), map[string]any{"flowId": 2}),
	}
}

func testRewrite(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, rewriteData()...)
	before := map[string]auditlog.Entry{}
	for _, e := range mustQuery(t, s, auditlog.Query{}).Entries {
		before[e.ID] = e
	}
	var seen []string
	n, err := s.Rewrite(ctx(t), auditlog.Selection{Terms: []auditlog.Term{{Key: "user", Value: "alice"}, {Key: "flowId", Value: "F2"}}}, func(e *auditlog.Entry) (bool, error) {
		seen = append(seen, e.ID)
		if !testkit.JSONEqual(e.Payload, before[e.ID].Payload) || e.User != before[e.ID].User || e.Seq != before[e.ID].Seq {
			t.Errorf("edit got %+v, want the stored entry %+v", *e, before[e.ID])
		}
		switch e.ID {
		case "holds-user":
			e.Payload = json.RawMessage(`{"user":"anon","tenant":"t1","note":"n","flowId":"F9"}`)
			e.User = "anon"
			e.Name, e.Tenant = "ignored.name", "ignored-tenant" // not the edit's to change
		case "holds-both":
			e.Payload = json.RawMessage(`{"user":"alice","tenant":"t1"}`)
		default:
			return false, nil // seen, left alone
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("rewrite changed %d entries, want 2", n)
	}
	if want := []string{"holds-user", "holds-flow", "holds-both"}; !slices.Equal(seen, want) {
		t.Errorf("edit saw %v, want %v in seq order", seen, want)
	}
	after := map[string]auditlog.Entry{}
	for _, e := range mustQuery(t, s, auditlog.Query{}).Entries {
		after[e.ID] = e
	}
	wantPayload := map[string]string{
		"holds-user": `{"user":"anon","tenant":"t1","note":"n","flowId":"F9"}`,
		"holds-both": `{"user":"alice","tenant":"t1"}`,
	}
	for id, b := range before {
		a := after[id]
		want := b
		if p, ok := wantPayload[id]; ok {
			want.Payload = json.RawMessage(p)
		}
		if id == "holds-user" {
			want.User = "anon"
		}
		if !testkit.JSONEqual(a.Payload, want.Payload) || a.User != want.User {
			t.Errorf("%s after rewrite: payload %s user %q, want %s %q", id, a.Payload, a.User, want.Payload, want.User)
		}
		if a.Seq != b.Seq || a.Name != b.Name || a.ServiceName != b.ServiceName || a.Tenant != b.Tenant || !a.CreatedAt.Equal(b.CreatedAt) ||
			!a.ReceivedAt.Equal(b.ReceivedAt) || !testkit.JSONEqual(a.Headers, b.Headers) || a.Unknown != b.Unknown {
			t.Errorf("%s after rewrite: %+v, want every field but payload and user as stored: %+v", id, a, b)
		}
	}
	// Payload filters and scope find rewritten entries by their new values
	// only.
	for _, tt := range []struct {
		q    auditlog.Query
		want []string
	}{
		{auditlog.Query{Payload: map[string]string{"user": "alice"}}, []string{"holds-both"}},
		{auditlog.Query{Payload: map[string]string{"user": "anon"}}, []string{"holds-user"}},
		{auditlog.Query{Payload: map[string]string{"flowId": "F2"}}, []string{"holds-flow"}},
		{auditlog.Query{Payload: map[string]string{"flowId": "F9", "note": "n"}}, []string{"holds-user"}},
		{auditlog.Query{Scope: &auditlog.Scope{User: "anon"}}, []string{"holds-user"}},
		{auditlog.Query{User: "alice"}, []string{"holds-both"}},
	} {
		p := mustQuery(t, s, tt.q)
		if got := ids(p.Entries); !slices.Equal(got, tt.want) || p.Total != int64(len(tt.want)) {
			t.Errorf("%+v after rewrite finds %v (total %d), want %v", tt.q, got, p.Total, tt.want)
		}
	}
	// No terms: nothing to find, edit never called.
	n, err = s.Rewrite(ctx(t), auditlog.Selection{Terms: nil}, func(*auditlog.Entry) (bool, error) {
		t.Error("edit called for a rewrite without terms")
		return true, nil
	})
	if err != nil || n != 0 {
		t.Errorf("rewrite without terms: %d, %v; want 0, nil", n, err)
	}
}

func testRewriteAtomic(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, rewriteData()...)
	terms := []auditlog.Term{{Key: "user", Value: "alice"}}
	failure := errors.New("edit failed")
	calls := 0
	_, err := s.Rewrite(ctx(t), auditlog.Selection{Terms: terms}, func(e *auditlog.Entry) (bool, error) {
		calls++
		if calls == 2 {
			return false, failure
		}
		e.Payload = json.RawMessage(`{"user":"changed"}`)
		e.User = "changed"
		return true, nil
	})
	if !errors.Is(err, failure) {
		t.Errorf("rewrite with a failing edit: %v, want the edit's error", err)
	}
	if calls != 2 {
		t.Errorf("edit called %d times, want 2 (the first entry changed, then the failure)", calls)
	}
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": "alice"}}); p.Total != 2 {
		t.Errorf("after a failed rewrite %d entries hold user alice, want both still", p.Total)
	}
	if p := mustQuery(t, s, auditlog.Query{User: "changed"}); p.Total != 0 {
		t.Errorf("a failed rewrite stored %v", ids(p.Entries))
	}
}

func testRewriteRefuses(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, rewriteData()...)
	never := func(*auditlog.Entry) (bool, error) {
		t.Error("edit called for a refused rewrite")
		return false, nil
	}
	for _, key := range []string{"", "a.b", "user'--", strings.Repeat("k", 65)} {
		if _, err := s.Rewrite(ctx(t), auditlog.Selection{Terms: []auditlog.Term{{Key: "user", Value: "alice"}, {Key: key, Value: "x"}}}, never); !errors.Is(err, auditlog.ErrInvalidQuery) {
			t.Errorf("term key %q: error %v, want ErrInvalidQuery", key, err)
		}
	}
	for _, payload := range []string{`[1]`, `{"user":`, ``} {
		_, err := s.Rewrite(ctx(t), auditlog.Selection{Terms: []auditlog.Term{{Key: "user", Value: "alice"}}}, func(e *auditlog.Entry) (bool, error) {
			e.Payload = json.RawMessage(payload)
			return true, nil
		})
		if !errors.Is(err, auditlog.ErrInvalidEntry) {
			t.Errorf("edit to payload %q: error %v, want ErrInvalidEntry", payload, err)
		}
	}
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": "alice"}}); p.Total != 2 {
		t.Errorf("after refused rewrites %d entries hold user alice, want 2", p.Total)
	}
}

// testConcurrentRewrites runs rewrites that each change another key of
// the same entries at once: a store that let one rewrite read an entry
// while another was changing it would store one change over the other.
func testConcurrentRewrites(t *testing.T, s auditlog.Store) {
	const entries, writers = 20, 4
	var batch []auditlog.Entry
	for i := range entries {
		p := map[string]any{"group": "g"}
		for w := range writers {
			p[fmt.Sprintf("k%d", w)] = "before"
		}
		batch = append(batch, entry(fmt.Sprintf("c%02d", i), "x.y", at(i), p))
	}
	mustAppend(t, s, batch...)
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		key := fmt.Sprintf("k%d", w)
		wg.Go(func() {
			_, errs[w] = s.Rewrite(ctx(t), auditlog.Selection{Terms: []auditlog.Term{{Key: "group", Value: "g"}}}, func(e *auditlog.Entry) (bool, error) {
				var p map[string]any
				if err := json.Unmarshal(e.Payload, &p); err != nil {
					return false, err
				}
				p[key] = "after"
				b, err := json.Marshal(p)
				e.Payload = b
				return true, err
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range mustQuery(t, s, auditlog.Query{}).Entries {
		p := payloadOf(t, e)
		for w := range writers {
			if k := fmt.Sprintf("k%d", w); p[k] != "after" {
				t.Errorf("%s: %s is %v after every rewrite ran, want after: a concurrent rewrite lost it (%s)", e.ID, k, p[k], e.Payload)
			}
		}
	}
}

// testLargeRewrite rewrites more entries than one statement writes.
func testLargeRewrite(t *testing.T, s auditlog.Store) {
	const n = 1234
	var batch []auditlog.Entry
	for i := range n {
		batch = append(batch, entry(fmt.Sprintf("l%04d", i), "x.y", at(i), map[string]any{"user": "big", "i": fmt.Sprint(i)}))
	}
	mustAppend(t, s, batch...)
	changed, err := s.Rewrite(ctx(t), auditlog.Selection{Terms: []auditlog.Term{{Key: "user", Value: "big"}}}, func(e *auditlog.Entry) (bool, error) {
		p := payloadOf(t, *e)
		if p["i"] == "7" {
			return false, nil
		}
		e.Payload = json.RawMessage(`{"user":"small","i":"` + p["i"].(string) + `","edited":"yes"}`)
		if p["i"] == "8" {
			e.Payload = json.RawMessage(`{}`) // nothing left to index
		}
		e.User = "small"
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if changed != n-1 {
		t.Errorf("rewrite changed %d entries, want %d", changed, n-1)
	}
	for _, tt := range []struct {
		q    auditlog.Query
		want int64
	}{
		{auditlog.Query{Payload: map[string]string{"user": "big"}}, 1},
		{auditlog.Query{Payload: map[string]string{"user": "small", "edited": "yes"}}, n - 2},
		{auditlog.Query{Payload: map[string]string{"i": "1233"}}, 1},
		{auditlog.Query{Payload: map[string]string{"i": "8"}}, 0},
		{auditlog.Query{User: "small"}, n - 1},
	} {
		if p := mustQuery(t, s, tt.q); p.Total != tt.want {
			t.Errorf("%+v: %d entries, want %d", tt.q, p.Total, tt.want)
		}
	}
	p := mustQuery(t, s, auditlog.Query{ID: "l1000"})
	if len(p.Entries) != 1 || !testkit.JSONEqual(p.Entries[0].Payload, []byte(`{"user":"small","i":"1000","edited":"yes"}`)) || p.Entries[0].User != "small" {
		t.Errorf("entry l1000 after the rewrite: %+v", p.Entries)
	}
}

// testSeqCommitOrder checks what a reader following the log by seq relies
// on: once it has seen seq n, no entry below n appears later.
func testSeqCommitOrder(t *testing.T, s auditlog.Store) {
	const writers, batches, size = 4, 40, 5
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var batch []auditlog.Entry
				for i := range size {
					batch = append(batch, entry(fmt.Sprintf("w%d-%d-%d", w, b, i), "x.y", at(i), nil))
				}
				if _, err := s.Append(ctx(t), batch); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[int64]bool{}
	var highest int64
	for reads, finished := 0, false; !finished; reads++ {
		select {
		case <-done:
			finished = true // one more read, of everything
		default:
		}
		p := mustQuery(t, s, auditlog.Query{})
		var newest int64
		for _, e := range p.Entries {
			if seen[e.Seq] {
				continue
			}
			if e.Seq < highest {
				t.Fatalf("read %d: seq %d appeared after seq %d had been read: appends did not commit in seq order", reads, e.Seq, highest)
			}
			seen[e.Seq] = true
			newest = max(newest, e.Seq)
		}
		highest = max(highest, newest)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != writers*batches*size {
		t.Errorf("read %d entries, want %d", len(seen), writers*batches*size)
	}
}
