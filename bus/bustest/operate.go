package bustest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// The cases of the interfaces herald's operators use: dead letters
// replayed and purged, bindings that follow a service's configuration,
// and a queue's state. A transport that does not implement one skips its
// case, saying so.

// operatorTransport returns a transport of the suite, closed when the
// test ends, for calls outside any bus.
func (s *suite) operatorTransport(t *testing.T) driver.Transport {
	t.Helper()
	tr := s.transport(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		defer cancel()
		_ = tr.Close(ctx)
	})
	return tr
}

func (s *suite) replayAndPurge(t *testing.T) {
	tr := s.operatorTransport(t)
	rep, ok := tr.(driver.DeadLetterReplayer)
	pur, ok2 := tr.(driver.DeadLetterPurger)
	if !ok || !ok2 {
		t.Skipf("%T implements neither driver.DeadLetterReplayer nor driver.DeadLetterPurger", tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	p := s.prefix("replay")
	svc := s.service("replay")
	// The publisher traces, so its messages carry a traceparent header: a
	// replay keeps it, as retries do.
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	pub := s.newBus(t, s.service("replay-pub"), bus.WithTracerProvider(tp))
	policy := fastRetry
	policy.MaxAttempts = 2
	tap := &headerTap{Transport: s.transport(t), headers: make(map[string][]string)}
	sub := s.newBusOn(t, tap, svc, bus.WithRetry(policy))
	// The dead letters are the broker's: read through pub's transport,
	// which lists them (the tap does not).
	var failing atomic.Bool
	failing.Store(true)
	col := newCollector()
	col.fail = func(*event.Event, int) error {
		if failing.Load() {
			return errors.New("not yet")
		}
		return nil
	}
	subscribe(t, sub, p+".#", col.handle)
	// Another service sees each event once: a replay is for its queue only.
	other := newCollector()
	subscribe(t, s.newBus(t, s.service("replay-other")), p+".#", other.handle)

	var ids []string
	for i := range 4 {
		ids = append(ids, publish(t, pub, p+".doomed", map[string]int{"i": i}).Headers.ID)
	}
	var dls []driver.DeadLetter
	testkit.Eventually(t, s.retryWait(2), func() error {
		var err error
		if dls, err = s.deadLetters(t, pub, svc); err != nil {
			return err
		}
		if len(dls) != len(ids) {
			return fmt.Errorf("%d dead letters, want %d", len(dls), len(ids))
		}
		return nil
	})
	byEvent := map[string]driver.DeadLetter{}
	distinct := map[string]bool{}
	for _, dl := range dls {
		byEvent[idOfBody(dl.Body)] = dl
		distinct[dl.ID] = true
	}
	if len(distinct) != len(dls) || distinct[""] {
		t.Fatalf("dead letter ids %q: want every one set and distinct", deadIDs(dls))
	}

	// One by id (and an id nobody has): handled again, as a first delivery.
	failing.Store(false)
	got, err := rep.ReplayDeadLetters(ctx, svc, []string{byEvent[ids[0]].ID, "no-such-dead-letter"})
	if err != nil || len(got) != 1 || got[0].ID != byEvent[ids[0]].ID {
		t.Fatalf("replay of %s: %q, %v; want that one dead letter", byEvent[ids[0]].ID, deadIDs(got), err)
	}
	testkit.Eventually(t, defaultTimeout, func() error {
		if a := col.attemptsOf(ids[0]); len(a) != 3 || a[2] != 1 {
			return fmt.Errorf("replayed event handled for attempts %v, want [1 2 1]", a)
		}
		return nil
	})
	if h := tap.of(ids[0]); len(h) != 3 || h[0] == "" || h[2] != h[0] {
		t.Errorf("traceparent of the deliveries of the replayed event: %q, want the published one on each", h)
	}

	// One purged by id, then the rest replayed.
	if n, err := pur.PurgeDeadLetters(ctx, svc, []string{byEvent[ids[1]].ID}); err != nil || n != 1 {
		t.Fatalf("purge of one dead letter: %d, %v; want 1", n, err)
	}
	if got, err := rep.ReplayDeadLetters(ctx, svc, nil); err != nil || len(got) != 2 {
		t.Fatalf("replay of every dead letter: %q, %v; want the 2 left", deadIDs(got), err)
	}
	testkit.Eventually(t, defaultTimeout, func() error {
		for _, id := range ids[2:] {
			if a := col.attemptsOf(id); len(a) != 3 || a[2] != 1 {
				return fmt.Errorf("replayed event %s handled for attempts %v, want [1 2 1]", id, a)
			}
		}
		return nil
	})
	if left, err := s.deadLetters(t, pub, svc); err != nil || len(left) != 0 {
		t.Errorf("dead letters after replaying and purging them all: %q, %v", deadIDs(left), err)
	}

	// Purge without ids takes every dead letter.
	failing.Store(true)
	last := publish(t, pub, p+".doomed", map[string]string{"last": "one"}).Headers.ID
	s.waitDeadLetter(t, pub, svc, last, nil, s.retryWait(2))
	if n, err := pur.PurgeDeadLetters(ctx, svc, nil); err != nil || n != 1 {
		t.Errorf("purge of every dead letter: %d, %v; want 1", n, err)
	}
	if left, err := s.deadLetters(t, pub, svc); err != nil || len(left) != 0 {
		t.Errorf("dead letters after purging them all: %q, %v", deadIDs(left), err)
	}

	// What another service saw: each event once, the replays never. The
	// marker comes after every replay, in the order a service reads.
	marker := publish(t, pub, p+".marker", nil).Headers.ID
	testkit.Eventually(t, defaultTimeout, func() error { return other.missing(marker) })
	closeBus(t, sub)
	if a := col.attemptsOf(ids[1]); !slices.Equal(a, []int{1, 2}) {
		t.Errorf("the purged dead letter was handled for attempts %v, want [1 2] and never again", a)
	}
	for _, id := range append(ids, last) {
		if n := other.count(id); n != 1 {
			t.Errorf("another service handled %s %d times, want once: a replay reached it", id, n)
		}
	}
}

func deadIDs(dls []driver.DeadLetter) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = dl.ID
	}
	return out
}

