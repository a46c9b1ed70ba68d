package nats

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

func TestInProcessServerWithoutListener(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := natsserver.Run(ctx, natsserver.Config{StoreDir: t.TempDir(), DontListen: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	tr := dial(t, "", WithInProcessServer(s))
	got := make(chan string, 1)
	b := newBus(t, tr, "inproc")
	if err := b.Subscribe(ctx, "inproc.#", func(_ context.Context, ev *event.Event) error {
		got <- ev.Headers.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ev := mustEvent(t, "inproc.hello")
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		if id != ev.Headers.ID {
			t.Errorf("received %s, want %s", id, ev.Headers.ID)
		}
	case <-ctx.Done():
		t.Fatal("event not received in process")
	}
}

// TestDataSurvivesRestart publishes to a durable queue, stops the server,
// starts it again on the same folder and consumes everything.
func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	s1, err := natsserver.Run(ctx, natsserver.Config{StoreDir: dir, Port: natsserver.RandomPort})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Dial(ctx, s1.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(tr, bus.WithService("keeper"), bus.WithoutValidation())
	if err != nil {
		t.Fatal(err)
	}
	// The queue exists before the events: they are kept for it.
	if err := b.Subscribe(ctx, "persist.#", func(context.Context, *event.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, dial(t, s1.ClientURL()), "keeper-pub")
	const n = 200
	want := make(map[string]bool, n)
	for i := range n {
		ev := mustEvent(t, fmt.Sprintf("persist.item%d", i%3))
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want[ev.Headers.ID] = true
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := startServerIn(t, dir, natsserver.RandomPort)
	var mu sync.Mutex
	got := make(map[string]int)
	b2 := newBus(t, dial(t, s2.ClientURL()), "keeper")
	if err := b2.Subscribe(ctx, "persist.#", func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		got[ev.Headers.ID]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, testTimeout, func() error {
		mu.Lock()
		defer mu.Unlock()
		missing := 0
		for id := range want {
			if got[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d events not received after the restart", missing, n)
		}
		return nil
	})
}

// newBus returns a bus for service on tr without catalogue validation,
// closed when the test ends.
func newBus(t testing.TB, tr driver.Transport, service string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := bus.New(tr, append([]bus.Option{bus.WithService(service), bus.WithoutValidation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close bus %s: %v", service, err)
		}
	})
	return b
}

func mustEvent(t testing.TB, name string) *event.Event {
	t.Helper()
	ev, err := event.New(name, map[string]any{"user": "u1"})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
