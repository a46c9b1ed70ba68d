package auditlog_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/auditlog/storetest"
)

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
	// After the first page is read, more entries come and everything is
	// integrated.
	log := &steppedLog{Store: store, afterLeaves: func() {
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

// steppedLog is a log written while it is verified: it runs one step of
// the log's writing before, and one after, the first read of its
// entries.
type steppedLog struct {
	*sqlite.Store
	beforeLeaves, afterLeaves func()
}

func (m *steppedLog) Leaves(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Entry, error) {
	if f := m.beforeLeaves; f != nil {
		m.beforeLeaves = nil
		f()
	}
	es, err := m.Store.Leaves(ctx, afterSeq, limit)
	if f := m.afterLeaves; f != nil {
		m.afterLeaves = nil
		f()
	}
	return es, err
}

// TestVerifyOfALogIntegratedAfterItsLastPage: the last page holds entries
// not yet integrated, and a checkpoint of them, issued after that page
// was read, is read later in the walk: the walk reads them again rather
// than report the checkpoint's leaves missing.
func TestVerifyOfALogIntegratedAfterItsLastPage(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	signer, v := storetest.NewSigner(t, "live.example")
	integrate := func(max int) {
		ig, err := store.Integrator(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer ig.Close()
		if _, _, err := ig.Integrate(ctx, max, signer.Sign); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Append(ctx, feedEntries(0, 20)); err != nil {
		t.Fatal(err)
	}
	integrate(20)
	if _, err := store.Append(ctx, feedEntries(20, 5)); err != nil {
		t.Fatal(err)
	}
	// Verify has read the checkpoint of 20; three more are integrated
	// before the page is read, the last two after.
	log := &steppedLog{Store: store, beforeLeaves: func() { integrate(3) }, afterLeaves: func() { integrate(2) }}
	r, err := auditlog.Verify(ctx, log, v, auditlog.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failure != nil {
		t.Fatalf("verify of a log integrated after its last page was read: %+v", *r.Failure)
	}
	if r.Entries != 25 || r.Integrated != 25 || r.Pending != 0 || r.TreeSize != 25 {
		t.Errorf("verified %d entries, %d integrated, %d pending, tree %d; want 25, 25, 0, 25", r.Entries, r.Integrated, r.Pending, r.TreeSize)
	}
}
