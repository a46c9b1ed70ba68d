// Package memory is an in-process driver.Transport with RabbitMQ's queue
// semantics, for tests and single-process use.
//
// A Broker holds named queues. Each queue keeps the patterns it was bound
// to, and every published message whose name matches one of them is copied
// into it, whether or not a consumer is attached at the time (as with a
// durable RabbitMQ queue). Consumers of one queue compete: each message goes
// to exactly one of them, round-robin among those with room in their
// prefetch window. Temporary queues belong to the consumer that declared
// them and disappear with it.
//
// Redelivery keeps the attempt count: a delivery that was handed out and
// not settled when its connection closed goes back to the front of its
// queue with the same Attempt, as herald's headers keep it over a RabbitMQ
// redelivery. Only Retry counts up.
//
// Dead letters stay in the broker, listed per queue by DeadLetters on any
// connection; a temporary queue's are listed under its generated name,
// "<QueueSpec.Name>.tmp-<n>". Nothing blocks on I/O, so Publish and the
// settling calls only look at their context to refuse work once it is
// done (Publish), or not at all (Ack, Retry, DeadLetter).
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/topic"
)

// DefaultPrefetch is the number of unsettled deliveries a consumer is
// given when its QueueSpec does not say.
const DefaultPrefetch = 100

// Settlement errors.
var (
	// ErrSettled is returned when a delivery is settled a second time.
	ErrSettled = errors.New("memory: delivery already settled")
	// ErrRequeued is returned when a delivery is settled after its
	// connection closed: the broker has already put it back in its queue.
	ErrRequeued = errors.New("memory: delivery was returned to its queue when its connection closed")
)

// Broker is an in-process message broker. Its zero value is not usable;
// call NewBroker. It is safe for concurrent use.
type Broker struct {
	mu      sync.Mutex
	closed  bool
	queues  map[string]*queue   // durable queues by name
	temps   map[*queue]struct{} // temporary queues
	tempSeq int
	// publishes counts the publishes (message.publish).
	publishes uint64
	conns     map[*conn]struct{}
	dead      map[string][]deadLetter
	deadSeq   int
	retries   map[*retry]struct{} // retries waiting for their delay
	// recorded are the bindings SetBindings recorded, by queue.
	recorded map[string][]string
}

// deadLetter is a dead letter and the message it was, for a replay.
type deadLetter struct {
	dl driver.DeadLetter
	m  driver.Message
}

// NewBroker returns an empty broker.
func NewBroker() *Broker {
	return &Broker{
		queues:   make(map[string]*queue),
		temps:    make(map[*queue]struct{}),
		conns:    make(map[*conn]struct{}),
		dead:     make(map[string][]deadLetter),
		retries:  make(map[*retry]struct{}),
		recorded: make(map[string][]string),
	}
}

// Connect returns a new connection to the broker. Each connection is
// independent: closing it stops its consumers and returns their unsettled
// deliveries to their queues, and leaves the broker and every other
// connection running. The transport also implements driver.DeadLetterLister
// and driver.StatusReporter.
func (b *Broker) Connect() driver.Transport {
	c := &conn{b: b, consumers: make(map[*consumer]struct{}), since: time.Now()}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.closed = true
		return c
	}
	b.conns[c] = struct{}{}
	return c
}

// Close closes every connection, cancels the retries waiting for their
// delay and drops every queued message. It does not wait for deliveries in
// progress. Connections made afterwards are closed from the start.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for c := range b.conns {
		c.closeLocked()
	}
	for r := range b.retries {
		r.timer.Stop()
	}
	clear(b.retries)
	clear(b.queues)
	clear(b.temps)
}

type queue struct {
	name      string
	temporary bool
	bindings  []string
	ready     []*message // FIFO
	retrying  int        // retries waiting for their delay
	consumers []*consumer
	next      int // round-robin cursor into consumers
}

type message struct {
	m            driver.Message
	attempt      int
	firstFailure time.Time
	// publish numbers the publish the message came from (Identity).
	publish uint64
}

type retry struct {
	timer *time.Timer
}

func (q *queue) matches(name string) bool {
	for _, p := range q.bindings {
		if topic.Match(p, name) {
			return true
		}
	}
	return false
}

func (q *queue) bind(pattern string) {
	if !slices.Contains(q.bindings, pattern) {
		q.bindings = append(q.bindings, pattern)
	}
}

