package auditlog_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// TestRecordsWaitingTogetherShareOneCommit: reads recorded while the
// store is busy are written together as soon as it is free (group
// commit), not one transaction each, and each Record returns once its
// entry is stored.
func TestRecordsWaitingTogetherShareOneCommit(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	// Each Append is counted; the first holds until open is closed.
	entered, open := make(chan struct{}), make(chan struct{})
	var appends int
	var before, count func()
	count = func() {
		if appends++; appends == 1 {
			close(entered)
			<-open
		}
		before = count
	}
	before = count
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: hookStore{store, &before}})
	defer in.Close()
	record := func(i int) error {
		ev, err := event.New("audit-log.logs.read", map[string]any{"user": fmt.Sprint("u", i)})
		if err != nil {
			return err
		}
		ev.Headers.ServiceName = auditlog.QueueName
		return in.Record(ctx, ev)
	}
	errs := make(chan error, 50)
	go func() { errs <- record(0) }()
	<-entered // the store is busy with the first read's commit
	for i := 1; i < 50; i++ {
		go func() { errs <- record(i) }()
	}
	// The store is freed once all 50 wait in the ingester (the first for
	// its commit, the others to hand their entry over); a late one
	// could only add a transaction, never make the count pass.
	waitGoroutines(t, ".(*Ingester).store(", 50)
	close(open)
	for range 50 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	p, err := store.Query(ctx, auditlog.Query{Limit: 100})
	if err != nil || p.Total != 50 {
		t.Fatalf("%d reads stored (%v), want 50", p.Total, err)
	}
	if n := appends; n > 5 {
		t.Errorf("50 reads took %d transactions; those waiting together should share one", n)
	}
}

// waitGoroutines waits until n goroutines have frame in their stack.
func waitGoroutines(t *testing.T, frame string, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := strings.Count(string(buf[:runtime.Stack(buf, true)]), frame)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines in %s after 10s, want %d", got, frame, n)
		}
		time.Sleep(time.Millisecond)
	}
}
