package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/internal/sqlstore"
	"github.com/heraldhq/herald/auditlog/storetest"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) auditlog.Store { return openTemp(t) })
}

func TestTreeConformance(t *testing.T) {
	storetest.RunIntegrity(t, func(t testing.TB) auditlog.Store { return openTemp(t) })
}

// TestStoreConformanceWalkingForPayloadMatches runs the suite again with
// every payload filter read the way many matches are (the suite's few
// matches otherwise take the other plan).
func TestStoreConformanceWalkingForPayloadMatches(t *testing.T) {
	storetest.Run(t, func(t testing.TB) auditlog.Store {
		s := openTemp(t)
		s.sql.DenseMatches = -1
		return s
	})
}

func TestOpenMigratesOnceAndKeepsEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dir with ? and # and %", "audit.db")
	if _, err := Open(ctx, path); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
	path = filepath.Join(t.TempDir(), "a?b#c%d.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []auditlog.Entry{{ID: "a", Name: "x.y", Payload: json.RawMessage(`{"k":"v"}`)}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		p, err := s.Query(ctx, auditlog.Query{Payload: map[string]string{"k": "v"}})
		if err != nil || p.Total != 1 {
			t.Fatalf("after reopening: total %d, error %v; want the one entry", p.Total, err)
		}
		var versions int
		if err := s.r.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
			t.Fatal(err)
		}
		ms, _ := loadMigrations()
		if versions != len(ms) {
			t.Errorf("%d migrations recorded, want %d", versions, len(ms))
		}
		s.Close()
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open of a newer schema: %v, want an error saying it is newer", err)
	}
}

func TestConnectionsAreDurableWAL(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var mode string
		var sync, fk int
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || fk != 1 {
			t.Errorf("%s: journal_mode %s, synchronous %d, foreign_keys %d; want wal, 2 (FULL), 1", name, mode, sync, fk)
		}
	}
}

// TestQueriesUseTheirIndex guards the plans the benchmarks measured: a
// filter that falls back to a table scan passes every functional test and
// takes a second at a million entries.
func TestQueriesUseTheirIndex(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	ctx := context.Background()
	d := storetest.NewDataset(1, 2000)
	d.Fill(ctx, t, s, 500)
	tests := []struct {
		name  string
		q     auditlog.Query
		dense bool
		want  []string // each must appear in the plan
	}{
		{"newest", auditlog.Query{Limit: 50}, false, []string{"entries_created"}},
		{"cursor", auditlog.Query{Limit: 50, After: &auditlog.Cursor{CreatedAt: d.Day(3), Seq: 10}}, false, []string{"entries_created (created_at<?)"}},
		{"tenant", auditlog.Query{Tenant: d.Tenant(1), Limit: 50}, false, []string{"entries_tenant (tenant=?)"}},
		{"scope", auditlog.Query{Scope: &auditlog.Scope{User: d.User(1), Tenant: d.Tenant(1)}, Limit: 50}, false, []string{"entries_user (user=?)", "entries_tenant (tenant=?)"}},
		{"name and day", auditlog.Query{Name: d.Name(1), From: d.Day(1), To: d.Day(2), Limit: 50}, false, []string{"entries_name (name=? AND created_at>? AND created_at<?)"}},
		{"payload", auditlog.Query{Payload: map[string]string{"flowId": d.Flow(1)}, Limit: 50}, false, []string{"entry_terms VIRTUAL TABLE", "INTEGER PRIMARY KEY"}},
		{"dense payload", auditlog.Query{Payload: map[string]string{"status": "active"}, Limit: 50}, true, []string{"entry_terms VIRTUAL TABLE", "SCAN entries USING INDEX entries_created"}},
	}
	for _, tt := range tests {
		match := sqlstore.HoldsAll
		if tt.dense {
			match = sqlstore.ProbesAll
		}
		query, args := sqlstore.PageSQL(dialect{}, tt.q, match)
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s", tt.name, text)
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan does not use %s:\n%s", tt.name, w, text)
			}
		}
		if strings.Contains(text, "SCAN entries\n") || strings.HasSuffix(text, "SCAN entries") || (!tt.dense && strings.Contains(text, "SCAN entries USING INDEX") && tt.name != "newest") {
			t.Errorf("%s: plan scans the table:\n%s", tt.name, text)
		}
	}
}

// TestAppendSetsNewEntriesAsStored checks that SQLite gives the live feed
// its entries as stored (the conformance suite checks that they are what
// a read returns, when set), and not when AUTOINCREMENT skipped seqs of
// entries deleted since.
func TestAppendSetsNewEntriesAsStored(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	defer s.Close()
	entry := func(id string) auditlog.Entry {
		return auditlog.Entry{ID: id, Name: "flowrepo.flow.created", ServiceName: "flowrepo", Payload: json.RawMessage(`{"tenant":"t1"}`)}
	}
	batch := []auditlog.Entry{entry("a"), entry("b"), entry("c")}
	if _, err := s.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if !auditlog.AppendedAsStored(batch) || batch[0].Seq != 1 || batch[2].Seq != 3 {
		t.Fatalf("seqs %d %d %d, want 1 2 3", batch[0].Seq, batch[1].Seq, batch[2].Seq)
	}
	// The newest entries deleted (as a retention of everything would):
	// the next seqs are above them, not above the highest left.
	if _, err := s.w.ExecContext(ctx, `DELETE FROM entries WHERE seq >= 2`); err != nil {
		t.Fatal(err)
	}
	batch = []auditlog.Entry{entry("d"), entry("e")}
	if _, err := s.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if auditlog.AppendedAsStored(batch) {
		p, err := s.Query(ctx, auditlog.Query{Order: auditlog.BySeq})
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("set as seqs %d, %d; stored as %+v", batch[0].Seq, batch[1].Seq, p.Entries)
	}
}
