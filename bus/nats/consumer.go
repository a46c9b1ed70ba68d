package nats

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

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/topic"
)

// temporaryInactive is how long the server keeps a temporary queue's
// consumer after its reader went away without deleting it.
const temporaryInactive = time.Minute

// pullExpiry is how long each pull request waits on the server; a
// heartbeat comes every half of it, and two missed heartbeats make the
// consumer check that its server-side consumer still exists.
const pullExpiry = 5 * time.Second

// Consume starts reading queue q: for a durable queue, the durable
// consumer named after q.Name (created at the stream's end if it does not
// exist, so it gets the events published from now on, as a new RabbitMQ
// queue does); for a temporary one, a consumer of this reader's own that
// the server deletes when it goes away. The consumer's filter and recorded
// bindings are widened to cover patterns, keeping whatever other replicas
// bound before. A delivery whose name matches none of the queue's bindings
// (the filter can be wider than the patterns) is acknowledged without
// being handed out, as RabbitMQ would never have routed it to the queue.
func (t *Transport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	if deliver == nil {
		return nil, errors.New("nats consume: nil deliver function")
	}
	if len(patterns) == 0 {
		return nil, fmt.Errorf("nats consume %q: no patterns", q.Name)
	}
	c := &consumer{
		t:        t,
		q:        q,
		label:    safeToken(q.Name),
		prefix:   t.o.prefix + ".",
		deliver:  deliver,
		prefetch: q.Prefetch,
		patterns: append([]string(nil), patterns...),
		check:    make(chan struct{}, 1),
		stopCh:   make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.name = c.label
	if q.Temporary {
		c.name = c.label + "_tmp_" + nuid.Next()
	}
	if c.prefetch <= 0 {
		c.prefetch = DefaultPrefetch
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, driver.ErrClosed
	}
	t.consumers[c] = struct{}{}
	t.mu.Unlock()

	cons, err := c.ensure(ctx)
	if err != nil {
		t.forget(c)
		return nil, fmt.Errorf("nats consume %q: %w", q.Name, err)
	}
	cc, ended, err := c.consume(cons)
	if err != nil {
		t.forget(c)
		return nil, fmt.Errorf("nats consume %q: %w", q.Name, err)
	}
	c.cc = cc
	// After each reconnect, watch makes sure the consumer is there.
	c.status = t.nc.StatusChanged(natsgo.CONNECTED)
	go c.watch()
	go c.run(ended)
	return c, nil
}

func (t *Transport) forget(c *consumer) {
	t.mu.Lock()
	delete(t.consumers, c)
	t.mu.Unlock()
}

// consumer reads one queue and hands its deliveries to deliver, one at a
// time: nats.go calls handle from the goroutine of the pull subscription,
// and a subscription that replaces an ended one starts only after the
// ended one has made its last call.
type consumer struct {
	t        *Transport
	q        driver.QueueSpec
	label    string // q.Name as a subject token
	prefix   string // of every subject of the stream, with its dot
	name     string // the server-side consumer
	deliver  func(driver.Delivery)
	prefetch int
	status   chan natsgo.Status

	mu       sync.Mutex
	patterns []string                 // bound by this reader
	cc       jetstream.ConsumeContext // the current pull subscription
	// bindings are the patterns recorded on the server-side consumer when
	// it was last read; complete says the record was not truncated, and
	// readSeq is the highest stream sequence the consumer had delivered
	// then: every event up to it was stored before that reading.
	bindings []string
	complete bool
	readSeq  uint64

	stopping atomic.Bool
	// check asks run to make sure the server-side consumer exists
	// (heartbeats were missed).
	check    chan struct{}
	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{} // closed when run has returned
}

// ensure makes the server-side consumer exist with a filter that covers
// every pattern of c and with c's patterns among its recorded bindings, and
// returns it. Filter and bindings only ever grow: a replica that starts
// with fewer patterns does not take away what another bound, as a
// RabbitMQ binding stays until it is removed.
func (c *consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	c.mu.Lock()
	local := slices.Clone(c.patterns)
	c.mu.Unlock()
	var want []string
	for _, p := range local {
		want = append(want, patternSubjects(c.t.o.prefix, p)...)
	}
	js, stream := c.t.js, c.t.o.stream
	// Replicas starting together race to create or widen the consumer;
	// each reads back what the server has until its own patterns are in.
	for range 10 {
		single := c.t.single.Load()
		cons, err := js.Consumer(ctx, stream, c.name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cfg := c.config()
			setFilters(&cfg, filterSet(want, single))
			setBindings(&cfg, c.q.Name, local, single)
			_, err = js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // another replica was first: widen theirs
			}
			if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) && !single {
				c.t.single.Store(true)
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create consumer %s: %w", c.name, err)
			}
			continue // read it back
		}
		if err != nil {
			return nil, fmt.Errorf("look up consumer %s: %w", c.name, err)
		}
		cfg := cons.CachedInfo().Config
		haveFilters := filtersOf(cfg)
		haveBindings, complete := bindingsOf(cfg)
		bindings := union(haveBindings, local)
		if covers(haveFilters, want) && (len(bindings) == len(haveBindings) || !complete) {
			c.noteBindings(cons.CachedInfo())
			return cons, nil
		}
		setFilters(&cfg, filterSet(append(haveFilters, want...), single))
		setBindings(&cfg, c.q.Name, bindings, single)
		err = c.t.updateConsumer(ctx, cfg)
		if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) && !single {
			c.t.single.Store(true)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("widen consumer %s to %s: %w", c.name, strings.Join(filtersOf(cfg), ", "), err)
		}
	}
	return nil, fmt.Errorf("consumer %s: its configuration kept changing under concurrent updates", c.name)
}