// live reports whether q still exists in the broker. Called with b.mu held.
func (b *Broker) live(q *queue) bool {
	if q.temporary {
		_, ok := b.temps[q]
		return ok
	}
	return b.queues[q.name] == q
}

// dispatch hands ready messages to consumers with room in their prefetch
// window, round-robin. Called with b.mu held.
func (b *Broker) dispatch(q *queue) {
	for len(q.ready) > 0 {
		c := q.nextConsumer()
		if c == nil {
			return
		}
		m := q.ready[0]
		q.ready[0] = nil
		q.ready = q.ready[1:]
		c.buf = append(c.buf, m)
		c.signal()
	}
}

func (q *queue) nextConsumer() *consumer {
	n := len(q.consumers)
	for i := range n {
		c := q.consumers[(q.next+i)%n]
		if len(c.buf)+len(c.unacked) < c.prefetch {
			q.next = (q.next + i + 1) % n
			return c
		}
	}
	return nil
}

// requeue puts ms back at the front of q, in order. Called with b.mu held.
func (b *Broker) requeue(q *queue, ms []*message) {
	if len(ms) == 0 || !b.live(q) {
		return
	}
	q.ready = append(ms, q.ready...)
	b.dispatch(q)
}

// conn is one connection to a Broker; it implements driver.Transport.
type conn struct {
	b         *Broker
	consumers map[*consumer]struct{} // guarded by b.mu
	closed    bool                   // guarded by b.mu
	since     time.Time              // guarded by b.mu
}

var (
	_ driver.Transport        = (*conn)(nil)
	_ driver.DeadLetterLister = (*conn)(nil)
	_ driver.StatusReporter   = (*conn)(nil)
	_ driver.Describer        = (*conn)(nil)
)

// System is the messaging.system the in-process broker reports in traces.
const System = "herald_memory"

// Destination reports the in-process broker as messaging system
// "herald_memory"; its destination is the event name, there being no
// exchange.
func (c *conn) Destination(name string) (system, destination string) { return System, name }

// Publish copies m into every queue bound to a pattern its name matches.
// The broker has taken the message when Publish returns, and confirm is
// called before it returns; it never blocks.
func (c *conn) Publish(ctx context.Context, m driver.Message, confirm func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := c.b
	b.mu.Lock()
	if c.closed {
		b.mu.Unlock()
		return driver.ErrClosed
	}
	// The caller may reuse its buffer; every queue shares this copy, which
	// nobody writes.
	m.Body = bytes.Clone(m.Body)
	m.Headers = maps.Clone(m.Headers)
	b.publishes++
	for _, q := range b.queues {
		b.enqueue(q, m)
	}
	for q := range b.temps {
		b.enqueue(q, m)
	}
	b.mu.Unlock()
	confirm(nil)
	return nil
}

func (b *Broker) enqueue(q *queue, m driver.Message) {
	if q.matches(m.Name) {
		q.ready = append(q.ready, &message{m: m, attempt: 1, publish: b.publishes})
		b.dispatch(q)
	}
}

