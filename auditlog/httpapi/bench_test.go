package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/iam"
)

// BenchmarkLogsHTTP measures GET /logs over HTTP (a real listener, JSON
// encoding, auth, total counting) against a SQLite store holding
// HERALD_BENCH_ROWS entries (default 100,000), and reports p50/p99 per
// query shape:
//
//	HERALD_BENCH_ROWS=1000000 go test ./auditlog/httpapi -run '^$' -bench LogsHTTP -benchtime 300x -timeout 30m
func BenchmarkLogsHTTP(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	d := storetest.NewDataset(1, storetest.BenchRows(100_000))
	d.Fill(ctx, b, store, 5000)

	const token = "bench-admin-token-0123456789abcdef"
	auth, err := iam.NewStaticToken(token)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Store: store, Auth: auth}))
	defer srv.Close()
	client := srv.Client()
	get := func(b *testing.B, query string) []byte {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/logs?"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /logs?%s: %d %v %s", query, resp.StatusCode, err, body)
		}
		return body
	}
	// The cursor of deep page 10,000 (of 50 entries) — or the middle of a
	// smaller table — found once.
	deepPage := min(10_000, d.Len()/50/2)
	var first struct {
		NextCursor string `json:"nextCursor"`
	}
	if err := json.Unmarshal(get(b, fmt.Sprintf("page[size]=50&page[number]=%d", deepPage-1)), &first); err != nil || first.NextCursor == "" {
		b.Fatalf("find the cursor of page %d: %v", deepPage, err)
	}
	shapes := []struct {
		name string
		q    func(r *rand.Rand) string
	}{
		{"page1", func(*rand.Rand) string { return "page[size]=50" }},
		{"tenant", func(r *rand.Rand) string {
			return "page[size]=50&filter[tenant]=" + d.Tenant(r.IntN(storetest.DatasetTenants))
		}},
		{"name+day", func(r *rand.Rand) string {
			day := d.Day(r.IntN(storetest.DatasetDays))
			return "page[size]=50&filter[name]=" + url.QueryEscape(d.Name(r.IntN(storetest.DatasetNames))) +
				"&from=" + day.Format(time.RFC3339) + "&to=" + day.Add(24*time.Hour).Format(time.RFC3339)
		}},
		{"payload", func(r *rand.Rand) string {
			return "page[size]=50&filter[flowId]=" + d.Flow(r.IntN(storetest.DatasetFlows))
		}},
		{"deep-offset", func(*rand.Rand) string { return fmt.Sprintf("page[size]=50&page[number]=%d", deepPage) }},
		{"deep-cursor", func(*rand.Rand) string { return "page[size]=50&cursor=" + first.NextCursor }},
	}
	b.ResetTimer()
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				q := sh.q(r)
				t0 := time.Now()
				get(b, q)
				lat = append(lat, time.Since(t0))
			}
			storetest.ReportLatency(b, lat)
		})
	}
}
