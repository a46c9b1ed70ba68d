package amqp

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// Cases of this transport beyond the conformance suite.

func rawMessage(t testing.TB, name string) driver.Message {
	t.Helper()
	ev, err := event.New(name, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return driver.Message{ID: ev.Headers.ID, Name: name, Body: body, CreatedAt: ev.Headers.CreatedAt}
}

func TestMandatoryPublishOfAnUnboundNameIsUnroutable(t *testing.T) {
	run := runID()
	tr := dialTest(t, WithMandatory())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "unbound-" + run + ".event"
	if err := driver.PublishSync(ctx, tr, rawMessage(t, name)); !errors.Is(err, ErrUnroutable) {
		t.Errorf("mandatory publish with no queue bound: err = %v, want ErrUnroutable", err)
	}
	benchQueueT(t, name, "unbound-"+run+"-q")
	if err := driver.PublishSync(ctx, tr, rawMessage(t, name)); err != nil {
		t.Errorf("mandatory publish with a queue bound: %v", err)
	}
	plain := dialTest(t)
	if err := driver.PublishSync(ctx, plain, rawMessage(t, "unbound-"+run+".other")); err != nil {
		t.Errorf("publish of an unbound name without WithMandatory (OIH's behaviour): %v", err)
	}
}

// benchQueueT declares a durable queue bound to name, deleted at the end.
func benchQueueT(t testing.TB, name, queue string) {
	t.Helper()
	admin := newBrokerAdmin(t)
	ch, err := admin.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, name, Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.deleteQueue(queue) })
}

func TestPublishWindowSmallerThanTheCallers(t *testing.T) {
	run := runID()
	name := "window-" + run + ".event"
	benchQueueT(t, name, "window-"+run+"-q")
	tr := dialTest(t, WithPublishWindow(3))
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs <- driver.PublishSync(ctx, tr, rawMessage(t, name))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("publish through a window of 3: %v", err)
		}
	}
	if n := len(tr.window); n != 0 {
		t.Errorf("%d window slots still taken after every publish returned", n)
	}
}