// Consume attaches a consumer to the queue named by q (declaring it if
// needed), adds patterns to its bindings, and calls deliver from a
// goroutine of its own for each delivery.
func (c *conn) Consume(ctx context.Context, spec driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if deliver == nil {
		return nil, errors.New("memory: consume: nil deliver func")
	}
	if !spec.Temporary && spec.Name == "" {
		return nil, errors.New("memory: consume: queue name is empty")
	}
	for _, p := range patterns {
		if err := topic.ValidatePattern(p); err != nil {
			return nil, fmt.Errorf("memory: bind %q: %w", p, err)
		}
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return nil, driver.ErrClosed
	}
	var q *queue
	if spec.Temporary {
		b.tempSeq++
		q = &queue{name: fmt.Sprintf("%s.tmp-%d", spec.Name, b.tempSeq), temporary: true}
		b.temps[q] = struct{}{}
	} else if q = b.queues[spec.Name]; q == nil {
		q = &queue{name: spec.Name}
		b.queues[spec.Name] = q
	}
	for _, p := range patterns {
		q.bind(p)
	}
	prefetch := spec.Prefetch
	if prefetch <= 0 {
		prefetch = DefaultPrefetch
	}
	cons := &consumer{
		c:        c,
		q:        q,
		prefetch: prefetch,
		deliver:  deliver,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	q.consumers = append(q.consumers, cons)
	c.consumers[cons] = struct{}{}
	go cons.run()
	b.dispatch(q)
	return cons, nil
}

// Close stops the connection's consumers, returns their unsettled
// deliveries to their queues (same attempt) and waits, bounded by ctx, for
// their goroutines to stop calling deliver. Retries scheduled through this
// connection stay with the broker.
func (c *conn) Close(ctx context.Context) error {
	c.b.mu.Lock()
	done := c.closeLocked()
	c.b.mu.Unlock()
	for _, d := range done {
		select {
		case <-d:
			continue
		default:
		}
		select {
		case <-d:
		case <-ctx.Done():
			return fmt.Errorf("memory: close: a consumer is still delivering: %w", ctx.Err())
		}
	}
	return nil
}

// closeLocked closes c and returns the done channels of its consumers.
// Called with b.mu held.
func (c *conn) closeLocked() []chan struct{} {
	if c.closed {
		return nil
	}
	b := c.b
	c.closed = true
	c.since = time.Now()
	delete(b.conns, c)
	var done []chan struct{}
	for cons := range c.consumers {
		cons.stopLocked()
		ms := make([]*message, 0, len(cons.unacked))
		for _, d := range cons.unacked {
			d.requeued = true
			ms = append(ms, d.m)
		}
		cons.unacked = nil
		b.requeue(cons.q, ms)
		done = append(done, cons.done)
	}
	clear(c.consumers)
	return done
}

// Status reports connected until Close, closed after.
func (c *conn) Status() driver.Status {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.closed {
		return driver.Status{State: driver.StateClosed, Since: c.since}
	}
	return driver.Status{State: driver.StateConnected, Since: c.since}
}

// DeadLetters returns the dead letters of the queue, oldest first. It
// reads the broker, so it works on a closed connection too.
func (c *conn) DeadLetters(ctx context.Context, queue string) ([]driver.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	src := c.b.dead[queue]
	out := make([]driver.DeadLetter, len(src))
	for i, d := range src {
		out[i] = d.dl
		out[i].Body = bytes.Clone(d.dl.Body)
	}
	return out, nil
}

// consumer is one consumer of a queue; it implements driver.Consumer. Every
// field but the immutable ones is guarded by the broker's mutex.
type consumer struct {
	c        *conn
	q        *queue
	prefetch int
	deliver  func(driver.Delivery)
	wake     chan struct{} // capacity 1: "look at buf or stopped again"
	done     chan struct{} // closed when run returns

	buf     []*message  // given to this consumer, not yet handed to deliver
	unacked []*delivery // handed to deliver, not yet settled
	stopped bool
}

func (cons *consumer) signal() {
	select {
	case cons.wake <- struct{}{}:
	default:
	}
}

func (cons *consumer) run() {
	defer close(cons.done)
	for {
		d := cons.next()
		if d == nil {
			return
		}
		cons.deliver(d)
	}
}

// next waits for the next delivery; nil once the consumer is stopped.
func (cons *consumer) next() *delivery {
	b := cons.c.b
	for {
		b.mu.Lock()
		if cons.stopped {
			b.mu.Unlock()
			return nil
		}
		if len(cons.buf) > 0 {
			m := cons.buf[0]
			cons.buf[0] = nil
			cons.buf = cons.buf[1:]
			d := &delivery{cons: cons, m: m}
			cons.unacked = append(cons.unacked, d)
			b.mu.Unlock()
			return d
		}
		b.mu.Unlock()
		<-cons.wake
	}
}

// Bind adds pattern to the queue's bindings.
func (cons *consumer) Bind(ctx context.Context, pattern string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := topic.ValidatePattern(pattern); err != nil {
		return fmt.Errorf("memory: bind %q: %w", pattern, err)
	}
	b := cons.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if cons.stopped {
		return driver.ErrClosed
	}
	cons.q.bind(pattern)
	return nil
}

// Stop detaches the consumer from its queue, returns the messages it was
// given but had not handed out to the front of the queue, deletes the
// queue if it is temporary, and waits (bounded by ctx) for the delivering
// goroutine to return. Deliveries already handed out can still be settled.
func (cons *consumer) Stop(ctx context.Context) error {
	b := cons.c.b
	b.mu.Lock()
	cons.stopLocked()
	b.mu.Unlock()
	select {
	case <-cons.done:
		return nil
	default:
	}
	select {
	case <-cons.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("memory: stop consumer of %q: %w", cons.q.name, ctx.Err())
	}
}

// stopLocked is Stop without the wait. Called with b.mu held.
func (cons *consumer) stopLocked() {
	if cons.stopped {
		return
	}
	b := cons.c.b
	cons.stopped = true
	cons.signal()
	q := cons.q
	if i := slices.Index(q.consumers, cons); i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
		if q.next > i {
			q.next--
		}
		if len(q.consumers) > 0 {
			q.next %= len(q.consumers)
		} else {
			q.next = 0
		}
	}
	ms := cons.buf
	cons.buf = nil
	if q.temporary {
		delete(b.temps, q)
		q.ready = nil
		return
	}
	b.requeue(q, ms)
}

