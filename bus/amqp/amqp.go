// Package amqp is the RabbitMQ transport of the bus, wire-compatible with
// Open Integration Hub's Node library @openintegrationhub/event-bus 1.3.
//
// Topology, as OIH has it: one durable topic exchange "event-bus"; the
// routing key is the event name; each subscribing service has one durable
// queue named after the service, declared with no arguments and bound once
// per subscribed pattern, which its replicas (Go or Node) share.
//
// What herald adds, without changing that layout:
//
//   - persistent messages with content-type application/json, message-id
//     (the event id) and a timestamp;
//   - publisher confirms, pipelined over a bounded window shared by
//     concurrent Publish calls; Publish returns once its own message is
//     confirmed, and a nack or an unroutable message is an error;
//   - reconnect with capped exponential backoff and jitter: topology is
//     declared again, consumers and their bindings resume, publishes wait
//     for the connection (bounded by their context) and a message whose
//     confirm was lost with the connection is sent again, with the same
//     message-id;
//   - retries through queues herald owns, "<service>.retry.<ms>ms", one per
//     backoff step (100ms·2^k up to a cap), each with a queue-level TTL that
//     dead-letters back into the service's queue only; and a dead-letter
//     queue "<service>.dead" whose messages carry the error, the attempt
//     count, the original routing key and the time of the first failure;
//     dead letters are replayed into the service's queue only, through the
//     default exchange;
//   - the record of the patterns herald bound for a service, one message in
//     the queue "<service>.bindings" (at most one message long), so that
//     SetBindings can remove what herald bound and is no longer wanted
//     without RabbitMQ's management plugin, and leave what others bound.
//
// The service queue itself gets no arguments (no x-dead-letter-exchange,
// no TTL): a declare with arguments fails with PRECONDITION_FAILED against
// the queue a Node service created, and the other way round.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/internal/ctxwatch"
)

// Exchange is the topic exchange every OIH service publishes to.
const Exchange = "event-bus"

// Headers herald sets on retried and dead-lettered messages.
const (
	// HeaderAttempt is the delivery attempt of a retried message (1 for the
	// first delivery, which has no header).
	HeaderAttempt = "x-herald-attempt"
	// HeaderError is the error of the last failed attempt.
	HeaderError = "x-herald-error"
	// HeaderRoutingKey is the original routing key (the event name): a
	// message coming back from a retry queue has the service queue as its
	// routing key.
	HeaderRoutingKey = "x-herald-routing-key"
	// HeaderFirstFailure is when the first attempt failed (RFC 3339).
	HeaderFirstFailure = "x-herald-first-failure"
	// HeaderDeadAt is when the message was dead-lettered (RFC 3339).
	HeaderDeadAt = "x-herald-dead-at"
	// HeaderDeadID names a dead letter among its queue's (the ID of
	// driver.DeadLetter).
	HeaderDeadID = "x-herald-dead-id"
	// HeaderReplayedAt is when a dead letter was replayed (RFC 3339).
	HeaderReplayedAt = "x-herald-replayed-at"
)

// Errors a Publish may return, tested with errors.Is.
var (
	// ErrNacked means the broker refused the message (basic.nack).
	ErrNacked = errors.New("amqp: the broker refused the message (nack)")
	// ErrUnroutable means no queue is bound for the message's routing key,
	// so the broker returned it (see WithMandatory).
	ErrUnroutable = errors.New("amqp: no queue is bound for this event name; the broker returned it")
	// ErrStaleDelivery is returned when settling a delivery whose channel
	// was lost: the broker delivers it again.
	ErrStaleDelivery = errors.New("amqp: the delivery's channel was lost; the broker will redeliver it")
)

// Transport is a driver.Transport on RabbitMQ. It implements
// driver.StatusReporter and driver.DeadLetterLister. Create it with Dial.
type Transport struct {
	url     string
	display string // url without the password
	opts    options
	log     *slog.Logger

	window   chan struct{} // one token per message waiting for its confirm
	drained  chan struct{} // signalled on a released slot while closing
	life     context.Context
	kill     context.CancelFunc // ends life: reconnects and waits give up
	closeReq chan struct{}      // closed by Close: the supervisor stops
	done     chan struct{}      // closed when the supervisor has stopped
	once     sync.Once

	mu      sync.Mutex
	state   driver.State
	since   time.Time
	lastErr error
	conn    *amqp091.Connection // nil while disconnected
	pub     *pubChannel         // nil while no publish channel is usable
	blocked bool                // connection.blocked from the broker
	closing bool
	changed chan struct{} // closed and replaced on every change above

	// watch answers the publishes whose context ends before their confirm.
	watch *ctxwatch.Set[*pending]
}

