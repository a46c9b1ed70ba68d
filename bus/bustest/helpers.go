package bustest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// waitClosed waits for ch to be closed, failing the test after timeout.
func waitClosed(t testing.TB, timeout time.Duration, ch <-chan struct{}, what string) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s did not happen within %v", what, timeout)
	}
}

// collector is a handler that records every event it is given, with the
// attempt it ran for, and returns what fail says (nil when fail is nil).
type collector struct {
	mu       sync.Mutex
	events   []*event.Event   // in arrival order, one per call
	attempts map[string][]int // event id → attempts it was called for
	fail     func(ev *event.Event, attempt int) error
}

func newCollector() *collector {
	return &collector{attempts: make(map[string][]int)}
}

func (c *collector) handle(ctx context.Context, ev *event.Event) error {
	attempt := bus.Attempt(ctx)
	c.mu.Lock()
	c.events = append(c.events, ev.Clone())
	c.attempts[ev.Headers.ID] = append(c.attempts[ev.Headers.ID], attempt)
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return fail(ev, attempt)
	}
	return nil
}

// count returns how often the handler ran for id.
func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.attempts[id])
}

// attemptsOf returns the attempts the handler ran for id, in order.
func (c *collector) attemptsOf(id string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.attempts[id])
}

// get returns the first event received with id.
func (c *collector) get(id string) *event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if ev.Headers.ID == id {
			return ev
		}
	}
	return nil
}

// missing returns an error naming how many of ids were never received.
func (c *collector) missing(ids ...string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var miss []string
	for _, id := range ids {
		if len(c.attempts[id]) == 0 {
			miss = append(miss, id)
		}
	}
	if len(miss) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d events not received (first missing: %s)", len(miss), len(ids), miss[0])
}

// receivedOf returns the events received whose id is in ids, in arrival
// order, duplicates included.
func (c *collector) receivedOf(ids map[string]bool) []*event.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*event.Event
	for _, ev := range c.events {
		if ids[ev.Headers.ID] {
			out = append(out, ev)
		}
	}
	return out
}

// waitInOrder waits for every one of ids and fails t unless each arrived
// once, in the order of ids.
func (c *collector) waitInOrder(t testing.TB, ids []string) {
	t.Helper()
	testkit.Eventually(t, defaultTimeout, func() error { return c.missing(ids...) })
	got := idsOf(c.receivedOf(setOf(ids)))
	if len(got) != len(ids) {
		t.Fatalf("received %d events, want %d (duplicates: %s)", len(got), len(ids), describeDups(c.duplicates(ids)))
	}
	for i := range got {
		if got[i] != ids[i] {
			t.Fatalf("event %d of the stream is the one published as %d", i, slices.Index(ids, got[i]))
		}
	}
}

// duplicates returns, for each of ids received more than once, how often.
func (c *collector) duplicates(ids []string) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := make(map[string]int)
	for _, id := range ids {
		if n := len(c.attempts[id]); n > 1 {
			d[id] = n
		}
	}
	return d
}

// newEvent returns an event with a fresh id, for name and payload.
func newEvent(t testing.TB, name string, payload any) *event.Event {
	t.Helper()
	ev, err := event.New(name, payload)
	if err != nil {
		t.Fatalf("new event %s: %v", name, err)
	}
	return ev
}

// publish publishes an event with name and payload on b and returns it.
func publish(t testing.TB, b *bus.Bus, name string, payload any) *event.Event {
	t.Helper()
	ev := newEvent(t, name, payload)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return ev
}

func subscribe(t testing.TB, b *bus.Bus, pattern string, h bus.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if err := b.Subscribe(ctx, pattern, h); err != nil {
		t.Fatalf("subscribe %q as %s: %v", pattern, b.Service(), err)
	}
}

// closeBus closes b now, so that counts taken afterwards are final.
func closeBus(t testing.TB, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("close bus %s: %v", b.Service(), err)
	}
}

func idsOf(evs []*event.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.Headers.ID
	}
	return ids
}

