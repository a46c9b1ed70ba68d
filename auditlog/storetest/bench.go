package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/cputime"
)

// Dataset generates realistic audit-log entries: UUIDv7 ids
// (event.NewID), about 40 event names over 12 services, 300 tenants, 5,000
// users, 20,000 flows and ~150-byte payloads, spread evenly over 30 days
// ending at a fixed instant. Entry i is the same in every run except for
// its id.
type Dataset struct {
	seed  uint64
	n     int
	start time.Time
	step  time.Duration
}

// Dataset dimensions; the query benchmark draws its parameters from them.
const (
	DatasetTenants = 300
	DatasetUsers   = 5000
	DatasetFlows   = 20000
	DatasetNames   = 40
	DatasetDays    = 30
)

// datasetEnd is the createdAt of the last entry of every data set.
var datasetEnd = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// NewDataset returns a data set of n entries.
func NewDataset(seed uint64, n int) *Dataset {
	span := DatasetDays * 24 * time.Hour
	return &Dataset{seed: seed, n: n, start: datasetEnd.Add(-span), step: span / time.Duration(max(n, 1))}
}

// Len is the number of entries in the data set.
func (d *Dataset) Len() int { return d.n }

func (d *Dataset) rng(i int) *rand.Rand { return rand.New(rand.NewPCG(d.seed, uint64(i))) }

// Name returns event name k (0 ≤ k < DatasetNames).
func (d *Dataset) Name(k int) string {
	return fmt.Sprintf("svc%d.object%d.%s", k%12, k, []string{"created", "modified", "deleted"}[k%3])
}

// Tenant returns tenant k.
func (d *Dataset) Tenant(k int) string { return fmt.Sprintf("%024x", 0x7e000000+k) }

// User returns user k; user k belongs to tenant k mod DatasetTenants.
func (d *Dataset) User(k int) string { return fmt.Sprintf("%024x", 0x05e00000+k) }

// Flow returns flow k.
func (d *Dataset) Flow(k int) string { return fmt.Sprintf("%024x", 0xf1000000+k) }

// Day returns the start of day k of the data set's span.
func (d *Dataset) Day(k int) time.Time { return d.start.Add(time.Duration(k) * 24 * time.Hour) }

// Entries returns entries from to from+n-1.
func (d *Dataset) Entries(from, n int) []auditlog.Entry {
	out := make([]auditlog.Entry, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, d.entry(i))
	}
	return out
}

func (d *Dataset) entry(i int) auditlog.Entry {
	r := d.rng(i)
	name := r.IntN(DatasetNames)
	user := r.IntN(DatasetUsers)
	tenant := user % DatasetTenants
	created := d.start.Add(time.Duration(i)*d.step + time.Duration(r.IntN(1000))*time.Millisecond).Truncate(time.Millisecond)
	p := map[string]any{
		"id":     fmt.Sprintf("%024x", r.Uint64()>>16),
		"user":   d.User(user),
		"tenant": d.Tenant(tenant),
		"flowId": d.Flow(r.IntN(DatasetFlows)),
	}
	switch name % 4 {
	case 0:
		p["status"] = []string{"active", "inactive", "starting"}[r.IntN(3)]
	case 1:
		p["attempt"] = r.IntN(5)
	case 2:
		p["username"] = fmt.Sprintf("user%d@example.com", user)
	}
	body, err := json.Marshal(p)
	if err != nil {
		panic(err)
	}
	return auditlog.Entry{
		ID:          event.NewID(),
		Name:        d.Name(name),
		ServiceName: fmt.Sprintf("svc%d", name%12),
		CreatedAt:   created,
		ReceivedAt:  created.Add(time.Duration(2+r.IntN(20)) * time.Millisecond),
		User:        d.User(user),
		Tenant:      d.Tenant(tenant),
		Payload:     body,
	}
}

// Fill appends the whole data set to s in batches of batch entries,
// logging progress to b.
func (d *Dataset) Fill(ctx context.Context, tb testing.TB, s auditlog.Store, batch int) {
	tb.Helper()
	start := time.Now()
	for i := 0; i < d.n; i += batch {
		if _, err := s.Append(ctx, d.Entries(i, min(batch, d.n-i))); err != nil {
			tb.Fatalf("fill: %v", err)
		}
		if (i/batch)%200 == 199 {
			tb.Logf("filled %d of %d entries (%.0f/s)", i+batch, d.n, float64(i+batch)/time.Since(start).Seconds())
		}
	}
	tb.Logf("filled %d entries in %v (%.0f/s)", d.n, time.Since(start).Round(time.Millisecond), float64(d.n)/time.Since(start).Seconds())
}

