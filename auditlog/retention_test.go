package auditlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// TestRetainRecordsThePruningBeforeItPrunes: a pruning whose record
// cannot be written prunes nothing; one whose record is written prunes
// every entry received before the cut, and the log holds the record.
func TestRetainRecordsThePruningBeforeItPrunes(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t)
	entries := feedEntries(0, 50)
	for i := range entries {
		entries[i].ReceivedAt = time.Now().Add(-time.Hour)
	}
	if _, err := s.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	pruned := func() (n int, records int) {
		p, err := s.Query(ctx, auditlog.Query{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			if e.Pruned() {
				n++
			}
			if e.Name == auditlog.PrunedEvent {
				records++
			}
		}
		return n, records
	}

	refused := errors.New("the log takes no entry")
	n, err := auditlog.Retain(ctx, s, time.Now(), time.Minute, func(context.Context, *event.Event) error { return refused })
	if !errors.Is(err, refused) || n != 0 {
		t.Fatalf("retain without its record: %d pruned, %v; want 0 and the record's error", n, err)
	}
	if got, _ := pruned(); got != 0 {
		t.Fatalf("%d entries pruned with no record of it", got)
	}

	in := auditlog.NewIngester(auditlog.IngestConfig{Store: s})
	defer in.Close()
	n, err = auditlog.Retain(ctx, s, time.Now(), time.Minute, in.Record)
	if err != nil || n != 50 {
		t.Fatalf("retain: %d pruned, %v; want 50", n, err)
	}
	if got, records := pruned(); got != 50 || records != 1 {
		t.Fatalf("after retain: %d entries pruned, %d records of a pruning; want 50 and 1", got, records)
	}
}
