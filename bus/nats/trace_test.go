package nats

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
)

func TestSpansNameTheSubject(t *testing.T) {
	srv := startServer(t)
	opts := isolated(t, srv.ClientURL())
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	pubT := dial(t, srv.ClientURL(), opts...)
	pub, err := bus.New(pubT, bus.WithService("trace-pub"), bus.WithoutValidation(), bus.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := bus.New(dial(t, srv.ClientURL(), opts...), bus.WithService("trace-sub"), bus.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	const name = "trace.thing.done"
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
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the event never arrived")
	}
	if err := sub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	subject := pubT.Subject(name)
	want := map[trace.SpanKind]string{trace.SpanKindProducer: "publish " + subject, trace.SpanKindConsumer: "process " + subject}
	for _, s := range rec.Ended() {
		if s.Name() != want[s.SpanKind()] {
			t.Errorf("%v span named %q, want %q", s.SpanKind(), s.Name(), want[s.SpanKind()])
		}
		delete(want, s.SpanKind())
		attrs := attribute.NewSet(s.Attributes()...)
		for k, v := range map[attribute.Key]string{
			"messaging.system":           "nats",
			"messaging.destination.name": subject,
			"messaging.message.id":       ev.Headers.ID,
			"herald.event.name":          name,
		} {
			if got, _ := attrs.Value(k); got.AsString() != v {
				t.Errorf("%s: %s = %q, want %q", s.Name(), k, got.AsString(), v)
			}
		}
		if _, ok := attrs.Value("messaging.rabbitmq.destination.routing_key"); ok {
			t.Errorf("%s carries a RabbitMQ routing key", s.Name())
		}
	}
	if len(want) > 0 {
		t.Errorf("spans missing: %v", want)
	}
}