func (s *suite) bindingsFollow(t *testing.T) {
	tr := s.operatorTransport(t)
	set, ok := tr.(driver.BindingSetter)
	if !ok {
		t.Skipf("%T does not implement driver.BindingSetter", tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	p := s.prefix("bindings")
	svc := s.service("bindings")
	one, two, three := p+".one", p+".two", p+".three"
	pub := s.newBus(t, s.service("bindings-pub"))

	ch, err := set.SetBindings(ctx, svc, []string{one, two})
	if err != nil {
		t.Fatalf("first SetBindings: %v", err)
	}
	if !sameSet(ch.Added, []string{one, two}) || len(ch.Removed) != 0 {
		t.Errorf("first SetBindings changed %+v, want %s and %s added", ch, one, two)
	}
	first := s.newBus(t, svc)
	col := newCollector()
	if err := first.SubscribeAll(ctx, []string{one, two}, col.handle); err != nil {
		t.Fatal(err)
	}
	a, b := publish(t, pub, one, nil).Headers.ID, publish(t, pub, two, nil).Headers.ID
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(a, b) })
	closeBus(t, first)

	// The service starts again with other patterns.
	ch, err = set.SetBindings(ctx, svc, []string{two, three})
	if err != nil {
		t.Fatalf("second SetBindings: %v", err)
	}
	if !sameSet(ch.Added, []string{three}) || !sameSet(ch.Removed, []string{one}) {
		t.Errorf("second SetBindings changed %+v, want %s added and %s removed", ch, three, one)
	}
	if insp, ok := tr.(driver.QueueInspector); ok {
		info, err := insp.InspectQueue(ctx, svc)
		if err != nil || !sameSet(info.Bindings, []string{two, three}) {
			t.Errorf("recorded bindings %q (%v), want %s and %s", info.Bindings, err, two, three)
		}
	}
	gone := publish(t, pub, one, nil).Headers.ID
	kept := []string{publish(t, pub, two, nil).Headers.ID, publish(t, pub, three, nil).Headers.ID}
	spy := newSpy(s.transport(t))
	second := s.newBusOn(t, spy, svc)
	col2 := newCollector()
	if err := second.SubscribeAll(ctx, []string{two, three}, col2.handle); err != nil {
		t.Fatal(err)
	}
	// The queue hands out in order: had it kept the event of the removed
	// pattern, it would have come before these.
	testkit.Eventually(t, defaultTimeout, func() error { return col2.missing(kept...) })
	closeBus(t, second)
	if n := spy.deliveries(gone); n != 0 {
		t.Errorf("the event of the removed pattern %s was delivered %d times, want never", one, n)
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func (s *suite) inspect(t *testing.T) {
	tr := s.operatorTransport(t)
	insp, ok := tr.(driver.QueueInspector)
	if !ok {
		t.Skipf("%T does not implement driver.QueueInspector", tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	p := s.prefix("inspect")
	svc := s.service("inspect")
	if _, err := insp.InspectQueue(ctx, s.service("inspect-nobody")); !errors.Is(err, driver.ErrNoQueue) {
		t.Errorf("a queue nobody declared: %v, want driver.ErrNoQueue", err)
	}
	pub := s.newBus(t, s.service("inspect-pub"))
	sub := s.newBus(t, svc, bus.WithRetry(bus.RetryPolicy{MaxAttempts: 1}))
	col := newCollector()
	col.fail = func(*event.Event, int) error { return errors.New("refused") }
	// One word, not '#': before 2.10, a NATS consumer's filter for '#'
	// covers the whole stream, and its depth counts what it then drops.
	subscribe(t, sub, p+".*", col.handle)
	for range 2 {
		id := publish(t, pub, p+".dead", nil).Headers.ID
		s.waitDeadLetter(t, sub, svc, id, nil, defaultTimeout)
	}
	closeBus(t, sub)
	for range 3 {
		publish(t, pub, p+".waiting", nil)
	}
	testkit.Eventually(t, defaultTimeout, func() error {
		ctx, cancel := context.WithTimeout(ctx, defaultTimeout/10)
		defer cancel()
		info, err := insp.InspectQueue(ctx, svc)
		switch {
		case err != nil:
			return err
		case info.Depth != 3 || info.DeadLetters != 2 || info.Consumers > 0 || info.Retrying != 0:
			return fmt.Errorf("queue %+v, want depth 3, 2 dead letters, no consumer, nothing retrying", info)
		}
		return nil
	})
}
