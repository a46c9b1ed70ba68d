package memory_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/bustest"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

func TestConformance(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	bustest.Run(t, bustest.Harness{
		NewTransport: func(testing.TB) driver.Transport { return b.Connect() },
		Features:     bustest.Features{NoReconnectReason: "in-process: no connection to lose"},
	})
}

const wait = 10 * time.Second

// consume starts a raw consumer that hands its deliveries to the returned
// channel.
func consume(t *testing.T, tr driver.Transport, q driver.QueueSpec, patterns ...string) (driver.Consumer, <-chan driver.Delivery) {
	t.Helper()
	ch := make(chan driver.Delivery, 100)
	c, err := tr.Consume(context.Background(), q, patterns, func(d driver.Delivery) { ch <- d })
	if err != nil {
		t.Fatalf("consume %s: %v", q.Name, err)
	}
	return c, ch
}

func recv(t *testing.T, ch <-chan driver.Delivery) driver.Delivery {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case d := <-ch:
		return d
	case <-timer.C:
		t.Fatal("no delivery")
		return nil
	}
}

func send(t *testing.T, tr driver.Transport, name string) string {
	t.Helper()
	ev, err := event.New(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	m := driver.Message{ID: ev.Headers.ID, Name: name, Body: body, CreatedAt: ev.Headers.CreatedAt}
	if err := driver.PublishSync(context.Background(), tr, m); err != nil {
		t.Fatalf("publish %s: %v", name, err)
	}
	return ev.Headers.ID
}

func idOf(t *testing.T, d driver.Delivery) string {
	t.Helper()
	ev, err := event.Decode(d.Body())
	if err != nil {
		t.Fatal(err)
	}
	return ev.Headers.ID
}

func closeConn(t *testing.T, tr driver.Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestBindingsOutliveConsumers(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	first := b.Connect()
	c, _ := consume(t, first, driver.QueueSpec{Name: "svc"}, "a.#")
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	closeConn(t, first)

	pub := b.Connect()
	defer closeConn(t, pub)
	id := send(t, pub, "a.b") // nobody consumes svc right now

	next := b.Connect()
	defer closeConn(t, next)
	_, ch := consume(t, next, driver.QueueSpec{Name: "svc"})
	if got := idOf(t, recv(t, ch)); got != id {
		t.Errorf("got %s, want the event published while no consumer was attached (%s)", got, id)
	}
}

func TestUnsettledDeliveriesReturnWithTheirAttemptWhenTheConnectionCloses(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	pub := b.Connect()
	defer closeConn(t, pub)
	gone := b.Connect()
	_, ch := consume(t, gone, driver.QueueSpec{Name: "svc"}, "x")
	var ids []string
	for range 3 {
		ids = append(ids, send(t, pub, "x"))
	}
	var held []driver.Delivery
	for range 3 {
		held = append(held, recv(t, ch))
	}
	closeConn(t, gone)
	for _, d := range held {
		if err := d.Ack(context.Background()); !errors.Is(err, memory.ErrRequeued) {
			t.Errorf("ack after the connection closed: err = %v, want ErrRequeued", err)
		}
	}

	next := b.Connect()
	defer closeConn(t, next)
	_, ch = consume(t, next, driver.QueueSpec{Name: "svc"})
	for i, id := range ids {
		d := recv(t, ch)
		if got := idOf(t, d); got != id {
			t.Errorf("redelivery %d is %s, want %s (queue order)", i, got, id)
		}
		if d.Attempt() != 1 {
			t.Errorf("redelivery %d has attempt %d, want 1: a redelivery is not a retry", i, d.Attempt())
		}
		if err := d.Ack(context.Background()); err != nil {
			t.Errorf("ack: %v", err)
		}
	}
}

func TestRetryOutlivesItsConnection(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	pub := b.Connect()
	defer closeConn(t, pub)
	first := b.Connect()
	_, ch := consume(t, first, driver.QueueSpec{Name: "svc"}, "x")
	id := send(t, pub, "x")
	d := recv(t, ch)
	if err := d.Retry(context.Background(), 5*time.Millisecond, errors.New("try later")); err != nil {
		t.Fatal(err)
	}
	closeConn(t, first)

	next := b.Connect()
	defer closeConn(t, next)
	_, ch = consume(t, next, driver.QueueSpec{Name: "svc"})
	d = recv(t, ch)
	if got := idOf(t, d); got != id || d.Attempt() != 2 {
		t.Errorf("got %s attempt %d, want %s attempt 2", got, d.Attempt(), id)
	}
}

func TestSettlingTwiceFails(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	tr := b.Connect()
	defer closeConn(t, tr)
	_, ch := consume(t, tr, driver.QueueSpec{Name: "svc"}, "x")
	send(t, tr, "x")
	d := recv(t, ch)
	ctx := context.Background()
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	for name, settle := range map[string]func() error{
		"Ack":        func() error { return d.Ack(ctx) },
		"Retry":      func() error { return d.Retry(ctx, 0, errors.New("x")) },
		"DeadLetter": func() error { return d.DeadLetter(ctx, errors.New("x")) },
	} {
		if err := settle(); !errors.Is(err, memory.ErrSettled) {
			t.Errorf("%s after Ack: err = %v, want ErrSettled", name, err)
		}
	}
}

func TestDeadLetterKeepsFailureHistory(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	tr := b.Connect()
	defer closeConn(t, tr)
	_, ch := consume(t, tr, driver.QueueSpec{Name: "svc"}, "x.y")
	id := send(t, tr, "x.y")
	ctx := context.Background()
	before := time.Now()
	if err := recv(t, ch).Retry(ctx, 0, errors.New("first")); err != nil {
		t.Fatal(err)
	}
	d := recv(t, ch)
	if err := d.DeadLetter(ctx, errors.New("second")); err != nil {
		t.Fatal(err)
	}

	other := b.Connect() // dead letters belong to the broker
	defer closeConn(t, other)
	dls, err := other.(driver.DeadLetterLister).DeadLetters(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dls))
	}
	dl := dls[0]
	if dl.Name != "x.y" || dl.Error != "second" || dl.Attempts != 2 {
		t.Errorf("dead letter %+v, want name x.y, error second, attempts 2", dl)
	}
	if got, err := event.Decode(dl.Body); err != nil || got.Headers.ID != id {
		t.Errorf("dead letter body holds %v (%v), want event %s", got, err, id)
	}
	if dl.FirstFailure.Before(before) || dl.DeadAt.Before(dl.FirstFailure) {
		t.Errorf("first failure %v, dead at %v: want the first Retry's time, then the death", dl.FirstFailure, dl.DeadAt)
	}
}

