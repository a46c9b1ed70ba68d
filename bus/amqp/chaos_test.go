package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// Chaos: 20,000 events published while the broker's connections are
// forcibly closed, or while RabbitMQ itself restarts. Every event must be
// handled at least once; duplicates are counted and logged. The same
// restart scenario is measured with OIH's Node publisher for
// docs/reliability.md.

const chaosEvents = 20000

// stream publishes n events named name (payload {seq, run}) from workers
// goroutines, paced to rate per second, and reports progress.
type stream struct {
	n, rate, workers int
	published        atomic.Int64 // publishes returned (successfully or not)
	mu               sync.Mutex
	errs             []error
	done             chan struct{}
}

func startStream(t testing.TB, b *bus.Bus, evs []*event.Event, rate, workers int, timeout time.Duration) *stream {
	s := &stream{n: len(evs), rate: rate, workers: workers, done: make(chan struct{})}
	next := make(chan *event.Event, workers)
	stop := make(chan struct{})
	go func() {
		defer close(next)
		start := time.Now()
		for i, ev := range evs {
			if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
				// Pacing, not synchronisation: the stream's rate.
				time.Sleep(time.Until(due))
			}
			select {
			case next <- ev:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range next {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				err := b.Publish(ctx, ev)
				cancel()
				if err != nil {
					s.mu.Lock()
					s.errs = append(s.errs, fmt.Errorf("%s: %w", ev.Headers.ID, err))
					s.mu.Unlock()
				}
				s.published.Add(1)
			}
		})
	}
	go func() { wg.Wait(); close(s.done) }()
	t.Cleanup(func() {
		close(stop)
		<-s.done
	})
	return s
}

// waitPublished waits until at least k publishes returned.
func (s *stream) waitPublished(t testing.TB, k int, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, func() error {
		if got := s.published.Load(); got < int64(k) {
			return fmt.Errorf("%d of %d published", got, s.n)
		}
		return nil
	})
}

func (s *stream) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		t.Fatalf("the publishing stream did not finish within %v (%d of %d returned)", timeout, s.published.Load(), s.n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		return fmt.Errorf("%d publishes failed, first: %w", len(s.errs), s.errs[0])
	}
	return nil
}

func chaosEventsFor(t testing.TB, name, run string, n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		ev, err := event.New(name, map[string]any{"seq": i, "run": run})
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// handledCounter is a herald handler counting events by id.
type handledCounter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (c *handledCounter) handle(_ context.Context, ev *event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]int)
	}
	c.seen[ev.Headers.ID]++
	return nil
}

func (c *handledCounter) missing(evs []*event.Event) (missing int, first string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range evs {
		if c.seen[ev.Headers.ID] == 0 {
			if missing == 0 {
				first = ev.Headers.ID
			}
			missing++
		}
	}
	return missing, first
}

func (c *handledCounter) duplicates() (events, extra int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.seen {
		if n > 1 {
			events++
			extra += n - 1
		}
	}
	return events, extra
}

func waitAllHandled(t testing.TB, c *handledCounter, evs []*event.Event, timeout time.Duration) {
	t.Helper()
	testkit.Eventually(t, timeout, func() error {
		if n, first := c.missing(evs); n > 0 {
			return fmt.Errorf("%d of %d events not handled yet (first: %s)", n, len(evs), first)
		}
		return nil
	})
}

func TestChaosConnectionsForciblyClosed(t *testing.T) {
	testURL(t)
	run := runID()
	name := "chaos-" + run + ".close.event"
	pub := heraldBus(t, "chaos-"+run+"-close-pub", bus.WithoutValidation())
	sub := heraldBus(t, "chaos-"+run+"-close-sub", bus.WithConcurrency(8))
	var handled handledCounter
	if err := sub.Subscribe(context.Background(), name, handled.handle); err != nil {
		t.Fatal(err)
	}
	evs := chaosEventsFor(t, name, run, chaosEvents)
	start := time.Now()
	s := startStream(t, pub, evs, 3000, 64, 2*time.Minute)
	kills := 0
	for _, at := range []int{chaosEvents / 5, chaosEvents * 3 / 5} {
		s.waitPublished(t, at, time.Minute)
		n := closeConnections(t)
		if n == 0 {
			t.Fatalf("no connection named %q to close", connName(t))
		}
		kills++
		t.Logf("closed %d broker connections (publisher's and consumer's); %d publishes had returned when they were closed", n, s.published.Load())
	}
	if err := s.wait(t, 2*time.Minute); err != nil {
		t.Errorf("publishing across %d forced disconnects: %v", kills, err)
	}
	waitAllHandled(t, &handled, evs, 2*time.Minute)
	events, extra := handled.duplicates()
	t.Logf("%d events, connections forcibly closed %d times: 0 missing, %d handled more than once (%d extra deliveries), %.1fs",
		chaosEvents, kills, events, extra, time.Since(start).Seconds())
}

