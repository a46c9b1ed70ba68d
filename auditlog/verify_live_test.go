package auditlog_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/auditlog/storetest"
)

// movingLog is a log written while it is verified: after the first page
// is read, more entries are appended and everything is integrated.
type movingLog struct {
	*sqlite.Store
	moved bool
	move  func()
}

func (m *movingLog) Leaves(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Entry, error) {
	es, err := m.Store.Leaves(ctx, afterSeq, limit)
	if err == nil && !m.moved {
		m.moved = true
		m.move()
	}
	return es, err
}

// TestVerifyOfALogWrittenMeanwhile: entries read not yet integrated at
// the end of one page, and integrated by the time the next page is read
// (as when verify reads through the API of a live log, whose every
// export is itself a new entry), are a log that moved on, not an entry
// out of order.
func TestVerifyOfALogWrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	signer, v := storetest.NewSigner(t, "live.example")
	if _, err := store.Append(ctx, feedEntries(0, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.IntegrateAll(ctx, store, signer); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, feedEntries(20, 5)); err != nil { // pending
		t.Fatal(err)
	}
	log := &movingLog{Store: store, move: func() {
		if _, err := store.Append(ctx, feedEntries(25, 5)); err != nil {
			t.Error(err)
		}
		if _, err := auditlog.IntegrateAll(ctx, store, signer); err != nil {
			t.Error(err)
		}
	}}
	// The first page ends with two of the five pending entries.
	r, err := auditlog.Verify(ctx, log, v, auditlog.VerifyOptions{Page: 22})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failure != nil {
		t.Fatalf("verify of a log written meanwhile: %+v", *r.Failure)
	}
	if r.Entries != 30 || r.Integrated != 30 {
		t.Errorf("verified %d entries, %d integrated; want 30 and 30", r.Entries, r.Integrated)
	}
}
