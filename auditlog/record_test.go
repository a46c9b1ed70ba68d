package auditlog_test

import (
	"context"
	"fmt"
	"sync"
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
	var started sync.WaitGroup
	for i := 1; i < 50; i++ {
		started.Add(1)
		go func() {
			started.Done()
			errs <- record(i)
		}()
	}
	started.Wait()
	// Only so that the 49 reach the ingester before the store is free;
	// however late one is, it cannot make the count pass.
	time.Sleep(200 * time.Millisecond)
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
