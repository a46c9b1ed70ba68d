package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// TestOneRefusedEntryDoesNotFailItsBatch: PostgreSQL refuses a NUL
// character in JSONB, which fails the whole transaction. The ingester must
// still commit (and let the bus acknowledge) every other event of the
// batch, and report the failure only for the refused one.
func TestOneRefusedEntryDoesNotFailItsBatch(t *testing.T) {
	store := openTest(t)
	defer store.Close()
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, BatchSize: 100, FlushInterval: 50 * time.Millisecond})
	defer in.Close()

	ctx := context.Background()
	type result struct {
		poison bool
		err    error
	}
	results := make(chan result, 21)
	for i := range 21 {
		payload := fmt.Sprintf(`{"id":"u%d"}`, i)
		poison := i == 10
		if poison {
			payload = `{"id":"bad\u0000"}`
		}
		ev, err := event.New("iam.user.created", json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		go func() { results <- result{poison, in.Handle(ctx, ev)} }()
	}
	for range 21 {
		r := <-results
		if r.poison && r.err == nil {
			t.Error("the entry PostgreSQL refuses was reported stored")
		}
		if !r.poison && r.err != nil {
			t.Errorf("a valid entry failed with its batch: %v", r.err)
		}
	}
	p, err := store.Query(ctx, auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 20 {
		t.Fatalf("stored %d entries, want the 20 valid ones", p.Total)
	}
}
