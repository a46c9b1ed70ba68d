package bus

import (
	"context"
	"fmt"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// Publish fills the event's serviceName (when empty), createdAt (when zero)
// and id (when empty), validates it (envelope rules, size, and the
// catalogue unless turned off) and returns once the broker has taken it
// (publisher confirm, PubAck), waiting for a lost connection to come back
// if need be. ctx bounds all of it. ev is modified in place; on a bus that
// traces (WithTracerProvider) that includes the traceparent and tracestate
// headers of the publish span, a child of ctx's span.
//
// Publish is PublishAsync followed by the wait: to publish many events,
// PublishAsync them and wait for their confirmations afterwards.
func (b *Bus) Publish(ctx context.Context, ev *event.Event) error {
	c, err := b.PublishAsync(ctx, ev)
	if err != nil {
		return err
	}
	return c.Wait(ctx)
}

// PublishAsync prepares ev as Publish does and hands it to the transport,
// but returns without waiting for the broker's answer, which the returned
// Confirmation carries. The guarantees are Publish's: the Confirmation
// says nil only once the broker has taken the event, and the transport
// sends it again after a lost connection until then. Events published
// from one goroutine reach the broker in that order, except that one sent
// again after a lost connection may land after later ones (as with
// concurrent Publish calls). ctx bounds the whole publish, the wait for
// the confirm included; PublishAsync blocks while the transport's window
// of unconfirmed events is full or the connection is down.
//
// An error means the event was not sent (invalid, refused by the
// catalogue, ctx done, bus closed) and there is no Confirmation.
func (b *Bus) PublishAsync(ctx context.Context, ev *event.Event) (*Confirmation, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if ev.Headers.ServiceName == "" {
		ev.Headers.ServiceName = b.service
	}
	if ev.Headers.CreatedAt.IsZero() {
		ev.Headers.CreatedAt = time.Now()
	}
	if ev.Headers.ID == "" {
		ev.Headers.ID = event.NewID()
	}
	// The envelope rules of ev.Validate, with one encoding: Encode refuses
	// a payload that is not an object, and the size is that of the body
	// sent.
	if err := event.ValidateName(ev.Headers.Name); err != nil {
		return nil, fmt.Errorf("publish %s: %w", ev.Headers.Name, err)
	}
	m := driver.Message{ID: ev.Headers.ID, Name: ev.Headers.Name, CreatedAt: ev.Headers.CreatedAt}
	c := &Confirmation{name: ev.Headers.Name, done: make(chan struct{})}
	if b.trace != nil {
		// Before encoding: the body carries the span's trace context.
		c.span, m.Headers = b.trace.startPublish(ctx, ev)
	}
	if err := b.send(ctx, ev, m, c); err != nil {
		if c.span != nil {
			endSpan(c.span, err)
		}
		return nil, fmt.Errorf("publish %s: %w", ev.Headers.Name, err)
	}
	return c, nil
}

// send encodes and checks ev and hands it to the transport as m, to be
// answered through c.
func (b *Bus) send(ctx context.Context, ev *event.Event, m driver.Message, c *Confirmation) error {
	body, err := ev.Encode()
	if err != nil {
		return err
	}
	if err := event.CheckSize(len(body), b.opts.maxSize); err != nil {
		return err
	}
	if b.opts.validator != nil {
		if err := b.opts.validator.Validate(ev); err != nil {
			return err
		}
	}
	m.Body = body
	if c.span != nil {
		c.span.SetAttributes(semconv.MessagingMessageBodySize(len(body)))
	}
	return b.transport.Publish(ctx, m, c.answer)
}

// Confirmation is the broker's answer to one PublishAsync.
type Confirmation struct {
	name string
	done chan struct{}
	err  error      // set before done is closed
	span trace.Span // the publish span, ended with the answer; nil when the bus does not trace
}

// answer is the confirm function the transport calls, once.
func (c *Confirmation) answer(err error) {
	if err != nil {
		c.err = fmt.Errorf("publish %s: %w", c.name, err)
	}
	if c.span != nil {
		endSpan(c.span, err)
	}
	close(c.done)
}

// Done is closed once the broker has answered (or the publish has ended
// without an answer: its context ended, the bus closed).
func (c *Confirmation) Done() <-chan struct{} { return c.done }

// Err returns the answer once Done is closed: nil when the broker has the
// event, otherwise why it does not (a refusal, the publish's context
// ending, Close). Before Done is closed it returns ErrNotConfirmed.
func (c *Confirmation) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return ErrNotConfirmed
	}
}

// Wait waits for the answer and returns it, or returns ctx's error if ctx
// ends first (the publish itself goes on, bounded by its own context).
func (c *Confirmation) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return fmt.Errorf("publish %s: waiting for the broker's answer: %w", c.name, ctx.Err())
	}
}
