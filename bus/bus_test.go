package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/topic"
)

const wait = 10 * time.Second

func newBroker(t *testing.T) *memory.Broker {
	b := memory.NewBroker()
	t.Cleanup(b.Close)
	return b
}

func newBus(t *testing.T, tr driver.Transport, opts ...bus.Option) *bus.Bus {
	t.Helper()
	b, err := bus.New(tr, opts...)
	if err != nil {
		t.Fatalf("new bus: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// tap consumes every event published on br from a queue of its own and
// returns the deliveries' bodies.
func tap(t *testing.T, br *memory.Broker) <-chan []byte {
	t.Helper()
	tr := br.Connect()
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	ch := make(chan []byte, 100)
	_, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "tap", Temporary: true}, []string{"#"}, func(d driver.Delivery) {
		ch <- d.Body()
		_ = d.Ack(context.Background())
	})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatal("nothing arrived")
		var zero T
		return zero
	}
}

func decode(t *testing.T, body []byte) *event.Event {
	t.Helper()
	ev, err := event.Decode(body)
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return ev
}

func mustEvent(t *testing.T, name string, payload any) *event.Event {
	t.Helper()
	ev, err := event.New(name, payload)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestNewRequiresAServiceAndATransport(t *testing.T) {
	br := newBroker(t)
	if _, err := bus.New(br.Connect()); err == nil {
		t.Error("New without WithService succeeded")
	}
	if _, err := bus.New(nil, bus.WithService("svc")); err == nil {
		t.Error("New without a transport succeeded")
	}
	b := newBus(t, br.Connect(), bus.WithService("svc"))
	if b.Service() != "svc" {
		t.Errorf("Service() = %q, want svc", b.Service())
	}
}

func TestPublishFillsMissingHeaders(t *testing.T) {
	br := newBroker(t)
	bodies := tap(t, br)
	b := newBus(t, br.Connect(), bus.WithService("billing"), bus.WithoutValidation())
	ctx := context.Background()

	ev := &event.Event{Headers: event.Headers{Name: "billing.invoice.paid"}, Payload: json.RawMessage(`{"amount":3}`)}
	before := time.Now()
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if ev.Headers.ServiceName != "billing" {
		t.Errorf("serviceName = %q, want the bus's service", ev.Headers.ServiceName)
	}
	if ev.Headers.CreatedAt.Before(before) || ev.Headers.CreatedAt.After(after) {
		t.Errorf("createdAt = %v, want the time of Publish", ev.Headers.CreatedAt)
	}
	if ev.Headers.ID == "" {
		t.Error("id left empty")
	}
	got := decode(t, receive(t, bodies))
	if got.Headers.ID != ev.Headers.ID || got.Headers.ServiceName != "billing" || got.Headers.CreatedAt.UnixMilli() != ev.Headers.CreatedAt.UnixMilli() {
		t.Errorf("published %+v, want the headers Publish filled in %+v", got.Headers, ev.Headers)
	}

	// Headers the caller set are kept.
	created := time.UnixMilli(1_600_000_000_000).UTC()
	ev = &event.Event{Headers: event.Headers{Name: "billing.invoice.paid", ServiceName: "accounts", CreatedAt: created, ID: "fixed-id"}}
	if err := b.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	got = decode(t, receive(t, bodies))
	if got.Headers.ServiceName != "accounts" || !got.Headers.CreatedAt.Equal(created) || got.Headers.ID != "fixed-id" {
		t.Errorf("published %+v, want the caller's serviceName, createdAt and id kept", got.Headers)
	}

	another := mustEvent(t, "billing.invoice.paid", nil)
	another.Headers.ID = ""
	if err := b.Publish(ctx, another); err != nil {
		t.Fatal(err)
	}
	if another.Headers.ID == "" || another.Headers.ID == ev.Headers.ID {
		t.Errorf("second filled id %q, want a fresh one", another.Headers.ID)
	}
}

func TestPublishValidatesAgainstTheCatalogueByDefault(t *testing.T) {
	br := newBroker(t)
	bodies := tap(t, br)
	b := newBus(t, br.Connect(), bus.WithService("accounts"))
	ctx := context.Background()

	err := b.Publish(ctx, mustEvent(t, "billing.invoice.paid", nil))
	if !errors.Is(err, catalog.ErrUnknownEvent) {
		t.Errorf("unknown name: err = %v, want catalog.ErrUnknownEvent", err)
	}
	err = b.Publish(ctx, mustEvent(t, "iam.user.creatd", nil))
	if !errors.Is(err, catalog.ErrUnknownEvent) || !strings.Contains(err.Error(), "iam.user.created") {
		t.Errorf("misspelt name: err = %v, want catalog.ErrUnknownEvent naming iam.user.created", err)
	}
	err = b.Publish(ctx, mustEvent(t, "iam.user.created", map[string]any{"id": 42}))
	if !errors.Is(err, catalog.ErrSchema) {
		t.Errorf("payload breaking the schema: err = %v, want catalog.ErrSchema", err)
	}
	entry, _ := catalog.Default().Lookup("iam.user.created")
	ok := mustEvent(t, "iam.user.created", entry.Example)
	if err := b.Publish(ctx, ok); err != nil {
		t.Fatalf("catalogued event: %v", err)
	}
	// The refused events never reached the broker: the first to arrive is
	// the one published after them.
	if got := decode(t, receive(t, bodies)); got.Headers.ID != ok.Headers.ID {
		t.Errorf("first event on the broker is %s, want the valid one", got)
	}
}

func TestWithoutValidationStillEnforcesTheEnvelope(t *testing.T) {
	br := newBroker(t)
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation(), bus.WithMaxEventSize(200))
	ctx := context.Background()
	if err := b.Publish(ctx, mustEvent(t, "not.in.the.catalogue", nil)); err != nil {
		t.Errorf("unknown name without validation: %v", err)
	}
	for name, tc := range map[string]struct {
		ev   *event.Event
		want error
	}{
		"empty name":      {&event.Event{}, event.ErrNameEmpty},
		"empty word":      {&event.Event{Headers: event.Headers{Name: "a..b"}}, event.ErrNameInvalid},
		"wildcard name":   {&event.Event{Headers: event.Headers{Name: "a.*"}}, event.ErrNameInvalid},
		"array payload":   {&event.Event{Headers: event.Headers{Name: "a.b"}, Payload: json.RawMessage(`[1]`)}, event.ErrPayloadNotObject},
		"too large event": {mustEvent(t, "a.b", map[string]string{"pad": strings.Repeat("x", 300)}), event.ErrTooLarge},
	} {
		if err := b.Publish(ctx, tc.ev); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
}

type validatorFunc func(*event.Event) error

func (f validatorFunc) Validate(ev *event.Event) error { return f(ev) }

func TestWithValidatorReplacesTheCatalogue(t *testing.T) {
	br := newBroker(t)
	errNope := errors.New("nope")
	v := validatorFunc(func(ev *event.Event) error {
		if strings.HasPrefix(ev.Headers.Name, "forbidden.") {
			return errNope
		}
		return nil
	})
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithValidator(v))
	ctx := context.Background()
	if err := b.Publish(ctx, mustEvent(t, "forbidden.thing", nil)); !errors.Is(err, errNope) {
		t.Errorf("err = %v, want the validator's error", err)
	}
	if err := b.Publish(ctx, mustEvent(t, "allowed.thing", nil)); err != nil {
		t.Errorf("a name the validator accepts but the catalogue lacks: %v", err)
	}
}