func TestStopWaitsForDeliverAndKeepsHandedOutDeliveriesSettleable(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	tr := b.Connect()
	defer closeConn(t, tr)
	entered, release := make(chan driver.Delivery, 1), make(chan struct{})
	c, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "svc"}, []string{"x"}, func(d driver.Delivery) {
		entered <- d
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	send(t, tr, "x")
	d := recv(t, entered)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop while deliver is running, with a cancelled context: err = %v, want context.Canceled", err)
	}
	close(release)
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("Stop after deliver returned: %v", err)
	}
	if err := d.Ack(context.Background()); err != nil {
		t.Errorf("ack of a delivery handed out before Stop: %v", err)
	}
	if err := c.Bind(context.Background(), "y"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Bind after Stop: err = %v, want bus.ErrClosed", err)
	}
}

func TestStopReturnsPrefetchedMessagesToOtherConsumers(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	tr := b.Connect()
	defer closeConn(t, tr)
	entered, release := make(chan driver.Delivery, 10), make(chan struct{})
	slow, err := tr.Consume(context.Background(), driver.QueueSpec{Name: "svc", Prefetch: 10}, []string{"x"}, func(d driver.Delivery) {
		entered <- d
		<-release
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 5 {
		ids = append(ids, send(t, tr, "x"))
	}
	first := recv(t, entered) // the other four wait in slow's prefetch window
	stopped := make(chan error, 1)
	go func() { stopped <- slow.Stop(context.Background()) }()

	_, ch := consume(t, tr, driver.QueueSpec{Name: "svc"})
	for _, id := range ids[1:] {
		if got := idOf(t, recv(t, ch)); got != id {
			t.Errorf("got %s, want %s", got, id)
		}
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if err := first.Ack(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClosedConnectionsRefuseWork(t *testing.T) {
	b := memory.NewBroker()
	tr := b.Connect()
	if st := tr.(driver.StatusReporter).Status(); st.State != bus.StateConnected || st.Since.IsZero() {
		t.Errorf("status of a new connection = %+v, want connected since now", st)
	}
	b.Close()
	if st := tr.(driver.StatusReporter).Status(); st.State != bus.StateClosed {
		t.Errorf("status after Broker.Close = %v, want closed", st.State)
	}
	late := b.Connect()
	m := driver.Message{Name: "x", Body: []byte(`{}`)}
	for i, c := range []driver.Transport{tr, late} {
		if err := driver.PublishSync(context.Background(), c, m); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("connection %d: Publish after Broker.Close: err = %v, want bus.ErrClosed", i, err)
		}
		if err := c.Close(context.Background()); err != nil {
			t.Errorf("connection %d: Close after Broker.Close: %v", i, err)
		}
	}
}

func TestClosingOneConnectionLeavesTheOthersRunning(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	a, c := b.Connect(), b.Connect()
	defer closeConn(t, c)
	_, ch := consume(t, c, driver.QueueSpec{Name: "svc"}, "x")
	closeConn(t, a)
	id := send(t, c, "x")
	if got := idOf(t, recv(t, ch)); got != id {
		t.Errorf("got %s, want %s", got, id)
	}
}

func TestConsumeRefusesBadInput(t *testing.T) {
	b := memory.NewBroker()
	defer b.Close()
	tr := b.Connect()
	defer closeConn(t, tr)
	noop := func(driver.Delivery) {}
	for name, tc := range map[string]struct {
		q        driver.QueueSpec
		patterns []string
	}{
		"empty queue name": {driver.QueueSpec{}, []string{"x"}},
		"invalid pattern":  {driver.QueueSpec{Name: "svc"}, []string{"a..b"}},
	} {
		if _, err := tr.Consume(context.Background(), tc.q, tc.patterns, noop); err == nil {
			t.Errorf("%s: Consume succeeded", name)
		}
	}
}

// TestNoGoroutineOutlivesClose runs buses through deliveries, retries and
// dead letters, closes them, and checks the goroutine count comes back.
// It is not parallel: it counts every goroutine of the process.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	b := memory.NewBroker()
	retry := bus.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond}
	var buses []*bus.Bus
	for i := range 3 {
		bb, err := bus.New(b.Connect(), bus.WithService(fmt.Sprintf("svc%d", i%2)), bus.WithoutValidation(),
			bus.WithConcurrency(1+i), bus.WithRetry(retry))
		if err != nil {
			t.Fatal(err)
		}
		buses = append(buses, bb)
	}
	ctx := context.Background()
	handled := make(chan string, 100)
	for _, bb := range buses {
		err := bb.Subscribe(ctx, "leak.#", func(ctx context.Context, ev *event.Event) error {
			if ev.Headers.Name == "leak.fail" {
				return errors.New("fails")
			}
			handled <- ev.Headers.ID
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		name := "leak.ok"
		if i%5 == 0 {
			name = "leak.fail"
		}
		ev, _ := event.New(name, nil)
		if err := buses[0].Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// 16 successes, each delivered to svc0 (competing) and svc1.
	for range 32 {
		select {
		case <-handled:
		case <-time.After(wait):
			t.Fatal("events not handled")
		}
	}
	for _, bb := range buses {
		if err := bb.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}
