package amqp

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
)

func TestSpansNameTheExchangeAndTheRoutingKey(t *testing.T) {
	testURL(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	run := runID()
	name := "trace-" + run + ".thing.done"
	pub := heraldBus(t, "trace-"+run+"-pub", bus.WithoutValidation(), bus.WithTracerProvider(tp))
	sub := heraldBus(t, "trace-"+run+"-sub", bus.WithTracerProvider(tp))
	done := make(chan struct{})
	if err := sub.Subscribe(context.Background(), name, func(context.Context, *event.Event) error {
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ev, err := event.New(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the event never arrived")
	}
	closeBusNow(t, sub)
	want := map[trace.SpanKind]string{trace.SpanKindProducer: "publish event-bus", trace.SpanKindConsumer: "process event-bus"}
	for _, s := range rec.Ended() {
		if s.Name() != want[s.SpanKind()] {
			t.Errorf("%v span named %q, want %q", s.SpanKind(), s.Name(), want[s.SpanKind()])
		}
		delete(want, s.SpanKind())
		attrs := attribute.NewSet(s.Attributes()...)
		for k, v := range map[attribute.Key]string{
			"messaging.system":                           "rabbitmq",
			"messaging.destination.name":                 Exchange,
			"messaging.rabbitmq.destination.routing_key": name,
			"messaging.message.id":                       ev.Headers.ID,
		} {
			if got, _ := attrs.Value(k); got.AsString() != v {
				t.Errorf("%s: %s = %q, want %q", s.Name(), k, got.AsString(), v)
			}
		}
	}
	if len(want) > 0 {
		t.Errorf("spans missing: %v", want)
	}
}

// closeBusNow closes b, so that every span it started has ended.
func closeBusNow(t *testing.T, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close bus: %v", err)
	}
}
