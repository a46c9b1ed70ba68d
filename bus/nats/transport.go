// Package nats is herald's NATS JetStream transport. It does not contain
// the embedded server herald serve runs (package natsserver), so a service
// that imports it links only the nats.go client.
//
// Events are stored in one stream (HERALD_EVENTS), each under the subject
// herald.events.<event name>. Each subscribing service reads through one
// durable pull consumer named after it, shared by the service's replicas
// (competing consumers) and filtered by the service's topic patterns.
// Publish waits for the stream's PubAck and sets Nats-Msg-Id to the event
// id, so the server drops a publish that is sent again within the
// duplicate window. A failed handler's delivery is redelivered with the
// bus's backoff (NakWithDelay); a dead letter is copied to the
// HERALD_DEAD stream under herald.dead.<queue>.<event name>, with the
// error and attempt count in its headers, and then terminated. A replayed
// dead letter is published to the events stream again, marked with the
// one queue it is for (Herald-Replay-Queue): every other queue's consumer
// acknowledges it without handing it out.
//
// It works with nats-server 2.9 and later. Servers before 2.10 give a
// consumer a single filter subject, so there one subject covers all of a
// service's patterns and the consumer matches each delivery against the
// patterns in process (topic.Match); later servers get one filter subject
// per pattern.
package nats

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/ctxwatch"
)

// Transport is a connection to a NATS server with JetStream. It implements
// driver.Transport, driver.DeadLetterLister and driver.StatusReporter.
type Transport struct {
	o      options
	nc     *natsgo.Conn
	js     jetstream.JetStream
	url    string
	window chan struct{} // one slot per publish waiting for its PubAck
	single atomic.Bool   // the server has one filter subject per consumer (< 2.10)

	mu        sync.Mutex
	status    driver.Status
	changed   chan struct{} // closed and replaced at each connection state change
	closed    bool
	consumers map[*consumer]struct{}
	inflight  sync.WaitGroup // publishes taken or being handed over, not yet answered
	closing   chan struct{}  // closed when Close stops waiting for them
	connDone  chan struct{}  // closed when the connection is closed

	// pending holds the publishes sent and waiting for their PubAck, by
	// the message nats.go hands back to onPubAck and onPubError.
	pendMu  sync.Mutex
	pending map[*natsgo.Msg]*outgoing
	// watch answers the publishes whose context ends before their PubAck.
	watch *ctxwatch.Set[*outgoing]

	failMu   sync.Mutex
	failures map[string]time.Time // consumer/stream sequence → first failure
}

var (
	_ driver.Transport          = (*Transport)(nil)
	_ driver.DeadLetterLister   = (*Transport)(nil)
	_ driver.DeadLetterReplayer = (*Transport)(nil)
	_ driver.DeadLetterPurger   = (*Transport)(nil)
	_ driver.BindingSetter      = (*Transport)(nil)
	_ driver.QueueInspector     = (*Transport)(nil)
	_ driver.StatusReporter     = (*Transport)(nil)
	_ driver.Describer          = (*Transport)(nil)
)

