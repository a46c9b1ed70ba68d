package nats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

// server is a NATS server a test runs against: the embedded one, and the
// external one when HERALD_TEST_NATS_URL is set.
type server struct {
	name string
	url  string
	opts []Option
}

func servers(t *testing.T) []server {
	t.Helper()
	out := []server{{name: "embedded", url: startServer(t).ClientURL()}}
	switch u := os.Getenv(envTestNATSURL); {
	case u != "":
		out = append(out, server{name: "external", url: u, opts: isolated(t, u)})
	case os.Getenv(testkit.EnvRequire) == "1":
		t.Fatalf("%s is not set, and %s=1 requires an external NATS server", envTestNATSURL, testkit.EnvRequire)
	default:
		t.Logf("embedded server only: set %s to run this against an external one too", envTestNATSURL)
	}
	return out
}

// TestFilterFollowsPatterns checks the server-side consumer: its filter
// covers every pattern bound (one subject per pattern from 2.10, one
// covering wildcard before), and the patterns are recorded on it.
func TestFilterFollowsPatterns(t *testing.T) {
	for _, s := range servers(t) {
		t.Run(s.name, func(t *testing.T) {
			tr := dial(t, s.url, s.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			q := driver.QueueSpec{Name: "filter-" + strings.ToLower(s.name)}
			c, err := tr.Consume(ctx, q, []string{"iam.user.created"}, func(d driver.Delivery) { _ = d.Ack(ctx) })
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Bind(ctx, "flow.#.started"); err != nil {
				t.Fatal(err)
			}
			if err := c.Bind(ctx, "iam.*.created"); err != nil {
				t.Fatal(err)
			}
			info, err := tr.js.Consumer(ctx, tr.o.stream, q.Name)
			if err != nil {
				t.Fatal(err)
			}
			cfg := info.CachedInfo().Config
			p := tr.o.prefix
			var want []string
			if tr.single.Load() {
				want = []string{p + ".>"}
			} else {
				want = []string{p + ".flow.>", p + ".iam.*.created"}
			}
			if got := filtersOf(cfg); !slices.Equal(got, want) {
				t.Errorf("server %s: filters %q, want %q", tr.nc.ConnectedServerVersion(), got, want)
			}
			bindings, complete := bindingsOf(cfg)
			if wantB := []string{"iam.user.created", "flow.#.started", "iam.*.created"}; !slices.Equal(bindings, wantB) || !complete {
				t.Errorf("recorded bindings %q (complete %v), want %q", bindings, complete, wantB)
			}
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := tr.js.DeleteConsumer(ctx, tr.o.stream, q.Name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestBindingsSurviveANarrowerReplica starts a replica with fewer patterns
// after one with more: the queue keeps every binding.
func TestBindingsSurviveANarrowerReplica(t *testing.T) {
	for _, s := range servers(t) {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			q := driver.QueueSpec{Name: "narrow"}
			wide := dial(t, s.url, s.opts...)
			c1, err := wide.Consume(ctx, q, []string{"a.x", "b.#"}, func(d driver.Delivery) { _ = d.Ack(ctx) })
			if err != nil {
				t.Fatal(err)
			}
			narrow := dial(t, s.url, s.opts...)
			c2, err := narrow.Consume(ctx, q, []string{"a.x"}, func(d driver.Delivery) { _ = d.Ack(ctx) })
			if err != nil {
				t.Fatal(err)
			}
			info, err := narrow.js.Consumer(ctx, narrow.o.stream, q.Name)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := bindingsOf(info.CachedInfo().Config)
			if !slices.Equal(got, []string{"a.x", "b.#"}) {
				t.Errorf("bindings after the narrower replica started: %q, want [a.x b.#]", got)
			}
			if !covers(filtersOf(info.CachedInfo().Config), patternSubjects(narrow.o.prefix, "b.#")) {
				t.Errorf("filter %q no longer covers b.#", filtersOf(info.CachedInfo().Config))
			}
			_ = c1.Stop(ctx)
			_ = c2.Stop(ctx)
		})
	}
}

// TestAReplicaHandsOutWhatAnotherBoundLater: a replica that started with
// one pattern receives deliveries for a pattern another replica of its
// queue bound afterwards (its own record of the bindings is older than
// them). It must hand them out, as RabbitMQ would have queued them, not
// acknowledge them as deliveries of no binding.
func TestAReplicaHandsOutWhatAnotherBoundLater(t *testing.T) {
	for _, s := range servers(t) {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			q := driver.QueueSpec{Name: "late-" + s.name}
			var mu sync.Mutex
			got := make(map[string]int)
			older := dial(t, s.url, s.opts...)
			c1, err := older.Consume(ctx, q, []string{"late.a"}, func(d driver.Delivery) {
				mu.Lock()
				if ev, err := event.Decode(d.Body()); err == nil {
					got[ev.Headers.ID]++
				}
				mu.Unlock()
				_ = d.Ack(ctx)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c1.Stop(context.Background()) })
			// The newer replica binds late.b and goes away: from now on
			// only the older one reads the queue.
			newer := dial(t, s.url, s.opts...)
			c2, err := newer.Consume(ctx, q, []string{"late.b"}, func(d driver.Delivery) {
				t.Errorf("the replica that stopped got a delivery")
				_ = d.Retry(ctx, 0, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := c2.Stop(ctx); err != nil {
				t.Fatal(err)
			}

			var ids []string
			for _, name := range []string{"late.b", "late.b", "late.b", "late.a", "late.b"} {
				ev := mustEvent(t, name)
				body, err := ev.Encode()
				if err != nil {
					t.Fatal(err)
				}
				if err := driver.PublishSync(ctx, older, driver.Message{ID: ev.Headers.ID, Name: name, Body: body, CreatedAt: ev.Headers.CreatedAt}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.Headers.ID)
			}
			testkit.Eventually(t, testTimeout, func() error {
				mu.Lock()
				defer mu.Unlock()
				for i, id := range ids {
					if got[id] == 0 {
						return fmt.Errorf("event %d of %d not handed out to the older replica", i+1, len(ids))
					}
				}
				return nil
			})
		})
	}
}

// TestDeadLetterHeaders reads a dead letter as stored: the original body
// and subject, the error, attempts and first failure in its headers.
func TestDeadLetterHeaders(t *testing.T) {
	for _, s := range servers(t) {
		t.Run(s.name, func(t *testing.T) {
			tr := dial(t, s.url, s.opts...)
			policy := bus.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}
			b := newBus(t, tr, "dead.ends", bus.WithRetry(policy))
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			if err := b.Subscribe(ctx, "doomed.#", func(context.Context, *event.Event) error {
				return errors.New("no luck\nsecond line")
			}); err != nil {
				t.Fatal(err)
			}
			ev := mustEvent(t, "doomed.thing")
			if err := b.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
			var dls []driver.DeadLetter
			testkit.Eventually(t, testTimeout, func() (err error) {
				dls, err = tr.DeadLetters(ctx, "dead.ends")
				if err == nil && len(dls) == 0 {
					err = errors.New("no dead letter yet")
				}
				return err
			})
			dl := dls[0]
			if dl.Attempts != 3 || dl.Name != "doomed.thing" || dl.Error != "no luck second line" {
				t.Errorf("dead letter %+v: want 3 attempts, name doomed.thing, error %q", dl, "no luck second line")
			}
			if dl.FirstFailure.IsZero() || dl.DeadAt.Before(dl.FirstFailure) {
				t.Errorf("first failure %v, dead at %v", dl.FirstFailure, dl.DeadAt)
			}
			msg, err := lastMsg(ctx, tr, tr.o.deadStream, tr.o.deadPrefix+"."+safeToken("dead.ends")+".doomed.thing")
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Header
			for k, want := range map[string]string{
				HeaderQueue:           "dead.ends",
				HeaderEvent:           "doomed.thing",
				HeaderAttempts:        "3",
				HeaderOriginalSubject: tr.Subject("doomed.thing"),
				"Herald-Event-Id":     ev.Headers.ID,
			} {
				if got := h.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if got, err := event.Decode(msg.Data); err != nil || got.Headers.ID != ev.Headers.ID {
				t.Errorf("dead letter body does not hold the event: %v", err)
			}
			// Terminated: the queue is empty, nothing is redelivered.
			info, err := tr.js.Consumer(ctx, tr.o.stream, safeToken("dead.ends"))
			if err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, testTimeout, func() error {
				ci, err := info.Info(ctx)
				if err != nil {
					return err
				}
				if ci.NumAckPending != 0 || ci.NumPending != 0 {
					return fmt.Errorf("consumer still has %d pending acks, %d pending", ci.NumAckPending, ci.NumPending)
				}
				return nil
			})
		})
	}
}

// TestPublishWaitsForServerRestart publishes while the embedded server is
// down: Publish waits, and returns nil once the restarted server has the
// event.
func TestPublishWaitsForServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := startServerIn(t, dir, natsserver.RandomPort)
	port := s1.Config().Port
	tr := dial(t, s1.ClientURL())
	shutdown(t, s1)
	testkit.Eventually(t, testTimeout, func() error {
		if st := tr.Status(); st.State != bus.StateReconnecting || st.LastError == nil {
			return fmt.Errorf("status %v (last error %v), want reconnecting with the error", st.State, st.LastError)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	id := event.NewID()
	done := make(chan error, 1)
	go func() {
		done <- driver.PublishSync(ctx, tr, driver.Message{ID: id, Name: "outage.survived", Body: []byte(`{}`), CreatedAt: time.Now()})
	}()
	// A Publish that did not wait for the PubAck would return at once
	// (nats.go buffers the message while reconnecting); one that waits is
	// still waiting when the grace has passed.
	grace := time.NewTimer(200 * time.Millisecond)
	defer grace.Stop()
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the server was down", err)
	case <-grace.C:
	}
	startServerIn(t, dir, port)
	if err := <-done; err != nil {
		t.Fatalf("Publish across the restart: %v", err)
	}
	if st := tr.Status(); st.State != bus.StateConnected {
		t.Errorf("status after the restart = %v, want connected", st.State)
	}
	msg, err := lastMsg(ctx, tr, tr.o.stream, tr.Subject("outage.survived"))
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != id {
		t.Errorf("stored message id %q, want %q", got, id)
	}
}

// TestPublishDuringOutageEndsWithItsContext: while nothing answers,
// Publish returns the context's error, never nil.
func TestPublishDuringOutageEndsWithItsContext(t *testing.T) {
	s := startServer(t)
	tr := dial(t, s.ClientURL())
	shutdown(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := driver.PublishSync(ctx, tr, driver.Message{ID: event.NewID(), Name: "lost.cause", Body: []byte(`{}`)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish during an outage: err = %v, want context.DeadlineExceeded", err)
	}
}

// TestTemporaryQueueSurvivesServerRestart: a temporary consumer lives in
// the server's memory; after a restart it is created again and events
// published after the restart reach it.
func TestTemporaryQueueSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := startServerIn(t, dir, natsserver.RandomPort)
	port := s1.Config().Port
	tr := dial(t, s1.ClientURL())
	var mu sync.Mutex
	got := make(map[string]bool)
	b := newBus(t, tr, "tail", bus.WithTemporaryQueue())
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := b.Subscribe(ctx, "#", func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		got[ev.Headers.ID] = true
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	shutdown(t, s1)
	startServerIn(t, dir, port)
	pub := newBus(t, dial(t, "nats://127.0.0.1:"+strconv.Itoa(port)), "tail-pub")
	// The consumer comes back with the connection; keep publishing until
	// one arrives (each publish is a new event).
	testkit.Eventually(t, testTimeout, func() error {
		ev := mustEvent(t, "after.restart")
		if err := pub.Publish(ctx, ev); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return errors.New("no event received after the restart")
		}
		return nil
	})
}

func TestDialFailsWhenNothingAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = Dial(ctx, url)
	if err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Dial %s with nothing listening: err = %v, want an error naming the URL", url, err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"nats://127.0.0.1:4222":               "nats://127.0.0.1:4222",
		"nats://user:secret@host:4222":        "nats://user:xxxxx@host:4222",
		"nats://token@host:4222,nats://h2:42": "nats://xxxxx@host:4222,nats://h2:42",
	}
	for in, want := range tests {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// lastMsg returns the last message stored under subject.
func lastMsg(ctx context.Context, tr *Transport, stream, subject string) (*jetstream.RawStreamMsg, error) {
	st, err := tr.js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return st.GetLastMsgForSubject(ctx, subject)
}

// TestCloseWhileServerIsDown closes consumers and connection of a
// transport whose server is gone.
func TestCloseWhileServerIsDown(t *testing.T) {
	for _, temporary := range []bool{false, true} {
		t.Run(fmt.Sprintf("temporary=%v", temporary), func(t *testing.T) {
			s := startServer(t)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			tr, err := Dial(ctx, s.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			opts := []bus.Option{bus.WithService("gone"), bus.WithoutValidation()}
			if temporary {
				opts = append(opts, bus.WithTemporaryQueue())
			}
			b, err := bus.New(tr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Subscribe(ctx, "#", func(context.Context, *event.Event) error { return nil }); err != nil {
				t.Fatal(err)
			}
			shutdown(t, s)
			if err := b.Close(ctx); err != nil {
				t.Errorf("Close with the server down: %v", err)
			}
			if st := tr.Status(); st.State != bus.StateClosed {
				t.Errorf("status after Close = %v, want closed", st.State)
			}
		})
	}
}

// TestDeletedConsumerIsCreatedAgain: an operator deletes a service's
// consumer under a running bus; the bus gets it back and carries on.
func TestDeletedConsumerIsCreatedAgain(t *testing.T) {
	s := startServer(t)
	tr := dial(t, s.ClientURL())
	var mu sync.Mutex
	got := make(map[string]bool)
	b := newBus(t, tr, "phoenix")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := b.Subscribe(ctx, "rise.#", func(_ context.Context, ev *event.Event) error {
		mu.Lock()
		got[ev.Headers.ID] = true
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := tr.js.DeleteConsumer(ctx, tr.o.stream, "phoenix"); err != nil {
		t.Fatal(err)
	}
	pub := newBus(t, dial(t, s.ClientURL()), "phoenix-pub")
	testkit.Eventually(t, testTimeout, func() error {
		ev := mustEvent(t, "rise.again")
		if err := pub.Publish(ctx, ev); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return errors.New("nothing received since the consumer was deleted")
		}
		return nil
	})
}