// Dial connects to the RabbitMQ at url (amqp:// or amqps://), declares the
// exchange and returns the transport. The first connection is attempted
// once, bounded by ctx: an error means nothing usable answered there. Later
// losses are repaired inside the transport.
func Dial(ctx context.Context, rawURL string, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := amqp091.ParseURI(rawURL); err != nil {
		return nil, fmt.Errorf("amqp: broker URL: %w", err)
	}
	life, kill := context.WithCancel(context.Background())
	t := &Transport{
		url:      rawURL,
		display:  redact(rawURL),
		opts:     o,
		log:      o.logger.With("transport", "amqp"),
		window:   make(chan struct{}, o.window),
		drained:  make(chan struct{}, 1),
		life:     life,
		kill:     kill,
		closeReq: make(chan struct{}),
		done:     make(chan struct{}),
		state:    driver.StateReconnecting,
		since:    time.Now(),
		changed:  make(chan struct{}),
	}
	t.watch = ctxwatch.New(func(p *pending, err error) {
		t.answer(p, fmt.Errorf("waiting for the broker's confirm: %w", err))
	})
	conn, err := t.dial(ctx)
	if err != nil {
		kill()
		return nil, err
	}
	pc, err := t.openPublisher(conn)
	if err != nil {
		_ = conn.Close()
		kill()
		return nil, fmt.Errorf("amqp: %s: %w", t.display, err)
	}
	t.setConnected(conn, pc)
	go t.supervise(conn, pc)
	return t, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the broker"
	}
	return u.Redacted()
}

// URL returns the broker URL, without the password.
func (t *Transport) URL() string { return t.display }

func (t *Transport) dial(ctx context.Context) (*amqp091.Connection, error) {
	cfg := amqp091.Config{
		Heartbeat:       t.opts.heartbeat,
		TLSClientConfig: t.opts.tls.Clone(), // amqp091 sets ServerName on it
		Properties:      amqp091.NewConnectionProperties(),
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: t.opts.dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// As amqp091.DefaultDial: a deadline for the handshake, so a
			// silent server cannot stall the dial; amqp091 clears it once
			// the connection is open.
			deadline := time.Now().Add(t.opts.dialTimeout)
			if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
				deadline = dl
			}
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	}
	cfg.Properties.SetClientConnectionName(t.opts.name)
	conn, err := amqp091.DialConfig(t.url, cfg)
	if err != nil {
		return nil, fmt.Errorf("amqp: connect to %s: %w", t.display, err)
	}
	return conn, nil
}

// supervise owns the connection: it watches it, reopens the publish
// channel, and reconnects with backoff when the connection is lost.
func (t *Transport) supervise(conn *amqp091.Connection, pc *pubChannel) {
	defer close(t.done)
	for {
		err := t.serve(conn, pc)
		select {
		case <-t.closeReq:
			t.closeConn(conn)
			t.setState(driver.StateClosed, err)
			return
		default:
		}
		t.log.Warn("connection to RabbitMQ lost; reconnecting", "broker", t.display, "error", err)
		t.lost(err)
		_ = conn.Close()
		conn, pc = t.reconnect()
		if conn == nil {
			t.setState(driver.StateClosed, nil)
			return
		}
		t.log.Info("reconnected to RabbitMQ", "broker", t.display)
	}
}

// serve runs one connection until it is lost (the error says why) or
// Close asks (nil).
func (t *Transport) serve(conn *amqp091.Connection, pc *pubChannel) error {
	connClosed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	blocks := conn.NotifyBlocked(make(chan amqp091.Blocking, 4))
	for {
		t.setConnected(conn, pc)
	watch:
		for {
			select {
			case e, ok := <-connClosed:
				if ok && e != nil {
					return e
				}
				return errors.New("connection closed")
			case b, ok := <-blocks:
				if ok {
					t.setBlocked(b)
				}
			case <-pc.dead:
				break watch
			case <-t.closeReq:
				return nil
			}
		}
		// The publish channel died while the connection lives (a
		// channel-level error): open another on the same connection.
		t.mu.Lock()
		t.pub = nil
		t.broadcast()
		t.mu.Unlock()
		var err error
		if pc, err = t.openPublisher(conn); err != nil {
			return fmt.Errorf("reopen publish channel: %w", err)
		}
	}
}

// reconnect dials with capped exponential backoff and jitter until it
// succeeds or the transport is closed (nil).
func (t *Transport) reconnect() (*amqp091.Connection, *pubChannel) {
	b := backoff{min: t.opts.minBackoff, max: t.opts.maxBackoff}
	for {
		select {
		case <-time.After(b.next()):
		case <-t.closeReq:
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(t.life, t.opts.dialTimeout)
		conn, err := t.dial(ctx)
		cancel()
		if err != nil {
			t.setErr(err)
			t.log.Debug("reconnect failed", "broker", t.display, "error", err)
			continue
		}
		pc, err := t.openPublisher(conn)
		if err != nil {
			_ = conn.Close()
			t.setErr(err)
			continue
		}
		return conn, pc
	}
}

func (t *Transport) closeConn(conn *amqp091.Connection) {
	if conn.IsClosed() {
		return
	}
	// CloseDeadline: a broker that stopped answering cannot hold Close.
	_ = conn.CloseDeadline(time.Now().Add(5 * time.Second))
}

// backoff is capped exponential backoff with jitter: each wait is between
// half and all of the current step, which doubles up to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	half := b.cur / 2
	return half + rand.N(b.cur-half+1)
}

