package amqp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// consumer is a running consumer of one queue. It survives connection
// losses: each connection gets a new session (channel, declarations,
// bindings, basic.consume), and one goroutine calls deliver across them.
type consumer struct {
	t        *Transport
	spec     driver.QueueSpec
	prefetch int
	deliver  func(driver.Delivery)

	stop     chan struct{} // closed by Stop
	stopOnce sync.Once
	loopDone chan struct{} // closed when deliver will not be called again

	mu       sync.Mutex
	patterns []string
	sess     *session
	changed  chan struct{} // closed and replaced when sess changes
}

// session is a consumer's life on one channel.
type session struct {
	c          *consumer
	ch         *amqp091.Channel
	conn       *amqp091.Connection
	queue      string // the queue consumed (server-named when temporary)
	prefix     string // retry queues are <prefix>.retry.<ms>ms
	deadQueue  string
	temporary  bool
	deliveries <-chan amqp091.Delivery
	tag        string
	closed     chan struct{} // closed when the AMQP channel is gone

	// rpc serialises the calls that wait for a reply on ch (Cancel,
	// Close): amqp091 does not match concurrent replies to their calls.
	rpc sync.Mutex

	mu          sync.Mutex
	outstanding int  // handed to deliver, not yet settled
	retired     bool // no more deliver calls; close once outstanding is 0
	declared    map[string]bool
}

var consumerSeq atomic.Uint64

// Consume declares the queue (durable, no arguments, named q.Name; or a
// server-named exclusive auto-delete queue when q.Temporary), binds it to
// every pattern, and calls deliver for each delivery from one goroutine,
// with manual acks and a prefetch of q.Prefetch (or the transport's
// default). The queue is declared and bound before Consume returns; after a
// reconnect it is declared and bound again and consumption resumes.
func (t *Transport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	if q.Name == "" && !q.Temporary {
		return nil, errors.New("amqp: consume: a queue name is required")
	}
	if deliver == nil {
		return nil, errors.New("amqp: consume: nil deliver function")
	}
	c := &consumer{
		t:        t,
		spec:     q,
		prefetch: q.Prefetch,
		deliver:  deliver,
		stop:     make(chan struct{}),
		loopDone: make(chan struct{}),
		patterns: slices.Clone(patterns),
		changed:  make(chan struct{}),
	}
	if c.prefetch <= 0 {
		c.prefetch = t.opts.prefetch
	}
	for {
		conn, err := t.waitConn(ctx)
		if err != nil {
			return nil, fmt.Errorf("amqp: consume %s: %w", c.label(), err)
		}
		s, err := c.open(conn)
		if err == nil {
			c.setSession(s)
			go c.run(s)
			return c, nil
		}
		if !conn.IsClosed() {
			// The broker refused the declaration or a binding: that is
			// the caller's to know, not a reason to retry.
			return nil, fmt.Errorf("amqp: consume %s: %w", c.label(), err)
		}
		// The connection went down under us: wait for the next one.
	}
}

func (c *consumer) label() string {
	if c.spec.Temporary {
		return "temporary queue for " + c.spec.Name
	}
	return "queue " + c.spec.Name
}

