package simulate

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

// busRouter publishes through one bus per service on broker, as herald
// simulate does on a real broker.
func busRouter(t *testing.T, broker *memory.Broker) *Router {
	t.Helper()
	r := NewRouter(func(service string) (Publisher, error) {
		return bus.New(broker.Connect(), bus.WithService(service))
	})
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("close router: %v", err)
		}
	})
	return r
}

// collector subscribes to every event on broker, as the audit log would.
type collector struct {
	mu  sync.Mutex
	evs []*event.Event
}

func collect(t *testing.T, broker *memory.Broker) *collector {
	t.Helper()
	c := &collector{}
	b, err := bus.New(broker.Connect(), bus.WithService("audit-log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	err = b.Subscribe(context.Background(), "#", func(_ context.Context, ev *event.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.evs = append(c.evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) waitFor(t *testing.T, n int) []*event.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.evs)
		evs := append([]*event.Event(nil), c.evs...)
		c.mu.Unlock()
		if got >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events of %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunPublishesTheStoryThroughOneBusPerService(t *testing.T) {
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	got := collect(t, broker)
	r := busRouter(t, broker)

	var progress []int
	const n = 600
	st, err := Run(context.Background(), New(5, Options{Now: fixedNow}), r, Config{
		Count:    n,
		Progress: func(done int) { progress = append(progress, done) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Published != n || len(progress) != n || progress[n-1] != n {
		t.Fatalf("published %d, progress called %d times", st.Published, len(progress))
	}
	evs := got.waitFor(t, n)

	want := story(5, Options{}, n)
	byService := map[string]int{}
	for i, ev := range evs {
		if ev.Headers.Name != want[i].Headers.Name || ev.Headers.ServiceName != want[i].Headers.ServiceName {
			t.Fatalf("event %d: got %s from %s, want %s from %s", i+1,
				ev.Headers.Name, ev.Headers.ServiceName, want[i].Headers.Name, want[i].Headers.ServiceName)
		}
		if ev.Headers.ID == "" || ev.Headers.CreatedAt.IsZero() {
			t.Fatalf("event %d arrived without id or createdAt", i+1)
		}
		byService[ev.Headers.ServiceName]++
	}
	for svc, c := range byService {
		if st.ByService[svc] != c {
			t.Errorf("stats count %d events from %s, %d arrived", st.ByService[svc], svc, c)
		}
	}
	if len(st.Services()) != len(Services()) {
		t.Errorf("%d services published (%v), want all of %v", len(st.Services()), st.Services(), Services())
	}
	checkCausality(t, evs)
}

func TestRunKeepsToTheRate(t *testing.T) {
	n, rate := 30, 300.0
	st, err := Run(context.Background(), New(1, Options{}), discard{}, Config{Count: n, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	// The bucket starts with 10 ms worth of events; the others wait their turn.
	burst := max(1, int(rate/100))
	if least := time.Duration(float64(n-burst) / rate * float64(time.Second)); st.Elapsed < least {
		t.Fatalf("published %d events in %v at %v/s, want at least %v", n, st.Elapsed, rate, least)
	}
}

func TestRunStopsAtTheFirstFailedPublish(t *testing.T) {
	refused := errors.New("connection refused")
	pub := &failAfter{n: 3, err: refused}
	st, err := Run(context.Background(), New(1, Options{}), pub, Config{Count: 10})
	if !errors.Is(err, refused) {
		t.Fatalf("error %v, want it to wrap %v", err, refused)
	}
	if st.Published != 3 || pub.calls != 4 {
		t.Fatalf("published %d in %d calls, want 3 in 4", st.Published, pub.calls)
	}
}

func TestRunWithoutCountRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Run(ctx, New(1, Options{}), discard{}, Config{Progress: func(done int) {
		if done == 2500 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatalf("a run without a count ends with its context, got %v", err)
	}
	if st.Published != 2500 {
		t.Fatalf("published %d, want 2500", st.Published)
	}
}

func TestRunWithCountReportsCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Run(ctx, New(1, Options{}), discard{}, Config{Count: 100, Progress: func(done int) {
		if done == 10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || st.Published != 10 {
		t.Fatalf("published %d, error %v; want 10 and context.Canceled", st.Published, err)
	}
}

func TestRouterReportsAPublisherItCannotMake(t *testing.T) {
	down := errors.New("no broker")
	r := NewRouter(func(string) (Publisher, error) { return nil, down })
	if err := r.Open(Services()...); !errors.Is(err, down) {
		t.Fatalf("Open: %v, want %v", err, down)
	}
	_, err := Run(context.Background(), New(1, Options{}), r, Config{Count: 1})
	if !errors.Is(err, down) {
		t.Fatalf("Run: %v, want %v", err, down)
	}
}

type discard struct{}

func (discard) Publish(context.Context, *event.Event) error { return nil }

type failAfter struct {
	n, calls int
	err      error
}

func (f *failAfter) Publish(context.Context, *event.Event) error {
	f.calls++
	if f.calls > f.n {
		return f.err
	}
	return nil
}