func TestStatusReportsTheLostConnectionAndTheReconnect(t *testing.T) {
	tr := dialTest(t)
	before := tr.Status()
	if before.State != bus.StateConnected || before.LastError != nil {
		t.Fatalf("status after Dial = %+v, want connected without error", before)
	}
	if closeConnections(t) == 0 {
		t.Fatal("no connection to close")
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		st := tr.Status()
		if st.State != bus.StateConnected || !st.Since.After(before.Since) {
			return fmt.Errorf("status %v since %v", st.State, st.Since)
		}
		if st.LastError == nil || !strings.Contains(st.LastError.Error(), "CONNECTION_FORCED") {
			return fmt.Errorf("last error %v, want the forced close", st.LastError)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.Status(); st.State != bus.StateClosed {
		t.Errorf("status after Close = %v, want closed", st.State)
	}
}

func TestPublishWaitsForTheReconnect(t *testing.T) {
	run := runID()
	name := "wait-" + run + ".event"
	sub := heraldBus(t, "wait-"+run+"-sub")
	got := make(chan string, 10)
	if err := sub.Subscribe(context.Background(), name, func(_ context.Context, ev *event.Event) error {
		got <- ev.Headers.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := heraldBus(t, "wait-"+run+"-pub", bus.WithoutValidation())
	tr := pub.Transport().(*Transport)
	if closeConnections(t) == 0 {
		t.Fatal("no connection to close")
	}
	// Publish as soon as the loss is seen, while the transport reconnects.
	testkit.Eventually(t, 30*time.Second, func() error {
		if tr.Status().LastError == nil {
			return errors.New("loss not seen yet")
		}
		return nil
	})
	ev, _ := event.New(name, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatalf("publish across the reconnect: %v", err)
	}
	select {
	case id := <-got:
		if id != ev.Headers.ID {
			t.Errorf("received %s, want %s", id, ev.Headers.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the event published across the reconnect never arrived")
	}
}

func TestCloseWhileDisconnectedReturns(t *testing.T) {
	tr := dialTest(t, WithReconnectBackoff(5*time.Second, 10*time.Second))
	if closeConnections(t) == 0 {
		t.Fatal("no connection to close")
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if tr.Status().State != bus.StateReconnecting {
			return errors.New("not reconnecting yet")
		}
		return nil
	})
	// A publish waiting for the connection is answered by Close.
	errc := make(chan error, 1)
	go func() { errc <- driver.PublishSync(context.Background(), tr, rawMessage(t, "closing.event")) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tr.Close(ctx); err != nil {
		t.Errorf("Close while reconnecting: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("publish waiting for the connection during Close: err = %v, want bus.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a publish waiting for the connection was not answered by Close")
	}
}

func TestDeadLettersAreListedOldestFirstAndLeftInPlace(t *testing.T) {
	run := runID()
	name := "dl-" + run + ".event"
	service := "dl-" + run
	sub := heraldBus(t, service, bus.WithoutValidation(), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 2, InitialDelay: time.Millisecond}))
	if err := sub.Subscribe(context.Background(), name, func(_ context.Context, ev *event.Event) error {
		return fmt.Errorf("cannot handle %s", ev.Headers.ID)
	}); err != nil {
		t.Fatal(err)
	}
	pub := heraldBus(t, service+"-pub", bus.WithoutValidation())
	var ids []string
	for range 3 {
		ev, _ := event.New(name, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		cancel()
		ids = append(ids, ev.Headers.ID)
		// One at a time, so their order in the dead-letter queue is known.
		tr := sub.Transport().(*Transport)
		testkit.Eventually(t, 30*time.Second, func() error {
			dls, err := tr.DeadLetters(context.Background(), service)
			if err != nil {
				return err
			}
			if len(dls) < len(ids) {
				return fmt.Errorf("%d dead letters, want %d", len(dls), len(ids))
			}
			return nil
		})
	}
	tr := sub.Transport().(*Transport)
	for round := range 2 {
		dls, err := tr.DeadLetters(context.Background(), service)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 3 {
			t.Fatalf("round %d: %d dead letters, want 3 (listing must leave them)", round, len(dls))
		}
		for i, dl := range dls {
			ev, err := event.Decode(dl.Body)
			if err != nil || ev.Headers.ID != ids[i] {
				t.Errorf("round %d: dead letter %d is %s, want %s (oldest first)", round, i, ev.Headers.ID, ids[i])
			}
			if dl.Name != name || dl.Attempts != 2 || !strings.Contains(dl.Error, ids[i]) || dl.FirstFailure.IsZero() || dl.DeadAt.Before(dl.FirstFailure) {
				t.Errorf("round %d: dead letter %+v", round, dl)
			}
		}
	}
	none, err := tr.DeadLetters(context.Background(), "no-such-service-"+run)
	if err != nil || len(none) != 0 {
		t.Errorf("dead letters of a service without a dead-letter queue: %v, %v; want none", none, err)
	}
}

func TestTemporaryQueueRetries(t *testing.T) {
	run := runID()
	name := "tmpretry-" + run + ".event"
	sub := heraldBus(t, "tmpretry-"+run, bus.WithTemporaryQueue(), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond}))
	attempts := make(chan int, 10)
	if err := sub.Subscribe(context.Background(), name, func(ctx context.Context, _ *event.Event) error {
		attempts <- bus.Attempt(ctx)
		if bus.Attempt(ctx) == 1 {
			return errors.New("first attempt fails")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := heraldBus(t, "tmpretry-"+run+"-pub", bus.WithoutValidation())
	ev, _ := event.New(name, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 2; want++ {
		select {
		case got := <-attempts:
			if got != want {
				t.Fatalf("attempt %d, want %d", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("attempt %d never came", want)
		}
	}
}

// TestBlockedBrokerMakesPublishWait lowers RabbitMQ's memory watermark so
// that it blocks publishers (connection.blocked), then raises it again.
func TestBlockedBrokerMakesPublishWait(t *testing.T) {
	needBrokerControl(t, "change RabbitMQ's memory watermark")
	run := runID()
	name := "blocked-" + run + ".event"
	benchQueueT(t, name, "blocked-"+run+"-q")
	tr := dialTest(t)
	watermark := func(v string) {
		if out, err := exec.Command("rabbitmqctl", "set_vm_memory_high_watermark", v).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl set_vm_memory_high_watermark %s: %v: %s", v, err, out)
		}
	}
	t.Cleanup(func() { watermark("0.4") })
	watermark("0.0000001")

	// The first publish meets the alarm: the broker stops reading and sends
	// connection.blocked. It must give up at its deadline, not hang.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := driver.PublishSync(ctx, tr, rawMessage(t, name))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish to a blocked broker: err = %v, want context.DeadlineExceeded", err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		if st := tr.Status(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "blocked") {
			return fmt.Errorf("status %+v, want the block as last error", st)
		}
		return nil
	})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done <- driver.PublishSync(ctx, tr, rawMessage(t, name))
	}()
	watermark("0.4")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("publish waiting while blocked, after the unblock: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("publish did not complete after the broker unblocked")
	}
}

// TestRefusedRetryQueueDeadLettersInsteadOfLooping: when the broker refuses
// the retry queue a failed delivery needs (here it exists with another
// TTL), the delivery is dead-lettered with the reason, once; requeueing it
// would have redelivered it at once with the same attempt, forever.
func TestRefusedRetryQueueDeadLettersInsteadOfLooping(t *testing.T) {
	run := runID()
	service := "retryrefused-" + run
	name := "retryrefused-" + run + ".event"
	t.Cleanup(func() { deleteQueues(t, service) })
	admin := newBrokerAdmin(t)
	ch, err := admin.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The queue of the first retry step (InitialDelay 1ms rounds up to
	// MinRetryDelay), declared with a TTL the transport does not ask for.
	if _, err := ch.QueueDeclare(retryQueueName(service, MinRetryDelay), true, false, false, false, amqp091.Table{"x-message-ttl": int64(999)}); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()

	sub := heraldBus(t, service, bus.WithoutValidation(), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond}))
	var mu sync.Mutex
	runs := map[string]int{}
	if err := sub.Subscribe(context.Background(), name, func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		runs[ev.Headers.ID]++
		mu.Unlock()
		if ev.Payload == nil || !strings.Contains(string(ev.Payload), "sentinel") {
			return errors.New("this event always fails")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pub := heraldBus(t, service+"-pub", bus.WithoutValidation())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	failing, _ := event.New(name, nil)
	if err := pub.Publish(ctx, failing); err != nil {
		t.Fatal(err)
	}
	tr := sub.Transport().(*Transport)
	var dl driver.DeadLetter
	testkit.Eventually(t, 30*time.Second, func() error {
		dls, err := tr.DeadLetters(ctx, service)
		if err != nil {
			return err
		}
		if len(dls) == 0 {
			return errors.New("no dead letter yet")
		}
		dl = dls[0]
		return nil
	})
	if dl.Attempts != 1 || !strings.Contains(dl.Error, "always fails") || !strings.Contains(dl.Error, "not retried") {
		t.Errorf("dead letter: attempts %d, error %q; want 1 attempt, the handler's error and why it was not retried", dl.Attempts, dl.Error)
	}
	// A later event through the same queue: once it has been handled, a
	// redelivery of the first would have shown.
	sentinel, _ := event.New(name, map[string]string{"kind": "sentinel"})
	if err := pub.Publish(ctx, sentinel); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if runs[sentinel.Headers.ID] == 0 {
			return errors.New("sentinel not handled yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if n := runs[failing.Headers.ID]; n != 1 {
		t.Errorf("the handler ran %d times for the event whose retry queue was refused, want once", n)
	}
}
