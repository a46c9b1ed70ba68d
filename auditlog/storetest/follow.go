package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// testSeqOrder checks what a reader following the log reads by: the
// entries in the order they were stored, those after a position, pages by
// seq, the last stored entry, and pages without their total.
func testSeqOrder(t *testing.T, s auditlog.Store) {
	// createdAt out of storing order, so that seq order is not createdAt's.
	data := []auditlog.Entry{
		entry("s1", "flowrepo.flow.created", at(50), map[string]any{"tenant": "t1"}),
		entry("s2", "flowrepo.flow.created", at(10), map[string]any{"tenant": "t2"}),
		entry("s3", "flowrepo.flow.deleted", at(40), map[string]any{"tenant": "t1"}),
		entry("s4", "flowrepo.flow.created", at(20), map[string]any{"tenant": "t1"}),
		entry("s5", "flowrepo.flow.created", at(30), map[string]any{"tenant": "t2"}),
	}
	for _, e := range data {
		mustAppend(t, s, e)
	}
	all := mustQuery(t, s, auditlog.Query{Order: auditlog.BySeq})
	if got := ids(all.Entries); !slices.Equal(got, []string{"s1", "s2", "s3", "s4", "s5"}) {
		t.Fatalf("by seq: %v", got)
	}
	seq := func(id string) int64 {
		i := slices.IndexFunc(all.Entries, func(e auditlog.Entry) bool { return e.ID == id })
		return all.Entries[i].Seq
	}
	tests := []struct {
		name      string
		q         auditlog.Query
		want      []string
		wantTotal int64
	}{
		{"after a position", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s2")}, []string{"s3", "s4", "s5"}, 3},
		{"after the last", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s5")}, nil, 0},
		{"after a position, filtered", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s1"), Tenant: "t1"}, []string{"s3", "s4"}, 2},
		{"after a position, scoped", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s1"), Scope: &auditlog.Scope{User: "nobody", Tenant: "t2"}, Limit: 5}, []string{"s2", "s5"}, 2},
		{"after a position, newest first", auditlog.Query{AfterSeq: seq("s2")}, []string{"s3", "s5", "s4"}, 3},
		{"the last stored", auditlog.Query{Order: auditlog.BySeqDesc, Limit: 1}, []string{"s5"}, 5},
		{"without the total", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s3"), SkipTotal: true}, []string{"s4", "s5"}, 0},
		{"without the total, nothing", auditlog.Query{Order: auditlog.BySeq, AfterSeq: seq("s5"), SkipTotal: true, Payload: map[string]string{"tenant": "t1"}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustQuery(t, s, tt.q)
			if got := ids(p.Entries); !slices.Equal(got, tt.want) && (len(got) != 0 || len(tt.want) != 0) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if p.Total != tt.wantTotal {
				t.Errorf("total %d, want %d", p.Total, tt.wantTotal)
			}
		})
	}
	// Pages by seq, both ways, each after the cursor of the one before.
	for _, order := range []auditlog.Order{auditlog.BySeq, auditlog.BySeqDesc} {
		var got []string
		q := auditlog.Query{Order: order, Limit: 2, Tenant: "t1"}
		for range 5 {
			p := mustQuery(t, s, q)
			got = append(got, ids(p.Entries)...)
			if p.Next == nil {
				break
			}
			q.After = p.Next
		}
		want := []string{"s1", "s3", "s4"}
		if order == auditlog.BySeqDesc {
			slices.Reverse(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("order %d, pages of 2: %v, want %v", order, got, want)
		}
	}
	for _, q := range []auditlog.Query{{Order: auditlog.BySeqDesc + 1}, {Order: -1}, {AfterSeq: -1}} {
		if _, err := s.Query(ctx(t), q); err == nil {
			t.Errorf("query %+v: accepted", q)
		}
	}
}

// testMatches checks auditlog.Query.Matches against the store: for random
// queries over a log holding every kind of value the filters look at, the
// entries the store selects are exactly those Matches accepts.
func testMatches(t *testing.T, s auditlog.Store) {
	data := filterData()
	data[3].ServiceName = "accounts"
	data[4].ServiceName = "accounts"
	data = append(data,
		entry("m1", "x.y", time.Time{}, map[string]any{"user": "alice", "flowId": "F2"}), // no createdAt
		entry("m2", "x.y", at(30), map[string]any{"user": "", "tenant": ""}),
		entry("m3", "flowrepo.flow.created", at(30).Add(time.Millisecond), map[string]any{"user": "bob", "tenant": "t2", "flowId": 7}),
	)
	mustAppend(t, s, data...)
	all := mustQuery(t, s, auditlog.Query{Order: auditlog.BySeq}).Entries
	if len(all) != len(data) {
		t.Fatalf("%d entries stored, want %d", len(all), len(data))
	}
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 7))
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	when := func() time.Time {
		if r.IntN(3) > 0 {
			return time.Time{}
		}
		return at(r.IntN(80)).Add(time.Duration(r.IntN(3)-1) * time.Microsecond)
	}
	for i := range 300 {
		q := auditlog.Query{
			ID:      pick("", "", "", "f3", "m1", "zz"),
			Service: pick("", "", "", "accounts", "flowrepo", "x"),
			Name:    pick("", "", "", "flowrepo.flow.created", "x.y", "iam.user.created"),
			Tenant:  pick("", "", "", "t1", "t2", "t9"),
			User:    pick("", "", "", "alice", "bob", "carol@example.com", "dave"),
			From:    when(),
			To:      when(),
			Order:   auditlog.BySeq,
		}
		if r.IntN(3) == 0 {
			q.AfterSeq = all[r.IntN(len(all))].Seq
		}
		if r.IntN(2) == 0 {
			q.Payload = map[string]string{pick("flowId", "user", "tenant", "status", "count", "nested"): pick("F1", "F2", "alice", "t1", "42", "7")}
		}
		if r.IntN(2) == 0 {
			q.Scope = &auditlog.Scope{User: pick("", "alice", "bob", "dave"), Tenant: pick("", "t1", "t2")}
		}
		var want []string
		for _, e := range all {
			if q.Matches(e) {
				want = append(want, e.ID)
			}
		}
		got := ids(mustQuery(t, s, q).Entries)
		if !slices.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
			t.Fatalf("query %d (seed %d) %s: the store selects %v, Matches %v", i, seed, describe(q), got, want)
		}
	}
}

func describe(q auditlog.Query) string {
	s := fmt.Sprintf("%+v", q)
	if q.Scope != nil {
		s += fmt.Sprintf(" scope %+v", *q.Scope)
	}
	return s
}

// testAppendedAsStored checks the entries a store sets in Append
// (AppendedAsStored), which a live feed hands on without reading them
// back: each must be the entry a read returns, seq included. A store that
// sets none passes; a batch with an id already stored is never set.
func testAppendedAsStored(t *testing.T, s auditlog.Store) {
	mustAppend(t, s, entry("before", "flowrepo.flow.created", at(1), nil))
	batch := []auditlog.Entry{
		entry("a1", "flowrepo.flow.created", at(2).Add(123*time.Microsecond), map[string]any{"tenant": "t1", "user": "u1", "n": 1}),
		entry("a2", "flowrepo.flow.deleted", time.Time{}, map[string]any{"tenant": "t2"}),
		entry("a3", "flowrepo.flow.created", at(3).In(time.FixedZone("x", 3600)), nil),
	}
	batch[1].Headers = []byte(`{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)
	batch[2].Payload = nil
	if n := mustAppend(t, s, batch...); n != 3 {
		t.Fatalf("appended %d of 3", n)
	}
	if auditlog.AppendedAsStored(batch) {
		all := mustQuery(t, s, auditlog.Query{Order: auditlog.BySeq, Limit: 10})
		for _, e := range batch {
			i := slices.IndexFunc(all.Entries, func(r auditlog.Entry) bool { return r.ID == e.ID })
			if i < 0 {
				t.Fatalf("%s not stored", e.ID)
			}
			if !reflect.DeepEqual(e, all.Entries[i]) {
				t.Errorf("appended as stored:\n%+v\nread:\n%+v", e, all.Entries[i])
			}
		}
	} else {
		for _, e := range batch {
			if e.Seq != 0 {
				t.Errorf("%s: seq %d set, but the batch is not as stored", e.ID, e.Seq)
			}
		}
	}
	again := []auditlog.Entry{entry("a4", "flowrepo.flow.created", at(4), nil), entry("a1", "flowrepo.flow.created", at(2), nil)}
	mustAppend(t, s, again...)
	if auditlog.AppendedAsStored(again) {
		t.Errorf("a batch holding an id already stored was set as stored: seqs %d, %d", again[0].Seq, again[1].Seq)
	}
}
