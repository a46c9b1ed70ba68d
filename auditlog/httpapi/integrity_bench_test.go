package httpapi

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/iam"
)

// BenchmarkIntegrity builds one SQLite log of HERALD_BENCH_ROWS entries
// (default 100,000), integrated in checkpoints of 10,000, and measures
// over HTTP the p50/p99 of an entry's inclusion proof and of a
// consistency proof between two random checkpoints, GET /logs (page 1 of
// 50) with audited reads on and off, and then herald verify's walk of the
// whole store (entries/s):
//
//	HERALD_BENCH_ROWS=1000000 go test ./auditlog/httpapi -run '^$' -bench Integrity -benchtime 2000x -timeout 2h
func BenchmarkIntegrity(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	skey, vkey, _ := auditlog.GenerateKey("bench")
	signer, _ := auditlog.NewSigner(skey)
	verifier, _ := auditlog.NewVerifier(vkey)
	d := storetest.NewDataset(1, storetest.BenchRows(100_000))
	start := time.Now()
	ids := make([]string, 0, d.Len())
	for i := 0; i < d.Len(); i += 10_000 {
		es := d.Entries(i, min(10_000, d.Len()-i))
		for _, e := range es {
			ids = append(ids, e.ID)
		}
		for lo := 0; lo < len(es); lo += 500 {
			if _, err := store.Append(ctx, es[lo:min(lo+500, len(es))]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := auditlog.IntegrateAll(ctx, store, signer); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("built and integrated %d entries in %v", d.Len(), time.Since(start).Round(time.Second))
	cps, err := store.Checkpoints(ctx, -1, 1_000_000)
	if err != nil {
		b.Fatal(err)
	}

	const token = "bench-admin-token-0123456789abcdef"
	auth, _ := iam.NewStaticToken(token)
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store})
	defer in.Close()
	integ := auditlog.RunIntegrator(ctx, auditlog.IntegratorConfig{Store: store, Signer: signer})
	defer integ.Close()
	plain := httptest.NewServer(New(Config{Store: store, Auth: auth}))
	defer plain.Close()
	audited := httptest.NewServer(New(Config{Store: store, Auth: auth, RecordRead: in.Record}))
	defer audited.Close()
	get := func(b *testing.B, srv *httptest.Server, path string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	latency := func(b *testing.B, srv *httptest.Server, path func(r *rand.Rand) string) {
		r := rand.New(rand.NewPCG(1, 2))
		lat := make([]time.Duration, 0, b.N)
		for b.Loop() {
			p := path(r)
			t0 := time.Now()
			get(b, srv, p)
			lat = append(lat, time.Since(t0))
		}
		storetest.ReportLatency(b, lat)
	}
	b.ResetTimer()
	b.Run("proof", func(b *testing.B) {
		latency(b, plain, func(r *rand.Rand) string { return "/logs/" + ids[r.IntN(len(ids))] + "/proof" })
	})
	b.Run("proof-audited", func(b *testing.B) {
		latency(b, audited, func(r *rand.Rand) string { return "/logs/" + ids[r.IntN(len(ids))] + "/proof" })
	})
	b.Run("consistency", func(b *testing.B) {
		latency(b, plain, func(r *rand.Rand) string {
			i, j := r.IntN(len(cps)), r.IntN(len(cps))
			return fmt.Sprintf("/proof/consistency?from=%d&to=%d", cps[min(i, j)].Size, cps[max(i, j)].Size)
		})
	})
	b.Run("logs", func(b *testing.B) {
		latency(b, plain, func(*rand.Rand) string { return "/logs?page[size]=50" })
	})
	b.Run("logs-audited", func(b *testing.B) {
		latency(b, audited, func(*rand.Rand) string { return "/logs?page[size]=50" })
	})
	// verify walks the whole store: three walks whatever -benchtime
	// says, the median reported.
	b.Run("verify", func(b *testing.B) {
		var secs []float64
		var entries int64
		for range 3 {
			r, err := auditlog.Verify(ctx, store, verifier, auditlog.VerifyOptions{})
			if err != nil || r.Failure != nil {
				b.Fatalf("verify: %v, %v", err, r.Failure)
			}
			secs, entries = append(secs, r.Elapsed.Seconds()), r.Entries
		}
		slices.Sort(secs)
		b.ReportMetric(float64(entries)/secs[1], "entries/s")
		b.ReportMetric(secs[1], "s/verify")
	})
}
