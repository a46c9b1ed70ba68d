package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// The crash test: herald serve, the real binary, takes in a story that
// herald simulate publishes with publisher confirms, and is killed with
// SIGKILL killEvents/killCount apart while it does, then started again on
// the same data folder and store. Every audited event the broker
// confirmed must be stored exactly once in the end: none lost with the
// deliveries in flight, none stored twice when they come back. Run on both
// stores, on RabbitMQ (the replica tests do the same on NATS and
// PostgreSQL, with several replicas).
const (
	killEvents = 12_000
	killCount  = 4
	killSeed   = 23
)

func TestKillDuringIngestOnSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	runKills(t, "SQLite", "sqlite://"+path, func(query string) (entryRows, func(), error) {
		rows, err := db.Query(query)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { rows.Close() }, nil
	})
}

func TestKillDuringIngestOnPostgreSQL(t *testing.T) {
	store, conn := postgresSchema(t)
	runKills(t, "PostgreSQL", store, func(query string) (entryRows, func(), error) {
		rows, err := conn.Query(context.Background(), query)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	})
}

// runKills runs the crash test on the store at storeURL, read through
// query (a read-only view of the same database), which returns the rows
// and their Close.
func runKills(t *testing.T, storeName, storeURL string, query func(q string) (entryRows, func(), error)) {
	start := time.Now()
	broker := testVhost(t)
	env := []string{envBrokerURL + "=" + broker, envStoreURL + "=" + storeURL}
	data := t.TempDir()
	serve := startReplica(t, env, data)

	// stored counts entries per name, and distinct ids per name.
	stored := func() (total int, byName, distinct map[string]int) {
		byName, distinct = map[string]int{}, map[string]int{}
		err := func() error {
			rows, done, err := query(`SELECT name, count(*), count(DISTINCT id) FROM entries GROUP BY name`)
			if err != nil {
				return err
			}
			defer done()
			for rows.Next() {
				var name string
				var n, d int
				if err := rows.Scan(&name, &n, &d); err != nil {
					return err
				}
				byName[name], distinct[name] = n, d
				// The log's own records of the story's erasures are not
				// deliveries: counting them would end the waits early.
				if name != auditlog.SubjectErased {
					total += n
				}
			}
			return rows.Err()
		}()
		if err != nil {
			// The file may not hold the table yet: nothing stored.
			return 0, map[string]int{}, map[string]int{}
		}
		return total, byName, distinct
	}

	sim := startSimulate(t, env, killEvents, killSeed)

	// The kills are spread over the story: each waits until the audit log
	// has stored more since the last restart, so it lands with deliveries
	// in flight and a batch being written.
	var at []int
	for k := 1; k <= killCount; k++ {
		target := k * killEvents / (2 * (killCount + 1))
		waitFor(t, 180*time.Second, fmt.Sprintf("%d entries stored before kill %d", target, k), func() bool {
			n, _, _ := stored()
			return n >= target
		})
		n, _, _ := stored()
		at = append(at, n)
		serve.p.kill()
		serve = startReplica(t, env, data)
	}

	want, audited := auditedEvents(sim.wait(t))
	// herald's own entries (reads of the log, prunings) are not the
	// story's; none are expected here, as nothing reads the log.
	waitFor(t, 180*time.Second, "every audited event stored", func() bool {
		n, _, _ := stored()
		return n >= audited
	})
	// Redeliveries still in flight would add duplicates after the total
	// was reached: wait until the queue is drained.
	waitFor(t, 120*time.Second, "the audit log's queue drained", func() bool {
		q := replicaStatus(t, env).Queue
		return q != nil && q.Messages == 0 && (q.Unacked == nil || *q.Unacked == 0) && q.Retrying == 0
	})
	total, byName, distinct := stored()
	lost, twice := 0, 0
	for name, n := range want {
		if byName[name] < n {
			lost += n - byName[name]
		}
		twice += byName[name] - distinct[name]
		if byName[name] != n || distinct[name] != n {
			t.Errorf("%s: %d stored (%d distinct), %d confirmed", name, byName[name], distinct[name], n)
		}
	}
	for name, n := range byName {
		// The log's own records of the story's erasures are not events.
		if _, ok := want[name]; !ok && name != auditlog.SubjectErased {
			t.Errorf("%s: %d stored, none audited confirmed", name, n)
		}
	}
	t.Logf("RESULT kill -9 on %s: %d events confirmed, %d audited; %d kills (at %v stored); %d stored, %d lost, %d stored twice; %v",
		storeName, killEvents, audited, killCount, at, total, lost, twice, time.Since(start).Round(time.Second))
	serve.p.stop(t)
}

// entryRows is the rows of a query in either database's driver.
type entryRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}
