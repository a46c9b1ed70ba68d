// Package bus publishes and subscribes Open Integration Hub events by name,
// with AMQP topic wildcards, over a transport (bus/amqp, bus/nats,
// bus/memory). Delivery is at-least-once: a handler's error or panic
// retries the delivery after a backoff, and after the last attempt the
// delivery is dead-lettered with the error, never dropped. A message that
// is over the event-size limit or is no event, and an error marked
// Permanent, are dead-lettered at once, with the reason.
//
// This package is what a service reads. What a transport implements is in
// bus/driver.
package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/topic"
)

// Handler handles one event. Returning nil acknowledges it; an error (or a
// panic) has it retried. Handlers must be idempotent: a retried delivery
// runs every matching handler again, and transports deliver at least once.
//
// ctx carries the delivery's attempt (Attempt), on a bus that traces the
// span of the delivery (a child of the publisher's span; start child spans
// from ctx), and is cancelled when Close
// stops waiting for running handlers because its own context ended; its
// cause (context.Cause) then wraps ErrClosed. A handler that gives up then
// leaves its delivery to be delivered again.
type Handler func(ctx context.Context, ev *event.Event) error

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// Validator checks an event before it is published (the catalogue).
type Validator interface {
	Validate(ev *event.Event) error
}

// Bus is one service's connection to the event bus.
type Bus struct {
	service   string
	transport driver.Transport
	opts      options
	trace     *tracing // nil unless WithTracerProvider

	mu     sync.Mutex
	closed bool
	// subs is replaced, never modified, so deliveries read it without
	// b.mu (Subscribe holds b.mu while the transport binds, and a
	// transport may deliver meanwhile).
	subs     atomic.Pointer[[]subscription]
	consumer driver.Consumer
	sem      chan struct{} // handler concurrency slots
	// running counts deliveries being processed; idle, when not nil, is
	// closed as running drops to zero (Close waits on it). A WaitGroup does
	// not fit: after a Close that gave up at its deadline the transport may
	// still hand out a delivery, and WaitGroup.Add concurrent with Wait
	// panics. runMu is not mu, so that deliver never waits for a Subscribe
	// that is waiting for the transport.
	runMu   sync.Mutex
	running int
	idle    chan struct{}

	// handlerCtx is the parent of every handler's context; Close cancels
	// it when it stops waiting for them. firstAttempt is the context of
	// every first delivery, made once.
	handlerCtx   context.Context
	firstAttempt context.Context
	stopHandlers context.CancelCauseFunc
}

type subscription struct {
	patterns []string
	handler  Handler
}

func (s subscription) matches(name string) bool {
	for _, p := range s.patterns {
		if topic.Match(p, name) {
			return true
		}
	}
	return false
}

// New returns a bus for service on transport. The bus owns the transport:
// Close closes it. The service name is required: it fills serviceName in
// published events and names the queue this service consumes.
func New(transport driver.Transport, opts ...Option) (*Bus, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.service == "" {
		return nil, errors.New("bus: a service name is required (bus.WithService)")
	}
	if transport == nil {
		return nil, errors.New("bus: a transport is required")
	}
	if o.concurrency < 1 {
		o.concurrency = 1
	}
	hctx, stop := context.WithCancelCause(context.Background())
	b := &Bus{
		service:      o.service,
		transport:    transport,
		opts:         o,
		sem:          make(chan struct{}, o.concurrency),
		handlerCtx:   hctx,
		firstAttempt: context.WithValue(hctx, attemptKey{}, 1),
		stopHandlers: stop,
	}
	if o.tracerProvider != nil {
		b.trace = newTracing(o.tracerProvider, transport, o.service)
	}
	return b, nil
}

// Service returns the bus's service name.
func (b *Bus) Service() string { return b.service }

// Transport returns the transport the bus was built on.
func (b *Bus) Transport() driver.Transport { return b.transport }

// Status reports the transport's connection state; a transport without a
// connection to watch is connected until closed.
func (b *Bus) Status() Status {
	if r, ok := b.transport.(driver.StatusReporter); ok {
		return r.Status()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return Status{State: StateClosed}
	}
	return Status{State: StateConnected}
}

// Subscribe has handler called for every event whose name matches pattern.
// The first Subscribe starts this service's consumer; later ones add a
// binding to the same queue. Every handler whose pattern matches a delivery
// runs, in subscription order; the delivery is acknowledged once, after all
// of them succeeded.
//
// A service that subscribes several patterns should use SubscribeAll: the
// consumer then starts with every pattern at once, so a backlog left in a
// durable queue is never delivered before its handler exists.
func (b *Bus) Subscribe(ctx context.Context, pattern string, handler Handler) error {
	return b.SubscribeAll(ctx, []string{pattern}, handler)
}