func TestSubscribeRefusesBadPatternsAndNilHandlers(t *testing.T) {
	br := newBroker(t)
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation())
	ctx := context.Background()
	noop := func(context.Context, *event.Event) error { return nil }
	for _, pattern := range []string{"", "a..b", "user*", "a.b."} {
		if err := b.Subscribe(ctx, pattern, noop); !errors.Is(err, topic.ErrInvalidPattern) {
			t.Errorf("Subscribe(%q): err = %v, want topic.ErrInvalidPattern", pattern, err)
		}
	}
	if err := b.Subscribe(ctx, "a.b", nil); err == nil {
		t.Error("Subscribe with a nil handler succeeded")
	}
	if err := b.Subscribe(ctx, "a.b", noop); err != nil {
		t.Errorf("Subscribe after refused ones: %v", err)
	}
}

func TestEveryMatchingHandlerRunsInSubscriptionOrder(t *testing.T) {
	br := newBroker(t)
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation())
	ctx := context.Background()
	var mu sync.Mutex
	var ran []string
	done := make(chan struct{})
	record := func(name string) bus.Handler {
		return func(_ context.Context, ev *event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			ran = append(ran, name+":"+ev.Headers.Name)
			if ev.Headers.Name == "end" {
				close(done)
			}
			return nil
		}
	}
	for _, sub := range []struct{ pattern, name string }{
		{"a.#", "h1"}, {"a.b", "h2"}, {"x", "h3"}, {"*.b", "h4"}, {"end", "h5"},
	} {
		if err := b.Subscribe(ctx, sub.pattern, record(sub.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, mustEvent(t, "a.b", nil)); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, mustEvent(t, "end", nil)); err != nil {
		t.Fatal(err)
	}
	receive(t, done)
	mu.Lock()
	defer mu.Unlock()
	want := "h1:a.b h2:a.b h4:a.b h5:end"
	if got := strings.Join(ran, " "); got != want {
		t.Errorf("handlers ran as %q, want %q", got, want)
	}
}

