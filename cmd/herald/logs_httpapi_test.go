package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/client"
	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
	"github.com/heraldhq/herald/simulate"
)

// TestLogsAgainstTheRealAPI runs herald logs against herald's own /logs
// handler over a SQLite store holding a simulated story.
func TestLogsAgainstTheRealAPI(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	const n = 2400
	base := time.Date(2025, 3, 31, 9, 0, 0, 0, time.UTC)
	sc := simulate.New(3, simulate.Options{})
	entries := make([]auditlog.Entry, 0, n)
	accounts, flowEvents := 0, map[string]int{}
	for i := range n {
		ev := sc.Next()
		ev.Headers.ID = event.NewID()
		ev.Headers.CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
		e, err := auditlog.EntryFromEvent(ev, ev.Headers.CreatedAt.Add(time.Millisecond), catalog.Default())
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
		if ev.Headers.ServiceName == "accounts" {
			accounts++
		}
		var p struct{ FlowID string }
		if json.Unmarshal(ev.Payload, &p) == nil && p.FlowID != "" {
			flowEvents[p.FlowID]++
		}
	}
	if _, err := store.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	auth, err := iam.NewStaticToken("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, Auth: auth}))
	t.Cleanup(srv.Close)

	t.Run("a service's entries, across pages", func(t *testing.T) {
		code, out, stderr := heraldLogs(t, "--url", srv.URL, "--token", "s3cret", "--service", "accounts", "--limit", "0", "-o", "ndjson")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != accounts {
			t.Fatalf("%d entries from accounts, want %d", len(lines), accounts)
		}
		var prev time.Time
		for _, l := range lines {
			var e client.Entry
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			if e.ServiceName != "accounts" || e.ID == "" || e.Seq == 0 {
				t.Fatalf("entry %s", l)
			}
			if !prev.IsZero() && e.CreatedAt.After(prev) {
				t.Fatalf("not newest first: %v after %v", e.CreatedAt, prev)
			}
			prev = e.CreatedAt
		}
	})

	t.Run("a payload key", func(t *testing.T) {
		var flow string
		for id, c := range flowEvents {
			if c > flowEvents[flow] {
				flow = id
			}
		}
		code, out, stderr := heraldLogs(t, "--url", srv.URL, "--token", "s3cret", "--where", "flowId="+flow, "--sort", "oldest", "-o", "csv")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows)-1 != flowEvents[flow] || rows[1][4] != "flowrepo.flow.created" {
			t.Fatalf("%d rows for flow %s, want %d starting with its creation:\n%s", len(rows)-1, flow, flowEvents[flow], out)
		}
	})

	t.Run("a time range", func(t *testing.T) {
		code, out, stderr := heraldLogs(t, "--url", srv.URL, "--token", "s3cret", "--limit", "0", "-o", "ndjson",
			"--since", base.Add(100*time.Millisecond).Format(time.RFC3339Nano), "--until", base.Add(200*time.Millisecond).Format(time.RFC3339Nano))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if got := strings.Count(out, "\n"); got != 100 {
			t.Fatalf("%d entries in 100 ms holding one each", got)
		}
	})

	t.Run("the server's refusal", func(t *testing.T) {
		code, _, stderr := heraldLogs(t, "--url", srv.URL, "--token", "wrong")
		if code != 1 || !strings.Contains(stderr, "401") {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
	})
}
