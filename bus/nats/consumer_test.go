package nats

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// TestAckNumbers: the delivery count and stream sequence read from an ack
// subject are what nats.go's own parser reads, and a subject it refuses
// is refused.
func TestAckNumbers(t *testing.T) {
	for _, reply := range []string{
		"$JS.ACK.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7",
		"$JS.ACK._.ABCDEFGH.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7.x1y2",
		"$JS.ACK.hub.ABCDEFGH.HERALD_EVENTS.billing.1.18446744073709551615.1.1764480000000000000.0",
		"$JS.ACK.hub.ABCDEFGH.HERALD_EVENTS.billing.12.5.4.1764480000000000000.0.tok.more",
		"$JS.ACK.HERALD_EVENTS.billing.x.12.4.1764480000000000000.0",
		"$JS.ACK.HERALD_EVENTS.billing.2.-1.4.1764480000000000000.0",
		"$JS.ACK.HERALD_EVENTS.billing.2.1042.4.1764480000000000000",
		"$JS.ACK._.ABCDEFGH.HERALD_EVENTS.billing.2.1042.4.1764480000000000000",
		"$JS.NAK.HERALD_EVENTS.billing.3.1042.998.1764480000000000000.7",
		"_INBOX.abc",
		"",
	} {
		delivered, seq, ok := ackNumbers(reply)
		md, err := (&natsgo.Msg{Reply: reply, Sub: &natsgo.Subscription{}}).Metadata()
		if ok != (err == nil) {
			t.Errorf("%q: read %v, nats.go's error %v", reply, ok, err)
			continue
		}
		if ok && (delivered != md.NumDelivered || seq != md.Sequence.Stream) {
			t.Errorf("%q: delivered %d, sequence %d; nats.go reads %d, %d", reply, delivered, seq, md.NumDelivered, md.Sequence.Stream)
		}
	}
}

// TestCloseReturnsPrefetchedDeliveries: deliveries pulled ahead but not
// handed out yet when the bus closes are not handed out any more; they go
// back to the queue at once, not after AckWait.
func TestCloseReturnsPrefetchedDeliveries(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	const n = 5
	first := newBus(t, dial(t, s.ClientURL(), WithAckWait(time.Minute)), "stopper", bus.WithPrefetch(2*n))
	started, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int32
	if err := first.Subscribe(ctx, "stop.#", func(context.Context, *event.Event) error {
		if handled.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, dial(t, s.ClientURL()), "stopper-pub")
	for range n {
		if err := pub.Publish(ctx, mustEvent(t, "stop.now")); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	time.Sleep(200 * time.Millisecond) // the rest arrive, pulled ahead
	closed := make(chan error, 1)
	go func() { closed <- first.Close(ctx) }()
	time.Sleep(200 * time.Millisecond) // Close has stopped the consumer
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if got := handled.Load(); got != 1 {
		t.Fatalf("%d deliveries handed out, want the 1 being handled when Close began", got)
	}

	var again atomic.Int32
	second := newBus(t, dial(t, s.ClientURL(), WithAckWait(time.Minute)), "stopper")
	if err := second.Subscribe(ctx, "stop.#", func(context.Context, *event.Event) error {
		again.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// 10s is well before AckWait.
	testkit.Eventually(t, 10*time.Second, func() error {
		if got := again.Load(); got < n-1 {
			return fmt.Errorf("%d of the %d prefetched deliveries came back", got, n-1)
		}
		return nil
	})
}
