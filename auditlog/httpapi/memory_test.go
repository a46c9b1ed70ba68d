package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// A page of GET /logs stops at its byte budget, says so, and its
// nextCursor walks on to every entry.
func TestPageStopsAtItsByteBudget(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store, func(c *Config) { c.MaxPageBytes = 1 << 20 })
		seedLarge(t, store, 12, 400<<10)
		var walked int
		query := "page[size]=1000"
		for pages := 0; ; pages++ {
			if pages > 12 {
				t.Fatal("paging does not end")
			}
			r := e.do(http.MethodGet, "/logs?"+query, "alice", nil)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body[:min(len(r.body), 300)])
			}
			var l struct {
				Data []json.RawMessage
				Meta struct {
					Total int64
					Cut   bool
				}
				NextCursor string
			}
			if err := json.Unmarshal(r.body, &l); err != nil {
				t.Fatalf("page %d is not JSON: %v", pages, err)
			}
			if len(l.Data) > 3 {
				t.Errorf("a page of %d entries of 400 KiB under a 1 MiB budget", len(l.Data))
			}
			if l.Meta.Total != 12 {
				t.Errorf("total %d, want 12", l.Meta.Total)
			}
			walked += len(l.Data)
			if l.NextCursor == "" {
				break
			}
			if !l.Meta.Cut {
				t.Errorf("a page of %d entries with a next cursor under page[size]=1000 is not marked cut", len(l.Data))
			}
			query = "page[size]=1000&cursor=" + l.NextCursor
		}
		if walked != 12 {
			t.Errorf("walked %d entries, want 12", walked)
		}
	})
}

// seedLarge stores n entries of alice in tenant-a, each with a payload of
// about size bytes.
func seedLarge(t *testing.T, store auditlog.Store, n, size int) {
	t.Helper()
	filler := strings.Repeat("x", size)
	for i := range n {
		p, _ := json.Marshal(map[string]any{"user": "alice", "tenant": "tenant-a", "blob": filler})
		e := auditlog.Entry{
			ID: fmt.Sprintf("large-%04d", i), Name: "flowrepo.flow.created", ServiceName: "flow-repository",
			User: "alice", Tenant: "tenant-a", CreatedAt: base.Add(time.Duration(i) * time.Second), ReceivedAt: base,
			Payload: p,
		}
		if _, err := store.Append(context.Background(), []auditlog.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
}

// rssKiB reads a figure of /proc/self/status (VmRSS, VmHWM) in KiB.
func rssKiB(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// MemoryCeilingMiB is the documented ceiling (docs/reliability.md) of
// what the attacks of TestMemoryUnderAttack may add to the process's
// peak RSS with the default budgets.
const MemoryCeilingMiB = 320

// TestMemoryUnderAttack runs, against each store, what a tenant user
// with logs.read and logs.push can do to the server's memory: many
// parallel reads of the largest pages of 1 MiB entries, and many
// parallel bodies at the size limit (2 MiB), and checks that the peak RSS they
// add stays under MemoryCeilingMiB. HERALD_MEMORY_UNBOUNDED=1 lifts the
// budgets, to measure what they prevent.
func TestMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 64 MiB of entries per store (-short)")
	}
	if raceDetector {
		t.Skip("RSS under the race detector is not the server's; CI runs this test without -race")
	}
	unbounded := os.Getenv("HERALD_MEMORY_UNBOUNDED") == "1"
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store, func(c *Config) {
			if unbounded {
				c.MaxPageBytes, c.MaxConcurrentPages, c.MaxConcurrentBodies = 1<<40, 1<<20, 1<<20
			}
		})
		start := time.Now()
		seedLarge(t, store, 64, 1<<20)
		t.Logf("seeded in %v", time.Since(start))
		start = time.Now()
		runtime.GC()
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			t.Skipf("cannot reset the peak RSS: %v", err)
		}
		before := rssKiB(t, "VmHWM")

		const readers, posters = 32, 32
		var wg sync.WaitGroup
		client := &http.Client{}
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 2 {
					req, _ := http.NewRequest(http.MethodGet, e.url+"/logs?page[size]=1000", nil)
					req.Header.Set("Authorization", "Bearer alice")
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		body := []byte(`{"headers":{"name":"a.b"},"payload":{"x":"` + strings.Repeat("y", 2<<20-100) + `"}}`)
		for range posters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer alice")
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}()
		}
		wg.Wait()
		t.Logf("attacked for %v", time.Since(start))
		added := (rssKiB(t, "VmHWM") - before) / 1024
		t.Logf("peak RSS rose by %d MiB under %d parallel reads of 64 x 1 MiB pages and %d parallel 2 MiB bodies (unbounded: %v)", added, readers, posters, unbounded)
		if !unbounded && added > MemoryCeilingMiB {
			t.Errorf("peak RSS rose by %d MiB, ceiling %d MiB", added, MemoryCeilingMiB)
		}
	})
}