// open starts a session on conn.
func (c *consumer) open(conn *amqp091.Connection) (*session, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	fail := func(err error) (*session, error) {
		_ = ch.Close()
		return nil, err
	}
	closes := ch.NotifyClose(make(chan *amqp091.Error, 1))
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fail(fmt.Errorf("set prefetch %d: %w", c.prefetch, err))
	}
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		return fail(fmt.Errorf("declare exchange %q: %w", Exchange, err))
	}
	s := &session{c: c, ch: ch, conn: conn, temporary: c.spec.Temporary, closed: make(chan struct{}), declared: make(map[string]bool)}
	if c.spec.Temporary {
		// Server-named, exclusive, auto-deleted: only this consumer reads
		// it and it disappears with it, so herald tail never takes
		// deliveries from a real service's queue.
		qd, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			return fail(fmt.Errorf("declare temporary queue: %w", err))
		}
		s.queue = qd.Name
		// Names starting with "amq." are reserved for the server; the
		// temporary queue's own retry and dead-letter queues are exclusive
		// too and declared only when first needed.
		s.prefix = "herald.tmp." + strings.TrimPrefix(qd.Name, "amq.gen-")
		s.deadQueue = s.prefix + ".dead"
	} else {
		// No arguments, exactly as OIH's assertQueue(serviceName): a
		// declare whose arguments differ fails with PRECONDITION_FAILED,
		// so a herald replica and a Node replica of one service can both
		// declare, in either order, and share the queue. Retry and
		// dead-letter therefore live in separate queues, not in x-args.
		if _, err := ch.QueueDeclare(c.spec.Name, true, false, false, false, nil); err != nil {
			return fail(fmt.Errorf("declare queue %q: %w", c.spec.Name, err))
		}
		s.queue = c.spec.Name
		s.prefix = c.spec.Name
		s.deadQueue = c.spec.Name + ".dead"
		if _, err := ch.QueueDeclare(s.deadQueue, true, false, false, false, nil); err != nil {
			return fail(fmt.Errorf("declare queue %q: %w", s.deadQueue, err))
		}
		s.declared[s.deadQueue] = true
	}
	c.mu.Lock()
	patterns := slices.Clone(c.patterns)
	c.mu.Unlock()
	for _, p := range patterns {
		if err := ch.QueueBind(s.queue, p, Exchange, false, nil); err != nil {
			return fail(fmt.Errorf("bind %q to %q: %w", s.queue, p, err))
		}
	}
	s.tag = fmt.Sprintf("herald-%s-%d", c.t.opts.name, consumerSeq.Add(1))
	d, err := ch.Consume(s.queue, s.tag, false, false, false, false, nil)
	if err != nil {
		return fail(fmt.Errorf("consume %q: %w", s.queue, err))
	}
	s.deliveries = d
	go func() {
		for range closes {
		}
		close(s.closed)
	}()
	return s, nil
}

func (c *consumer) setSession(s *session) {
	c.mu.Lock()
	c.sess = s
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *consumer) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

// run calls deliver for each delivery, session after session, until Stop
// or the transport's Close.
func (c *consumer) run(s *session) {
	defer close(c.loopDone)
	for {
		if c.consume(s) {
			s.retire()
			return
		}
		s.retire()
		if s = c.reopen(); s == nil {
			return
		}
	}
}

// consume hands out the session's deliveries until it ends (false) or
// Stop (true).
func (c *consumer) consume(s *session) (stopped bool) {
	for {
		select {
		case <-c.stop:
			return true
		case d, ok := <-s.deliveries:
			if !ok {
				return c.stopping()
			}
			if c.stopping() {
				// Not handed out: retire requeues it with the rest.
				_ = d.Nack(false, true)
				return true
			}
			s.mu.Lock()
			s.outstanding++
			s.mu.Unlock()
			c.deliver(&delivery{s: s, d: d, attempt: attemptOf(d.Headers)})
		}
	}
}

// reopen waits for a connection and starts a new session, retrying with
// backoff; nil when stopped or the transport is closed.
func (c *consumer) reopen() *session {
	c.mu.Lock()
	c.sess = nil
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(c.t.life)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	b := backoff{min: c.t.opts.minBackoff, max: c.t.opts.maxBackoff}
	for {
		conn, err := c.t.waitConn(ctx)
		if err != nil {
			return nil
		}
		s, err := c.open(conn)
		if err == nil {
			c.setSession(s)
			return s
		}
		if !conn.IsClosed() {
			c.t.setErr(fmt.Errorf("resume %s: %w", c.label(), err))
			c.t.log.Error("cannot resume consumer; retrying", "queue", c.spec.Name, "error", err)
		}
		select {
		case <-time.After(b.next()):
		case <-ctx.Done():
			return nil
		}
	}
}

// retire ends the session's deliveries. Prefetched deliveries that were
// never handed out go back to the queue; the channel closes once every
// delivery handed out is settled.
func (s *session) retire() {
	s.mu.Lock()
	s.retired = true
	n := s.outstanding
	s.mu.Unlock()
	if n == 0 {
		s.close() // requeues everything unacked
		return
	}
	go func() {
		// Stop the flow and give back what was prefetched; the deliveries
		// handed out keep the channel open until they are settled.
		s.rpc.Lock()
		if !s.lost() {
			_ = s.ch.Cancel(s.tag, false)
		}
		s.rpc.Unlock()
		for d := range s.deliveries {
			_ = d.Nack(false, true)
		}
	}()
}

func (s *session) close() {
	s.rpc.Lock()
	defer s.rpc.Unlock()
	_ = s.ch.Close()
}