// SubscribeAll has handler called for every event whose name matches any of
// patterns (once per delivery, however many patterns match), binding all
// of them before the first delivery.
func (b *Bus) SubscribeAll(ctx context.Context, patterns []string, handler Handler) error {
	if len(patterns) == 0 {
		return errors.New("subscribe: no pattern")
	}
	for _, p := range patterns {
		if err := topic.ValidatePattern(p); err != nil {
			return fmt.Errorf("subscribe %q: %w", p, err)
		}
	}
	if handler == nil {
		return fmt.Errorf("subscribe %q: nil handler", patterns)
	}
	h := handler
	for i := len(b.opts.middleware) - 1; i >= 0; i-- {
		h = b.opts.middleware[i](h)
	}
	h = Recoverer(h)

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	// Register before binding: a delivery for the new binding may arrive
	// before Bind returns, and must find its handler.
	old := b.subs.Load()
	var subs []subscription
	if old != nil {
		subs = append(subs, *old...)
	}
	subs = append(subs, subscription{patterns: slices.Clone(patterns), handler: h})
	b.subs.Store(&subs)
	err := b.bind(ctx, patterns)
	if err != nil {
		b.subs.Store(old)
		return fmt.Errorf("subscribe %q: %w", patterns, err)
	}
	return nil
}

func (b *Bus) bind(ctx context.Context, patterns []string) error {
	if b.consumer == nil {
		q := driver.QueueSpec{Name: b.service, Temporary: b.opts.temporary, Prefetch: b.opts.prefetch}
		c, err := b.transport.Consume(ctx, q, patterns, b.deliver)
		if err != nil {
			return err
		}
		b.consumer = c
		return nil
	}
	for _, p := range patterns {
		if err := b.consumer.Bind(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// deliver is called by the transport, one delivery at a time. It blocks
// while every handler slot is busy, which is the back-pressure that
// bounds in-flight work to the concurrency setting.
func (b *Bus) deliver(d driver.Delivery) {
	b.sem <- struct{}{}
	b.runMu.Lock()
	b.running++
	b.runMu.Unlock()
	if cap(b.sem) == 1 {
		// One slot: run inline so deliveries are handled in order.
		b.process(d)
		return
	}
	go b.process(d)
}

func (b *Bus) process(d driver.Delivery) {
	defer func() {
		b.runMu.Lock()
		b.running--
		if b.running == 0 && b.idle != nil {
			close(b.idle)
			b.idle = nil
		}
		b.runMu.Unlock()
		<-b.sem
	}()
	ctx := context.Background()
	// A body over the event-size limit is refused before it is decoded,
	// as Publish refuses it: what a handler sees is bounded by the limit,
	// whatever the broker lets through.
	if err := event.CheckSize(len(d.Body()), b.opts.maxSize); err != nil {
		b.refuse(ctx, d, "dead-lettering oversized message", fmt.Errorf("refused: %w", err), "bytes", len(d.Body()), "error", err)
		return
	}
	// JSON is UTF-8 (RFC 8259); a decoder would pass invalid bytes on to
	// handlers and stores, or quietly replace them.
	if !utf8.Valid(d.Body()) {
		b.refuse(ctx, d, "dead-lettering a message that is not UTF-8", errors.New("refused: the message is not valid UTF-8"), "bytes", len(d.Body()))
		return
	}
	ev, err := event.Decode(d.Body())
	if err == nil {
		// Publish never sends such a name; no binding pattern matches it.
		err = event.ValidateName(ev.Headers.Name)
	}
	if err != nil {
		b.refuse(ctx, d, "dead-lettering undecodable message", fmt.Errorf("decode: %w", err), "error", err)
		return
	}
	if key := b.opts.idKey; len(key) > 0 && ev.Headers.ID == event.DerivedID(d.Body()) {
		var identity string
		if id, ok := d.(driver.Identified); ok {
			identity = id.Identity()
		}
		ev.Headers.ID = event.KeyedID(key, []byte("bus"), []byte(identity), d.Body())
	}
	var matched [4]Handler // most deliveries match one or two
	hs := matched[:0]
	if subs := b.subs.Load(); subs != nil {
		for _, s := range *subs {
			if s.matches(ev.Headers.Name) {
				hs = append(hs, s.handler)
			}
		}
	}
	var herr error
	if len(hs) == 0 {
		// A binding left by an earlier version of the service, or a
		// delivery that arrived before its Subscribe: retried like a
		// failure, so a late handler still gets it, and dead-lettered in
		// the end rather than dropped.
		herr = fmt.Errorf("%w for %s in service %s", ErrNoHandler, ev.Headers.Name, b.service)
	}
	hctx := b.firstAttempt
	if a := d.Attempt(); a != 1 {
		hctx = context.WithValue(b.handlerCtx, attemptKey{}, a)
	}
	var span trace.Span
	if b.trace != nil {
		hctx, span = b.trace.startProcess(hctx, d, ev)
	}
	for _, h := range hs {
		if herr = h(hctx, ev); herr != nil {
			break
		}
	}
	outcome := b.settle(ctx, d, ev, herr)
	if span != nil {
		span.SetAttributes(AttrOutcome.String(outcome))
		endSpan(span, herr)
	}
}

// refuse dead-letters a delivery that is no event the bus hands out, with
// reason, and logs msg with attrs.
func (b *Bus) refuse(ctx context.Context, d driver.Delivery, msg string, reason error, attrs ...any) {
	log := b.opts.logger
	log.Warn(msg, append([]any{"service", b.service}, attrs...)...)
	if err := d.DeadLetter(ctx, reason); err != nil {
		log.Error("dead-letter failed", "service", b.service, "error", err)
	}
}

// settle acknowledges a delivery whose handlers succeeded, and retries or
// dead-letters one whose handlers failed with herr. It returns the
// outcome (OutcomeAck, OutcomeRetry, OutcomeDeadLetter).
func (b *Bus) settle(ctx context.Context, d driver.Delivery, ev *event.Event, herr error) string {
	log := b.opts.logger
	if herr == nil {
		if err := d.Ack(ctx); err != nil {
			log.Error("ack failed", "service", b.service, "event", ev.Headers.Name, "id", ev.Headers.ID, "error", err)
		}
		return OutcomeAck
	}
	attempt := d.Attempt()
	if permanent := IsPermanent(herr); permanent || attempt >= b.opts.retry.MaxAttempts {
		msg := "dead-lettering after last attempt"
		if permanent {
			msg = "dead-lettering a delivery its handler refused for good"
		}
		log.Error(msg, "service", b.service, "event", ev.Headers.Name, "id", ev.Headers.ID, "attempt", attempt, "error", herr)
		if err := d.DeadLetter(ctx, herr); err != nil {
			log.Error("dead-letter failed", "service", b.service, "id", ev.Headers.ID, "error", err)
		}
		return OutcomeDeadLetter
	}
	delay := b.opts.retry.Backoff(attempt)
	log.Warn("handler failed; retrying", "service", b.service, "event", ev.Headers.Name, "id", ev.Headers.ID, "attempt", attempt, "delay", delay, "error", herr)
	if err := d.Retry(ctx, delay, herr); err != nil {
		log.Error("retry failed", "service", b.service, "id", ev.Headers.ID, "error", err)
	}
	return OutcomeRetry
}

// Close stops new deliveries, waits for running handlers (bounded by ctx),
// then closes the transport. When ctx ends before the handlers have
// returned, their contexts are cancelled and Close goes on without them.
// Publish and Subscribe after Close return ErrClosed.
func (b *Bus) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	c := b.consumer
	b.mu.Unlock()

	var errs []error
	if c != nil {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop consumer: %w", err))
		}
	}
	b.runMu.Lock()
	var idle chan struct{}
	if b.running > 0 {
		if b.idle == nil {
			b.idle = make(chan struct{})
		}
		idle = b.idle
	}
	b.runMu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			b.stopHandlers(fmt.Errorf("%w: its context ended with handlers running: %w", ErrClosed, context.Cause(ctx)))
			errs = append(errs, fmt.Errorf("waiting for running handlers: %w", ctx.Err()))
		}
	}
	if err := b.transport.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	b.stopHandlers(ErrClosed)
	return errors.Join(errs...)
}

