package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/storetest"
	"github.com/heraldhq/herald/event"
)

// The ingest benchmarks write b.N events into a new database, each as
// herald does and as two baselines with the raw driver, the same schema
// and the same durability (WAL, synchronous=FULL) do:
//
//	go test ./auditlog/sqlite -run '^$' -bench Ingest -benchtime 50000x
//
// Query latency runs against one table of HERALD_BENCH_ROWS entries
// (default 100,000), filled once per run:
//
//	HERALD_BENCH_ROWS=1000000 go test ./auditlog/sqlite -run '^$' -bench Query -benchtime 2000x -timeout 2h

const ingestBatch = 500

// cpuUnit names the CPU time per event the ingest benchmarks report.
const cpuUnit = "cpu-µs/event"

// ingestSetup returns a new, migrated, empty database and b.N entries.
func ingestSetup(b *testing.B) (string, []auditlog.Entry) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "audit.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	return path, storetest.NewDataset(1, b.N).Entries(0, b.N)
}

// benchAppend times herald's Append of entries, 500 per call, to the
// database at path.
func benchAppend(b *testing.B, path string, entries []auditlog.Entry) {
	s, err := Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchAppend(b, s, entries, ingestBatch, cpuUnit)
}

// rawSetup is ingestSetup with the rows prepared as Append would.
func rawSetup(b *testing.B) (*sql.DB, []row) {
	path, entries := ingestSetup(b)
	rows, err := prepareRows(entries)
	if err != nil {
		b.Fatal(err)
	}
	return rawDB(b, path), rows
}

func BenchmarkIngest(b *testing.B) {
	b.Run("herald-append-500", func(b *testing.B) {
		path, entries := ingestSetup(b)
		benchAppend(b, path, entries)
	})
	// Events from OIH's Node publishers carry no id: herald derives one
	// from the body's hash, which is random where UUIDv7 grows with time.
	b.Run("herald-append-500-derived-ids", func(b *testing.B) {
		path, entries := ingestSetup(b)
		for i := range entries {
			entries[i].ID = event.DerivedID(append([]byte(entries[i].ID), entries[i].Payload...))
		}
		benchAppend(b, path, entries)
	})
	// The raw driver's multi-row INSERT of the same rows (seq given, terms
	// computed beforehand), 500 per transaction.
	b.Run("raw-multirow-500", func(b *testing.B) {
		db, rows := rawSetup(b)
		b.ResetTimer()
		cpu0 := storetest.CPUTime()
		for i := 0; i < len(rows); i += ingestBatch {
			rawInsert(b, db, rows[i:min(i+ingestBatch, len(rows))], int64(i+1))
		}
		b.StopTimer()
		storetest.ReportRate(b, cpu0, cpuUnit)
	})
	// One event per transaction, as OIH's audit log saves each event.
	b.Run("raw-one-per-tx", func(b *testing.B) {
		db, rows := rawSetup(b)
		b.ResetTimer()
		cpu0 := storetest.CPUTime()
		for i := range rows {
			rawInsert(b, db, rows[i:i+1], int64(i+1))
		}
		b.StopTimer()
		storetest.ReportRate(b, cpu0, cpuUnit)
	})
}

func rawDB(b *testing.B, path string) *sql.DB {
	db, err := sql.Open("sqlite", dsn(path, options{busyTimeout: 10e9}, false))
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	return db
}

func rawInsert(b *testing.B, db *sql.DB, rows []row, seq int64) {
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO entries (seq, id, name, service_name, created_at, received_at, "user", tenant, headers, payload, unknown) VALUES `)
	args := make([]any, 0, 11*len(rows))
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
		args = append(args, seq+int64(i), r.e.ID, r.e.Name, r.e.ServiceName, millis(r.e.CreatedAt), millis(r.e.ReceivedAt), r.e.User, r.e.Tenant, nil, string(r.e.Payload), r.e.Unknown)
	}
	q.WriteString(` ON CONFLICT (id) DO NOTHING`)
	if _, err := tx.Exec(q.String(), args...); err != nil {
		b.Fatal(err)
	}
	q.Reset()
	args = args[:0]
	q.WriteString(`INSERT INTO entry_terms (rowid, terms) VALUES `)
	for i, r := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?)")
		args = append(args, seq+int64(i), r.tokens)
	}
	if _, err := tx.Exec(q.String(), args...); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQuery fills a new database once (a benchmark with
// sub-benchmarks runs once) and measures each query shape against it.
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d := storetest.NewDataset(1, storetest.BenchRows(100_000))
	d.Fill(ctx, b, s, 5000)
	b.ResetTimer()
	storetest.BenchmarkQueries(b, s, d)
}
