package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

// TestFaultServerRestartDuringPublishes stops the embedded server while
// 20,000 events are being published and starts it again on the same
// folder: every Publish returns nil, and every event is handled at least
// once. Duplicates (an event re-sent after its PubAck was lost is dropped
// by the server; a delivery whose ack was lost comes again) are counted.
func TestFaultServerRestartDuringPublishes(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 events across a server restart; not in -short")
	}
	const (
		total      = 20_000
		publishers = 64
		restartAt  = total / 4
	)
	dir := t.TempDir()
	srv := startServerIn(t, dir, natsserver.RandomPort)
	cfg := srv.Config()
	url := srv.ClientURL()

	var (
		mu      sync.Mutex
		handled = make(map[string]int, total)
		calls   int
	)
	// A short AckWait: deliveries the server sent into the connection it
	// dropped come back after it.
	sub := newBus(t, dial(t, url, WithAckWait(3*time.Second)), "fault", bus.WithConcurrency(8))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sub.Subscribe(ctx, "fault.#", func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		handled[ev.Headers.ID]++
		calls++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, dial(t, url), "fault-pub")

	evs := make([]*event.Event, total)
	for i := range evs {
		ev, err := event.New(fmt.Sprintf("fault.item.n%d", i%10), map[string]int{"i": i})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	var (
		next, published atomic.Int64
		errMu           sync.Mutex
		errs            []error
		wg              sync.WaitGroup
		reached         = make(chan struct{})
		reachedOnce     sync.Once
	)
	for range publishers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				if err := pub.Publish(ctx, evs[i]); err != nil {
					errMu.Lock()
					errs = append(errs, fmt.Errorf("event %d: %w", i, err))
					errMu.Unlock()
				}
				if published.Add(1) == restartAt {
					reachedOnce.Do(func() { close(reached) })
				}
			}
		})
	}

	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("publishing did not reach the restart point")
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	atStop := published.Load()
	restarted, err := natsserver.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("restart the server on %s: %v", dir, err)
	}
	t.Cleanup(func() { shutdown(t, restarted) })
	t.Logf("server stopped after %d of %d publishes had returned, and started again on the same folder", atStop, total)

	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%d publishes failed across the restart: %v", len(errs), err)
	}
	testkit.Eventually(t, time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(handled) < total {
			return fmt.Errorf("%d of %d events handled", len(handled), total)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range evs {
		if handled[ev.Headers.ID] == 0 {
			t.Errorf("event %s never handled", ev.Headers.ID)
		}
	}
	dupEvents := 0
	for _, n := range handled {
		if n > 1 {
			dupEvents++
		}
	}
	t.Logf("handled %d events in %d handler calls: %d duplicate deliveries over %d events; 0 missing",
		len(handled), calls, calls-len(handled), dupEvents)
}
