// Package driver is what a bus transport implements: Transport, the
// Consumer it starts and the Delivery it hands out, and the optional
// interfaces through which herald's operators reach the broker:
// DeadLetterLister, DeadLetterReplayer and DeadLetterPurger, BindingSetter,
// QueueInspector and StatusReporter. It is to package bus what
// database/sql/driver is to database/sql: a service author reads bus; a
// transport author implements these interfaces and runs the conformance
// suite, bus/bustest. herald's transports are bus/memory, bus/amqp and
// bus/nats.
package driver

import (
	"context"
	"errors"
	"time"
)

// Message is what a transport carries: one encoded event and what routing
// and de-duplication need.
type Message struct {
	// ID is the event id (AMQP message-id, JetStream Nats-Msg-Id).
	ID string
	// Name is the event name, used as routing key or subject.
	Name string
	// Body is the event's wire JSON.
	Body []byte
	// CreatedAt is the event's creation time (AMQP timestamp).
	CreatedAt time.Time
	// Headers travel beside the body, as AMQP message headers or NATS
	// headers: the W3C trace context (traceparent, tracestate) when the
	// bus traces. Nil for none. Keys are lower case; a transport keeps
	// them, and their values, as they are, through retries too.
	Headers map[string]string
}

// Delivery is one message handed to a consumer. Exactly one of Ack, Retry
// and DeadLetter is called for each delivery.
type Delivery interface {
	// Body is the message as it arrived.
	Body() []byte
	// Header returns the value of the message header key (Message.Headers
	// as published), or "" when it has none.
	Header(key string) string
	// Attempt is 1 for the first delivery and counts up with each retry.
	Attempt() int
	// Ack settles the delivery as handled.
	Ack(ctx context.Context) error
	// Retry settles the delivery and has the transport deliver it again to
	// the same queue after at least delay, with Attempt one higher. cause
	// is the reason, kept for the dead letter that may follow.
	Retry(ctx context.Context, delay time.Duration, cause error) error
	// DeadLetter settles the delivery and moves it to the queue's
	// dead-letter store with cause and the attempt count.
	DeadLetter(ctx context.Context, cause error) error
}

// Identified is implemented by deliveries that can say which published
// message they carry: the same text for every redelivery and retry of
// one publish, another for another publish, as far as the broker tells
// them apart. The bus keys the ids it derives for events without one by
// it (and the body), so redeliveries dedupe and distinct publishes of
// one body do not merge.
type Identified interface {
	// Identity is "" when the delivery knows nothing beyond its body.
	Identity() string
}

// QueueSpec names the queue a consumer reads.
type QueueSpec struct {
	// Name is the durable queue, shared by every consumer with this name
	// (competing consumers). It is the subscribing service's name.
	Name string
	// Temporary asks for a queue that only this consumer reads and that
	// disappears with it (herald tail); Name is then only a label.
	Temporary bool
	// Prefetch bounds the deliveries the transport hands out before they
	// are settled; 0 lets the transport choose.
	Prefetch int
}

// Consumer is a running consumer of one queue.
type Consumer interface {
	// Bind adds a topic pattern to the queue's bindings. Deliveries for it
	// may arrive before Bind returns.
	Bind(ctx context.Context, pattern string) error
	// Stop stops taking new deliveries and returns once deliver will not be
	// called again (or ctx is done). Deliveries handed out and not yet
	// settled may still be settled after Stop returns; deliveries the
	// transport prefetched but never handed out go back to the queue.
	Stop(ctx context.Context) error
}

// Transport moves messages between services. Implementations: bus/memory,
// bus/amqp, bus/nats. Every implementation passes bus/bustest.
type Transport interface {
	// Publish hands m to the broker without waiting for the broker's
	// answer. It returns once the transport has taken m, which may mean
	// waiting, bounded by ctx, for room among the messages waiting for a
	// confirm or for a lost connection to come back.
	//
	// When Publish returns nil, confirm is called exactly once, from any
	// goroutine and possibly before Publish returns: with nil once the
	// broker has taken m (publisher confirm, PubAck), or with why it did
	// not — a refusal, ctx ending first, or Close. Until then the
	// transport sends m again after a lost connection, with the same
	// Message.ID. When Publish returns an error, m was not taken and
	// confirm is never called. confirm must not block.
	Publish(ctx context.Context, m Message, confirm func(error)) error
	// Consume starts a consumer on the queue, bound to patterns, and calls
	// deliver for each delivery, from one goroutine: deliver may block to
	// apply back-pressure.
	Consume(ctx context.Context, q QueueSpec, patterns []string, deliver func(Delivery)) (Consumer, error)
	// Close releases the connection. Publishes waiting for a confirm are
	// answered (with an error if the confirm never came).
	Close(ctx context.Context) error
}

// PublishSync publishes m on t and waits for the broker's answer: it
// returns nil only once the broker has taken m. ctx bounds the whole
// publish.
func PublishSync(ctx context.Context, t Transport, m Message) error {
	answer := make(chan error, 1)
	if err := t.Publish(ctx, m, func(err error) { answer <- err }); err != nil {
		return err
	}
	return <-answer
}