// broadcast wakes everyone waiting for a state change. t.mu must be held.
func (t *Transport) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Transport) setConnected(conn *amqp091.Connection, pc *pubChannel) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conn, t.pub, t.blocked = conn, pc, false
	if t.state != driver.StateConnected {
		t.state, t.since = driver.StateConnected, time.Now()
	}
	t.broadcast()
}

func (t *Transport) lost(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.conn, t.pub, t.blocked = nil, nil, false
	if t.state == driver.StateConnected {
		t.state, t.since = driver.StateReconnecting, time.Now()
	}
	if err != nil {
		t.lastErr = err
	}
	t.broadcast()
}

func (t *Transport) setBlocked(b amqp091.Blocking) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blocked = b.Active
	if b.Active {
		t.lastErr = fmt.Errorf("broker blocked publishing: %s", b.Reason)
		t.log.Warn("RabbitMQ blocked publishing; publishes wait", "reason", b.Reason)
	} else {
		t.log.Info("RabbitMQ unblocked publishing")
	}
	t.broadcast()
}

func (t *Transport) setErr(err error) {
	t.mu.Lock()
	t.lastErr = err
	t.mu.Unlock()
}

func (t *Transport) setState(s driver.State, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != s {
		t.state, t.since = s, time.Now()
	}
	if err != nil {
		t.lastErr = err
	}
	t.conn, t.pub = nil, nil
	t.broadcast()
}

// Status reports the connection state, since when, and the last error
// (a lost connection, a failed reconnect, a blocked broker).
func (t *Transport) Status() driver.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return driver.Status{State: t.state, Since: t.since, LastError: t.lastErr}
}

// waitConn returns the open connection, waiting for a reconnect bounded by
// ctx. It fails with driver.ErrClosed once the transport is closed.
func (t *Transport) waitConn(ctx context.Context) (*amqp091.Connection, error) {
	for {
		t.mu.Lock()
		conn, ch, state, last := t.conn, t.changed, t.state, t.lastErr
		t.mu.Unlock()
		if state == driver.StateClosed {
			return nil, driver.ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, waitErr(ctx, last)
		case <-t.life.Done():
			return nil, driver.ErrClosed
		}
	}
}

func waitErr(ctx context.Context, last error) error {
	if last != nil {
		return fmt.Errorf("waiting for RabbitMQ (last error: %v): %w", last, ctx.Err())
	}
	return fmt.Errorf("waiting for RabbitMQ: %w", ctx.Err())
}

// Close stops consumers from receiving, waits (bounded by ctx, and by the
// close timeout when ctx has no deadline) for the confirms of messages
// already sent, then closes the connection. Publishes still unconfirmed
// then fail with driver.ErrClosed. Close never waits for a lost connection to
// come back.
func (t *Transport) Close(ctx context.Context) error {
	first := false
	t.once.Do(func() { first = true })
	if !first {
		select {
		case <-t.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.mu.Lock()
	t.closing = true
	t.broadcast()
	t.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.opts.closeTimeout)
		defer cancel()
	}
	var err error
	// Drain: messages in flight get their confirms while the connection
	// lives. Without a connection nothing more can be confirmed.
	for len(t.window) > 0 {
		t.mu.Lock()
		connected := t.conn != nil
		ch := t.changed
		t.mu.Unlock()
		if !connected {
			break
		}
		select {
		case <-t.drained:
		case <-ch:
		case <-ctx.Done():
			err = fmt.Errorf("amqp: close: %d publishes still unconfirmed: %w", len(t.window), ctx.Err())
		}
		if err != nil {
			break
		}
	}
	close(t.closeReq)
	t.kill()
	select {
	case <-t.done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("amqp: close: %w", ctx.Err())
		}
	}
	return err
}

var (
	_ driver.Transport          = (*Transport)(nil)
	_ driver.StatusReporter     = (*Transport)(nil)
	_ driver.DeadLetterLister   = (*Transport)(nil)
	_ driver.DeadLetterReplayer = (*Transport)(nil)
	_ driver.DeadLetterPurger   = (*Transport)(nil)
	_ driver.BindingSetter      = (*Transport)(nil)
	_ driver.QueueInspector     = (*Transport)(nil)
	_ driver.Describer          = (*Transport)(nil)
)

// Destination names RabbitMQ as the messaging system and the exchange as
// the destination, as OpenTelemetry's RabbitMQ conventions ask; the event
// name is the routing key.
func (t *Transport) Destination(string) (system, destination string) { return "rabbitmq", Exchange }
