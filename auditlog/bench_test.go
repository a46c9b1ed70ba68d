package auditlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/postgres"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

// BenchmarkIngest measures events/s from the bus into a durable store:
// herald's batched ingest (500 per transaction) against the same path with
// one event per transaction, which is what OIH's audit log does (one save
// per event). Both go through the in-process broker, so the store is what
// is measured.
//
//	go test ./auditlog -run '^$' -bench Ingest -benchtime 20000x
//	HERALD_TEST_POSTGRES_URL=postgres://… go test ./auditlog -run '^$' -bench Ingest/postgres -benchtime 20000x
func BenchmarkIngest(b *testing.B) {
	stores := map[string]func(b *testing.B) auditlog.Store{
		"sqlite": func(b *testing.B) auditlog.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "audit.db"))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
		"postgres": func(b *testing.B) auditlog.Store {
			url := os.Getenv("HERALD_TEST_POSTGRES_URL")
			if url == "" {
				b.Skip("HERALD_TEST_POSTGRES_URL is not set")
			}
			schema := fmt.Sprintf("herald_bench_%d", time.Now().UnixNano())
			s, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { dropPostgresSchema(b, schema) })
			return s
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		for _, batch := range []int{500, 1} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				store := stores[name](b)
				defer store.Close()
				benchIngest(b, store, batch)
			})
		}
	}
}

func benchIngest(b *testing.B, store auditlog.Store, batch int) {
	ctx := context.Background()
	broker := memory.NewBroker()
	defer broker.Close()
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, BatchSize: batch})
	audit, err := bus.New(broker.Connect(), bus.WithService(auditlog.QueueName),
		bus.WithConcurrency(max(batch, 1)), bus.WithPrefetch(2*batch))
	if err != nil {
		b.Fatal(err)
	}
	if err := audit.SubscribeAll(ctx, []string{"#"}, in.Handle); err != nil {
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
	go func() {
		for _, ev := range events {
			if err := pub.Publish(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for {
		p, err := store.Query(ctx, auditlog.Query{Limit: 1})
		if err != nil {
			b.Fatal(err)
		}
		if p.Total >= int64(b.N) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	pub.Close(ctx)
	audit.Close(ctx)
	in.Close()
}

func dropPostgresSchema(tb testing.TB, schema string) {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), os.Getenv("HERALD_TEST_POSTGRES_URL"))
	if err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		tb.Errorf("drop schema %s: %v", schema, err)
	}
}