// config is the configuration a new server-side consumer gets, without
// its filter and bindings.
func (c *consumer) config() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.t.o.ackWait,
		// The bus decides when a delivery has failed often enough and
		// dead-letters it; the server must never drop it on its own.
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 4*c.prefetch),
	}
	if c.q.Temporary {
		cfg.Name = c.name
		cfg.InactiveThreshold = temporaryInactive
		cfg.MemoryStorage = true
	} else {
		cfg.Durable = c.name
	}
	return cfg
}

// A consumer records the topic patterns bound to its queue, so that every
// replica hands out exactly what the queue's bindings match, also those of
// patterns it has no handler for (the bus retries them and dead-letters
// them with bus.ErrNoHandler, as it does on RabbitMQ), and nothing else its
// wider filter lets through. Servers 2.10 and later keep them in the
// consumer's metadata; older ones only have the description, which holds
// 4 KiB: patterns past that are left out, and a replica that reads such a
// truncated record hands out every delivery it cannot match rather than
// acknowledge one that a left-out pattern may have bound.
const (
	bindingsKey        = "herald.bindings"
	bindingsMarker     = "; bindings: "
	bindingsTruncated  = "…"
	maxDescriptionSize = 4096
)

func setBindings(cfg *jetstream.ConsumerConfig, queue string, patterns []string, single bool) {
	all := strings.Join(patterns, " ")
	if !single {
		if cfg.Metadata == nil {
			cfg.Metadata = make(map[string]string)
		}
		cfg.Metadata[bindingsKey] = all
	}
	d := "herald queue " + queue + bindingsMarker
	for i, p := range patterns {
		if len(d)+len(p)+1+len(bindingsTruncated)+1 > maxDescriptionSize {
			d += bindingsTruncated
			break
		}
		if i > 0 {
			d += " "
		}
		d += p
	}
	cfg.Description = d
}

// bindingsOf returns the patterns recorded on a consumer, and whether that
// record is complete.
func bindingsOf(cfg jetstream.ConsumerConfig) ([]string, bool) {
	if all, ok := cfg.Metadata[bindingsKey]; ok {
		return strings.Fields(all), true
	}
	_, list, ok := strings.Cut(cfg.Description, bindingsMarker)
	if !ok {
		return nil, true
	}
	ps := strings.Fields(list)
	if n := len(ps); n > 0 && strings.HasSuffix(ps[n-1], bindingsTruncated) {
		ps[n-1] = strings.TrimSuffix(ps[n-1], bindingsTruncated)
		if ps[n-1] == "" {
			ps = ps[:n-1]
		}
		return ps, false
	}
	return ps, true
}

// union returns a followed by the elements of b it lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func filtersOf(cfg jetstream.ConsumerConfig) []string {
	if len(cfg.FilterSubjects) > 0 {
		return append([]string(nil), cfg.FilterSubjects...)
	}
	if cfg.FilterSubject != "" {
		return []string{cfg.FilterSubject}
	}
	return nil
}

