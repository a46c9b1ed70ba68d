package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// TracerName is the instrumentation scope of the bus's spans.
const TracerName = "github.com/heraldhq/herald/bus"

// Trace context headers (W3C Trace Context), on the wire both as transport
// headers and in the envelope's headers object.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Attributes herald adds to the messaging ones of OpenTelemetry's
// semantic conventions.
const (
	// AttrEventName is the event name on every span (on RabbitMQ it is
	// also the routing key, on NATS part of the subject).
	AttrEventName = attribute.Key("herald.event.name")
	// AttrAttempt is the delivery attempt a process span ran for.
	AttrAttempt = attribute.Key("herald.delivery.attempt")
	// AttrOutcome is how a process span settled its delivery: ack, retry
	// or dead_letter.
	AttrOutcome = attribute.Key("herald.delivery.outcome")
)

// Delivery outcomes, the values of AttrOutcome.
const (
	OutcomeAck        = "ack"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
)

// tracing is the bus's OpenTelemetry instrumentation. A bus without a
// tracer provider has none, and its publish and delivery paths only test
// for nil.
type tracing struct {
	tracer   trace.Tracer
	prop     propagation.TraceContext
	describe func(name string) (system, destination string)
	service  string
}

func newTracing(tp trace.TracerProvider, t driver.Transport, service string) *tracing {
	tr := &tracing{
		tracer:  tp.Tracer(TracerName, trace.WithSchemaURL(semconv.SchemaURL)),
		service: service,
	}
	if d, ok := t.(driver.Describer); ok {
		tr.describe = d.Destination
	} else {
		system := fmt.Sprintf("%T", t)
		tr.describe = func(name string) (string, string) { return system, name }
	}
	return tr
}

// attributes returns the messaging attributes every span of an event
// carries.
func (tr *tracing) attributes(name, id string, op attribute.KeyValue, opName string) (string, []attribute.KeyValue) {
	system, dest := tr.describe(name)
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs,
		semconv.MessagingSystemKey.String(system),
		op,
		semconv.MessagingOperationName(opName),
		semconv.MessagingDestinationName(dest),
		semconv.MessagingMessageID(id),
		AttrEventName.String(name),
	)
	if system == "rabbitmq" {
		attrs = append(attrs, semconv.MessagingRabbitMQDestinationRoutingKey(name))
	}
	return opName + " " + dest, attrs
}

// startPublish starts the producer span of ev, a child of ctx's span, and
// writes its trace context into ev's headers (the envelope's, so that
// OIH's Node library, which sees no AMQP headers, carries it too) and
// into the transport headers it returns.
func (tr *tracing) startPublish(ctx context.Context, ev *event.Event) (trace.Span, map[string]string) {
	name, attrs := tr.attributes(ev.Headers.Name, ev.Headers.ID, semconv.MessagingOperationTypeSend, "publish")
	ctx, span := tr.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	carrier := propagation.MapCarrier{}
	tr.prop.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return span, nil
	}
	// A copy: the map may be shared with the event this one was cloned
	// or forwarded from, and a forwarded event's trace context is stale.
	extra := make(map[string]json.RawMessage, len(ev.Headers.Extra)+len(carrier))
	maps.Copy(extra, ev.Headers.Extra)
	delete(extra, HeaderTraceparent)
	delete(extra, HeaderTracestate)
	for k, v := range carrier {
		extra[k] = json.RawMessage(strconv.Quote(v))
	}
	ev.Headers.Extra = extra
	return span, carrier
}

// endSpan ends span, marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorType(err))
	}
	span.End()
}

// startProcess starts the consumer span of a delivery, whose parent is the
// publisher's span, and returns the handlers' context holding it.
func (tr *tracing) startProcess(ctx context.Context, d driver.Delivery, ev *event.Event) (context.Context, trace.Span) {
	ctx = tr.prop.Extract(ctx, deliveryCarrier{d: d, ev: ev})
	name, attrs := tr.attributes(ev.Headers.Name, ev.Headers.ID, semconv.MessagingOperationTypeProcess, "process")
	attrs = append(attrs,
		semconv.MessagingConsumerGroupName(tr.service),
		semconv.MessagingMessageBodySize(len(d.Body())),
		AttrAttempt.Int(d.Attempt()),
	)
	return tr.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// deliveryCarrier reads a delivery's trace context: from the transport
// headers when the message has them, else from the envelope's headers
// (an event published by OIH's Node library with a traceparent of its
// own). One source for both keys, so that a tracestate never goes with
// another message's traceparent.
type deliveryCarrier struct {
	d  driver.Delivery
	ev *event.Event
}

func (c deliveryCarrier) Get(key string) string {
	if c.d.Header(HeaderTraceparent) != "" {
		return c.d.Header(key)
	}
	var s string
	if raw, ok := c.ev.Headers.Extra[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func (c deliveryCarrier) Set(string, string) {}

func (c deliveryCarrier) Keys() []string { return []string{HeaderTraceparent, HeaderTracestate} }