func setOf(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// idOfBody returns the event id of an encoded event, or "" when the body
// does not decode.
func idOfBody(body []byte) string {
	ev, err := event.Decode(body)
	if err != nil {
		return ""
	}
	return ev.Headers.ID
}

// spyTransport wraps a transport and records how each delivery is settled,
// to check what the bus does with deliveries (one ack, no double settle),
// and when the bus stops its consumer and closes the transport, to check
// the order of Close's steps.
type spyTransport struct {
	driver.Transport

	mu        sync.Mutex
	delivered map[string]int      // event id → deliveries
	settled   map[string][]string // event id → "ack", "retry", "dead", in order
	errs      []error             // every settlement that failed

	stopping    chan struct{} // closed when a consumer's Stop is called
	stopOnce    sync.Once
	closing     chan struct{} // closed when Close is called
	closeOnce   sync.Once
	beforeClose func() // when set, called as Close is called
}

func newSpy(tr driver.Transport) *spyTransport {
	return &spyTransport{
		Transport: tr,
		delivered: make(map[string]int),
		settled:   make(map[string][]string),
		stopping:  make(chan struct{}),
		closing:   make(chan struct{}),
	}
}

func (s *spyTransport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	c, err := s.Transport.Consume(ctx, q, patterns, func(d driver.Delivery) {
		id := idOfBody(d.Body())
		s.mu.Lock()
		s.delivered[id]++
		s.mu.Unlock()
		deliver(&spyDelivery{Delivery: d, spy: s, id: id})
	})
	if err != nil {
		return nil, err
	}
	return &spyConsumer{Consumer: c, spy: s}, nil
}

func (s *spyTransport) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.beforeClose != nil {
			s.beforeClose()
		}
		close(s.closing)
	})
	return s.Transport.Close(ctx)
}

type spyConsumer struct {
	driver.Consumer
	spy *spyTransport
}

func (c *spyConsumer) Stop(ctx context.Context) error {
	c.spy.stopOnce.Do(func() { close(c.spy.stopping) })
	return c.Consumer.Stop(ctx)
}

// DeadLetters forwards to the wrapped transport, when it can list them.
func (s *spyTransport) DeadLetters(ctx context.Context, queue string) ([]driver.DeadLetter, error) {
	l, ok := s.Transport.(driver.DeadLetterLister)
	if !ok {
		return nil, fmt.Errorf("%T cannot list dead letters", s.Transport)
	}
	return l.DeadLetters(ctx, queue)
}

func (s *spyTransport) record(id, how string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settled[id] = append(s.settled[id], how)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s of %s: %w", how, id, err))
	}
}

func (s *spyTransport) settlements(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.settled[id])
}

func (s *spyTransport) deliveries(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delivered[id]
}

func (s *spyTransport) failures() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

type spyDelivery struct {
	driver.Delivery
	spy *spyTransport
	id  string
}

func (d *spyDelivery) Ack(ctx context.Context) error {
	err := d.Delivery.Ack(ctx)
	d.spy.record(d.id, "ack", err)
	return err
}

func (d *spyDelivery) Retry(ctx context.Context, delay time.Duration, cause error) error {
	err := d.Delivery.Retry(ctx, delay, cause)
	d.spy.record(d.id, "retry", err)
	return err
}

func (d *spyDelivery) DeadLetter(ctx context.Context, cause error) error {
	err := d.Delivery.DeadLetter(ctx, cause)
	d.spy.record(d.id, "dead", err)
	return err
}

// findDeadLetter returns the dead letter of queue whose body is body (or,
// when body is an event, whose id is id).
func findDeadLetter(dls []driver.DeadLetter, id string, body []byte) (driver.DeadLetter, bool) {
	for _, dl := range dls {
		if body != nil && bytes.Equal(dl.Body, body) {
			return dl, true
		}
		if id != "" && idOfBody(dl.Body) == id {
			return dl, true
		}
	}
	return driver.DeadLetter{}, false
}

func describeDups(d map[string]int) string {
	parts := make([]string, 0, len(d))
	for id, n := range d {
		parts = append(parts, fmt.Sprintf("%s×%d", id, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