// setFilters sets one filter as FilterSubject (which every server
// understands) and several as FilterSubjects (2.10 and later).
func setFilters(cfg *jetstream.ConsumerConfig, filters []string) {
	cfg.FilterSubject, cfg.FilterSubjects = "", nil
	if len(filters) == 1 {
		cfg.FilterSubject = filters[0]
	} else {
		cfg.FilterSubjects = filters
	}
}

// covers reports whether every subject of want is within one of have. A
// consumer without a filter has the whole stream.
func covers(have, want []string) bool {
	if len(have) == 0 {
		return true
	}
	for _, w := range want {
		ok := false
		for _, h := range have {
			if subjectSubset(w, h) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// consume starts a pull subscription on cons that hands each delivery to
// handle. nats.go keeps at most c.prefetch deliveries pulled and not yet
// returned from handle, pulls again after a reconnect and after missed
// heartbeats (consumeError has the server-side consumer checked too), and
// ends the subscription when the server says the consumer is gone.
//
// ended is closed once the subscription has ended and made its last call
// of handle. It is taken at once: asked for later, nats.go may close it
// as soon as the subscription is marked invalid, before the call of
// handle in progress has returned.
func (c *consumer) consume(cons jetstream.Consumer) (cc jetstream.ConsumeContext, ended <-chan struct{}, err error) {
	cc, err = cons.Consume(c.handle,
		jetstream.PullMaxMessages(c.prefetch),
		jetstream.PullExpiry(pullExpiry),
		jetstream.ConsumeErrHandler(c.consumeError),
	)
	if err != nil {
		return nil, nil, err
	}
	return cc, cc.Closed(), nil
}

// consumeError is told by nats.go of what goes wrong with a pull
// subscription. It runs on nats.go's own goroutine, so it only logs and
// passes the news on to run.
func (c *consumer) consumeError(_ jetstream.ConsumeContext, err error) {
	switch {
	case errors.Is(err, jetstream.ErrNoHeartbeat):
		select {
		case c.check <- struct{}{}:
		default: // a check is pending already
		}
	case errors.Is(err, jetstream.ErrConsumerDeleted),
		errors.Is(err, jetstream.ErrBadRequest):
		// nats.go ends the subscription after this; run starts another.
		if c.stopping.Load() {
			return
		}
		c.t.o.logger.Warn("NATS consumer interrupted; starting it again", "queue", c.q.Name, "error", err)
	}
}

// Bind adds a pattern: deliveries for it are handed out from now on, and
// the server-side filter is widened to include it.
func (c *consumer) Bind(ctx context.Context, pattern string) error {
	if c.stopping.Load() {
		return driver.ErrClosed
	}
	c.mu.Lock()
	c.patterns = append(c.patterns, pattern)
	c.mu.Unlock()
	if _, err := c.ensure(ctx); err != nil {
		return fmt.Errorf("nats bind %q to %q: %w", pattern, c.q.Name, err)
	}
	return nil
}

// noteBindings records what the server-side consumer says its bindings
// are, and how far it had delivered when it said so.
func (c *consumer) noteBindings(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	bindings, complete := bindingsOf(info.Config)
	c.mu.Lock()
	c.bindings, c.complete = bindings, complete
	c.readSeq = max(c.readSeq, info.Delivered.Stream)
	c.mu.Unlock()
}

// unbound is what to do with a delivery whose name matches none of the
// bindings this replica knows.
type unbound int

const (
	dropUnbound    unbound = iota // acknowledge it without handing it out
	handOut                       // hand it out: the bus retries, then dead-letters it
	redeliverLater                // the bindings could not be read: have it come again
)

// unboundDelivery decides about a delivery of stream sequence seq whose
// name matches none of the bindings known here. The filter lets through
// more than the bindings match, and a queue with these bindings would
// never have received such an event on RabbitMQ: acknowledging it loses
// nothing. But another replica may have bound a pattern since this one
// read the bindings, so it is dropped only if the bindings were read after
// the event was stored (the consumer had delivered past it), reading them
// again first when they are older than that. An event another replica's
// new pattern binds is thus handed out, never dropped.
func (c *consumer) unboundDelivery(name string, seq uint64) unbound {
	c.mu.Lock()
	fresh := seq != 0 && seq <= c.readSeq
	c.mu.Unlock()
	if !fresh {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cons, err := c.t.js.Consumer(ctx, c.t.o.stream, c.name)
		cancel()
		if err != nil {
			c.t.o.logger.Warn("NATS consumer: cannot read the queue's bindings; the delivery comes again", "queue", c.q.Name, "event", name, "error", err)
			return redeliverLater
		}
		c.noteBindings(cons.CachedInfo())
		if c.matches(name) {
			return handOut
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq != 0 && seq <= c.readSeq && c.complete {
		return dropUnbound
	}
	return handOut
}

// matches reports whether an event name matches a pattern bound to the
// queue. The server-side filter may be wider than the patterns (a '#'
// inside a pattern, a server before 2.10).
func (c *consumer) matches(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.patterns {
		if topic.Match(p, name) {
			return true
		}
	}
	for _, p := range c.bindings {
		if topic.Match(p, name) {
			return true
		}
	}
	return false
}

// run replaces the pull subscription whenever it ends before Stop (the
// server deleted the consumer, or watch renewed it), and makes sure the
// server-side consumer exists after missed heartbeats. It returns once the
// subscription has ended for good, after its last call of handle.
func (c *consumer) run(ended <-chan struct{}) {
	defer close(c.done)
	for {
		select {
		case <-ended:
			if c.stopping.Load() || c.t.nc.IsClosed() {
				return
			}
			var err error
			if ended, err = c.restart(); err != nil {
				return
			}
		case <-c.check:
			// Missed heartbeats: make sure the consumer exists. nats.go
			// pulled again as it noticed, perhaps before the consumer was
			// back; a new subscription pulls from it now.
			c.t.o.logger.Warn("NATS consumer missed heartbeats; checking it", "queue", c.q.Name, "error", jetstream.ErrNoHeartbeat)
			c.recover()
			c.renewSubscription()
		}
	}
}

// handle is called by nats.go with each message of the pull
// subscription, one at a time, and hands each matching one to deliver.
func (c *consumer) handle(msg jetstream.Msg) {
	if c.stopping.Load() {
		// Prefetched but not handed out: back to the queue now rather
		// than after AckWait.
		_ = msg.Nak()
		return
	}
	d := &delivery{c: c, msg: msg, attempt: 1}
	if delivered, seq, ok := ackNumbers(msg.Reply()); ok {
		d.attempt = int(delivered)
		d.seq = seq
	}
	if q := msg.Headers().Get(HeaderReplayQueue); q != "" && q != c.q.Name {
		// A dead letter replayed for another queue only.
		_ = msg.Ack()
		return
	}
	// Every subject of the stream has the prefix; the name is what the
	// patterns match.
	name := strings.TrimPrefix(msg.Subject(), c.prefix)
	if !c.matches(name) {
		switch c.unboundDelivery(name, d.seq) {
		case dropUnbound:
			_ = msg.Ack()
			return
		case redeliverLater:
			_ = msg.NakWithDelay(time.Second)
			return
		}
	}
	c.deliver(d)
}

// recover re-creates the server-side consumer if it is gone, retrying
// until it succeeds or the consumer is stopped.
func (c *consumer) recover() {
	c.retry(func(ctx context.Context) error {
		_, err := c.ensure(ctx)
		return err
	})
}

// restart replaces a pull subscription that ended (the server deleted
// its consumer, or watch drained it) with a new one, on a re-created
// consumer.
func (c *consumer) restart() (<-chan struct{}, error) {
	var ended <-chan struct{}
	ok := c.retry(func(ctx context.Context) error {
		cons, err := c.ensure(ctx)
		if err != nil {
			return err
		}
		cc, e, err := c.consume(cons)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.cc = cc
		stopping := c.stopping.Load()
		c.mu.Unlock()
		if stopping {
			cc.Drain()
		}
		ended = e
		return nil
	})
	if !ok {
		return nil, driver.ErrClosed
	}
	return ended, nil
}

// retry calls try, with a context of 10s, until it succeeds, waiting longer
// after each failure; it reports false if the consumer is stopped first.
func (c *consumer) retry(try func(context.Context) error) bool {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := try(ctx)
		cancel()
		if err == nil {
			return true
		}
		if c.stopping.Load() {
			return false
		}
		c.t.o.logger.Warn("NATS consumer not available yet", "queue", c.q.Name, "error", err)
		select {
		case <-time.After(retryDelay(attempt + 5)):
		case <-c.stopCh:
			return false
		}
	}
}

// watch makes sure the server-side consumer exists after each reconnect.
// A temporary queue's pull subscription is replaced too: a server
// restarted under it restores the consumer, but the pull request the
// subscription sends on reconnecting gets no deliveries (seen with
// nats-server 2.15), and it would wait for two missed heartbeats before
// pulling again.
func (c *consumer) watch() {
	for {
		select {
		case _, ok := <-c.status:
			if !ok {
				return
			}
			c.recover()
			if c.q.Temporary {
				c.renewSubscription()
			}
		case <-c.stopCh:
			return
		}
	}
}

// renewSubscription drains the pull subscription for run to replace it
// with a new one, which pulls at once.
func (c *consumer) renewSubscription() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc := c.cc; cc != nil && !c.stopping.Load() {
		cc.Drain()
	}
}

// Stop stops taking deliveries: prefetched ones go back to the queue, and
// Stop returns once deliver will not be called again (or ctx ends). A
// temporary queue's consumer is deleted.
func (c *consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.stopping.Store(true)
		cc := c.cc
		c.mu.Unlock()
		close(c.stopCh)
		c.t.nc.RemoveStatusListener(c.status)
		switch {
		case cc == nil:
		case c.t.nc.IsConnected():
			cc.Drain()
		default:
			// Draining flushes the connection first, which waits 10s
			// when it is down; the prefetched deliveries come back after
			// AckWait instead.
			cc.Stop()
		}
	})
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("stop consumer of %q: %w", c.q.Name, ctx.Err())
	}
	c.t.forget(c)
	// A temporary consumer the server cannot be told about now goes away
	// by itself after temporaryInactive.
	if c.q.Temporary && c.t.nc.IsConnected() && ctx.Err() == nil {
		err := c.t.js.DeleteConsumer(ctx, c.t.o.stream, c.name)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("delete temporary consumer %s: %w", c.name, err)
		}
	}
	return nil
}