// delivery implements driver.Delivery. Its settlement fields are guarded by
// the broker's mutex.
type delivery struct {
	cons     *consumer
	m        *message
	settled  bool
	requeued bool
}

func (d *delivery) Body() []byte { return d.m.m.Body }

// Identity is the number of the publish the message came from.
func (d *delivery) Identity() string { return "memory:" + strconv.FormatUint(d.m.publish, 10) }

// Header returns a header of the message as it was published; a retry
// keeps them.
func (d *delivery) Header(key string) string { return d.m.m.Headers[key] }
func (d *delivery) Attempt() int             { return d.m.attempt }

// settleLocked marks d settled and frees its prefetch slot. Called with
// b.mu held.
func (d *delivery) settleLocked() error {
	if d.settled {
		return ErrSettled
	}
	if d.requeued {
		return ErrRequeued
	}
	d.settled = true
	cons := d.cons
	if i := slices.Index(cons.unacked, d); i >= 0 {
		cons.unacked = slices.Delete(cons.unacked, i, i+1)
	}
	if cons.stopped {
		if len(cons.unacked) == 0 {
			delete(cons.c.consumers, cons)
		}
	} else {
		cons.c.b.dispatch(cons.q)
	}
	return nil
}

// Ack settles the delivery as handled. It never blocks.
func (d *delivery) Ack(context.Context) error {
	b := d.cons.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	return d.settleLocked()
}

// Retry settles the delivery and has the broker put it back at the end of
// its queue after delay, with Attempt one higher. The broker owns the
// wait: closing the connection does not cancel it, Broker.Close does. A
// retry whose temporary queue is gone by then is dropped with the queue.
func (d *delivery) Retry(_ context.Context, delay time.Duration, _ error) error {
	b := d.cons.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := d.settleLocked(); err != nil {
		return err
	}
	if b.closed {
		return nil
	}
	m := &message{m: d.m.m, attempt: d.m.attempt + 1, firstFailure: d.m.firstFailure, publish: d.m.publish}
	if m.firstFailure.IsZero() {
		m.firstFailure = time.Now()
	}
	q := d.cons.q
	if delay <= 0 {
		if b.live(q) {
			q.ready = append(q.ready, m)
			b.dispatch(q)
		}
		return nil
	}
	r := &retry{}
	q.retrying++
	r.timer = time.AfterFunc(delay, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.retries[r]; !ok {
			return // cancelled by Broker.Close
		}
		delete(b.retries, r)
		q.retrying--
		if b.live(q) {
			q.ready = append(q.ready, m)
			b.dispatch(q)
		}
	})
	b.retries[r] = struct{}{}
	return nil
}

// DeadLetter settles the delivery and stores it, with cause and its
// attempt count, among the dead letters of its queue.
func (d *delivery) DeadLetter(_ context.Context, cause error) error {
	b := d.cons.c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := d.settleLocked(); err != nil {
		return err
	}
	now := time.Now()
	b.deadSeq++
	dl := driver.DeadLetter{
		ID:           strconv.Itoa(b.deadSeq),
		Body:         d.m.m.Body,
		Name:         d.m.m.Name,
		Attempts:     d.m.attempt,
		FirstFailure: d.m.firstFailure,
		DeadAt:       now,
	}
	if cause != nil {
		dl.Error = cause.Error()
	}
	if dl.FirstFailure.IsZero() {
		dl.FirstFailure = now
	}
	name := d.cons.q.name
	b.dead[name] = append(b.dead[name], deadLetter{dl: dl, m: d.m.m})
	return nil
}