// BenchAppend times s.Append of entries, batch entries per call, as
// herald's ingester writes them, and reports them with ReportRate. The
// entries are sealed before the clock starts, as the ingester's handlers
// seal them before the store is called, so that what is timed is the
// store's work alone.
func BenchAppend(b *testing.B, s auditlog.Store, entries []auditlog.Entry, batch int, cpuUnit string) {
	b.Helper()
	for i := range entries {
		if err := auditlog.Seal(&entries[i]); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := CPUTime()
	for i := 0; i < len(entries); i += batch {
		if _, err := s.Append(ctx, entries[i:min(i+batch, len(entries))]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ReportRate(b, cpu0, cpuUnit)
}

// CPUTime is the process's user and system CPU time so far. Reported per
// event beside the rate, it compares variants on a machine whose other
// load makes wall-clock rates noisy.
func CPUTime() time.Duration {
	d, _ := cputime.Process()
	return d
}

// ReportRate reports b.N events over the benchmark's time as events/s, and
// the CPU time since cpu0 per event in µs as cpuUnit.
func ReportRate(b *testing.B, cpu0 time.Duration, cpuUnit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(CPUTime()-cpu0)/float64(b.N)/1e3, cpuUnit)
}

// BenchRows is the table size for query benchmarks: HERALD_BENCH_ROWS, or
// def.
func BenchRows(def int) int {
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_ROWS")); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkQueries measures query latency against s, which holds d, and
// reports the p50 and p99 of each query shape in milliseconds. Every Query
// also counts its total, as GET /logs does.
func BenchmarkQueries(b *testing.B, s auditlog.Store, d *Dataset) {
	ctx := context.Background()
	deep := d.Len() / 2
	// The cursor of the entry before position deep, found once.
	p, err := s.Query(ctx, auditlog.Query{Limit: 1, Offset: deep - 1})
	if err != nil || len(p.Entries) != 1 {
		b.Fatalf("find the deep cursor: %v", err)
	}
	deepCursor := &auditlog.Cursor{CreatedAt: p.Entries[0].CreatedAt, Seq: p.Entries[0].Seq}
	shapes := []struct {
		name string
		q    func(r *rand.Rand) auditlog.Query
	}{
		{"newest", func(r *rand.Rand) auditlog.Query { return auditlog.Query{Limit: 50} }},
		{"tenant", func(r *rand.Rand) auditlog.Query {
			return auditlog.Query{Tenant: d.Tenant(r.IntN(DatasetTenants)), Limit: 50}
		}},
		{"scope", func(r *rand.Rand) auditlog.Query {
			u := r.IntN(DatasetUsers)
			return auditlog.Query{Scope: &auditlog.Scope{User: d.User(u), Tenant: d.Tenant(u % DatasetTenants)}, Limit: 50}
		}},
		{"name+day", func(r *rand.Rand) auditlog.Query {
			day := d.Day(r.IntN(DatasetDays))
			return auditlog.Query{Name: d.Name(r.IntN(DatasetNames)), From: day, To: day.Add(24 * time.Hour), Limit: 50}
		}},
		{"payload", func(r *rand.Rand) auditlog.Query {
			return auditlog.Query{Payload: map[string]string{"flowId": d.Flow(r.IntN(DatasetFlows))}, Limit: 50}
		}},
		{"payload-common", func(r *rand.Rand) auditlog.Query {
			return auditlog.Query{Payload: map[string]string{"status": []string{"active", "inactive", "starting"}[r.IntN(3)]}, Limit: 50}
		}},
		{"deep-offset", func(r *rand.Rand) auditlog.Query { return auditlog.Query{Limit: 50, Offset: deep} }},
		{"deep-cursor", func(r *rand.Rand) auditlog.Query { return auditlog.Query{Limit: 50, After: deepCursor} }},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				q := sh.q(r)
				t0 := time.Now()
				p, err := s.Query(ctx, q)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Entries) == 0 && sh.name != "name+day" {
					b.Fatalf("%s: no entries", sh.name)
				}
			}
			ReportLatency(b, lat)
		})
	}
}

// ReportLatency reports the p50 and p99 of lat, in milliseconds.
func ReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
