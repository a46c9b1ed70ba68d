package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

// newRecorder returns a tracer provider that records every span in memory.
func newRecorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, rec
}

// waitSpans waits until rec holds n ended spans named name and returns
// them, in the order they ended.
func waitSpans(t *testing.T, rec *tracetest.SpanRecorder, name string, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var got []sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.Name() == name {
				got = append(got, s)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ended spans named %q after %v, want %d (all: %s)", len(got), name, wait, n, spanNames(rec.Ended()))
		}
		time.Sleep(time.Millisecond)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) string {
	s := ""
	for _, sp := range spans {
		s += fmt.Sprintf("%q ", sp.Name())
	}
	return s
}

func attr(s sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// checkAttrs fails for every attribute of want that s lacks or holds
// with another value.
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[attribute.Key]any) {
	t.Helper()
	for k, v := range want {
		got, ok := attr(s, k)
		if !ok {
			t.Errorf("span %q has no attribute %s", s.Name(), k)
			continue
		}
		if fmt.Sprint(got.AsInterface()) != fmt.Sprint(v) {
			t.Errorf("span %q: %s = %v, want %v", s.Name(), k, got.AsInterface(), v)
		}
	}
}

// handled records the span context each handler call ran under.
type handled struct {
	mu    sync.Mutex
	spans []trace.SpanContext
	evs   []*event.Event
}

func (h *handled) add(ctx context.Context, ev *event.Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.spans = append(h.spans, trace.SpanContextFromContext(ctx))
	h.evs = append(h.evs, ev.Clone())
	return len(h.spans)
}

func TestTracedPublishAndDeliveryFollowMessagingConventions(t *testing.T) {
	tp, rec := newRecorder(t)
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithoutValidation(), bus.WithTracerProvider(tp))
	sub := newBus(t, br.Connect(), bus.WithService("sub"), bus.WithTracerProvider(tp))
	var h handled
	if err := sub.Subscribe(context.Background(), "trace.#", func(ctx context.Context, ev *event.Event) error {
		h.add(ctx, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	ev := mustEvent(t, "trace.thing.done", map[string]string{"k": "v"})
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	parent.End()
	publish := waitSpans(t, rec, "publish trace.thing.done", 1)[0]
	process := waitSpans(t, rec, "process trace.thing.done", 1)[0]

	if publish.SpanKind() != trace.SpanKindProducer || process.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("kinds: publish %v, process %v; want producer, consumer", publish.SpanKind(), process.SpanKind())
	}
	if publish.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("publish span's parent is %v, want the caller's span %v", publish.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	if process.Parent().SpanID() != publish.SpanContext().SpanID() || !process.Parent().IsRemote() {
		t.Errorf("process span's parent is %v (remote %v), want the publish span %v, remote", process.Parent().SpanID(), process.Parent().IsRemote(), publish.SpanContext().SpanID())
	}
	if process.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("process span is in trace %v, want the caller's %v", process.SpanContext().TraceID(), parent.SpanContext().TraceID())
	}
	h.mu.Lock()
	if len(h.spans) != 1 || h.spans[0].SpanID() != process.SpanContext().SpanID() {
		t.Errorf("handler ran under %v, want the process span %v", h.spans, process.SpanContext().SpanID())
	}
	h.mu.Unlock()

	checkAttrs(t, publish, map[attribute.Key]any{
		"messaging.system":           memory.System,
		"messaging.operation.type":   "send",
		"messaging.operation.name":   "publish",
		"messaging.destination.name": "trace.thing.done",
		"messaging.message.id":       ev.Headers.ID,
		"herald.event.name":          "trace.thing.done",
	})
	if _, ok := attr(publish, "messaging.message.body.size"); !ok {
		t.Error("publish span has no messaging.message.body.size")
	}
	checkAttrs(t, process, map[attribute.Key]any{
		"messaging.system":              memory.System,
		"messaging.operation.type":      "process",
		"messaging.operation.name":      "process",
		"messaging.destination.name":    "trace.thing.done",
		"messaging.message.id":          ev.Headers.ID,
		"messaging.consumer.group.name": "sub",
		"herald.delivery.attempt":       1,
		"herald.delivery.outcome":       bus.OutcomeAck,
	})
	if _, ok := attr(process, "messaging.rabbitmq.destination.routing_key"); ok {
		t.Error("a span of the in-process broker carries a RabbitMQ routing key")
	}
}

func TestTracedPublishWritesTraceContextOnTheWireAndInTheEnvelope(t *testing.T) {
	tp, rec := newRecorder(t)
	br := newBroker(t)
	deliveries := make(chan driver.Delivery, 1)
	tr := br.Connect()
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	if _, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "raw"}, []string{"#"}, func(d driver.Delivery) {
		deliveries <- d
		_ = d.Ack(context.Background())
	}); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithoutValidation(), bus.WithTracerProvider(tp))
	ev := mustEvent(t, "trace.wire", nil)
	// A forwarded event's stale trace context is replaced, its other
	// headers kept.
	ev.Headers.Extra = map[string]json.RawMessage{
		"traceparent": json.RawMessage(`"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"`),
		"type":        json.RawMessage(`"scheduler"`),
	}
	shared := ev.Headers.Extra
	if err := pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	span := waitSpans(t, rec, "publish trace.wire", 1)[0]
	want := fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), span.SpanContext().SpanID())

	d := receive(t, deliveries)
	if got := d.Header(bus.HeaderTraceparent); got != want {
		t.Errorf("transport header traceparent = %q, want %q", got, want)
	}
	got := decode(t, d.Body())
	if tp := string(got.Headers.Extra["traceparent"]); tp != `"`+want+`"` {
		t.Errorf("envelope header traceparent = %s, want %q", tp, want)
	}
	if ty := string(got.Headers.Extra["type"]); ty != `"scheduler"` {
		t.Errorf("envelope header type = %s, want it kept", ty)
	}
	if string(shared["traceparent"]) != `"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"` {
		t.Errorf("the caller's header map was written to: traceparent %s", shared["traceparent"])
	}
}

