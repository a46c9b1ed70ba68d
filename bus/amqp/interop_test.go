package amqp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// Interop with OIH's real Node library, both directions and on a shared
// queue, 1,000 events over six catalogue names from five services each.

const interopEvents = 1000

var interopNames = []string{
	"iam.user.created",
	"iam.user.deleted",
	"flowrepo.flow.created",
	"secrets.secret.created",
	"metadata.schema.created",
	"flow.started",
}

// interopExtra is merged into every payload the Node side publishes: the
// reserved fields and some nesting, to see them arrive intact.
const interopExtra = `{"user":"5f1c0c6e2a9b4c0012345678","tenant":"5f1c0c6e2a9b4c00aaaaaaaa","nested":{"list":[1,"two",{"three":3.5}],"none":null,"text":"żółw \"q\""}}`

// heraldBus returns a bus for service on a new transport, closed at the
// end of the test, its queues deleted.
func heraldBus(t testing.TB, service string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	tr := dialTest(t)
	b, err := bus.New(tr, append([]bus.Option{bus.WithService(service)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close bus %s: %v", service, err)
		}
		deleteQueues(t, service)
	})
	return b
}

// received collects events by a key.
type received struct {
	mu     sync.Mutex
	events map[string][]*event.Event
}

func newReceived() *received { return &received{events: make(map[string][]*event.Event)} }

func (r *received) add(key string, ev *event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events[key] = append(r.events[key], ev.Clone())
}

func (r *received) missing(keys []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	first := ""
	for _, k := range keys {
		if len(r.events[k]) == 0 {
			if n == 0 {
				first = k
			}
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("%d of %d events not received (first missing: %s)", n, len(keys), first)
	}
	return nil
}

func (r *received) get(key string) []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[key]
}

func (r *received) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func seqKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = strconv.Itoa(i)
	}
	return keys
}

// payloadRun returns payload.run and payload.seq.
func payloadRun(p json.RawMessage) (run string, seq int, ok bool) {
	var v struct {
		Run string `json:"run"`
		Seq *int   `json:"seq"`
	}
	if json.Unmarshal(p, &v) != nil || v.Seq == nil {
		return "", 0, false
	}
	return v.Run, *v.Seq, true
}

func TestInteropNodePublishesHeraldSubscribes(t *testing.T) {
	testURL(t)
	modules := nodeModules(t)
	run := runID()
	nodeService := "interop-" + run + "-node-pub"
	sub := heraldBus(t, "interop-"+run+"-herald-sub", bus.WithConcurrency(4))
	got := newReceived()
	for _, name := range interopNames {
		err := sub.Subscribe(context.Background(), name, func(_ context.Context, ev *event.Event) error {
			if r, seq, ok := payloadRun(ev.Payload); ok && r == run {
				got.add(strconv.Itoa(seq), ev)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("subscribe %s: %v", name, err)
		}
	}

	start := time.Now()
	pub := startNode(t, modules, "oih-publish.js", "--url", testURL(t), "--service", nodeService,
		"--names", strings.Join(interopNames, ","), "--count", strconv.Itoa(interopEvents), "--run", run, "--payload", interopExtra)
	sum := pub.finish(60*time.Second, nil)
	if sum.Failed != 0 || sum.Published != interopEvents {
		t.Fatalf("Node published %d, %d failed (%s)", sum.Published, sum.Failed, sum.FirstError)
	}
	keys := seqKeys(interopEvents)
	testkit.Eventually(t, 60*time.Second, func() error { return got.missing(keys) })

	var extra map[string]any
	if err := json.Unmarshal([]byte(interopExtra), &extra); err != nil {
		t.Fatal(err)
	}
	dups := 0
	for i, k := range keys {
		evs := got.get(k)
		dups += len(evs) - 1
		ev := evs[0]
		if want := interopNames[i%len(interopNames)]; ev.Headers.Name != want {
			t.Errorf("event %d: name %q, want %q", i, ev.Headers.Name, want)
		}
		if ev.Headers.ServiceName != nodeService {
			t.Errorf("event %d: serviceName %q, want %q", i, ev.Headers.ServiceName, nodeService)
		}
		want := map[string]any{"seq": i, "run": run}
		for k, v := range extra {
			want[k] = v
		}
		wb, _ := json.Marshal(want)
		if !testkit.JSONEqual(ev.Payload, wb) {
			t.Errorf("event %d: payload %s, want %s", i, ev.Payload, wb)
		}
		if ev.User() != extra["user"] || ev.Tenant() != extra["tenant"] {
			t.Errorf("event %d: user %q tenant %q, want the payload's", i, ev.User(), ev.Tenant())
		}
		// OIH writes Date.now() at publish; the codec reads it as ms.
		if ca := ev.Headers.CreatedAt; ca.Before(start.Add(-time.Second)) || ca.After(time.Now()) {
			t.Errorf("event %d: createdAt %v, not during the test", i, ca)
		}
		// No id on the wire: herald derives a stable one from the body.
		if ev.Headers.ID == "" {
			t.Errorf("event %d: no id derived", i)
		}
	}
	t.Logf("Node published %d events over %d names in %.2fs; herald handled all, %d duplicates", interopEvents, len(interopNames), sum.Seconds, dups)
}

// catalogueEvents returns n events over interopNames, each the
// catalogue's example payload plus seq and run, valid against the
// catalogue.
func catalogueEvents(t testing.TB, run string, n int) []*event.Event {
	t.Helper()
	cat := catalog.Default()
	evs := make([]*event.Event, n)
	for i := range evs {
		name := interopNames[i%len(interopNames)]
		e, ok := cat.Lookup(name)
		if !ok {
			t.Fatalf("catalogue has no %s", name)
		}
		var p map[string]any
		if err := json.Unmarshal(e.Example, &p); err != nil {
			t.Fatal(err)
		}
		p["seq"], p["run"] = i, run
		ev, err := event.New(name, p)
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// publishAll publishes evs from workers goroutines and fails the test on
// any error.
func publishAll(t testing.TB, b *bus.Bus, evs []*event.Event, workers int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	next := make(chan *event.Event)
	errs := make(chan error, len(evs))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ev := range next {
				if err := b.Publish(ctx, ev); err != nil {
					errs <- err
				}
			}
		})
	}
	for _, ev := range evs {
		next <- ev
	}
	close(next)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		t.Fatalf("%d publishes failed: %v", len(all), err)
	}
}