// ackNumbers reads how often a JetStream message has been delivered and
// its stream sequence from its reply (ack) subject, as Msg.Metadata does
// (the same subjects accepted, the same numbers read) without its
// allocations and the fields a delivery does not need. The subject is
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
//
// or, from newer servers, with <domain>.<account hash> before <stream>
// and possibly more tokens after <pending>.
func ackNumbers(reply string) (delivered, seq uint64, ok bool) {
	var skip int // tokens after "$JS.ACK." before <delivered>
	switch n := strings.Count(reply, ".") + 1; {
	case n == 9:
		skip = 2
	case n >= 11:
		skip = 4
	default:
		return 0, 0, false
	}
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, 0, false
	}
	for range skip {
		_, rest, _ = strings.Cut(rest, ".")
	}
	d, rest, _ := strings.Cut(rest, ".")
	s, _, _ := strings.Cut(rest, ".")
	return ackNumber(d), ackNumber(s), true
}

// ackNumber parses a number of an ack subject, 0 if it is none, as
// nats.go does.
func ackNumber(s string) uint64 {
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n
}

// delivery is one message handed to the bus.
type delivery struct {
	c       *consumer
	msg     jetstream.Msg
	attempt int
	seq     uint64
}

func (d *delivery) Body() []byte { return d.msg.Data() }