// plainCounter is a plain amqp091-go consumer of a durable queue (no
// herald code), reconnecting every 200ms, counting distinct payload.seq
// values of one run. It is the neutral witness of the restart scenarios.
type plainCounter struct {
	t      testing.TB
	queue  string
	cancel context.CancelFunc
	done   chan struct{}

	begin     chan struct{} // closed when the counter may consume
	beginOnce sync.Once

	mu       sync.Mutex
	seen     map[int]int
	received int
}

// startPlainCounter declares queue, binds it to pattern and, when live,
// starts consuming; otherwise the queue fills until start is called (a
// consumer that is behind).
func startPlainCounter(t testing.TB, queue, pattern, run string, live bool) *plainCounter {
	t.Helper()
	u := testURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := &plainCounter{t: t, queue: queue, cancel: cancel, done: make(chan struct{}), seen: make(map[int]int), begin: make(chan struct{})}
	if live {
		c.start()
	}
	ready := make(chan error, 1)
	go func() {
		defer close(c.done)
		first := true
		for ctx.Err() == nil {
			err := c.session(ctx, u, pattern, run, func() {
				if first {
					first = false
					ready <- nil
				}
			})
			if first && err != nil {
				first = false
				ready <- err
				return
			}
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("plain counter: %v", err)
	}
	t.Cleanup(func() {
		c.stop()
		deleteQueues(t, queue)
	})
	return c
}

func (c *plainCounter) session(ctx context.Context, u, pattern, run string, ready func()) error {
	conn, err := amqp091.Dial(u)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(500, 0, false); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(c.queue, true, false, false, false, nil); err != nil {
		return err
	}
	if err := ch.QueueBind(c.queue, pattern, Exchange, false, nil); err != nil {
		return err
	}
	ready()
	select {
	case <-c.begin:
	case <-ctx.Done():
		return nil
	}
	ds, err := ch.Consume(c.queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case d, ok := <-ds:
			if !ok {
				return errors.New("deliveries closed")
			}
			var env struct {
				Payload struct {
					Seq *int   `json:"seq"`
					Run string `json:"run"`
				} `json:"payload"`
			}
			if json.Unmarshal(d.Body, &env) == nil && env.Payload.Seq != nil && env.Payload.Run == run {
				c.mu.Lock()
				c.seen[*env.Payload.Seq]++
				c.received++
				c.mu.Unlock()
			}
			_ = d.Ack(false)
		case <-ctx.Done():
			return nil
		}
	}
}

func (c *plainCounter) start() { c.beginOnce.Do(func() { close(c.begin) }) }

func (c *plainCounter) stop() {
	c.cancel()
	<-c.done
}

func (c *plainCounter) counts() (distinct, received int, has func(int) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen), c.received, func(i int) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.seen[i] > 0
	}
}

// waitSentinel publishes a persistent, confirmed sentinel (seq = n) after
// the stream and waits until the counter saw it: the queue is read in
// order, so everything before it has been counted.
func (c *plainCounter) waitSentinel(name, run string, n int, timeout time.Duration) {
	c.t.Helper()
	var tr *Transport
	testkit.Eventually(c.t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		tr, err = Dial(ctx, testURL(c.t), WithConnectionName(connName(c.t)+" sentinel"))
		return err
	})
	defer tr.Close(context.Background())
	body := fmt.Sprintf(`{"headers":{"name":%q},"payload":{"seq":%d,"run":%q}}`, name, n, run)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := driver.PublishSync(ctx, tr, driver.Message{ID: event.NewID(), Name: name, Body: []byte(body), CreatedAt: time.Now()}); err != nil {
		c.t.Fatalf("publish sentinel: %v", err)
	}
	testkit.Eventually(c.t, timeout, func() error {
		if _, _, has := c.counts(); !has(n) {
			return errors.New("sentinel not counted yet")
		}
		return nil
	})
}

// restartDuring runs rabbitmqctl stop_app and start_app, in the
// background, once cond is true; the returned channel yields the outcome.
func restartDuring(t testing.TB, cond func() bool) <-chan error {
	t.Helper()
	t.Cleanup(func() {
		// Whatever happened, leave the broker running.
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app (cleanup): %v: %s", err, out)
		}
	})
	res := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				res <- errors.New("the stream did not reach the restart point within a minute")
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
			res <- fmt.Errorf("rabbitmqctl stop_app: %v: %s", err, out)
			return
		}
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			res <- fmt.Errorf("rabbitmqctl start_app: %v: %s", err, out)
			return
		}
		t.Logf("RabbitMQ stopped and started again (stop_app + start_app took %.1fs)", time.Since(start).Seconds())
		res <- nil
	}()
	return res
}

// The restart scenario of docs/reliability.md: 20,000 events at 2,000/s,
// one stop_app/start_app when a quarter of them reached the queue.
const (
	restartRate = 2000
	restartAt   = chaosEvents / 4
)