func TestInteropHeraldPublishesNodeSubscribes(t *testing.T) {
	testURL(t)
	modules := nodeModules(t)
	run := runID()
	nodeService := "interop-" + run + "-node-sub"
	admin := newBrokerAdmin(t)
	t.Cleanup(func() { admin.deleteQueue(nodeService) })

	nodeSub := startNode(t, modules, "oih-subscribe.js", "--url", testURL(t), "--service", nodeService,
		"--names", strings.Join(interopNames, ","))
	raw := startNode(t, modules, "raw-consume.js", "--url", testURL(t), "--names", strings.Join(interopNames, ","))
	nodeSub.waitType("ready", 30*time.Second, nil)
	raw.waitType("ready", 30*time.Second, nil)
	// OIH's connect() resolves before its consumer exists: wait for it.
	admin.waitConsumers(nodeService, 1, 30*time.Second)

	pub := heraldBus(t, "interop-"+run+"-herald-pub") // catalogue validation on
	evs := catalogueEvents(t, run, interopEvents)
	publishAll(t, pub, evs, 16)
	byID := make(map[string]*event.Event, len(evs))
	for _, ev := range evs {
		byID[ev.Headers.ID] = ev
	}

	// Node's EventBus: every event, name and payload intact.
	nodeGot := make(map[string]nodeMsg)
	for len(nodeGot) < len(evs) {
		m := nodeSub.next(60 * time.Second)
		if m.Type == "event" && byID[m.ID] != nil {
			nodeGot[m.ID] = m
		}
	}
	nodeSub.finish(30*time.Second, nil)
	for id, m := range nodeGot {
		ev := byID[id]
		if m.Name != ev.Headers.Name {
			t.Errorf("Node received %s as %q, want %q", id, m.Name, ev.Headers.Name)
		}
		if m.ServiceName != pub.Service() {
			t.Errorf("Node received %s with serviceName %q, want %q", id, m.ServiceName, pub.Service())
		}
		if !testkit.JSONEqual(m.Payload, ev.Payload) {
			t.Errorf("Node received %s with payload %s, want %s", id, m.Payload, ev.Payload)
		}
	}

	// A plain amqplib consumer sees the raw wire form: createdAt as
	// herald wrote it (OIH's EventBus overwrites it on receipt), and the
	// AMQP properties herald sets.
	rawGot := make(map[string]nodeMsg)
	for len(rawGot) < len(evs) {
		m := raw.next(60 * time.Second)
		if m.Type != "raw" {
			continue
		}
		var env struct {
			Headers struct {
				ID        string          `json:"id"`
				CreatedAt json.RawMessage `json:"createdAt"`
			} `json:"headers"`
		}
		if err := json.Unmarshal([]byte(m.Body), &env); err != nil {
			t.Fatalf("raw body %q: %v", m.Body, err)
		}
		if byID[env.Headers.ID] != nil {
			m.CreatedAt = env.Headers.CreatedAt
			rawGot[env.Headers.ID] = m
		}
	}
	raw.finish(30*time.Second, nil)
	for id, m := range rawGot {
		ev := byID[id]
		if want := strconv.FormatInt(ev.Headers.CreatedAt.UnixMilli(), 10); string(m.CreatedAt) != want {
			t.Errorf("raw %s: createdAt %s, want the number %s", id, m.CreatedAt, want)
		}
		p := m.Properties
		if p.ContentType != "application/json" || p.DeliveryMode != 2 || p.MessageID != id || p.Timestamp != ev.Headers.CreatedAt.Unix() {
			t.Errorf("raw %s: properties %+v, want application/json, persistent, message-id = id, timestamp %d", id, p, ev.Headers.CreatedAt.Unix())
		}
		if !bytes.Contains([]byte(m.Body), []byte(`"serviceName":"`+pub.Service()+`"`)) {
			t.Errorf("raw %s: body %s lacks serviceName %s", id, m.Body, pub.Service())
		}
	}
	t.Logf("Node's EventBus and a plain amqplib consumer each received all %d events herald published", len(evs))
}

