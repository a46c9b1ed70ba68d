package auditlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/postgres"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/cputime"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
)

// BenchmarkIngest measures events/s from the bus into a durable store,
// each event going through the in-process broker so that the store is
// what is measured:
//
//	go test ./auditlog -run '^$' -bench Ingest -benchtime 20000x
//	HERALD_TEST_POSTGRES_URL=postgres://… go test ./auditlog -run '^$' -bench Ingest/postgres -benchtime 20000x
//
// batch=500 is herald's ingest, on herald serve's bus settings: 1,000
// handlers feeding transactions of up to 500 events, so that the next
// batch fills while one commits (bus concurrency and prefetch 1,000). batch=1 writes one
// event per transaction from one handler at a time (concurrency 1,
// prefetch 2), as OIH's audit log saves each event. batch=500,erasure is
// batch=500 with serve's erasure of deleted users: each batch looked up in
// the record of erased users before and after it is stored.
// per-event-tx/concurrency=1000 writes one transaction per event too, but
// from 1,000 concurrent handlers (the bus settings of batch=500), so that a
// database that group-commits concurrent transactions can: on PostgreSQL
// each handler runs a plain INSERT through a pool of pgConns connections,
// without herald's append lock (which would serialise the commits); SQLite
// has one writer, so there the handlers queue for herald's store, as they
// would for a raw insert.
func BenchmarkIngest(b *testing.B) {
	for _, name := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"batch=500", "batch=500,erasure", "batch=1", "per-event-tx/concurrency=1000"} {
			b.Run(name+"/"+mode, func(b *testing.B) {
				var st benchStore
				if name == "sqlite" {
					st = openBenchSQLite(b)
				} else {
					st = openBenchPostgres(b)
				}
				defer st.store.Close()
				switch mode {
				case "batch=500":
					benchIngester(b, st.store, 500)
				case "batch=500,erasure":
					benchIngester(b, st.store, 500, eraseWith(b, st.store))
				case "batch=1":
					benchIngester(b, st.store, 1)
				default:
					benchPerEvent(b, 1000, st.writeOne)
				}
			})
		}
	}
}

// benchStore is a store and a way to write one event in a transaction of
// its own, concurrently.
type benchStore struct {
	store    auditlog.Store
	writeOne func(ctx context.Context, e auditlog.Entry) error
}

func openBenchSQLite(b *testing.B) benchStore {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	return benchStore{store: s, writeOne: func(ctx context.Context, e auditlog.Entry) error {
		_, err := s.Append(ctx, []auditlog.Entry{e})
		return err
	}}
}

// pgConns is the connection pool of PostgreSQL's per-event writers: half
// the server's default max_connections.
const pgConns = 50

func openBenchPostgres(b *testing.B) benchStore {
	url := pgtest.URL(b)
	ctx := context.Background()
	schema := pgtest.Schema(b, url)
	s, err := postgres.Open(ctx, url, postgres.WithSchema(schema))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = pgConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return benchStore{store: s, writeOne: func(ctx context.Context, e auditlog.Entry) error {
		var headers any
		if len(e.Headers) > 0 {
			headers = string(e.Headers)
		}
		_, err := pool.Exec(ctx, `INSERT INTO entries (id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`,
			e.ID, e.Name, e.ServiceName, e.CreatedAt.Truncate(time.Millisecond), e.ReceivedAt.Truncate(time.Millisecond),
			e.User, e.Tenant, headers, string(e.Payload), e.Unknown)
		return err
	}}
}

