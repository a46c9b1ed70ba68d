package simulate

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

// publisher returns a bus on broker, as herald simulate publishes through.
func publisher(t *testing.T, broker *memory.Broker) *bus.Bus {
	t.Helper()
	b, err := bus.New(broker.Connect(), bus.WithService("herald-simulate"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return b
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

func TestRunPublishesTheStoryInOrderWithEachEventsService(t *testing.T) {
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	got := collect(t, broker)
	r := publisher(t, broker)

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
	st, err := Run(context.Background(), New(1, Options{}), newDiscard(t), Config{Count: n, Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	// The bucket starts with 10 ms worth of events; the others wait their turn.
	burst := max(1, int(rate/100))
	if least := time.Duration(float64(n-burst) / rate * float64(time.Second)); st.Elapsed < least {
		t.Fatalf("published %d events in %v at %v/s, want at least %v", n, st.Elapsed, rate, least)
	}
}

// TestRunSendsNoBurstAfterAStall stalls one publish far longer than the
// rate's interval, as a broker that stops answering for a while: the
// events after it still keep to the rate, with no burst to catch up.
func TestRunSendsNoBurstAfterAStall(t *testing.T) {
	const n, at, rate = 25, 2, 100.0
	pub := &stalling{pub: newDiscard(t), at: at, stall: 300 * time.Millisecond}
	if _, err := Run(context.Background(), New(1, Options{}), pub, Config{Count: n, Rate: rate}); err != nil {
		t.Fatal(err)
	}
	// After the stall, the bucket holds 10 ms worth of events at most; the
	// others wait their turn. A lower bound only, which a slow machine
	// cannot break.
	burst := max(1, int(rate/100))
	after := n - at - 1
	least := time.Duration(float64(after-burst) / rate * float64(time.Second))
	if took := pub.handed[n-1].Sub(pub.resumed); took < least {
		t.Fatalf("the %d events after a stall of %v went in %v at %v/s, want at least %v", after, pub.stall, took, rate, least)
	}
}

func TestRunStopsAtTheFirstFailedPublish(t *testing.T) {
	refused := errors.New("connection refused")
	pub := &failAfter{pub: newDiscard(t), n: 3, err: refused}
	st, err := Run(context.Background(), New(1, Options{}), pub, Config{Count: 10})
	if !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "event 4 ") {
		t.Fatalf("error %v, want it to name event 4 and wrap %v", err, refused)
	}
	if st.Published != 3 || pub.calls != 4 {
		t.Fatalf("published %d in %d calls, want 3 in 4", st.Published, pub.calls)
	}
}

func TestRunStopsAtTheFirstRefusedConfirmation(t *testing.T) {
	nacked := errors.New("nacked")
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	held := &heldTransport{Transport: broker.Connect()}
	pub, err := bus.New(held, bus.WithService("held"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var st Stats
	go func() {
		defer close(done)
		st, err = Run(context.Background(), New(1, Options{}), pub, Config{Count: 10})
	}()
	// Run hands over every event before any is confirmed; the second is
	// refused.
	held.waitFor(t, 10)
	held.answer(0, nil)
	held.answer(1, nacked)
	for i := 2; i < 10; i++ {
		held.answer(i, nil)
	}
	<-done
	if !errors.Is(err, nacked) || !strings.HasPrefix(err.Error(), "event 2 ") {
		t.Fatalf("error %v, want it to name event 2 and wrap %v", err, nacked)
	}
	if st.Published != 9 {
		t.Fatalf("published %d, want the 9 confirmed", st.Published)
	}
}

func TestRunWithoutCountRunsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := Run(ctx, New(1, Options{}), newDiscard(t), Config{Progress: func(done int) {
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
	st, err := Run(ctx, New(1, Options{}), newDiscard(t), Config{Count: 100, Progress: func(done int) {
		if done == 10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || st.Published != 10 {
		t.Fatalf("published %d, error %v; want 10 and context.Canceled", st.Published, err)
	}
}

// newDiscard returns a publisher whose broker confirms every event at
// once and delivers it to nobody.
func newDiscard(t *testing.T) *bus.Bus {
	t.Helper()
	b, err := bus.New(memory.NewBroker().Connect(), bus.WithService("discard"), bus.WithoutValidation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// failAfter hands over n events, then refuses every other.
type failAfter struct {
	pub      *bus.Bus
	n, calls int
	err      error
}

func (f *failAfter) PublishAsync(ctx context.Context, ev *event.Event) (*bus.Confirmation, error) {
	f.calls++
	if f.calls > f.n {
		return nil, f.err
	}
	return f.pub.PublishAsync(ctx, ev)
}

// stalling hands events to pub, but holds the one at index at for stall
// first.
type stalling struct {
	pub     *bus.Bus
	at      int
	stall   time.Duration
	resumed time.Time   // when the stall ended
	handed  []time.Time // when each event was handed over
}

func (s *stalling) PublishAsync(ctx context.Context, ev *event.Event) (*bus.Confirmation, error) {
	if len(s.handed) == s.at {
		<-time.After(s.stall)
		s.resumed = time.Now()
	}
	c, err := s.pub.PublishAsync(ctx, ev)
	s.handed = append(s.handed, time.Now())
	return c, err
}

// heldTransport takes every publish and holds its confirmation until the
// test answers it.
type heldTransport struct {
	driver.Transport
	mu       sync.Mutex
	confirms []func(error)
}

func (h *heldTransport) Publish(ctx context.Context, m driver.Message, confirm func(error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.confirms = append(h.confirms, confirm)
	return nil
}

// waitFor waits until n publishes are held.
func (h *heldTransport) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got := len(h.confirms)
		h.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d publishes handed over, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// answer answers the i-th publish held.
func (h *heldTransport) answer(i int, err error) {
	h.mu.Lock()
	c := h.confirms[i]
	h.mu.Unlock()
	c(err)
}