// Describer is implemented by transports that name, in OpenTelemetry's
// messaging terms, where the messages they publish go; the bus's spans
// carry it. A transport that does not implement it is described by its
// Go type and the event name.
type Describer interface {
	// Destination returns the messaging system (messaging.system:
	// "rabbitmq", "nats", …) and the destination an event of that name is
	// published to (messaging.destination.name: the RabbitMQ exchange, the
	// NATS subject).
	Destination(name string) (system, destination string)
}

// DeadLetter is a message a consumer gave up on.
type DeadLetter struct {
	// ID names the dead letter among its queue's while it is kept: what
	// DeadLetterReplayer and DeadLetterPurger take.
	ID string
	// Body is the message as it was delivered.
	Body []byte
	// Name is the event name it was published under (the original
	// routing key).
	Name string
	// Error is the error of the last attempt.
	Error string
	// Attempts is the number of deliveries made.
	Attempts int
	// FirstFailure and DeadAt are when the first attempt failed and when
	// the message was dead-lettered.
	FirstFailure time.Time
	DeadAt       time.Time
}

// DeadLetterLister is implemented by transports whose dead letters can be
// read back (tests, herald's operators).
type DeadLetterLister interface {
	// DeadLetters returns the dead letters of queue, oldest first.
	DeadLetters(ctx context.Context, queue string) ([]DeadLetter, error)
}

// DeadLetterReplayer is implemented by transports that can hand dead
// letters back to their queue (herald dlq replay).
type DeadLetterReplayer interface {
	// ReplayDeadLetters moves the dead letters of queue whose IDs are ids,
	// or every one when ids is empty, back to queue and to no other
	// queue, as first deliveries (Attempt 1), and removes them from the
	// dead letters. It returns those it moved, oldest first; an id that
	// names no dead letter is not an error, only missing from the result.
	// A dead letter is removed only once the broker has taken it back.
	ReplayDeadLetters(ctx context.Context, queue string, ids []string) ([]DeadLetter, error)
}

// DeadLetterPurger is implemented by transports that can delete dead
// letters (herald dlq purge).
type DeadLetterPurger interface {
	// PurgeDeadLetters deletes the dead letters of queue whose IDs are
	// ids, or every one when ids is empty, and returns how many it
	// deleted.
	PurgeDeadLetters(ctx context.Context, queue string, ids []string) (int, error)
}

// BindingChanges is what SetBindings changed.
type BindingChanges struct {
	// Added are the patterns bound that the record did not hold;
	// Removed those unbound.
	Added, Removed []string
}

// BindingSetter is implemented by transports that can make a durable
// queue's bindings follow a service's configuration (herald serve
// --events): without it, bindings only ever grow, as consumers add theirs.
type BindingSetter interface {
	// SetBindings makes queue's bindings exactly patterns, as far as this
	// transport made them: it binds the patterns missing, unbinds those it
	// recorded binding before that patterns lacks, and records patterns on
	// the broker for the next call. Bindings it never recorded (another
	// program's on a shared queue) are left alone. The queue is created if
	// it does not exist.
	SetBindings(ctx context.Context, queue string, patterns []string) (BindingChanges, error)
}

// QueueInfo is what the broker says about a durable queue.
type QueueInfo struct {
	// Depth counts the messages waiting in the queue, not handed out. On
	// a NATS server before 2.10, whose consumers have one filter subject,
	// it also counts events the filter lets through and the patterns do
	// not match (they are acknowledged unseen when their turn comes).
	Depth int
	// Unacked counts the messages handed out and not yet settled; -1 when
	// the broker does not say (RabbitMQ, without its management plugin).
	Unacked int
	// Consumers counts the consumers reading the queue (on NATS, the
	// pull requests waiting: one per reading replica); -1 when unknown.
	Consumers int
	// Retrying counts the messages waiting to be delivered again after a
	// failed attempt.
	Retrying int
	// DeadLetters counts the queue's dead letters.
	DeadLetters int
	// Bindings are the patterns recorded by BindingSetter, sorted; nil
	// when none are recorded.
	Bindings []string
}

// QueueInspector is implemented by transports that can say how a durable
// queue is doing (herald status, the dead-letter metric).
type QueueInspector interface {
	// InspectQueue returns the state of queue now; an error wrapping
	// ErrNoQueue when the broker has no such queue.
	InspectQueue(ctx context.Context, queue string) (QueueInfo, error)
}

// ErrNoQueue is wrapped by InspectQueue's error when the queue does not
// exist.
var ErrNoQueue = errors.New("no such queue")

// State is a transport's connection state.
type State int

// Connection states.
const (
	StateConnected State = iota
	StateReconnecting
	StateClosed
)

// String returns the state as a word: connected, reconnecting, closed.
func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Status is a snapshot of a transport's connection.
type Status struct {
	// State is the connection's state.
	State State
	// Since is when it entered that state.
	Since time.Time
	// LastError is the last connection error (a lost connection, a
	// failed reconnect, a blocked broker), kept after the connection came
	// back; nil if there was none.
	LastError error
}

// StatusReporter is implemented by transports with a connection to watch
// (health checks, metrics).
type StatusReporter interface {
	// Status returns the connection's state now.
	Status() Status
}

// ErrClosed is returned by a transport's Publish and Consume, and by a
// consumer's Bind, after Close. It is the value bus.ErrClosed names.
var ErrClosed = errors.New("bus: closed")