func TestRetriedDeliveriesStayInThePublishersTrace(t *testing.T) {
	tp, rec := newRecorder(t)
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithoutValidation(), bus.WithTracerProvider(tp))
	sub := newBus(t, br.Connect(), bus.WithService("sub"), bus.WithTracerProvider(tp),
		bus.WithRetry(bus.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond}))
	var h handled
	failure := errors.New("not yet")
	if err := sub.Subscribe(context.Background(), "trace.retry", func(ctx context.Context, ev *event.Event) error {
		if h.add(ctx, ev) < 3 {
			return failure
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(context.Background(), mustEvent(t, "trace.retry", nil)); err != nil {
		t.Fatal(err)
	}
	publish := waitSpans(t, rec, "publish trace.retry", 1)[0]
	process := waitSpans(t, rec, "process trace.retry", 3)
	for i, s := range process {
		if s.Parent().SpanID() != publish.SpanContext().SpanID() {
			t.Errorf("attempt %d: parent %v, want the publish span %v", i+1, s.Parent().SpanID(), publish.SpanContext().SpanID())
		}
		outcome, status := bus.OutcomeRetry, codes.Error
		if i == 2 {
			outcome, status = bus.OutcomeAck, codes.Unset
		}
		checkAttrs(t, s, map[attribute.Key]any{"herald.delivery.attempt": i + 1, "herald.delivery.outcome": outcome})
		if s.Status().Code != status {
			t.Errorf("attempt %d: status %v, want %v", i+1, s.Status().Code, status)
		}
	}
	if d := process[0].Status().Description; d != failure.Error() {
		t.Errorf("failed attempt's status says %q, want the handler's error %q", d, failure)
	}
}

func TestDeliveryWithTraceparentOnlyInTheEnvelopeJoinsThatTrace(t *testing.T) {
	// OIH's Node library sends no AMQP headers: a Node service can pass a
	// trace context only inside the envelope.
	tp, rec := newRecorder(t)
	br := newBroker(t)
	sub := newBus(t, br.Connect(), bus.WithService("sub"), bus.WithTracerProvider(tp))
	var h handled
	if err := sub.Subscribe(context.Background(), "trace.node", func(ctx context.Context, ev *event.Event) error {
		h.add(ctx, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const traceID, spanID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	body := []byte(`{"headers":{"name":"trace.node","serviceName":"node","createdAt":1714642200000,"traceparent":"00-` + traceID + `-` + spanID + `-01","tracestate":"oih=1"},"payload":{}}`)
	if err := driver.PublishSync(context.Background(), br.Connect(), driver.Message{ID: "n-1", Name: "trace.node", Body: body}); err != nil {
		t.Fatal(err)
	}
	s := waitSpans(t, rec, "process trace.node", 1)[0]
	if s.Parent().TraceID().String() != traceID || s.Parent().SpanID().String() != spanID {
		t.Errorf("parent %v/%v, want %s/%s from the envelope", s.Parent().TraceID(), s.Parent().SpanID(), traceID, spanID)
	}
	if ts := s.Parent().TraceState().String(); ts != "oih=1" {
		t.Errorf("tracestate %q, want oih=1", ts)
	}
}

func TestUntracedBusStartsNoSpanAndWritesNoTraceContext(t *testing.T) {
	tp, rec := newRecorder(t)
	br := newBroker(t)
	bodies := tap(t, br)
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithoutValidation())
	sub := newBus(t, br.Connect(), bus.WithService("sub"))
	var h handled
	if err := sub.Subscribe(context.Background(), "trace.off", func(ctx context.Context, ev *event.Event) error {
		h.add(ctx, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The caller traces; the bus, not configured to, ignores it.
	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	if err := pub.Publish(ctx, mustEvent(t, "trace.off", nil)); err != nil {
		t.Fatal(err)
	}
	span.End()
	got := decode(t, receive(t, bodies))
	if _, ok := got.Headers.Extra[bus.HeaderTraceparent]; ok {
		t.Errorf("untraced publish wrote a traceparent: %v", got.Headers.Extra)
	}
	deadline := time.Now().Add(wait)
	for {
		h.mu.Lock()
		n := len(h.spans)
		var sc trace.SpanContext
		if n > 0 {
			sc = h.spans[0]
		}
		h.mu.Unlock()
		if n > 0 {
			if sc.IsValid() {
				t.Errorf("untraced handler ran under span %v", sc.SpanID())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("handler never ran")
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(rec.Ended()); n != 1 {
		t.Errorf("%d spans ended (%s), want only the caller's", n, spanNames(rec.Ended()))
	}
}

func TestRefusedPublishEndsItsSpanWithTheError(t *testing.T) {
	tp, rec := newRecorder(t)
	br := newBroker(t)
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithTracerProvider(tp)) // the catalogue validates
	err := pub.Publish(context.Background(), mustEvent(t, "iam.user.created", map[string]string{"id": "u-1"}))
	if err == nil {
		t.Fatal("the catalogue took iam.user.created without username")
	}
	s := waitSpans(t, rec, "publish iam.user.created", 1)[0]
	if s.Status().Code != codes.Error {
		t.Errorf("status %v, want error", s.Status().Code)
	}
	if _, ok := attr(s, "error.type"); !ok {
		t.Error("refused publish span has no error.type")
	}
}