// Status is a snapshot of the bus's connection to its broker (Bus.Status).
type Status = driver.Status

// State is a connection state: StateConnected, StateReconnecting or
// StateClosed.
type State = driver.State

// Connection states.
const (
	StateConnected    = driver.StateConnected
	StateReconnecting = driver.StateReconnecting
	StateClosed       = driver.StateClosed
)

// ErrClosed is returned by Publish and Subscribe after Close. Transports
// return the same value (driver.ErrClosed), so errors.Is finds it whichever
// of the two refused.
var ErrClosed = driver.ErrClosed

// ErrNotConfirmed is what Confirmation.Err returns before the broker has
// answered.
var ErrNotConfirmed = errors.New("bus: publish not confirmed yet")

// ErrNoHandler is the error a delivery that matches no handler of the bus
// is retried and finally dead-lettered with.
var ErrNoHandler = errors.New("no handler")

// Permanent marks err as a refusal that no retry changes (content the
// handler will never accept): the delivery is dead-lettered at once with
// err as its reason, instead of after the last attempt. Permanent(nil) is
// nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error   { return e.error }
func (e permanentError) Permanent() bool { return true }

// IsPermanent reports whether err, or an error it wraps, has a method
// Permanent() bool that returns true: an error from Permanent, or from a
// package that marks its refusals so without importing bus.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

type attemptKey struct{}

// Attempt returns the delivery attempt (1 for the first) of the event a
// handler is running for, or 0 outside a handler.
func Attempt(ctx context.Context) int {
	n, _ := ctx.Value(attemptKey{}).(int)
	return n
}