func (s *session) settled() {
	s.mu.Lock()
	s.outstanding--
	last := s.retired && s.outstanding == 0
	s.mu.Unlock()
	if last {
		go s.close()
	}
}

func (s *session) lost() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Bind binds the queue to one more pattern, now and after every
// reconnect. It waits for the connection, bounded by ctx.
func (c *consumer) Bind(ctx context.Context, pattern string) error {
	c.mu.Lock()
	if !slices.Contains(c.patterns, pattern) {
		c.patterns = append(c.patterns, pattern)
	}
	c.mu.Unlock()
	for {
		if c.stopping() {
			return errors.New("amqp: bind: consumer stopped")
		}
		c.mu.Lock()
		s, changed := c.sess, c.changed
		c.mu.Unlock()
		if s == nil || s.lost() {
			// Between sessions: the next one binds every pattern.
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return fmt.Errorf("amqp: bind %q: %w", pattern, ctx.Err())
			case <-c.t.life.Done():
				return driver.ErrClosed
			}
		}
		// A channel of its own: a refused binding closes the channel it was
		// asked on, and that must not be the consumer's.
		ch, err := s.conn.Channel()
		if err == nil {
			err = ch.QueueBind(s.queue, pattern, Exchange, false, nil)
			_ = ch.Close()
			if err == nil {
				return nil
			}
		}
		if !s.conn.IsClosed() {
			c.mu.Lock()
			c.patterns = slices.DeleteFunc(c.patterns, func(p string) bool { return p == pattern })
			c.mu.Unlock()
			return fmt.Errorf("amqp: bind %q to %q: %w", s.queue, pattern, err)
		}
		// Connection lost meanwhile: the next session binds it.
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("amqp: bind %q: %w", pattern, ctx.Err())
		case <-c.t.life.Done():
			return driver.ErrClosed
		}
	}
}

// Stop stops handing out deliveries and returns once deliver will not be
// called again (or ctx is done). Deliveries handed out may still be
// settled; prefetched ones go back to the queue.
func (c *consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	select {
	case <-c.loopDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("amqp: stop consumer of %s: %w", c.label(), ctx.Err())
	}
}

// attemptOf reads the attempt header (1 when absent).
func attemptOf(h amqp091.Table) int {
	var n int64
	switch v := h[HeaderAttempt].(type) {
	case int:
		n = int64(v)
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case float64:
		n = int64(v)
	case string:
		fmt.Sscan(v, &n)
	}
	if n < 1 {
		return 1
	}
	return int(n)
}

// delivery is one message handed to the consumer's deliver function.
type delivery struct {
	s       *session
	d       amqp091.Delivery
	attempt int
	done    atomic.Bool
}

func (d *delivery) Body() []byte { return d.d.Body }

// Identity is what AMQP keeps of a publish through redeliveries and
// herald's retries: the message-id and timestamp properties. A publisher
// that sets neither sends messages that only their bodies tell apart.
func (d *delivery) Identity() string {
	if d.d.MessageId == "" && d.d.Timestamp.IsZero() {
		return ""
	}
	return "amqp:" + d.d.MessageId + "/" + strconv.FormatInt(d.d.Timestamp.UnixNano(), 10)
}

// Header returns a message header that holds a string ("" otherwise).
// Retries and dead letters copy the message's headers, so a retried
// delivery has those it was published with.
func (d *delivery) Header(key string) string {
	v, _ := d.d.Headers[key].(string)
	return v
}
func (d *delivery) Attempt() int { return d.attempt }

func (d *delivery) settle() error {
	if !d.done.CompareAndSwap(false, true) {
		return errors.New("amqp: delivery already settled")
	}
	return nil
}

// Ack acknowledges the delivery. After a lost channel it fails with
// ErrStaleDelivery: the broker delivers the message again.
func (d *delivery) Ack(ctx context.Context) error {
	if err := d.settle(); err != nil {
		return err
	}
	defer d.s.settled()
	if err := d.d.Ack(false); err != nil {
		return d.stale("ack", err)
	}
	return nil
}

func (d *delivery) stale(what string, err error) error {
	if d.s.lost() || errors.Is(err, amqp091.ErrClosed) {
		return fmt.Errorf("amqp: %s: %w", what, ErrStaleDelivery)
	}
	return fmt.Errorf("amqp: %s: %w", what, err)
}

// routingKey is the event name the message was first published with.
func (d *delivery) routingKey() string {
	if k, ok := d.d.Headers[HeaderRoutingKey].(string); ok && k != "" {
		return k
	}
	return d.d.RoutingKey
}

