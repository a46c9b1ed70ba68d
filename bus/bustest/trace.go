package bustest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// headerTap wraps a transport and records the traceparent header of every
// delivery, by event id, in the order they came.
type headerTap struct {
	driver.Transport

	mu      sync.Mutex
	headers map[string][]string
}

func (h *headerTap) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	return h.Transport.Consume(ctx, q, patterns, func(d driver.Delivery) {
		h.mu.Lock()
		id := idOfBody(d.Body())
		h.headers[id] = append(h.headers[id], d.Header(bus.HeaderTraceparent))
		h.mu.Unlock()
		deliver(d)
	})
}

func (h *headerTap) of(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.headers[id])
}

// traceContext checks that the trace context of a publish crosses the
// broker as a transport header, survives a retry, and makes each delivery's
// span a child of the publish span that the handler runs under.
func (s *suite) traceContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	p := s.prefix("trace")
	pub := s.newBus(t, s.service("trace-pub"), bus.WithTracerProvider(tp))
	tap := &headerTap{Transport: s.transport(t), headers: make(map[string][]string)}
	sub := s.newBusOn(t, tap, s.service("trace"), bus.WithTracerProvider(tp), bus.WithRetry(fastRetry))
	var (
		mu      sync.Mutex
		running []trace.SpanContext
	)
	col := newCollector()
	col.fail = func(_ *event.Event, attempt int) error {
		if attempt < 2 {
			return fmt.Errorf("transient failure on attempt %d", attempt)
		}
		return nil
	}
	subscribe(t, sub, p+".#", func(ctx context.Context, ev *event.Event) error {
		mu.Lock()
		running = append(running, trace.SpanContextFromContext(ctx))
		mu.Unlock()
		return col.handle(ctx, ev)
	})

	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	ctx, parent := tp.Tracer("bustest").Start(ctx, "request")
	ev := newEvent(t, p+".traced", nil)
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
	parent.End()
	testkit.Eventually(t, s.retryWait(2), func() error {
		if got := col.attemptsOf(ev.Headers.ID); len(got) < 2 {
			return fmt.Errorf("handler ran for attempts %v, want 1, 2", got)
		}
		return nil
	})
	closeBus(t, sub)

	var publishSpan, process []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			continue
		}
		switch sp.SpanKind() {
		case trace.SpanKindProducer:
			publishSpan = append(publishSpan, sp)
		case trace.SpanKindConsumer:
			process = append(process, sp)
		}
	}
	if len(publishSpan) != 1 || len(process) != 2 {
		t.Fatalf("in the caller's trace: %d publish and %d process spans, want 1 and 2 (a failed attempt and its retry)", len(publishSpan), len(process))
	}
	ps := publishSpan[0].SpanContext()
	if publishSpan[0].Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("publish span's parent = %v, want the caller's span", publishSpan[0].Parent().SpanID())
	}
	want := fmt.Sprintf("00-%s-%s-01", ps.TraceID(), ps.SpanID())
	if got := tap.of(ev.Headers.ID); len(got) < 2 || got[0] != want || got[1] != want {
		t.Errorf("traceparent header of the deliveries = %q, want %q on the first and the retry", got, want)
	}
	for i, sp := range process {
		if sp.Parent().SpanID() != ps.SpanID() {
			t.Errorf("process span %d: parent %v, want the publish span %v", i, sp.Parent().SpanID(), ps.SpanID())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var inTrace int
	for _, sc := range running {
		if sc.TraceID() == ps.TraceID() {
			inTrace++
			if !slices.ContainsFunc(process, func(sp sdktrace.ReadOnlySpan) bool { return sp.SpanContext().SpanID() == sc.SpanID() }) {
				t.Errorf("a handler ran under span %v, not a process span", sc.SpanID())
			}
		}
	}
	if inTrace != 2 {
		t.Errorf("%d handler calls ran in the caller's trace, want 2", inTrace)
	}
}
