package memory_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/cputime"
)

// benchPayload makes events of ~280 bytes encoded, as the other bus
// benchmarks send.
var benchPayload = map[string]any{"id": "user-000000042", "username": "someone.with.a.fairly.long.name@example.com", "tenant": "tenant-0001"}

// runEndToEnd publishes b.N events from one loop through the in-process
// broker to one subscriber and waits until it has handled them all: the
// bus's own cost per event, publish and delivery, with no network and no
// broker between. opts configure both buses.
func runEndToEnd(b *testing.B, opts ...bus.Option) {
	br := memory.NewBroker()
	defer br.Close()
	ctx := context.Background()
	common := append([]bus.Option{bus.WithoutValidation(), bus.WithPrefetch(256)}, opts...)
	pub, err := bus.New(br.Connect(), append([]bus.Option{bus.WithService("bench-pub")}, common...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close(ctx)
	sub, err := bus.New(br.Connect(), append([]bus.Option{bus.WithService("bench-sub")}, common...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close(ctx)
	var handled atomic.Int64
	done := make(chan struct{})
	target := int64(b.N)
	if err := sub.Subscribe(ctx, "bench.#", func(context.Context, *event.Event) error {
		if handled.Add(1) == target {
			close(done)
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	for range b.N {
		ev, err := event.New("bench.user.created", benchPayload)
		if err != nil {
			b.Fatal(err)
		}
		if err := pub.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	if cpu1, ok := cputime.Process(); ok && cpuOK {
		// Steadier than the rate on a shared machine: what the process
		// (publisher, broker, consumer) spent per event.
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/event")
	}
}

// BenchmarkEndToEnd is the in-process bus with tracing off, as a service
// runs it without a tracer provider.
func BenchmarkEndToEnd(b *testing.B) {
	runEndToEnd(b)
}