// Retry puts a copy in the retry queue whose TTL is delay rounded up to
// the next step, with the attempt count one higher, and acknowledges the
// delivery once the broker confirmed the copy. The retry queue
// dead-letters into this queue only, so other services never see it again.
func (d *delivery) Retry(ctx context.Context, delay time.Duration, cause error) error {
	if err := d.settle(); err != nil {
		return err
	}
	defer d.s.settled()
	if d.s.lost() {
		return fmt.Errorf("amqp: retry: %w", ErrStaleDelivery)
	}
	step := retryStep(delay, d.s.c.t.opts.maxRetryDelay)
	q, err := d.s.retryQueue(step)
	if err != nil {
		if d.s.lost() || d.s.conn.IsClosed() {
			// The connection went: the broker redelivers the original.
			return fmt.Errorf("amqp: retry: %w", ErrStaleDelivery)
		}
		// The broker refused the retry queue (declared by someone else
		// with other arguments, or not permitted). Requeueing would
		// deliver it again at once with the same attempt, forever:
		// dead-letter it instead, saying why it was not retried.
		d.s.c.t.log.Error("retry queue refused; dead-lettering instead", "queue", q, "error", err)
		if derr := d.deadLetter(ctx, fmt.Errorf("%w (not retried: %w)", cause, err)); derr != nil {
			return fmt.Errorf("amqp: retry: %w; dead-lettering it instead: %w", err, derr)
		}
		return fmt.Errorf("amqp: retry: %w; dead-lettered instead", err)
	}
	h := d.headers(cause)
	h[HeaderAttempt] = int32(d.attempt + 1)
	return d.move(ctx, "retry", q, h)
}

// DeadLetter moves the delivery to the queue's dead-letter queue
// (<service>.dead) with the error, the attempt count, the original routing
// key and the times of the first failure and of now in its headers.
func (d *delivery) DeadLetter(ctx context.Context, cause error) error {
	if err := d.settle(); err != nil {
		return err
	}
	defer d.s.settled()
	return d.deadLetter(ctx, cause)
}

// deadLetter is DeadLetter on a delivery already marked settled.
func (d *delivery) deadLetter(ctx context.Context, cause error) error {
	if d.s.lost() {
		return fmt.Errorf("amqp: dead-letter: %w", ErrStaleDelivery)
	}
	if err := d.s.declare(d.s.deadQueue, nil); err != nil {
		_ = d.d.Nack(false, true)
		return fmt.Errorf("amqp: dead-letter: %w", err)
	}
	h := d.headers(cause)
	h[HeaderAttempt] = int32(d.attempt)
	h[HeaderDeadAt] = formatTime(time.Now())
	h[HeaderDeadID] = event.NewID()
	return d.move(ctx, "dead-letter", d.s.deadQueue, h)
}

// maxErrorLen bounds the error text kept in a header.
const maxErrorLen = 4096

func (d *delivery) headers(cause error) amqp091.Table {
	h := amqp091.Table{}
	for k, v := range d.d.Headers {
		// RabbitMQ's own dead-lettering history grows with every pass
		// through a retry queue; herald's headers say what matters.
		if k == "x-death" || strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-") {
			continue
		}
		h[k] = v
	}
	msg := "unknown error"
	if cause != nil {
		msg = cause.Error()
	}
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	h[HeaderError] = msg
	h[HeaderRoutingKey] = d.routingKey()
	if _, ok := h[HeaderFirstFailure]; !ok {
		h[HeaderFirstFailure] = formatTime(time.Now())
	}
	return h
}

// move publishes a copy of the delivery to queue (through the default
// exchange, confirmed) and then acknowledges the original. If the copy is
// not confirmed the original goes back to its queue.
func (d *delivery) move(ctx context.Context, what, queue string, h amqp091.Table) error {
	// Bounded by the session: once its channel is gone the original will be
	// redelivered, and a copy sent after the reconnect would be a needless
	// duplicate.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	out := &outgoing{
		key:       queue,
		mandatory: true,
		msg: amqp091.Publishing{
			Headers:         h,
			ContentType:     d.d.ContentType,
			ContentEncoding: d.d.ContentEncoding,
			DeliveryMode:    amqp091.Persistent,
			MessageId:       d.d.MessageId,
			Timestamp:       d.d.Timestamp,
			Type:            d.d.Type,
			AppId:           d.d.AppId,
			Body:            d.d.Body,
		},
	}
	if d.s.temporary {
		out.msg.DeliveryMode = amqp091.Transient
	}
	if err := d.s.c.t.publishWait(ctx, out); err != nil {
		_ = d.d.Nack(false, true)
		if d.s.lost() {
			return fmt.Errorf("amqp: %s: %w", what, ErrStaleDelivery)
		}
		return fmt.Errorf("amqp: %s to %q: %w", what, queue, err)
	}
	if err := d.d.Ack(false); err != nil {
		// The copy is in place; the original comes back too (a duplicate).
		return d.stale(what, err)
	}
	return nil
}