// TestInteropSharedQueueEitherStartOrder runs a Node replica and a herald
// replica of one service on its one queue, each starting first: neither
// declaration fails (herald declares the queue with no arguments, as OIH
// does) and the deliveries are shared.
func TestInteropSharedQueueEitherStartOrder(t *testing.T) {
	testURL(t)
	modules := nodeModules(t)
	for _, nodeFirst := range []bool{true, false} {
		order := "HeraldFirst"
		if nodeFirst {
			order = "NodeFirst"
		}
		t.Run(order, func(t *testing.T) {
			run := runID()
			service := "interop-" + run + "-shared"
			admin := newBrokerAdmin(t)
			t.Cleanup(func() { admin.deleteQueue(service) })

			herald := newReceived()
			var replica *bus.Bus
			startHerald := func() {
				replica = heraldBus(t, service)
				for _, name := range interopNames {
					err := replica.Subscribe(context.Background(), name, func(_ context.Context, ev *event.Event) error {
						if r, _, ok := payloadRun(ev.Payload); ok && r == run {
							herald.add(ev.Headers.ID, ev)
						}
						return nil
					})
					if err != nil {
						t.Fatalf("herald replica: subscribe %s to the queue: %v", name, err)
					}
				}
			}
			var node *nodeProc
			startNodeReplica := func(consumers int) {
				node = startNode(t, modules, "oih-subscribe.js", "--url", testURL(t), "--service", service,
					"--names", strings.Join(interopNames, ","))
				node.waitType("ready", 30*time.Second, nil)
				admin.waitConsumers(service, consumers, 30*time.Second)
			}
			if nodeFirst {
				startNodeReplica(1)
				startHerald()
			} else {
				startHerald()
				startNodeReplica(2)
			}
			admin.waitConsumers(service, 2, 30*time.Second)

			pub := heraldBus(t, "interop-"+run+"-shared-pub")
			evs := catalogueEvents(t, run, interopEvents)
			publishAll(t, pub, evs, 16)
			ids := make(map[string]bool, len(evs))
			for _, ev := range evs {
				ids[ev.Headers.ID] = true
			}
			nodeGot := make(map[string]int)
			union := func() int {
				n := 0
				for id := range ids {
					if nodeGot[id] > 0 || len(herald.get(id)) > 0 {
						n++
					}
				}
				return n
			}
			deadline := time.Now().Add(60 * time.Second)
			for union() < len(evs) {
				if time.Now().After(deadline) {
					t.Fatalf("after 60s %d of %d events handled by either replica", union(), len(evs))
				}
				select {
				case m, ok := <-node.msgs:
					if !ok {
						t.Fatalf("Node replica exited: %s", node.describe())
					}
					if m.Type == "error" {
						t.Fatalf("Node replica: %s", m.Error)
					}
					if m.Type == "event" && ids[m.ID] {
						nodeGot[m.ID]++
					}
				case <-time.After(10 * time.Millisecond):
				}
			}
			node.finish(30*time.Second, func(m nodeMsg) {
				if m.Type == "event" && ids[m.ID] {
					nodeGot[m.ID]++
				}
			})
			if strings.Contains(node.describe(), "PRECONDITION_FAILED") {
				t.Errorf("Node replica reported PRECONDITION_FAILED: %s", node.describe())
			}
			nNode, nHerald, both := 0, 0, 0
			for id := range ids {
				a, b := nodeGot[id], len(herald.get(id))
				if a > 0 {
					nNode++
				}
				if b > 0 {
					nHerald++
				}
				if a > 0 && b > 0 {
					both++
				}
			}
			if nNode == 0 || nHerald == 0 {
				t.Errorf("Node replica handled %d, herald replica %d of %d: want both to share", nNode, nHerald, len(evs))
			}
			t.Logf("%s: Node replica handled %d, herald replica %d of %d (%d by both)", order, nNode, nHerald, len(evs), both)
		})
	}
}

