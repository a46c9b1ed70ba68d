package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
	"github.com/jackc/pgx/v5"
)

// The ingest benchmarks write b.N events into a new schema, as herald does
// and as three baselines with pgx alone and the same schema do:
//
//	HERALD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test ./auditlog/postgres -run '^$' -bench Ingest -benchtime 50000x
//
// Query latency runs against one table of HERALD_BENCH_ROWS entries
// (default 100,000), filled once per run:
//
//	HERALD_BENCH_ROWS=1000000 HERALD_TEST_POSTGRES_URL=… \
//	  go test ./auditlog/postgres -run '^$' -bench Query -benchtime 2000x -timeout 2h

const ingestBatch = 500

// cpuUnit names the CPU time per event the ingest benchmarks report.
const cpuUnit = "client-cpu-µs/event"

// ingestSetup returns a new, migrated, empty schema and b.N entries.
func ingestSetup(b *testing.B) (url, schema string, entries []auditlog.Entry) {
	b.Helper()
	url = pgtest.URL(b)
	schema = pgtest.Schema(b, url)
	s, err := Open(context.Background(), url, WithSchema(schema))
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	return url, schema, storetest.NewDataset(1, b.N).Entries(0, b.N)
}

// rawConn is one pgx connection to schema.
func rawConn(b *testing.B, url, schema string) *pgx.Conn {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func rowValues(e auditlog.Entry) []any {
	var headers any
	if len(e.Headers) > 0 {
		headers = string(e.Headers)
	}
	return []any{e.ID, e.Name, e.ServiceName, ms(e.CreatedAt), ms(e.ReceivedAt), e.User, e.Tenant, headers, string(e.Payload), e.Unknown}
}

const insertColumns = `id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown`

func BenchmarkIngest(b *testing.B) {
	ctx := context.Background()
	b.Run("herald-append-500", func(b *testing.B) {
		url, schema, entries := ingestSetup(b)
		s, err := Open(ctx, url, WithSchema(schema))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		storetest.BenchAppend(b, s, entries, ingestBatch, cpuUnit)
	})
	// A multi-row INSERT … VALUES … ON CONFLICT DO NOTHING of 500 rows.
	b.Run("raw-multirow-upsert-500", func(b *testing.B) {
		url, schema, entries := ingestSetup(b)
		conn := rawConn(b, url, schema)
		b.ResetTimer()
		cpu0 := storetest.CPUTime()
		for i := 0; i < len(entries); i += ingestBatch {
			batch := entries[i:min(i+ingestBatch, len(entries))]
			var q strings.Builder
			q.WriteString(`INSERT INTO entries (` + insertColumns + `) VALUES `)
			args := make([]any, 0, 10*len(batch))
			for j, e := range batch {
				if j > 0 {
					q.WriteByte(',')
				}
				n := len(args)
				fmt.Fprintf(&q, "($%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d,$%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10)
				args = append(args, rowValues(e)...)
			}
			q.WriteString(` ON CONFLICT (id) DO NOTHING`)
			if _, err := conn.Exec(ctx, q.String(), args...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		storetest.ReportRate(b, cpu0, cpuUnit)
	})
	// COPY 500 rows into a temporary table, then INSERT … SELECT … ON
	// CONFLICT DO NOTHING, in one transaction.
	b.Run("raw-copy-upsert-500", func(b *testing.B) {
		url, schema, entries := ingestSetup(b)
		conn := rawConn(b, url, schema)
		if _, err := conn.Exec(ctx, `CREATE TEMP TABLE incoming ON COMMIT DELETE ROWS AS SELECT `+insertColumns+` FROM entries WITH NO DATA`); err != nil {
			b.Fatal(err)
		}
		cols := []string{"id", "name", "service_name", "created_at", "received_at", "user", "tenant", "headers", "payload", "unknown"}
		b.ResetTimer()
		cpu0 := storetest.CPUTime()
		for i := 0; i < len(entries); i += ingestBatch {
			batch := entries[i:min(i+ingestBatch, len(entries))]
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				rows := make([][]any, len(batch))
				for j, e := range batch {
					rows[j] = rowValues(e)
				}
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"incoming"}, cols, pgx.CopyFromRows(rows)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO entries (`+insertColumns+`) SELECT `+insertColumns+` FROM incoming ON CONFLICT (id) DO NOTHING`)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		storetest.ReportRate(b, cpu0, cpuUnit)
	})
	// One event per transaction, as OIH's audit log saves each event.
	b.Run("raw-one-per-tx", func(b *testing.B) {
		url, schema, entries := ingestSetup(b)
		conn := rawConn(b, url, schema)
		b.ResetTimer()
		cpu0 := storetest.CPUTime()
		for _, e := range entries {
			if _, err := conn.Exec(ctx, `INSERT INTO entries (`+insertColumns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO NOTHING`, rowValues(e)...); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		storetest.ReportRate(b, cpu0, cpuUnit)
	})
}

// BenchmarkQuery fills a new schema once (a benchmark with
// sub-benchmarks runs once) and measures each query shape against it.
func BenchmarkQuery(b *testing.B) {
	url := pgtest.URL(b)
	ctx := context.Background()
	s, err := Open(ctx, url, WithSchema(pgtest.Schema(b, url)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d := storetest.NewDataset(1, storetest.BenchRows(100_000))
	d.Fill(ctx, b, s, 5000)
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE entries`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	storetest.BenchmarkQueries(b, s, d)
}