// Dial connects to the NATS server at url (nats://host:port, or a
// comma-separated list of a cluster's servers) and creates or updates the
// events and dead-letter streams. It fails when no server answers: a
// server that goes away later is waited for, with unlimited reconnects.
func Dial(ctx context.Context, url string, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.window < 1 {
		o.window = 1
	}
	if o.maxAge > 0 && o.duplicates > o.maxAge {
		o.duplicates = o.maxAge
	}
	t := &Transport{
		o:         o,
		url:       redact(url),
		window:    make(chan struct{}, o.window),
		changed:   make(chan struct{}),
		consumers: make(map[*consumer]struct{}),
		closing:   make(chan struct{}),
		connDone:  make(chan struct{}),
		failures:  make(map[string]time.Time),
		pending:   make(map[*natsgo.Msg]*outgoing),
	}
	t.watch = ctxwatch.New(func(o *outgoing, err error) { t.answer(o, err) })
	nopts := []natsgo.Option{
		natsgo.Name(o.name),
		natsgo.MaxReconnects(-1),
		natsgo.CustomReconnectDelay(reconnectDelay),
		natsgo.Timeout(defaultConnectTimeout),
		natsgo.PingInterval(20 * time.Second),
		natsgo.DisconnectErrHandler(t.onDisconnect),
		natsgo.ReconnectHandler(t.onReconnect),
		natsgo.ClosedHandler(t.onClosed),
		natsgo.ErrorHandler(t.onAsyncError),
	}
	if o.inProcess != nil {
		nopts = append(nopts, natsgo.InProcessServer(o.inProcess))
	}
	nopts = append(nopts, o.natsOpts...)

	type result struct {
		nc  *natsgo.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := natsgo.Connect(url, nopts...)
		ch <- result{nc, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("connect to NATS at %s: %w", t.url, ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", t.url, r.err)
	}
	t.nc = r.nc
	t.mu.Lock()
	t.status = driver.Status{State: driver.StateConnected, Since: time.Now()}
	t.mu.Unlock()
	t.single.Store(!serverAtLeast(t.nc.ConnectedServerVersion(), 2, 10))

	js, err := jetstream.New(t.nc,
		// herald bounds the window itself (o.window, waiting within ctx);
		// the library's bound only has to stay out of the way.
		jetstream.WithPublishAsyncMaxPending(2*o.window),
		// An ack that never comes (a reply lost in a reconnect) fails the
		// attempt after this long; the event is then sent again with the
		// same Nats-Msg-Id.
		jetstream.WithPublishAsyncTimeout(defaultAckTimeout),
		// Every PubAck and every failed publish reaches the transport
		// here, on nats.go's reply goroutine, so that no goroutine has to
		// wait on each publish's future.
		jetstream.WithPublishAsyncAckHandler(t.onPubAck),
		jetstream.WithPublishAsyncErrHandler(t.onPubError),
	)
	if err != nil {
		t.nc.Close()
		return nil, fmt.Errorf("NATS at %s: JetStream: %w", t.url, err)
	}
	t.js = js
	if err := t.ensureStreams(ctx); err != nil {
		t.nc.Close()
		return nil, fmt.Errorf("NATS at %s: %w", t.url, err)
	}
	return t, nil
}

// ServerName is the name of the NATS server the transport is connected to
// (herald's embedded server calls itself "herald"), empty while
// disconnected.
func (t *Transport) ServerName() string { return t.nc.ConnectedServerName() }

// ensureStreams creates the events and dead-letter streams, or updates
// them to this configuration when they exist with another.
func (t *Transport) ensureStreams(ctx context.Context) error {
	events := jetstream.StreamConfig{
		Name:        t.o.stream,
		Description: "herald events: one message per event, subject " + t.o.prefix + ".<event name>",
		Subjects:    []string{t.o.prefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      t.o.maxAge,
		Duplicates:  t.o.duplicates,
		Replicas:    t.o.replicas,
	}
	dead := jetstream.StreamConfig{
		Name:        t.o.deadStream,
		Description: "herald dead letters, subject " + t.o.deadPrefix + ".<queue>.<event name>",
		Subjects:    []string{t.o.deadPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      t.o.deadMaxAge,
		Duplicates:  t.o.duplicates,
		Replicas:    t.o.replicas,
	}
	if t.o.deadMaxAge > 0 && dead.Duplicates > t.o.deadMaxAge {
		dead.Duplicates = t.o.deadMaxAge
	}
	for _, cfg := range []jetstream.StreamConfig{events, dead} {
		if err := t.ensureStream(ctx, cfg); err != nil {
			return err
		}
	}
	return nil
}

// ensureStream creates a stream, or updates it when it differs from cfg.
// A stream that already matches is left alone: every process that
// connects would otherwise update it, and nats-server 2.15 races a stream
// update against a consumer being created (seen with -race).
func (t *Transport) ensureStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	s, err := t.js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, cerr := t.js.CreateStream(ctx, cfg)
		if cerr == nil {
			return nil
		}
		// Another process may have created it just now (the server then
		// says the name is in use, or, before 2.10, that the subjects
		// overlap): look again.
		if s, err = t.js.Stream(ctx, cfg.Name); err != nil {
			return fmt.Errorf("create stream %s: %w", cfg.Name, cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	replicas := max(have.Replicas, 1)
	if slices.Equal(have.Subjects, cfg.Subjects) && have.MaxAge == cfg.MaxAge &&
		have.Duplicates == cfg.Duplicates && replicas == max(cfg.Replicas, 1) &&
		have.Storage == cfg.Storage && have.Retention == cfg.Retention &&
		have.Discard == cfg.Discard && have.Description == cfg.Description {
		return nil
	}
	if _, err := t.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update stream %s: %w", cfg.Name, err)
	}
	return nil
}

// JetStream returns the JetStream context the transport uses (tests,
// operators' tools).
func (t *Transport) JetStream() jetstream.JetStream { return t.js }

// Destination names NATS as the messaging system and the subject an
// event name is published under as the destination.
func (t *Transport) Destination(name string) (system, destination string) {
	return "nats", t.Subject(name)
}

// Subject returns the subject an event name is published under.
func (t *Transport) Subject(name string) string { return t.o.prefix + "." + name }

// Publish sends m to the events stream, m.Headers as NATS headers beside
// Nats-Msg-Id, and returns once it is sent (or buffered by nats.go); confirm is called when the server's PubAck comes.
// While the connection is down Publish waits for the reconnect, bounded
// by ctx; a publish whose PubAck does not come (lost with the connection,
// or not within the ack timeout) is sent again, and the Nats-Msg-Id header
// (the event id) lets the server drop a copy it already has. At most the
// publish window's worth of publishes wait for their PubAck at once.
func (t *Transport) Publish(ctx context.Context, m driver.Message, confirm func(error)) error {
	if err := event.ValidateName(m.Name); err != nil {
		return err
	}
	if m.ID == "" {
		return errors.New("nats publish: message has no id")
	}
	msg := &natsgo.Msg{
		Subject: t.o.prefix + "." + m.Name,
		Data:    m.Body,
		Header:  natsgo.Header{jetstream.MsgIDHeader: []string{m.ID}},
	}
	for k, v := range m.Headers {
		msg.Header[k] = []string{v}
	}
	return t.publish(ctx, msg, confirm)
}

// outgoing is one publish, from Publish until it is answered.
type outgoing struct {
	msg     *natsgo.Msg
	ctx     context.Context
	confirm func(error)
	attempt int // sends so far, for the pause before the next

	answered atomic.Bool
}

// publish hands msg over and arranges for confirm to be called once.
func (t *Transport) publish(ctx context.Context, msg *natsgo.Msg, confirm func(error)) error {
	if !t.begin() {
		return driver.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		t.inflight.Done()
		return err
	}
	o := &outgoing{msg: msg, ctx: ctx, confirm: confirm}
	if err := t.hand(o); err != nil {
		t.inflight.Done()
		return err
	}
	// When ctx ends first, the caller gets its error at once; the message
	// keeps its window slot until nats.go resolves it.
	t.watch.Add(ctx, o)
	if o.answered.Load() {
		t.watch.Remove(ctx, o) // answered before it was watched
	}
	return nil
}

// publishWait publishes msg and waits for its answer.
func (t *Transport) publishWait(ctx context.Context, msg *natsgo.Msg) error {
	answer := make(chan error, 1)
	if err := t.publish(ctx, msg, func(err error) { answer <- err }); err != nil {
		return err
	}
	return <-answer
}

// hand sends o once the connection is up and the window has room, sending
// again after a failure that another attempt may overcome; it gives up
// when o's context ends or the transport closes.
func (t *Transport) hand(o *outgoing) error {
	for {
		if err := t.waitConnected(o.ctx); err != nil {
			return err
		}
		select {
		case t.window <- struct{}{}:
		case <-o.ctx.Done():
			return o.ctx.Err()
		case <-t.closing:
			return driver.ErrClosed
		}
		t.pendMu.Lock()
		t.pending[o.msg] = o
		t.pendMu.Unlock()
		o.attempt++
		_, err := t.js.PublishMsgAsync(o.msg)
		if err == nil {
			return nil
		}
		t.take(o.msg)
		if o.answered.Load() {
			// Close answered it while it was pending: it is settled.
			return nil
		}
		if !retryable(err) {
			return err
		}
		t.o.logger.Debug("publish not sent; sending again", "subject", o.msg.Subject, "attempt", o.attempt, "error", err)
		if err := t.pause(o.ctx, retryDelay(o.attempt)); err != nil {
			return err
		}
	}
}

// take removes the publish of msg from the pending ones and frees its
// window slot; nil if it is not pending.
func (t *Transport) take(msg *natsgo.Msg) *outgoing {
	t.pendMu.Lock()
	o, ok := t.pending[msg]
	delete(t.pending, msg)
	t.pendMu.Unlock()
	if !ok {
		return nil
	}
	<-t.window
	return o
}

// onPubAck is called by nats.go for every PubAck.
func (t *Transport) onPubAck(_ jetstream.JetStream, msg *natsgo.Msg, _ *jetstream.PubAck) {
	if o := t.take(msg); o != nil {
		t.answer(o, nil)
	}
}

// onPubError is called by nats.go for every publish that failed after it
// was sent: refused by the server, or not acknowledged in time.
func (t *Transport) onPubError(_ jetstream.JetStream, msg *natsgo.Msg, err error) {
	o := t.take(msg)
	if o == nil {
		return
	}
	if !retryable(err) || o.answered.Load() {
		t.answer(o, err)
		return
	}
	// Sending again waits for the connection and a pause: not on nats.go's
	// goroutine.
	go func() {
		t.o.logger.Debug("publish not acknowledged; sending again", "subject", msg.Subject, "attempt", o.attempt, "error", err)
		if perr := t.pause(o.ctx, retryDelay(o.attempt)); perr != nil {
			t.answer(o, perr)
			return
		}
		if herr := t.hand(o); herr != nil {
			t.answer(o, herr)
		}
	}()
}

// answer calls o's confirm, the first time only.
func (t *Transport) answer(o *outgoing, err error) {
	if !o.answered.CompareAndSwap(false, true) {
		return
	}
	t.watch.Remove(o.ctx, o)
	o.confirm(err)
	t.inflight.Done()
}

// retryable reports whether a publish failed for want of a connection or a
// timely answer, so that sending it again may succeed, rather than being
// refused.
func retryable(err error) bool {
	switch {
	case errors.Is(err, natsgo.ErrDisconnected),
		errors.Is(err, natsgo.ErrConnectionReconnecting),
		errors.Is(err, natsgo.ErrReconnectBufExceeded),
		errors.Is(err, natsgo.ErrNoResponders),
		errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout),
		errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return true
	}
	// 503: JetStream temporarily unavailable (a server still recovering its
	// store, a cluster electing a leader).
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

// begin registers a publish; false after Close.
func (t *Transport) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inflight.Add(1)
	return true
}

// waitConnected returns once the connection is up, or with an error when
// ctx ends or the transport closes first.
func (t *Transport) waitConnected(ctx context.Context) error {
	if t.nc.IsConnected() {
		return nil
	}
	for {
		t.mu.Lock()
		ch := t.changed
		t.mu.Unlock()
		switch t.nc.Status() {
		case natsgo.CONNECTED:
			return nil
		case natsgo.CLOSED:
			return driver.ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the connection to NATS at %s: %w", t.url, ctx.Err())
		case <-t.closing:
			return driver.ErrClosed
		}
	}
}

// pause waits d, or less if ctx ends or the transport closes.
func (t *Transport) pause(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.closing:
		return driver.ErrClosed
	}
}

// retryDelay is the pause before the next attempt of a publish that the
// server did not acknowledge while connected: 10ms doubling to 1s.
func retryDelay(attempt int) time.Duration {
	d := 10 * time.Millisecond << min(attempt-1, 7)
	return min(d, time.Second)
}

// reconnectDelay is the wait before each reconnect round: 50ms doubling to
// 2s, with up to 20% jitter so replicas do not all come back at once.
func reconnectDelay(attempts int) time.Duration {
	d := 50 * time.Millisecond << min(attempts, 6)
	d = min(d, defaultMaxReconnectWait)
	return d - time.Duration(rand.Float64()*0.2*float64(d))
}

// Status reports the connection's state.
func (t *Transport) Status() driver.Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

func (t *Transport) setState(s driver.State, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status.State == driver.StateClosed {
		return
	}
	if t.status.State != s {
		t.status.State = s
		t.status.Since = time.Now()
	}
	if err != nil {
		t.status.LastError = err
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

func (t *Transport) onDisconnect(_ *natsgo.Conn, err error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return
	}
	if err == nil {
		err = errors.New("disconnected")
	}
	t.o.logger.Warn("NATS connection lost; reconnecting", "url", t.url, "error", err)
	t.setState(driver.StateReconnecting, err)
}

func (t *Transport) onReconnect(nc *natsgo.Conn) {
	t.o.logger.Info("NATS connection back", "url", redact(nc.ConnectedUrl()))
	t.setState(driver.StateConnected, nil)
}

func (t *Transport) onClosed(*natsgo.Conn) {
	t.setState(driver.StateClosed, nil)
	close(t.connDone)
}

func (t *Transport) onAsyncError(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	t.o.logger.Warn("NATS asynchronous error", "subject", subject, "error", err)
}

// Close stops the transport's consumers, waits (bounded by ctx) for
// publishes still waiting for their PubAck, then drains and closes the
// connection. Publish and Consume return driver.ErrClosed afterwards.
func (t *Transport) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cons := make([]*consumer, 0, len(t.consumers))
	for c := range t.consumers {
		cons = append(cons, c)
	}
	t.mu.Unlock()

	var errs []error
	for _, c := range cons {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() { t.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("waiting for publishes to be acknowledged: %w", ctx.Err()))
	}
	close(t.closing)
	// Whatever is still waiting for its PubAck is answered now.
	t.pendMu.Lock()
	left := make([]*outgoing, 0, len(t.pending))
	for _, o := range t.pending {
		left = append(left, o)
	}
	t.pendMu.Unlock()
	for _, o := range left {
		t.answer(o, driver.ErrClosed)
	}

	// Drain flushes what is buffered (acks of settled deliveries) before
	// closing; a connection that is down has nothing to flush.
	if err := t.nc.Drain(); err != nil {
		t.nc.Close()
	}
	select {
	case <-t.connDone:
	case <-ctx.Done():
		t.nc.Close()
		<-t.connDone
	}
	t.mu.Lock()
	t.status = driver.Status{State: driver.StateClosed, Since: time.Now(), LastError: t.status.LastError}
	t.mu.Unlock()
	return errors.Join(errs...)
}

// serverAtLeast reports whether a server version ("2.9.10") is at least
// major.minor; an unreadable version is taken as current.
func serverAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// redact removes a password from a URL (list) for messages and logs.
func redact(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // a token
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