func TestChaosBrokerRestart(t *testing.T) {
	testURL(t)
	needBrokerControl(t, "restart RabbitMQ")
	run := runID()
	name := "chaos-" + run + ".restart.event"
	pub := heraldBus(t, "chaos-"+run+"-restart-pub", bus.WithoutValidation())
	sub := heraldBus(t, "chaos-"+run+"-restart-sub", bus.WithConcurrency(8))
	var handled handledCounter
	if err := sub.Subscribe(context.Background(), name, handled.handle); err != nil {
		t.Fatal(err)
	}
	evs := chaosEventsFor(t, name, run, chaosEvents)
	start := time.Now()
	s := startStream(t, pub, evs, restartRate, 64, 2*time.Minute)
	restarted := restartDuring(t, func() bool { return s.published.Load() >= restartAt })
	if err := s.wait(t, 3*time.Minute); err != nil {
		t.Errorf("publishing across a RabbitMQ restart: %v", err)
	}
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	waitAllHandled(t, &handled, evs, 2*time.Minute)
	events, extra := handled.duplicates()
	t.Logf("%d events at %d/s across one RabbitMQ restart: %d publishes failed, 0 missing, %d handled more than once (%d extra deliveries), %.1fs",
		chaosEvents, restartRate, len(s.errs), events, extra, time.Since(start).Seconds())
}

// restartPublisher starts publishing chaosEvents events named name (payload
// {seq, run}) at restartRate; wait returns how many publish calls returned
// without an error, how many failed, and the first error.
type restartPublisher func(t *testing.T, name, run string) (wait func() (returned, failed int, firstErr string))

func heraldRestartPublisher(t *testing.T, name, run string) func() (int, int, string) {
	pub := heraldBus(t, "reliability-"+run+"-herald", bus.WithoutValidation())
	s := startStream(t, pub, chaosEventsFor(t, name, run, chaosEvents), restartRate, 64, 2*time.Minute)
	return func() (int, int, string) {
		first := ""
		if err := s.wait(t, 3*time.Minute); err != nil {
			first = err.Error()
		}
		return chaosEvents - len(s.errs), len(s.errs), first
	}
}

func oihRestartPublisher(t *testing.T, name, run string) func() (int, int, string) {
	modules := nodeModules(t)
	node := startNode(t, modules, "oih-publish.js", "--url", testURL(t), "--service", "reliability-"+run+"-oih",
		"--names", name, "--count", strconv.Itoa(chaosEvents), "--rate", strconv.Itoa(restartRate), "--run", run)
	node.waitType("ready", 30*time.Second, nil)
	return func() (int, int, string) {
		sum := node.finish(3*time.Minute, nil)
		return sum.Published, sum.Failed, sum.FirstError
	}
}

// TestReliabilityAcrossRestart measures herald's and OIH's publishers on
// the restart scenario, with a plain consumer that keeps up ("live") and
// with one that is behind, so the events wait in the queue during the
// restart ("backlog"). herald must lose nothing; OIH's losses are
// measured, not asserted. The numbers go in docs/reliability.md.
func TestReliabilityAcrossRestart(t *testing.T) {
	testURL(t)
	needBrokerControl(t, "restart RabbitMQ")
	for _, tc := range []struct {
		name    string
		pub     restartPublisher
		backlog bool
		lossy   bool
	}{
		{"herald/live", heraldRestartPublisher, false, false},
		{"herald/backlog", heraldRestartPublisher, true, false},
		{"OIH/live", oihRestartPublisher, false, true},
		{"OIH/backlog", oihRestartPublisher, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.lossy {
				nodeModules(t)
			}
			run := runID()
			name := "reliability-" + run + ".event"
			queue := "reliability-" + run + "-plain"
			counter := startPlainCounter(t, queue, name, run, !tc.backlog)
			admin := newBrokerAdmin(t)
			start := time.Now()
			wait := tc.pub(t, name, run)
			restarted := restartDuring(t, func() bool {
				d, _, _ := counter.counts()
				m, err := admin.messages(queue)
				return err == nil && d+m >= restartAt
			})
			returned, failed, firstErr := wait()
			if err := <-restarted; err != nil {
				t.Fatal(err)
			}
			counter.start()
			counter.waitSentinel(name, run, chaosEvents, time.Minute)
			distinct, received, _ := counter.counts()
			distinct-- // the sentinel
			received--
			lost := chaosEvents - distinct
			t.Logf("RESULT %s: %d events at %d/s, one RabbitMQ restart: publish returned for %d, failed for %d (first: %q); plain consumer received %d distinct (%d deliveries); lost %d, %d of them after publish had returned; %.1fs",
				tc.name, chaosEvents, restartRate, returned, failed, firstErr, distinct, received, lost, max(0, returned-distinct), time.Since(start).Seconds())
			if !tc.lossy && (lost != 0 || failed != 0) {
				t.Errorf("herald lost %d events and %d publishes failed across a restart; want none", lost, failed)
			}
		})
	}
}