// Identity is the message's stream and stream sequence: a Nak-ed retry
// and a redelivery are the same stored message, another publish is
// another one.
func (d *delivery) Identity() string {
	if d.seq == 0 {
		return "" // an ack subject handle could not read
	}
	return "nats:" + d.c.t.o.stream + "/" + strconv.FormatUint(d.seq, 10)
}

// Header returns a NATS header of the message as published (a retry is
// the same stored message, a dead letter copies them). The key is used as
// it is: NATS headers are case-sensitive and the bus writes lower case.
func (d *delivery) Header(key string) string {
	if v := d.msg.Headers()[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
func (d *delivery) Attempt() int { return d.attempt }

func (d *delivery) key() string { return d.c.name + "/" + fmt.Sprint(d.seq) }

// Ack settles the delivery. The ack is not confirmed by the server: if it
// is lost, the event comes again after AckWait (at least once).
func (d *delivery) Ack(context.Context) error {
	if d.attempt > 1 {
		d.c.t.takeFailure(d.key())
	}
	if err := d.msg.Ack(); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Retry has the server deliver the event again after delay.
func (d *delivery) Retry(_ context.Context, delay time.Duration, _ error) error {
	d.c.t.noteFailure(d.key())
	if err := d.msg.NakWithDelay(delay); err != nil {
		return fmt.Errorf("nak with delay: %w", err)
	}
	return nil
}