// TestInteropTraceContextBothWays checks that the trace context crosses
// OIH's Node library in the envelope's headers, which it keeps: a herald
// publish's traceparent reaches a Node handler, and an event a Node
// service publishes with a traceparent of its own joins that trace in
// herald. (The AMQP header copy is invisible to Node's EventBus.)
func TestInteropTraceContextBothWays(t *testing.T) {
	testURL(t)
	modules := nodeModules(t)
	const n = 50
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	t.Run("HeraldToNode", func(t *testing.T) {
		run := runID()
		nodeService := "interop-" + run + "-trace-sub"
		admin := newBrokerAdmin(t)
		t.Cleanup(func() { admin.deleteQueue(nodeService) })
		nodeSub := startNode(t, modules, "oih-subscribe.js", "--url", testURL(t), "--service", nodeService,
			"--names", strings.Join(interopNames, ","))
		nodeSub.waitType("ready", 30*time.Second, nil)
		admin.waitConsumers(nodeService, 1, 30*time.Second)

		pub := heraldBus(t, "interop-"+run+"-trace-pub", bus.WithTracerProvider(tp))
		evs := catalogueEvents(t, run, n)
		publishAll(t, pub, evs, 4)
		want := make(map[string]string, n) // event id → traceparent of its publish span
		for _, s := range rec.Ended() {
			if s.SpanKind() != trace.SpanKindProducer {
				continue
			}
			for _, kv := range s.Attributes() {
				if kv.Key == "messaging.message.id" {
					want[kv.Value.AsString()] = fmt.Sprintf("00-%s-%s-01", s.SpanContext().TraceID(), s.SpanContext().SpanID())
				}
			}
		}
		got := make(map[string]string, n)
		for len(got) < n {
			m := nodeSub.next(60 * time.Second)
			if m.Type == "event" && want[m.ID] != "" {
				got[m.ID] = m.Traceparent
			}
		}
		nodeSub.finish(30*time.Second, nil)
		for _, ev := range evs {
			if got[ev.Headers.ID] != want[ev.Headers.ID] || want[ev.Headers.ID] == "" {
				t.Errorf("Node's handler saw traceparent %q for %s, want the publish span's %q", got[ev.Headers.ID], ev.Headers.ID, want[ev.Headers.ID])
			}
		}
	})

	t.Run("NodeToHerald", func(t *testing.T) {
		run := runID()
		const traceID, spanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		sub := heraldBus(t, "interop-"+run+"-trace-sub", bus.WithTracerProvider(tp))
		got := newReceived()
		var mu sync.Mutex
		parents := make(map[string]trace.SpanContext)
		err := sub.SubscribeAll(context.Background(), interopNames, func(ctx context.Context, ev *event.Event) error {
			if r, seq, ok := payloadRun(ev.Payload); ok && r == run {
				mu.Lock()
				parents[strconv.Itoa(seq)] = trace.SpanFromContext(ctx).(sdktrace.ReadOnlySpan).Parent()
				mu.Unlock()
				got.add(strconv.Itoa(seq), ev)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pub := startNode(t, modules, "oih-publish.js", "--url", testURL(t), "--service", "interop-"+run+"-trace-node",
			"--names", strings.Join(interopNames, ","), "--count", strconv.Itoa(n), "--run", run, "--payload", interopExtra,
			"--headers", `{"traceparent":"00-`+traceID+`-`+spanID+`-01"}`)
		if sum := pub.finish(60*time.Second, nil); sum.Published != n {
			t.Fatalf("Node published %d of %d (%s)", sum.Published, n, sum.FirstError)
		}
		keys := seqKeys(n)
		testkit.Eventually(t, 60*time.Second, func() error { return got.missing(keys) })
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if p := parents[k]; p.TraceID().String() != traceID || p.SpanID().String() != spanID || !p.IsRemote() {
				t.Errorf("event %s: herald's span has parent %v/%v, want Node's %s/%s", k, p.TraceID(), p.SpanID(), traceID, spanID)
			}
		}
	})
}