// retryStep rounds delay up to the next step 100ms·2^k, and cuts it to
// max. Each step is one queue with that TTL: RabbitMQ expires messages only
// at the head of a queue, so one queue per delay keeps every message's
// delay its own.
func retryStep(delay, max time.Duration) time.Duration {
	s := MinRetryDelay
	for s < delay && s < max {
		s *= 2
	}
	if s > max {
		s = max
	}
	return s
}

func retryQueueName(prefix string, step time.Duration) string {
	return fmt.Sprintf("%s.retry.%dms", prefix, step.Milliseconds())
}

// retryQueue declares (once per session) and returns the retry queue for
// step: its messages expire after step into the default exchange with this
// session's queue as routing key.
func (s *session) retryQueue(step time.Duration) (string, error) {
	q := retryQueueName(s.prefix, step)
	args := amqp091.Table{
		"x-message-ttl":             step.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": s.queue,
	}
	return q, s.declare(q, args)
}

// declare declares a queue herald owns, on a channel of its own (a
// refused declaration closes its channel), once per session.
func (s *session) declare(q string, args amqp091.Table) error {
	s.mu.Lock()
	done := s.declared[q]
	s.mu.Unlock()
	if done {
		return nil
	}
	ch, err := s.conn.Channel()
	if err != nil {
		return fmt.Errorf("declare queue %q: %w", q, err)
	}
	defer ch.Close()
	// A temporary queue's retry and dead-letter queues are exclusive: they
	// go with its connection.
	if _, err := ch.QueueDeclare(q, !s.temporary, false, s.temporary, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", q, err)
	}
	s.mu.Lock()
	s.declared[q] = true
	s.mu.Unlock()
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// DeadLetters returns the dead letters of a service's queue (the messages
// in "<queue>.dead"), oldest first. Reading leaves them where they are: each
// is fetched unacknowledged and all are requeued, in order, at the end.
func (t *Transport) DeadLetters(ctx context.Context, queue string) ([]driver.DeadLetter, error) {
	conn, err := t.waitConn(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("amqp: dead letters: %w", err)
	}
	defer ch.Close()
	dq := queue + ".dead"
	info, err := ch.QueueDeclarePassive(dq, true, false, false, false, nil)
	if err != nil {
		var ae *amqp091.Error
		if errors.As(err, &ae) && ae.Code == amqp091.NotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	var out []driver.DeadLetter
	var last uint64
	for i := 0; i < info.Messages; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, ok, err := ch.Get(dq, false)
		if err != nil {
			return nil, fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
		}
		if !ok {
			break
		}
		last = d.DeliveryTag
		out = append(out, deadLetterOf(d))
	}
	if last > 0 {
		if err := ch.Nack(last, true, true); err != nil {
			return nil, fmt.Errorf("amqp: dead letters of %q: requeue: %w", queue, err)
		}
	}
	return out, nil
}

func deadLetterOf(d amqp091.Delivery) driver.DeadLetter {
	dl := driver.DeadLetter{ID: deadID(d), Body: d.Body, Name: d.RoutingKey, Attempts: attemptOf(d.Headers)}
	if k, ok := d.Headers[HeaderRoutingKey].(string); ok {
		dl.Name = k
	} else if ev, err := event.Decode(d.Body); err == nil {
		dl.Name = ev.Headers.Name
	}
	if e, ok := d.Headers[HeaderError].(string); ok {
		dl.Error = e
	}
	dl.FirstFailure = headerTime(d.Headers, HeaderFirstFailure)
	dl.DeadAt = headerTime(d.Headers, HeaderDeadAt)
	return dl
}

func headerTime(h amqp091.Table, key string) time.Time {
	switch v := h[key].(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err == nil {
			return t
		}
	case time.Time:
		return v
	}
	return time.Time{}
}
