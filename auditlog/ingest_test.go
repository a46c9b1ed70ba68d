package auditlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

type fixture struct {
	store    *sqlite.Store
	ingester *auditlog.Ingester
	metrics  *auditlog.Metrics
	audit    *bus.Bus
	pub      *bus.Bus
	broker   *memory.Broker
}

// newFixture runs an audit log on a real SQLite store and the in-process
// broker, subscribed to patterns, and a publisher on the same broker.
func newFixture(t *testing.T, patterns ...string) *fixture {
	t.Helper()
	ctx := context.Background()
	store := openSQLite(t)
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	m := auditlog.NewMetrics(prometheus.NewRegistry())
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: []byte("ingest-test-erasure-key"), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{
		Store: store, Catalog: catalog.Default(), BatchSize: 50, FlushInterval: 5 * time.Millisecond, Metrics: m, Eraser: x,
	})
	audit, err := bus.New(broker.Connect(), bus.WithService(auditlog.QueueName), bus.WithConcurrency(50),
		bus.WithRetry(bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		audit.Close(context.Background())
		in.Close()
	})
	if len(patterns) == 0 {
		patterns = catalog.Default().Audited()
	}
	if err := audit.SubscribeAll(ctx, patterns, in.Handle); err != nil {
		t.Fatal(err)
	}
	pub, err := bus.New(broker.Connect(), bus.WithService("accounts"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	return &fixture{store: store, ingester: in, metrics: m, audit: audit, pub: pub, broker: broker}
}

func (f *fixture) publish(t *testing.T, name, payload string) *event.Event {
	t.Helper()
	ev, err := event.New(name, json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// waitTotal waits until the store holds n entries selected by q.
func (f *fixture) waitTotal(t *testing.T, q auditlog.Query, n int64) auditlog.Page {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.Limit = 1000
		p, err := f.store.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total == n {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("store holds %d entries for %+v, want %d", p.Total, q, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIngestStoresAuditedEventsInBatches(t *testing.T) {
	f := newFixture(t)
	const n = 300
	for i := range n {
		f.publish(t, "iam.user.created", fmt.Sprintf(`{"id":"u%d","username":"u%d@example.com"}`, i, i))
	}
	// Not audited: the audit log is not bound to it.
	f.publish(t, "component.started", `{"id":"c1"}`)
	f.waitTotal(t, auditlog.Query{}, n)
	if got := testutil.ToFloat64(f.metrics.Ingested.WithLabelValues("iam.user.created")); got != n {
		t.Errorf("events_ingested_total = %v, want %d", got, n)
	}
	// The deliveries were written in batches, not one transaction each.
	if txs := histCount(t, f.metrics.BatchSize); txs == 0 || txs >= n {
		t.Errorf("%d transactions for %d events: not batched", txs, n)
	}
}

func histCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestIngestKeepsPublisherCreatedAtAndReceiveTime(t *testing.T) {
	f := newFixture(t)
	ev, _ := event.New("iam.tenant.deleted", json.RawMessage(`{"id":"t1"}`))
	ev.Headers.CreatedAt = time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	ev.Headers.Extra = map[string]json.RawMessage{"type": json.RawMessage(`"manual"`)}
	before := time.Now().Add(-time.Second)
	if err := f.pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	p := f.waitTotal(t, auditlog.Query{Name: "iam.tenant.deleted"}, 1)
	e := p.Entries[0]
	if !e.CreatedAt.Equal(ev.Headers.CreatedAt) {
		t.Errorf("createdAt %v, want the publisher's %v", e.CreatedAt, ev.Headers.CreatedAt)
	}
	if e.ReceivedAt.Before(before) {
		t.Errorf("receivedAt %v is not the receive time", e.ReceivedAt)
	}
	if e.ID != ev.Headers.ID || e.ServiceName != "accounts" || !strings.Contains(string(e.Headers), `"manual"`) {
		t.Errorf("entry %+v lost id, serviceName or headers", e)
	}
}

func TestIngestIsIdempotentAcrossRedeliveries(t *testing.T) {
	f := newFixture(t)
	ev := f.publish(t, "iam.role.created", `{"role":"Integrator","tenant":"t1"}`)
	// The same event again, as a broker redelivers it.
	again := ev.Clone()
	if err := f.pub.Publish(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	marker := f.publish(t, "iam.role.deleted", `{"role":"r1"}`)
	f.waitTotal(t, auditlog.Query{Name: marker.Headers.Name}, 1)
	f.waitTotal(t, auditlog.Query{Name: "iam.role.created"}, 1)
}

func TestIngestMarksUnknownEventsMatchedByPattern(t *testing.T) {
	f := newFixture(t, "#")
	ev, _ := event.New("custom.thing.happened", json.RawMessage(`{"x":1}`))
	pub, _ := bus.New(f.broker.Connect(), bus.WithService("custom"), bus.WithoutValidation())
	defer pub.Close(context.Background())
	if err := pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "iam.user.created", `{"id":"u1","username":"a@b.c"}`)
	p := f.waitTotal(t, auditlog.Query{}, 2)
	for _, e := range p.Entries {
		if want := e.Name == "custom.thing.happened"; e.Unknown != want {
			t.Errorf("%s: unknown = %v, want %v", e.Name, e.Unknown, want)
		}
	}
}

// TestUserDeletedAnonymisesWhereOIHMissesIt: the deletion is handled
// directly (Handle returns once the erasure is done), so what the test
// reads next is the outcome, without waiting for time to pass.
func TestUserDeletedAnonymisesWhereOIHMissesIt(t *testing.T) {
	f := newFixture(t)
	f.publish(t, "iam.user.created", `{"id":"u1","username":"jane@example.com"}`)
	f.publish(t, "iam.user.created", `{"id":"u2","username":"joe@example.com"}`)
	f.publish(t, "iam.user.loginFailed", `{"user":"jane@example.com"}`)
	f.publish(t, "iam.user.loginFailed", `{"user":"joe@example.com"}`)
	f.publish(t, "iam.token.deleted", `{"account":"u1"}`)
	f.publish(t, "flowrepo.flow.created", `{"user":"u1","tenant":"t1","flowId":"f1"}`)
	f.waitTotal(t, auditlog.Query{}, 6)
	del, err := event.New("iam.user.deleted", json.RawMessage(`{"id":"u1"}`))
	if err != nil {
		t.Fatal(err)
	}
	del.Headers.ServiceName = "accounts"
	if err := f.ingester.Handle(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	p, err := f.store.Query(context.Background(), auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	all := ""
	for _, e := range p.Entries {
		all += string(e.Payload) + " user=" + e.User + "\n"
	}
	if strings.Contains(all, "u1") || strings.Contains(all, "jane@example.com") {
		t.Fatalf("deleted user still visible:\n%s", all)
	}
	if !strings.Contains(all, "joe@example.com") || !strings.Contains(all, "u2") {
		t.Fatalf("another user's entries were anonymised:\n%s", all)
	}
	if got := testutil.ToFloat64(f.metrics.Anonymised); got != 5 {
		t.Errorf("entries_anonymised_total = %v, want 5", got)
	}
}

func TestCloseCommitsTheBatchBeingCollected(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	// A batch that never fills and an interval that never passes: only
	// Close can commit these.
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, BatchSize: 1000, FlushInterval: time.Hour})
	const n = 10
	results := make([]<-chan error, n)
	for i := range n {
		ev, _ := event.New("iam.user.created", json.RawMessage(fmt.Sprintf(`{"id":"u%d"}`, i)))
		e, err := auditlog.EntryFromEvent(ev, time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		results[i] = in.Enqueue(e) // returns once the batch holds it
	}
	in.Close()
	for i, res := range results {
		select {
		case err := <-res:
			if err != nil {
				t.Errorf("entry %d of the batch being collected: %v, want it committed", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("entry %d of the batch being collected has no outcome 10s after Close returned", i)
		}
	}
	p, err := store.Query(ctx, auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != n {
		t.Fatalf("stored %d entries after Close, want the %d of the batch", p.Total, n)
	}
	// After Close, Handle refuses rather than waiting for a loop that is
	// gone, and stores nothing.
	ev, _ := event.New("iam.user.created", json.RawMessage(`{"id":"late"}`))
	if err := in.Handle(ctx, ev); !errors.Is(err, auditlog.ErrIngesterClosed) {
		t.Errorf("Handle after Close: %v, want ErrIngesterClosed", err)
	}
	if p, err := store.Query(ctx, auditlog.Query{Limit: 100}); err != nil || p.Total != n {
		t.Errorf("after a refused Handle the store holds %d entries (error %v), want %d", p.Total, err, n)
	}
}

// TestARefusedEntryFailsOnlyItsOwnDelivery: an entry the store refuses
// fails the transaction of its whole batch; the ingester then writes the
// batch one entry at a time, so that only the refused entry's delivery is
// retried and the others are acknowledged.
func TestARefusedEntryFailsOnlyItsOwnDelivery(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	const n, refused = 5, 2
	// The batch is written when its fifth entry joins it.
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, BatchSize: n, FlushInterval: time.Hour})
	defer in.Close()
	results := make([]<-chan error, n)
	for i := range n {
		payload := fmt.Sprintf(`{"id":"u%d"}`, i)
		if i == refused {
			payload = `["not", "an", "object"]`
		}
		results[i] = in.Enqueue(auditlog.Entry{ID: fmt.Sprintf("e%d", i), Name: "iam.user.created", ReceivedAt: time.Now(), Payload: json.RawMessage(payload)})
	}
	for i, res := range results {
		select {
		case err := <-res:
			if i == refused && !errors.Is(err, auditlog.ErrInvalidEntry) {
				t.Errorf("the refused entry: %v, want ErrInvalidEntry", err)
			}
			if i != refused && err != nil {
				t.Errorf("entry %d failed with its batch: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("entry %d has no outcome after 10s", i)
		}
	}
	if p, err := store.Query(ctx, auditlog.Query{Limit: 100}); err != nil || p.Total != n-1 {
		t.Errorf("stored %d entries (error %v), want the %d valid ones", p.Total, err, n-1)
	}
}

// Content no store keeps is refused for good: the bus dead-letters it at
// once instead of retrying the same bytes. A store that fails is not.
func TestRefusedContentIsAPermanentError(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, FlushInterval: time.Millisecond})
	defer in.Close()
	for _, payload := range []string{`{"x":"\u0000"}`, `{"user":"a","user":"b"}`, `{"n":1e999999}`} {
		ev := &event.Event{Headers: event.Headers{Name: "flowrepo.flow.created", ID: "e-" + payload}, Payload: json.RawMessage(payload)}
		err := in.Handle(ctx, ev)
		if err == nil || !errors.Is(err, auditlog.ErrInvalidEntry) || !bus.IsPermanent(err) {
			t.Errorf("%s: %v (permanent %v), want a permanent ErrInvalidEntry", payload, err, bus.IsPermanent(err))
		}
	}
	store.Close()
	ev, _ := event.New("flowrepo.flow.created", json.RawMessage(`{"x":1}`))
	if err := in.Handle(ctx, ev); err == nil || bus.IsPermanent(err) {
		t.Errorf("a closed store: %v (permanent %v), want an error to retry", err, bus.IsPermanent(err))
	}
}