// benchIngester runs herald's ingester with batches of batch events, on
// herald serve's bus settings (concurrency and prefetch 2×batch; batch 1:
// one handler, prefetch 2, as OIH's audit log).
// The integrator runs beside it, kicked by each commit, as in herald
// serve: what is measured includes sealing each entry and integrating it.
func benchIngester(b *testing.B, store auditlog.Store, batch int, x ...*auditlog.Eraser) {
	skey, _, _ := auditlog.GenerateKey("bench")
	signer, _ := auditlog.NewSigner(skey)
	integ := auditlog.RunIntegrator(context.Background(), auditlog.IntegratorConfig{Store: store, Signer: signer})
	defer integ.Close()
	cfg := auditlog.IngestConfig{Store: store, BatchSize: batch, OnCommit: integ.Kick}
	if len(x) > 0 {
		cfg.Eraser = x[0]
	}
	in := auditlog.NewIngester(cfg)
	defer in.Close()
	// The ingest is done once every entry is committed (events/s); it is
	// in a signed checkpoint after the lag the integrator's MinGap allows
	// (checkpoint-lag-ms, and the rate counted until then).
	concurrency := 2 * batch
	if batch == 1 {
		concurrency = 1
	}
	benchIngest(b, concurrency, 2*batch, in.Handle, func() {
		for {
			cp, err := store.Checkpoint(context.Background(), -1)
			if err == nil && cp.Size >= int64(b.N) {
				return
			}
			time.Sleep(5 * time.Millisecond) // polls the store, at most 5 ms late of ~seconds measured
		}
	})
}

// eraseWith is serve's erasure on store, with one user erased before
// the run, so that every batch is looked up in a non-empty record.
func eraseWith(b *testing.B, store auditlog.Store) *auditlog.Eraser {
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: []byte("bench-erasure-key-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := x.EraseUser(context.Background(), "someone-erased", auditlog.Entry{ID: "bench-deletion"}); err != nil {
		b.Fatal(err)
	}
	return x
}

// benchPerEvent writes each event with writeOne, from concurrency handlers.
func benchPerEvent(b *testing.B, concurrency int, writeOne func(context.Context, auditlog.Entry) error) {
	benchIngest(b, concurrency, concurrency, func(ctx context.Context, ev *event.Event) error {
		e, err := auditlog.EntryFromEvent(ev, time.Now(), nil)
		if err != nil {
			return err
		}
		return writeOne(ctx, e)
	}, nil)
}

// benchIngest publishes b.N events through the in-process broker to
// handle, run by a bus with the given concurrency and prefetch, and
// reports events/s until every handler has returned nil (each returns
// once its event is committed), and the CPU spent per event until
// settled returns. settled, when not nil, waits for work that follows
// the commits (the integrator's last checkpoint): the time it takes is
// reported as settle-lag-ms, with the rate counted until then as
// settled-events/s.
func benchIngest(b *testing.B, concurrency, prefetch int, handle bus.Handler, settled func()) {
	ctx := context.Background()
	broker := memory.NewBroker()
	defer broker.Close()
	var stored atomic.Int64
	done := make(chan struct{})
	audit, err := bus.New(broker.Connect(), bus.WithService(auditlog.QueueName),
		bus.WithConcurrency(concurrency), bus.WithPrefetch(prefetch))
	if err != nil {
		b.Fatal(err)
	}
	err = audit.SubscribeAll(ctx, []string{"#"}, func(ctx context.Context, ev *event.Event) error {
		if err := handle(ctx, ev); err != nil {
			return err
		}
		if stored.Add(1) == int64(b.N) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	pub, err := bus.New(broker.Connect(), bus.WithService("flow-repository"), bus.WithoutValidation())
	if err != nil {
		b.Fatal(err)
	}
	// ~150-byte payloads, a few hundred tenants, thousands of users.
	events := make([]*event.Event, b.N)
	for i := range events {
		events[i], _ = event.New("flowrepo.flow.created", json.RawMessage(fmt.Sprintf(
			`{"tenant":"tenant-%03d","user":"user-%05d","flowId":"flow-%08d","note":"created from the integration wizard"}`,
			i%300, i%5000, i)))
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	go func() {
		for _, ev := range events {
			if err := pub.Publish(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Minute):
		b.Fatalf("%d of %d events stored after 30 minutes", stored.Load(), b.N)
	}
	committed := time.Since(start)
	if settled != nil {
		settled()
		all := time.Since(start)
		b.ReportMetric(float64((all-committed).Microseconds())/1e3, "settle-lag-ms")
		b.ReportMetric(float64(b.N)/all.Seconds(), "settled-events/s")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/committed.Seconds(), "events/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/event")
	pub.Close(ctx)
	audit.Close(ctx)
}

// cpuTime is the process's user and system CPU time so far: per event, it
// compares variants on a machine whose other load makes rates noisy (the
// database server's own CPU is not in it).
func cpuTime() time.Duration {
	d, _ := cputime.Process()
	return d
}