func TestMiddlewareRunsFirstOutermost(t *testing.T) {
	br := newBroker(t)
	var mu sync.Mutex
	var trace []string
	note := func(s string) {
		mu.Lock()
		trace = append(trace, s)
		mu.Unlock()
	}
	mw := func(name string) bus.Middleware {
		return func(next bus.Handler) bus.Handler {
			return func(ctx context.Context, ev *event.Event) error {
				note(name + "<")
				err := next(ctx, ev)
				note(">" + name)
				return err
			}
		}
	}
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation(),
		bus.WithMiddleware(mw("a"), mw("b")), bus.WithMiddleware(mw("c")))
	done := make(chan struct{})
	err := b.Subscribe(context.Background(), "x", func(context.Context, *event.Event) error {
		note("handler")
		close(done)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	receive(t, done)
	closeNow(t, b) // the middleware has returned once Close has
	mu.Lock()
	defer mu.Unlock()
	if got, want := strings.Join(trace, " "), "a< b< c< handler >c >b >a"; got != want {
		t.Errorf("trace %q, want %q", got, want)
	}
}

func closeNow(t *testing.T, b *bus.Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRecovererTurnsPanicIntoPanicError(t *testing.T) {
	ctx := context.Background()
	ev := &event.Event{Headers: event.Headers{Name: "x"}}
	err := bus.Recoverer(func(context.Context, *event.Event) error { panic("boom") })(ctx, ev)
	var pe *bus.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a *PanicError", err)
	}
	if pe.Value != "boom" || len(pe.Stack) == 0 || !strings.Contains(pe.Error(), "boom") {
		t.Errorf("PanicError{Value: %v, %d bytes of stack}: %q, want the panic value, a stack and a message naming it", pe.Value, len(pe.Stack), pe.Error())
	}
	errPlain := errors.New("plain")
	if err := bus.Recoverer(func(context.Context, *event.Event) error { return errPlain })(ctx, ev); err != errPlain {
		t.Errorf("handler error came back as %v", err)
	}
	if err := bus.Recoverer(func(context.Context, *event.Event) error { return nil })(ctx, ev); err != nil {
		t.Errorf("success came back as %v", err)
	}
}

// A panic in configured middleware is caught too: every bus applies
// Recoverer outside it. With MaxAttempts below one, the first failure is
// the last.
func TestPanicInMiddlewareIsDeadLettered(t *testing.T) {
	br := newBroker(t)
	explode := func(bus.Handler) bus.Handler {
		return func(context.Context, *event.Event) error { panic("middleware exploded") }
	}
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation(),
		bus.WithMiddleware(explode), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 0}))
	if err := b.Subscribe(context.Background(), "x", func(context.Context, *event.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	lister := b.Transport().(driver.DeadLetterLister)
	deadline := time.Now().Add(wait)
	for {
		dls, err := lister.DeadLetters(context.Background(), "svc")
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) > 0 {
			if dl := dls[0]; dl.Attempts != 1 || !strings.Contains(dl.Error, "middleware exploded") {
				t.Errorf("dead letter after %d attempts with %q, want 1 attempt and the panic", dl.Attempts, dl.Error)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAttemptIsZeroOutsideHandlers(t *testing.T) {
	if n := bus.Attempt(context.Background()); n != 0 {
		t.Errorf("Attempt outside a handler = %d, want 0", n)
	}
	br := newBroker(t)
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation())
	got := make(chan int, 1)
	if err := b.Subscribe(context.Background(), "x", func(ctx context.Context, _ *event.Event) error {
		got <- bus.Attempt(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	if n := receive(t, got); n != 1 {
		t.Errorf("Attempt in the first delivery = %d, want 1", n)
	}
}

func TestConcurrencyBoundsRunningHandlers(t *testing.T) {
	const limit, n = 3, 10
	br := newBroker(t)
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation(), bus.WithConcurrency(limit))
	var mu sync.Mutex
	running, most := 0, 0
	started, finished := make(chan struct{}, n), make(chan struct{}, n)
	release := make(chan struct{})
	err := b.Subscribe(context.Background(), "x", func(context.Context, *event.Event) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		started <- struct{}{}
		<-release
		mu.Lock()
		running--
		mu.Unlock()
		finished <- struct{}{}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := b.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	for range limit {
		receive(t, started)
	}
	close(release)
	for range n {
		receive(t, finished)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != limit {
		t.Errorf("at most %d handlers ran at once, want %d", most, limit)
	}
}

// recordingTransport records what the bus asks of the transport.
type recordingTransport struct {
	driver.Transport
	mu    sync.Mutex
	specs []driver.QueueSpec
	binds []string
}

func (r *recordingTransport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	r.mu.Lock()
	r.specs = append(r.specs, q)
	r.binds = append(r.binds, patterns...)
	r.mu.Unlock()
	c, err := r.Transport.Consume(ctx, q, patterns, deliver)
	if err != nil {
		return nil, err
	}
	return &recordingConsumer{Consumer: c, r: r}, nil
}

type recordingConsumer struct {
	driver.Consumer
	r *recordingTransport
}

func (c *recordingConsumer) Bind(ctx context.Context, pattern string) error {
	c.r.mu.Lock()
	c.r.binds = append(c.r.binds, pattern)
	c.r.mu.Unlock()
	return c.Consumer.Bind(ctx, pattern)
}

func TestSubscriptionsShareOneConsumerOfTheServiceQueue(t *testing.T) {
	br := newBroker(t)
	rec := &recordingTransport{Transport: br.Connect()}
	b := newBus(t, rec, bus.WithService("svc"), bus.WithoutValidation(), bus.WithPrefetch(7), bus.WithTemporaryQueue())
	noop := func(context.Context, *event.Event) error { return nil }
	for _, p := range []string{"a.#", "b.*", "c"} {
		if err := b.Subscribe(context.Background(), p, noop); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := driver.QueueSpec{Name: "svc", Temporary: true, Prefetch: 7}
	if len(rec.specs) != 1 || rec.specs[0] != want {
		t.Errorf("consumers started with %+v, want one with %+v", rec.specs, want)
	}
	if got := strings.Join(rec.binds, " "); got != "a.# b.* c" {
		t.Errorf("bindings %q, want every pattern once, in order", got)
	}
}

// bareTransport hides the memory transport's StatusReporter.
type bareTransport struct{ driver.Transport }

func TestStatusFollowsTheTransport(t *testing.T) {
	br := newBroker(t)
	for name, tr := range map[string]driver.Transport{
		"status reporter":    br.Connect(),
		"no status reporter": bareTransport{br.Connect()},
	} {
		b, err := bus.New(tr, bus.WithService("svc"))
		if err != nil {
			t.Fatal(err)
		}
		if st := b.Status(); st.State != bus.StateConnected {
			t.Errorf("%s: status %v, want connected", name, st.State)
		}
		closeNow(t, b)
		if st := b.Status(); st.State != bus.StateClosed {
			t.Errorf("%s: status after Close %v, want closed", name, st.State)
		}
	}
}

// Regression: after a Close that gave up at its deadline, a delivery still
// waiting for a handler slot used to start once a slot freed, calling
// WaitGroup.Add while Close's WaitGroup.Wait was pending (a data race, and
// a "WaitGroup is reused" panic).
func TestCloseAtDeadlineThenLateDeliveryDoesNotCrash(t *testing.T) {
	br := newBroker(t)
	handedOut := make(chan struct{}, 10)
	tr := &enteringTransport{Transport: br.Connect(), entered: handedOut}
	b, err := bus.New(tr, bus.WithService("svc"), bus.WithoutValidation(), bus.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}, 10), make(chan struct{})
	if err := b.Subscribe(context.Background(), "x", func(context.Context, *event.Event) error {
		started <- struct{}{}
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, br.Connect(), bus.WithService("pub"), bus.WithoutValidation())
	for range 3 {
		if err := pub.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		receive(t, handedOut)
	}
	receive(t, started)
	receive(t, started) // both slots busy; the third delivery waits for one
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Close with busy handlers and a cancelled context: err = %v, want context.Canceled", err)
	}
	close(release)
	receive(t, started) // the waiting delivery got its slot
}

// enteringTransport signals each time it hands a delivery to the bus.
type enteringTransport struct {
	driver.Transport
	entered chan<- struct{}
}

func (e *enteringTransport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	return e.Transport.Consume(ctx, q, patterns, func(d driver.Delivery) {
		e.entered <- struct{}{}
		deliver(d)
	})
}

func TestLoggerHearsAboutRetries(t *testing.T) {
	br := newBroker(t)
	var buf testkit.Buffer
	b := newBus(t, br.Connect(), bus.WithService("svc"), bus.WithoutValidation(),
		bus.WithLogger(slog.New(slog.NewTextHandler(&buf, nil))),
		bus.WithRetry(bus.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond}))
	done := make(chan struct{})
	if err := b.Subscribe(context.Background(), "x", func(ctx context.Context, _ *event.Event) error {
		if bus.Attempt(ctx) == 1 {
			return errors.New("first attempt fails")
		}
		close(done)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), mustEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	receive(t, done)
	closeNow(t, b)
	if out := buf.String(); !strings.Contains(out, "retrying") || !strings.Contains(out, "first attempt fails") {
		t.Errorf("log %q, want the retry and its cause", out)
	}
}

func ExampleBus() {
	broker := memory.NewBroker()
	defer broker.Close()
	b, err := bus.New(broker.Connect(), bus.WithService("example"), bus.WithoutValidation())
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	got := make(chan string)
	_ = b.Subscribe(ctx, "greeting.*", func(ctx context.Context, ev *event.Event) error {
		got <- ev.Headers.Name
		return nil
	})
	ev, _ := event.New("greeting.sent", map[string]string{"to": "world"})
	_ = b.Publish(ctx, ev)
	fmt.Println(<-got)
	_ = b.Close(ctx)
	// Output: greeting.sent
}

// heldTransport passes publishes to its transport but holds back their
// confirmations until the test answers them.
type heldTransport struct {
	driver.Transport
	mu       sync.Mutex
	confirms []func(error)
}

func (h *heldTransport) Publish(ctx context.Context, m driver.Message, confirm func(error)) error {
	return h.Transport.Publish(ctx, m, func(error) {
		h.mu.Lock()
		h.confirms = append(h.confirms, confirm)
		h.mu.Unlock()
	})
}

// answer answers the oldest confirmation held.
func (h *heldTransport) answer(t *testing.T, err error) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.confirms) == 0 {
		t.Fatal("no confirmation held")
	}
	h.confirms[0](err)
	h.confirms = h.confirms[1:]
}

func TestConfirmationCarriesTheBrokersAnswer(t *testing.T) {
	held := &heldTransport{Transport: newBroker(t).Connect()}
	b := newBus(t, held, bus.WithService("svc"), bus.WithoutValidation())
	ctx := context.Background()

	ok, err := b.PublishAsync(ctx, mustEvent(t, "svc.thing.done", nil))
	if err != nil {
		t.Fatal(err)
	}
	refused, err := b.PublishAsync(ctx, mustEvent(t, "svc.thing.refused", nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ok.Err(); !errors.Is(err, bus.ErrNotConfirmed) {
		t.Errorf("Err before the broker answered = %v, want bus.ErrNotConfirmed", err)
	}
	select {
	case <-ok.Done():
		t.Fatal("Done closed before the broker answered")
	default:
	}
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	if err := ok.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait whose context ends first = %v, want context.DeadlineExceeded", err)
	}

	held.answer(t, nil)
	nack := errors.New("nacked by the broker")
	held.answer(t, nack)
	if err := ok.Wait(ctx); err != nil {
		t.Errorf("Wait after the broker confirmed = %v, want nil", err)
	}
	if err := ok.Err(); err != nil {
		t.Errorf("Err after the broker confirmed = %v, want nil", err)
	}
	receive(t, refused.Done())
	if err := refused.Err(); !errors.Is(err, nack) || !strings.Contains(err.Error(), "svc.thing.refused") {
		t.Errorf("Err of a refused publish = %v, want the broker's error naming the event", err)
	}
	if err := refused.Wait(ctx); !errors.Is(err, nack) {
		t.Errorf("Wait of a refused publish = %v, want the broker's error", err)
	}
}
