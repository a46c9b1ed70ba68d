package bustest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// defaultTimeout bounds every wait of the suite: generous for a real
// broker under load, never reached on a healthy one.
const defaultTimeout = 30 * time.Second

// fastRetry retries within milliseconds, so retry cases finish quickly.
var fastRetry = bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}

// Run runs the conformance suite against the transport h describes, as
// parallel subtests of one "bustest" subtest; it returns when they have all
// finished. Every service and event name carries a random suffix, so
// several runs can share one real broker.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewTransport == nil {
		t.Fatal("bustest: Harness.NewTransport is nil")
	}
	s := &suite{h: h, run: fmt.Sprintf("%08x", rand.Uint32())}
	t.Logf("bustest: names of this run carry %q", s.run)
	t.Run("bustest", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				c.run(s, t)
			})
		}
	})
}

var cases = []struct {
	name string
	run  func(*suite, *testing.T)
}{
	{"PublishSubscribeRoundTrip", (*suite).roundTrip},
	{"FanOutToEveryService", (*suite).fanOut},
	{"CompetingConsumersShareAQueue", (*suite).competingConsumers},
	{"WildcardPatterns", (*suite).wildcards},
	{"CatalogueEventWithValidation", (*suite).catalogueEvent},
	{"HandlerErrorIsRetriedWithAttemptCount", (*suite).retry},
	{"LastAttemptIsDeadLettered", (*suite).deadLetter},
	{"PanicIsRetriedLikeAnError", (*suite).panics},
	{"HostileMessagesAreDeadLetteredWithTheirReason", (*suite).hostile},
	{"IDLessEventsGetKeyedIDsPerPublish", (*suite).keyedIDs},
	{"TwoHandlersShareOneAck", (*suite).twoHandlers},
	{"OrderPerPublisher", (*suite).order},
	{"AsyncPublishesAreConfirmedAndArriveInOrder", (*suite).asyncOrder},
	{"CloseWaitsForRunningHandler", (*suite).closeWaits},
	{"CloseGivesUpAtDeadline", (*suite).closeDeadline},
	{"ClosedBusRefusesWork", (*suite).closed},
	{"ContextCancellation", (*suite).cancellation},
	{"ConcurrentPublishes", (*suite).concurrentPublishes},
	{"StaleBindingIsDeadLettered", (*suite).staleBinding},
	{"TemporaryQueueGetsCopies", (*suite).temporaryQueue},
	{"PublishersSurviveReconnect", (*suite).reconnect},
	{"TraceContextCrossesTheBroker", (*suite).traceContext},
	{"DeadLettersAreReplayedToTheirQueueAndPurged", (*suite).replayAndPurge},
	{"BindingsFollowTheConfiguration", (*suite).bindingsFollow},
	{"QueueStateIsReported", (*suite).inspect},
}

type suite struct {
	h   Harness
	run string // random, in every name of this run
}

// service returns a service name unique to this run and case.
func (s *suite) service(name string) string { return "bustest-" + s.run + "-" + name }

// prefix returns the first word of the event names of a case, unique to
// this run and case.
func (s *suite) prefix(name string) string { return "bt-" + s.run + "-" + name }

func (s *suite) transport(t testing.TB) driver.Transport {
	t.Helper()
	tr := s.h.NewTransport(t)
	if tr == nil {
		t.Fatal("bustest: Harness.NewTransport returned nil")
	}
	return tr
}

// newBus returns a bus for service on a new transport, closed when the test
// ends. Catalogue validation is off (the suite's names are synthetic) unless
// opts turn it back on.
func (s *suite) newBus(t testing.TB, service string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	return s.newBusOn(t, s.transport(t), service, opts...)
}

func (s *suite) newBusOn(t testing.TB, tr driver.Transport, service string, opts ...bus.Option) *bus.Bus {
	t.Helper()
	all := append([]bus.Option{bus.WithService(service), bus.WithoutValidation()}, opts...)
	b, err := bus.New(tr, all...)
	if err != nil {
		_ = tr.Close(context.Background())
		t.Fatalf("new bus %s: %v", service, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("close bus %s: %v", service, err)
		}
	})
	return b
}

// retryWait is how long to wait for a delivery that needs attempts
// deliveries, with the transport's slowest retry.
func (s *suite) retryWait(attempts int) time.Duration {
	return defaultTimeout + time.Duration(attempts*s.h.Features.MinRetryDelayMillis)*time.Millisecond
}

// deadLetters reads the dead letters of queue through the harness or the
// transport of b.
func (s *suite) deadLetters(t testing.TB, b *bus.Bus, queue string) ([]driver.DeadLetter, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if s.h.DeadLetters != nil {
		return s.h.DeadLetters(ctx, t, queue)
	}
	l, ok := b.Transport().(driver.DeadLetterLister)
	if !ok {
		t.Fatalf("bustest: %T does not implement driver.DeadLetterLister and Harness.DeadLetters is nil", b.Transport())
	}
	return l.DeadLetters(ctx, queue)
}

// waitDeadLetter waits for the dead letter of queue holding the event id
// (or, for an undecodable message, exactly body).
func (s *suite) waitDeadLetter(t testing.TB, b *bus.Bus, queue, id string, body []byte, timeout time.Duration) driver.DeadLetter {
	t.Helper()
	var found driver.DeadLetter
	testkit.Eventually(t, timeout, func() error {
		dls, err := s.deadLetters(t, b, queue)
		if err != nil {
			return fmt.Errorf("list dead letters of %s: %w", queue, err)
		}
		dl, ok := findDeadLetter(dls, id, body)
		if !ok {
			return fmt.Errorf("no dead letter in %s for %s%q (%d others)", queue, id, body, len(dls))
		}
		found = dl
		return nil
	})
	return found
}

func (s *suite) roundTrip(t *testing.T) {
	p := s.prefix("rt")
	pub := s.newBus(t, s.service("rt-pub"))
	sub := s.newBus(t, s.service("rt-sub"))
	col := newCollector()
	subscribe(t, sub, p+".#", col.handle)

	ev := newEvent(t, p+".thing.created", json.RawMessage(
		`{"id":"t-1","user":"u-1","tenant":"ten-1","n":42,"f":1.5,`+
			`"nested":{"list":[1,"two",{"three":3}],"none":null,"yes":true},`+
			`"text":"żółw \u2603 \"quoted\" <b>&amp;</b>"}`))
	ev.Headers.CreatedAt = time.Time{} // Publish fills it in
	ev.Headers.Extra = map[string]json.RawMessage{
		"traceId": json.RawMessage(`"abc-123"`),
		"hops":    json.RawMessage(`3`),
		"meta":    json.RawMessage(`{"origin":["node",1.5],"ok":true}`),
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatalf("publish: %v", err)
	}
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(ev.Headers.ID) })

	got := col.get(ev.Headers.ID)
	if got.Headers.Name != ev.Headers.Name {
		t.Errorf("name = %q, want %q", got.Headers.Name, ev.Headers.Name)
	}
	if got.Headers.ServiceName != pub.Service() {
		t.Errorf("serviceName = %q, want the publisher's %q", got.Headers.ServiceName, pub.Service())
	}
	if want := time.UnixMilli(ev.Headers.CreatedAt.UnixMilli()); ev.Headers.CreatedAt.IsZero() || !got.Headers.CreatedAt.Equal(want) {
		t.Errorf("createdAt = %v, want %v (published %v, to the millisecond)", got.Headers.CreatedAt, want, ev.Headers.CreatedAt)
	}
	if got.Headers.ID != ev.Headers.ID {
		t.Errorf("id = %q, want %q", got.Headers.ID, ev.Headers.ID)
	}
	if len(got.Headers.Extra) != len(ev.Headers.Extra) {
		t.Errorf("extra headers = %v, want %v", got.Headers.Extra, ev.Headers.Extra)
	}
	for k, v := range ev.Headers.Extra {
		if !testkit.JSONEqual(got.Headers.Extra[k], v) {
			t.Errorf("header %s = %s, want %s", k, got.Headers.Extra[k], v)
		}
	}
	if !testkit.JSONEqual(got.Payload, ev.Payload) {
		t.Errorf("payload = %s, want %s", got.Payload, ev.Payload)
	}
}

func (s *suite) fanOut(t *testing.T) {
	p := s.prefix("fan")
	pub := s.newBus(t, s.service("fan-pub"))
	var subs []*bus.Bus
	var cols []*collector
	for _, name := range []string{"a", "b", "c"} {
		b := s.newBus(t, s.service("fan-"+name))
		col := newCollector()
		subscribe(t, b, p+".*", col.handle)
		subs, cols = append(subs, b), append(cols, col)
	}
	var ids []string
	for i := range 20 {
		ids = append(ids, publish(t, pub, p+".happened", map[string]int{"i": i}).Headers.ID)
	}
	for _, col := range cols {
		testkit.Eventually(t, defaultTimeout, func() error { return col.missing(ids...) })
	}
	for i, b := range subs {
		closeBus(t, b)
		for _, id := range ids {
			if n := cols[i].count(id); n != 1 {
				t.Errorf("%s handled %s %d times, want once", b.Service(), id, n)
			}
		}
	}
}

func (s *suite) competingConsumers(t *testing.T) {
	p := s.prefix("compete")
	svc := s.service("compete")
	pub := s.newBus(t, s.service("compete-pub"))
	replicas := []*bus.Bus{s.newBus(t, svc), s.newBus(t, svc)}
	cols := []*collector{newCollector(), newCollector()}
	for i, b := range replicas {
		subscribe(t, b, p+".job", cols[i].handle)
	}
	const n = 200
	var ids []string
	for i := range n {
		ids = append(ids, publish(t, pub, p+".job", map[string]int{"i": i}).Headers.ID)
	}
	testkit.Eventually(t, defaultTimeout, func() error {
		missing := 0
		for _, id := range ids {
			if cols[0].count(id)+cols[1].count(id) == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d events not handled by either replica", missing, n)
		}
		return nil
	})
	for _, b := range replicas {
		closeBus(t, b)
	}
	handled := []int{0, 0}
	for _, id := range ids {
		a, b := cols[0].count(id), cols[1].count(id)
		handled[0] += a
		handled[1] += b
		if a+b != 1 {
			t.Errorf("event %s handled %d times by the first replica and %d by the second, want once in all", id, a, b)
		}
	}
	if handled[0] == 0 || handled[1] == 0 {
		t.Errorf("replicas handled %d and %d of %d events, want both to get some", handled[0], handled[1], n)
	}
}

// wildcardCases lists one pattern per form, with names it must match and
// names it must not; "{p}" stands for a prefix unique to the case.
var wildcardCases = []struct {
	pattern     string
	match, miss []string
	// everything marks a pattern that matches other runs' and cases'
	// events too. It consumes from a temporary queue, so a run never leaves
	// a durable queue behind on a real broker that collects every event
	// published after it.
	everything bool
}{
	{pattern: "#", match: []string{"{p}", "{p}.a", "{p}.a.b.c"}, everything: true},
	{pattern: "*", match: []string{"{p}"}, miss: []string{"{p}.a", "{p}.a.b"}, everything: true},
	{pattern: "{p}.#", match: []string{"{p}", "{p}.a", "{p}.a.b"}, miss: []string{"{p}x", "{p}x.a", "x.{p}"}},
	{
		pattern: "{p}.*.created",
		match:   []string{"{p}.user.created", "{p}.flow.created"},
		miss:    []string{"{p}.created", "{p}.user.x.created", "{p}.user.deleted", "{p}.user.created.x"},
	},
	{
		pattern:    "#.deleted",
		match:      []string{"{p}.deleted", "{p}.user.deleted", "{p}.a.b.deleted"},
		miss:       []string{"{p}.deleted.x", "{p}.undeleted", "{p}"},
		everything: true,
	},
	{pattern: "#.{p}", match: []string{"{p}", "x.{p}", "x.y.{p}"}, miss: []string{"{p}.x", "{p}x"}},
	{pattern: "{p}.#.b", match: []string{"{p}.b", "{p}.a.b", "{p}.a.c.b"}, miss: []string{"{p}.a", "{p}.b.c", "{p}x.b"}},
	{pattern: "{p}.*.#", match: []string{"{p}.a", "{p}.a.b", "{p}.a.b.c"}, miss: []string{"{p}", "{p}x.a"}},
	{
		pattern: "{p}.exact.name",
		match:   []string{"{p}.exact.name"},
		miss:    []string{"{p}.exact", "{p}.exact.name.x", "{p}.exact.namex", "{p}.Exact.name", "{p}.x.exact.name"},
	},
}

// wildcards publishes, for each pattern, the names it must match and the
// names it must not, interleaved, then one more matching event as a
// sentinel. A consumer handling one delivery at a time sees its queue in
// order, so once the sentinel has arrived any wrongly routed event would
// have arrived too. Deliveries are counted at the transport: the bus runs
// only the handlers whose pattern matches, which would hide a transport
// that routes too much.
func (s *suite) wildcards(t *testing.T) {
	pub := s.newBus(t, s.service("wild-pub"))
	for i, tc := range wildcardCases {
		t.Run(strings.ReplaceAll(tc.pattern, "{p}", "x"), func(t *testing.T) {
			t.Parallel()
			p := s.prefix(fmt.Sprintf("w%d", i))
			expand := func(names []string) []string {
				out := make([]string, len(names))
				for j, n := range names {
					out[j] = strings.ReplaceAll(n, "{p}", p)
				}
				return out
			}
			pattern, match, miss := expand([]string{tc.pattern})[0], expand(tc.match), expand(tc.miss)
			var opts []bus.Option
			if tc.everything {
				opts = append(opts, bus.WithTemporaryQueue())
			}
			spy := newSpy(s.transport(t))
			sub := s.newBusOn(t, spy, s.service(fmt.Sprintf("w%d", i)), opts...)
			col := newCollector()
			subscribe(t, sub, pattern, col.handle)

			want := make(map[string]string)   // id → name
			unwant := make(map[string]string) // id → name
			for j := range max(len(match), len(miss)) {
				if j < len(miss) {
					unwant[publish(t, pub, miss[j], nil).Headers.ID] = miss[j]
				}
				if j < len(match) {
					want[publish(t, pub, match[j], nil).Headers.ID] = match[j]
				}
			}
			sentinel := publish(t, pub, match[0], nil).Headers.ID
			want[sentinel] = match[0]
			testkit.Eventually(t, defaultTimeout, func() error {
				var missing []string
				for id, name := range want {
					if col.count(id) == 0 {
						missing = append(missing, name)
					}
				}
				if len(missing) > 0 {
					return fmt.Errorf("pattern %q: not yet received %q", pattern, missing)
				}
				return nil
			})
			for id, name := range want {
				if n := col.count(id); n != 1 {
					t.Errorf("pattern %q: %q received %d times, want once", pattern, name, n)
				}
			}
			for id, name := range unwant {
				if n := spy.deliveries(id); n != 0 {
					t.Errorf("pattern %q: %q delivered %d times, want never", pattern, name, n)
				}
			}
		})
	}
}

// catalogueEvent publishes a real catalogue name with validation on. Other
// runs on a shared broker may publish the same name, so it looks only at
// the id it published.
func (s *suite) catalogueEvent(t *testing.T) {
	const name = "iam.user.created"
	cat := catalog.Default()
	entry, ok := cat.Lookup(name)
	if !ok {
		t.Fatalf("catalogue has no %s", name)
	}
	pub := s.newBus(t, s.service("cat-pub"), bus.WithValidator(cat))
	// A temporary queue: a durable one bound to a real name would collect
	// every such event published on a shared broker after the run.
	sub := s.newBus(t, s.service("cat-sub"), bus.WithTemporaryQueue())
	col := newCollector()
	subscribe(t, sub, name, col.handle)

	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	bad := newEvent(t, name, map[string]any{"id": 42})
	if err := pub.Publish(ctx, bad); !errors.Is(err, catalog.ErrSchema) {
		t.Errorf("publish %s with a payload breaking its schema: err = %v, want catalog.ErrSchema", name, err)
	}
	ev := newEvent(t, name, entry.Example)
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatalf("publish %s with the catalogue's example: %v", name, err)
	}
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(ev.Headers.ID) })
	got := col.get(ev.Headers.ID)
	if got.Headers.Name != name || !testkit.JSONEqual(got.Payload, entry.Example) {
		t.Errorf("received %s %s, want %s %s", got.Headers.Name, got.Payload, name, entry.Example)
	}
	if n := col.count(bad.Headers.ID); n != 0 {
		t.Errorf("the refused event arrived %d times", n)
	}
}

func (s *suite) retry(t *testing.T) {
	p := s.prefix("retry")
	pub := s.newBus(t, s.service("retry-pub"))
	sub := s.newBus(t, s.service("retry"), bus.WithRetry(fastRetry))
	col := newCollector()
	col.fail = func(_ *event.Event, attempt int) error {
		if attempt < 3 {
			return fmt.Errorf("transient failure on attempt %d", attempt)
		}
		return nil
	}
	subscribe(t, sub, p+".flaky", col.handle)
	id := publish(t, pub, p+".flaky", nil).Headers.ID
	testkit.Eventually(t, s.retryWait(3), func() error {
		if got := col.attemptsOf(id); len(got) < 3 {
			return fmt.Errorf("handler ran for attempts %v, want 1, 2, 3", got)
		}
		return nil
	})
	closeBus(t, sub)
	if got := col.attemptsOf(id); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("handler ran for attempts %v, want [1 2 3] (it succeeded on the third)", got)
	}
}

func (s *suite) deadLetter(t *testing.T) {
	p := s.prefix("dead")
	svc := s.service("dead")
	policy := fastRetry
	policy.MaxAttempts = 3
	pub := s.newBus(t, s.service("dead-pub"))
	sub := s.newBus(t, svc, bus.WithRetry(policy))
	col := newCollector()
	col.fail = func(ev *event.Event, _ int) error { return fmt.Errorf("boom for %s", ev.Headers.ID) }
	subscribe(t, sub, p+".doomed", col.handle)
	ev := publish(t, pub, p+".doomed", map[string]string{"k": "v"})
	id := ev.Headers.ID

	dl := s.waitDeadLetter(t, sub, svc, id, nil, s.retryWait(3))
	if want := "boom for " + id; !strings.Contains(dl.Error, want) {
		t.Errorf("dead letter error = %q, want it to contain %q", dl.Error, want)
	}
	if dl.Attempts != policy.MaxAttempts {
		t.Errorf("dead letter attempts = %d, want %d", dl.Attempts, policy.MaxAttempts)
	}
	if dl.Name != ev.Headers.Name {
		t.Errorf("dead letter name = %q, want %q", dl.Name, ev.Headers.Name)
	}
	if got, err := event.Decode(dl.Body); err != nil || !testkit.JSONEqual(got.Payload, ev.Payload) {
		t.Errorf("dead letter body %s does not hold the event (%v)", dl.Body, err)
	}
	if dl.FirstFailure.IsZero() || dl.DeadAt.Before(dl.FirstFailure) {
		t.Errorf("dead letter first failure %v, dead at %v: want a first failure no later than the death", dl.FirstFailure, dl.DeadAt)
	}
	closeBus(t, sub)
	if got := col.attemptsOf(id); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("handler ran for attempts %v, want [1 2 3] and no more", got)
	}
}

func (s *suite) panics(t *testing.T) {
	p := s.prefix("panic")
	svc := s.service("panic")
	policy := fastRetry
	policy.MaxAttempts = 2
	pub := s.newBus(t, s.service("panic-pub"))
	sub := s.newBus(t, svc, bus.WithRetry(policy))
	col := newCollector()
	col.fail = func(ev *event.Event, attempt int) error {
		switch {
		case ev.Headers.Name == p+".always":
			panic("kaboom always")
		case attempt == 1:
			panic("kaboom once")
		}
		return nil
	}
	subscribe(t, sub, p+".*", col.handle)
	once := publish(t, pub, p+".once", nil).Headers.ID
	always := publish(t, pub, p+".always", nil).Headers.ID

	testkit.Eventually(t, s.retryWait(2), func() error {
		if got := col.attemptsOf(once); len(got) < 2 {
			return fmt.Errorf("handler that panics once ran for attempts %v, want 1, 2", got)
		}
		return nil
	})
	dl := s.waitDeadLetter(t, sub, svc, always, nil, s.retryWait(2))
	if !strings.Contains(dl.Error, "kaboom always") || dl.Attempts != 2 {
		t.Errorf("dead letter of the handler that always panics: error %q after %d attempts, want the panic value after 2", dl.Error, dl.Attempts)
	}
	closeBus(t, sub)
	if got := col.attemptsOf(once); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("handler that panics once ran for attempts %v, want [1 2]", got)
	}
}

// hostileMaxSize is the event-size limit of the hostile case's
// subscriber: above the 100k-deep nesting (200 kB), below NATS's default
// max_payload (1 MiB), so that every transport carries the oversized body
// to the subscriber, which must refuse it.
const hostileMaxSize = 256 << 10

// hostile sends what a hostile or broken publisher can put on the bus,
// through the transport (no validation on the way): each message is
// dead-lettered on its first delivery with the reason, never handed to a
// handler, never acked and dropped, never blocking the queue; events after
// them are handled.
func (s *suite) hostile(t *testing.T) {
	p := s.prefix("hostile")
	svc := s.service("hostile")
	pub := s.newBus(t, s.service("hostile-pub"))
	// Retries are slow and many: a refusal that waited for them would not
	// be seen within the test's time.
	sub := s.newBus(t, svc, bus.WithMaxEventSize(hostileMaxSize),
		bus.WithRetry(bus.RetryPolicy{MaxAttempts: 10, InitialDelay: time.Hour, MaxDelay: time.Hour}))
	col := newCollector()
	// The handler's catalogue: names under p+".ok" only; anything else it
	// refuses for good.
	col.fail = func(ev *event.Event, _ int) error {
		if !strings.HasPrefix(ev.Headers.Name, p+".ok") {
			return bus.Permanent(fmt.Errorf("%w %q", catalog.ErrUnknownEvent, ev.Headers.Name))
		}
		return nil
	}
	subscribe(t, sub, p+".#", col.handle)

	raw := s.transport(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		defer cancel()
		if err := raw.Close(ctx); err != nil {
			t.Errorf("close raw transport: %v", err)
		}
	})
	envelope := func(name, payload string) []byte {
		return []byte(`{"headers":{"name":"` + name + `","id":"` + s.run + `-` + fmt.Sprint(rand.Uint32()) + `"},"payload":` + payload + `}`)
	}
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	hostile := []struct {
		what, reason string
		body         []byte
	}{
		{"not JSON", "decode", []byte("this is not JSON {" + s.run)},
		{"no headers", "decode", []byte(`{"payload":{"no":"headers","run":"` + s.run + `"}}`)},
		{"headers not an object", "decode", []byte(`{"headers":"` + s.run + `","payload":{}}`)},
		{"an invalid name", "decode", envelope(p+".bad name!", `{}`)},
		{"invalid UTF-8 in the payload", "UTF-8", envelope(p+".ok", "{\"a\":\"\xff\xfe\"}")},
		{"invalid UTF-8 in a header", "UTF-8", []byte("{\"headers\":{\"name\":\"" + p + ".ok\",\"x\":\"\xc3\"},\"payload\":{\"run\":\"" + s.run + "\"}}")},
		{"a payload over the size limit", "too large", envelope(p+".ok", `{"blob":"`+strings.Repeat("x", hostileMaxSize)+`"}`)},
		{"100k-deep nesting", "depth", envelope(p+".ok", `{"deep":`+deep+`}`)},
		{"a payload that is not an object", "decode", envelope(p+".ok", `[1,2]`)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	for i, h := range hostile {
		m := driver.Message{ID: fmt.Sprintf("%s-hostile-%d", s.run, i), Name: p + ".ok", Body: h.body, CreatedAt: time.Now()}
		if err := driver.PublishSync(ctx, raw, m); err != nil {
			t.Fatalf("publish %s through the transport: %v", h.what, err)
		}
	}
	// A valid event whose name the handler does not know: refused for
	// good, so dead-lettered at once rather than after the retries.
	uncatalogued := publish(t, pub, p+".uncatalogued", map[string]string{"run": s.run})
	// The queue is not blocked: an event published after them is handled.
	valid := publish(t, pub, p+".ok", map[string]string{"run": s.run}).Headers.ID
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(valid) })

	for _, h := range hostile {
		dl := s.waitDeadLetter(t, sub, svc, "", h.body, defaultTimeout)
		if dl.Attempts != 1 || !strings.Contains(dl.Error, h.reason) {
			t.Errorf("dead letter of %s: error %q, attempts %d; want an error naming %q, on attempt 1", h.what, dl.Error, dl.Attempts, h.reason)
		}
	}
	dl := s.waitDeadLetter(t, sub, svc, uncatalogued.Headers.ID, nil, defaultTimeout)
	if dl.Attempts != 1 || !strings.Contains(dl.Error, "unknown event") || dl.Name != uncatalogued.Headers.Name {
		t.Errorf("dead letter of the uncatalogued event: name %q, error %q, attempts %d; want %q, unknown event, 1", dl.Name, dl.Error, dl.Attempts, uncatalogued.Headers.Name)
	}
	closeBus(t, sub)
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, ev := range col.events {
		if ev.Headers.ID != valid && ev.Headers.ID != uncatalogued.Headers.ID {
			t.Errorf("a hostile message reached the handler: %s", ev)
		}
	}
}

// keyedIDs: with WithIDKey, an event published without an id gets one
// nobody can compute from its body alone (not event.DerivedID); every
// attempt of one publish has the same id (a retry dedupes), and two
// publishes of the same body that the broker tells apart (here: by their
// message ids) get two.
func (s *suite) keyedIDs(t *testing.T) {
	p := s.prefix("keyed")
	svc := s.service("keyed")
	key := []byte("a server secret of " + s.run)
	sub := s.newBus(t, svc, bus.WithIDKey(key), bus.WithRetry(fastRetry))
	col := newCollector()
	var mu sync.Mutex
	failed := false
	col.fail = func(ev *event.Event, attempt int) error {
		mu.Lock()
		defer mu.Unlock()
		if !failed {
			failed = true
			return errors.New("fails once")
		}
		return nil
	}
	subscribe(t, sub, p+".idless", col.handle)

	raw := s.transport(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
		defer cancel()
		raw.Close(ctx)
	})
	body := []byte(`{"headers":{"name":"` + p + `.idless","serviceName":"node-publisher","createdAt":1700000000000},"payload":{"run":"` + s.run + `"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	for i := range 2 {
		m := driver.Message{ID: fmt.Sprintf("%s-idless-%d", s.run, i), Name: p + ".idless", Body: body}
		if err := driver.PublishSync(ctx, raw, m); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	testkit.Eventually(t, s.retryWait(2), func() error {
		col.mu.Lock()
		defer col.mu.Unlock()
		if len(col.events) < 3 {
			return fmt.Errorf("%d deliveries handled, want 3 (two publishes, one retried)", len(col.events))
		}
		return nil
	})
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.attempts) != 2 {
		t.Fatalf("ids %v, want two: one per publish", col.attempts)
	}
	for id, attempts := range col.attempts {
		if id == event.DerivedID(body) {
			t.Errorf("id %s is the body's hash, computable by anyone", id)
		}
		if len(attempts) == 2 && !slices.Equal(attempts, []int{1, 2}) {
			t.Errorf("id %s: attempts %v, want the retry under the first attempt's id", id, attempts)
		}
	}
}

func (s *suite) twoHandlers(t *testing.T) {
	p := s.prefix("two")
	pub := s.newBus(t, s.service("two-pub"))
	spy := newSpy(s.transport(t))
	sub := s.newBusOn(t, spy, s.service("two"), bus.WithRetry(fastRetry))
	first, second := newCollector(), newCollector()
	second.fail = func(ev *event.Event, attempt int) error {
		if ev.Headers.Name == p+".two" && attempt == 1 {
			return errors.New("second handler fails once")
		}
		return nil
	}
	subscribe(t, sub, p+".two", first.handle)
	subscribe(t, sub, p+".*", second.handle)
	id := publish(t, pub, p+".two", nil).Headers.ID
	testkit.Eventually(t, s.retryWait(2), func() error {
		if got := spy.settlements(id); !slices.Contains(got, "ack") {
			return fmt.Errorf("delivery settled as %v so far, want an ack", got)
		}
		return nil
	})
	// A later event through the same queue: once it is acked, a redelivery
	// of the first would have shown.
	sentinel := publish(t, pub, p+".sentinel", nil).Headers.ID
	testkit.Eventually(t, defaultTimeout, func() error {
		if !slices.Contains(spy.settlements(sentinel), "ack") {
			return errors.New("sentinel not acked yet")
		}
		return nil
	})
	closeBus(t, sub)
	if got := spy.settlements(id); !slices.Equal(got, []string{"retry", "ack"}) {
		t.Errorf("delivery settled as %v, want [retry ack]", got)
	}
	if got := first.attemptsOf(id); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("first handler ran for attempts %v, want [1 2]", got)
	}
	if got := second.attemptsOf(id); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("second handler ran for attempts %v, want [1 2]", got)
	}
	if err := spy.failures(); err != nil {
		t.Errorf("settling failed: %v", err)
	}
}

func (s *suite) order(t *testing.T) {
	p := s.prefix("order")
	pub := s.newBus(t, s.service("order-pub"))
	sub := s.newBus(t, s.service("order"), bus.WithConcurrency(1))
	col := newCollector()
	subscribe(t, sub, p+".seq", col.handle)
	const n = 500
	ids := make([]string, n)
	for i := range n {
		ids[i] = publish(t, pub, p+".seq", map[string]int{"seq": i}).Headers.ID
	}
	col.waitInOrder(t, ids)
}

// asyncOrder publishes a stream with PublishAsync from one goroutine,
// waiting for the confirmations only at the end: every one says the
// broker has the event, and a consumer handling one delivery at a time
// sees the stream in publish order.
func (s *suite) asyncOrder(t *testing.T) {
	p := s.prefix("async")
	pub := s.newBus(t, s.service("async-pub"))
	sub := s.newBus(t, s.service("async"), bus.WithConcurrency(1))
	col := newCollector()
	subscribe(t, sub, p+".seq", col.handle)
	const n = 1000
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	ids := make([]string, n)
	confs := make([]*bus.Confirmation, n)
	for i := range n {
		ev := newEvent(t, p+".seq", map[string]int{"seq": i})
		c, err := pub.PublishAsync(ctx, ev)
		if err != nil {
			t.Fatalf("PublishAsync %d: %v", i, err)
		}
		ids[i], confs[i] = ev.Headers.ID, c
	}
	for i, c := range confs {
		if err := c.Wait(ctx); err != nil {
			t.Fatalf("confirmation %d: %v", i, err)
		}
		if err := c.Err(); err != nil {
			t.Fatalf("confirmation %d: Err() = %v after Wait returned nil", i, err)
		}
	}
	col.waitInOrder(t, ids)
}

// closeGrace is how long closeWaits watches for a Close that does not
// wait: such a Close closes the transport as soon as the consumer has
// stopped, so a passing run spends this once per case and a failing one is
// caught at once.
const closeGrace = 200 * time.Millisecond

// closeWaits: Close stops the consumer, then waits for the running handler
// before it closes the transport and returns. (With concurrency 1 the
// handler runs on the transport's delivering goroutine, so the consumer's
// Stop already waits for it; with 4 only the bus's own wait does.)
func (s *suite) closeWaits(t *testing.T) {
	for _, concurrency := range []int{1, 4} {
		t.Run(fmt.Sprintf("Concurrency%d", concurrency), func(t *testing.T) {
			t.Parallel()
			p := s.prefix(fmt.Sprintf("closewait%d", concurrency))
			pub := s.newBus(t, s.service(fmt.Sprintf("closewait%d-pub", concurrency)))
			spy := newSpy(s.transport(t))
			sub := s.newBusOn(t, spy, s.service(fmt.Sprintf("closewait%d", concurrency)), bus.WithConcurrency(concurrency))
			started, release := make(chan struct{}), make(chan struct{})
			var once, releaseOnce sync.Once
			var finished, finishedAtClose atomic.Bool
			spy.beforeClose = func() { finishedAtClose.Store(finished.Load()) }
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			subscribe(t, sub, p+".slow", func(context.Context, *event.Event) error {
				once.Do(func() { close(started) })
				<-release
				finished.Store(true)
				return nil
			})
			publish(t, pub, p+".slow", nil)
			waitClosed(t, defaultTimeout, started, "the handler starting")

			closed := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
				defer cancel()
				closed <- sub.Close(ctx)
			}()
			waitClosed(t, defaultTimeout, spy.stopping, "Close stopping the consumer")
			grace := time.NewTimer(closeGrace)
			defer grace.Stop()
			select {
			case <-spy.closing:
				t.Fatal("Close closed the transport while a handler was running")
			case err := <-closed:
				t.Fatalf("Close returned (%v) while a handler was running", err)
			case <-grace.C:
			}
			releaseOnce.Do(func() { close(release) })
			timer := time.NewTimer(defaultTimeout)
			defer timer.Stop()
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close: %v", err)
				}
			case <-timer.C:
				t.Fatal("Close did not return after the handler finished")
			}
			if !finishedAtClose.Load() {
				t.Error("Close closed the transport before the running handler finished")
			}
		})
	}
}

// closeDeadline: a handler still running when Close's context ends has its
// own context cancelled, with ErrClosed as the cause, before Close closes
// the transport (so the handler can still settle what it was doing), and
// Close returns the deadline's error.
func (s *suite) closeDeadline(t *testing.T) {
	p := s.prefix("closedeadline")
	pub := s.newBus(t, s.service("closedeadline-pub"))
	spy := newSpy(s.transport(t))
	sub := s.newBusOn(t, spy, s.service("closedeadline"))
	running := make(chan context.Context, 1)
	subscribe(t, sub, p+".stuck", func(ctx context.Context, _ *event.Event) error {
		select {
		case running <- ctx:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	publish(t, pub, p+".stuck", nil)
	var hctx context.Context
	timer := time.NewTimer(defaultTimeout)
	defer timer.Stop()
	select {
	case hctx = <-running:
	case <-timer.C:
		t.Fatal("the handler did not start")
	}
	var causeAtClose atomic.Pointer[error]
	spy.beforeClose = func() {
		cause := context.Cause(hctx)
		causeAtClose.Store(&cause)
	}

	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err = sub.Close(ctx)
	}()
	waitClosed(t, defaultTimeout, done, "Close returning at its deadline while a handler is stuck")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with a handler stuck past the deadline: err = %v, want context.DeadlineExceeded", err)
	}
	var cause error
	if c := causeAtClose.Load(); c != nil {
		cause = *c
	}
	if !errors.Is(cause, bus.ErrClosed) {
		t.Errorf("when the transport was closed, the running handler's context had cause %v, want one wrapping bus.ErrClosed", cause)
	}
}

func (s *suite) closed(t *testing.T) {
	p := s.prefix("closed")
	b := s.newBus(t, s.service("closed"))
	subscribe(t, b, p+".x", func(context.Context, *event.Event) error { return nil })
	testkit.Eventually(t, defaultTimeout, func() error {
		if st := b.Status(); st.State != bus.StateConnected {
			return fmt.Errorf("status %v (%v), want connected", st.State, st.LastError)
		}
		return nil
	})
	closeBus(t, b)
	if st := b.Status(); st.State != bus.StateClosed {
		t.Errorf("status after Close = %v, want closed", st.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
	defer cancel()
	if err := b.Publish(ctx, newEvent(t, p+".x", nil)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close: err = %v, want bus.ErrClosed", err)
	}
	if c, err := b.PublishAsync(ctx, newEvent(t, p+".x", nil)); !errors.Is(err, bus.ErrClosed) || c != nil {
		t.Errorf("PublishAsync after Close: %v, err = %v; want no confirmation and bus.ErrClosed", c, err)
	}
	if err := b.Subscribe(ctx, p+".y", func(context.Context, *event.Event) error { return nil }); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Subscribe after Close: err = %v, want bus.ErrClosed", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// The transport itself refuses work once closed.
	tr := s.transport(t)
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("close transport: %v", err)
	}
	m := driver.Message{ID: event.NewID(), Name: p + ".x", Body: []byte(`{"headers":{"name":"` + p + `.x"},"payload":{}}`), CreatedAt: time.Now()}
	if err := driver.PublishSync(ctx, tr, m); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Transport.Publish after Close: err = %v, want bus.ErrClosed", err)
	}
	_, err := tr.Consume(ctx, driver.QueueSpec{Name: s.service("closed-raw")}, []string{p + ".x"}, func(d driver.Delivery) {})
	if !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Transport.Consume after Close: err = %v, want bus.ErrClosed", err)
	}
}

func (s *suite) cancellation(t *testing.T) {
	p := s.prefix("ctx")
	pub := s.newBus(t, s.service("ctx-pub"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := pub.Publish(ctx, newEvent(t, p+".x", nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: err = %v, want context.Canceled", err)
	}
	if c, err := pub.PublishAsync(ctx, newEvent(t, p+".x", nil)); !errors.Is(err, context.Canceled) || c != nil {
		t.Errorf("PublishAsync with a cancelled context: %v, err = %v; want no confirmation and context.Canceled", c, err)
	}

	sub := s.newBus(t, s.service("ctx-sub"))
	subscribe(t, sub, p+".x", func(context.Context, *event.Event) error { return nil })
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sub.Close(ctx) // an error is fine; hanging is not
	}()
	waitClosed(t, defaultTimeout, done, "Close with an expired context returning")
}

func (s *suite) concurrentPublishes(t *testing.T) {
	p := s.prefix("burst")
	pub := s.newBus(t, s.service("burst-pub"))
	sub := s.newBus(t, s.service("burst"), bus.WithConcurrency(8))
	col := newCollector()
	subscribe(t, sub, p+".many", col.handle)
	const n = 1000
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = newEvent(t, p+".many", map[string]int{"i": i})
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
			defer cancel()
			errs[i] = pub.Publish(ctx, ev)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent publishes failed: %v", err)
	}
	ids := idsOf(evs)
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(ids...) })
	if d := col.duplicates(ids); len(d) > 0 {
		t.Logf("%d events delivered more than once: %s", len(d), describeDups(d))
	}
}

// staleBinding: a delivery that matches no handler of the bus (a binding
// left by an earlier version of the service) is retried, in case its
// handler is being subscribed, and then dead-lettered with ErrNoHandler:
// never acked unseen, never redelivered forever, never given to a handler
// of another pattern.
func (s *suite) staleBinding(t *testing.T) {
	p := s.prefix("stale")
	svc := s.service("stale")
	pub := s.newBus(t, s.service("stale-pub"))
	old := s.newBus(t, svc)
	subscribe(t, old, p+".old.#", func(context.Context, *event.Event) error { return nil })
	closeBus(t, old)

	policy := fastRetry
	policy.MaxAttempts = 3
	spy := newSpy(s.transport(t))
	cur := s.newBusOn(t, spy, svc, bus.WithRetry(policy))
	col := newCollector()
	subscribe(t, cur, p+".live", col.handle)
	stale := publish(t, pub, p+".old.thing", nil).Headers.ID
	live := publish(t, pub, p+".live", nil).Headers.ID
	testkit.Eventually(t, defaultTimeout, func() error { return col.missing(live) })
	dl := s.waitDeadLetter(t, cur, svc, stale, nil, s.retryWait(3))
	if !strings.Contains(dl.Error, bus.ErrNoHandler.Error()) {
		t.Errorf("dead letter error = %q, want it to say %q", dl.Error, bus.ErrNoHandler)
	}
	closeBus(t, cur)
	got := spy.settlements(stale)
	if want := []string{"retry", "retry", "dead"}; !slices.Equal(got, want) {
		t.Errorf("event for the stale binding settled as %v, want %v", got, want)
	}
	if n := col.count(stale); n != 0 {
		t.Errorf("handler of another pattern ran %d times for the stale event", n)
	}
	if err := spy.failures(); err != nil {
		t.Errorf("settling failed: %v", err)
	}
}

func (s *suite) temporaryQueue(t *testing.T) {
	p := s.prefix("tmp")
	svc := s.service("tmp")
	pub := s.newBus(t, s.service("tmp-pub"))
	main := s.newBus(t, svc)
	tail := s.newBus(t, svc, bus.WithTemporaryQueue())
	mainCol, tailCol := newCollector(), newCollector()
	subscribe(t, main, p+".copy", mainCol.handle)
	subscribe(t, tail, p+".copy", tailCol.handle)
	var ids []string
	for i := range 20 {
		ids = append(ids, publish(t, pub, p+".copy", map[string]int{"i": i}).Headers.ID)
	}
	testkit.Eventually(t, defaultTimeout, func() error { return mainCol.missing(ids...) })
	testkit.Eventually(t, defaultTimeout, func() error { return tailCol.missing(ids...) })
	closeBus(t, tail)
	var later []string
	for i := range 5 {
		later = append(later, publish(t, pub, p+".copy", map[string]int{"later": i}).Headers.ID)
	}
	testkit.Eventually(t, defaultTimeout, func() error { return mainCol.missing(later...) })
	closeBus(t, main)
	for _, id := range ids {
		if m, c := mainCol.count(id), tailCol.count(id); m != 1 || c != 1 {
			t.Errorf("event %s handled %d times by the service queue and %d by the temporary one, want once each", id, m, c)
		}
	}
	for _, id := range later {
		if m := mainCol.count(id); m != 1 {
			t.Errorf("event %s published after the temporary queue closed handled %d times by the service queue, want once", id, m)
		}
	}
}

// reconnect breaks every connection in the middle of a stream of events,
// published alternately with Publish and PublishAsync: every publish must
// succeed (waiting for the reconnect within its context, or sent again
// after it when its confirm was lost) and every event must be handled at
// least once.
func (s *suite) reconnect(t *testing.T) {
	if s.h.Disconnect == nil {
		reason := s.h.Features.NoReconnectReason
		if reason == "" {
			reason = "Harness.Disconnect is nil"
		}
		t.Skip(reason)
	}
	p := s.prefix("reconnect")
	pub := s.newBus(t, s.service("reconnect-pub"))
	sub := s.newBus(t, s.service("reconnect"), bus.WithConcurrency(4))
	col := newCollector()
	subscribe(t, sub, p+".stream", col.handle)

	const n = 2000
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = newEvent(t, p+".stream", map[string]int{"i": i})
	}
	var (
		published atomic.Int64
		mu        sync.Mutex
		errs      []error
		stop      = make(chan struct{})
		done      = make(chan struct{})
	)
	fail := func(ev *event.Event, err error) {
		mu.Lock()
		errs = append(errs, fmt.Errorf("event %s: %w", ev.Headers.ID, err))
		mu.Unlock()
	}
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 4*defaultTimeout)
		defer cancel()
		tick := time.NewTicker(time.Millisecond) // a modest, steady rate
		defer tick.Stop()
		var confs []*bus.Confirmation
		var confEvs []*event.Event
		for i, ev := range evs {
			select {
			case <-tick.C:
			case <-stop:
				return
			}
			if i%2 == 0 {
				if err := pub.Publish(ctx, ev); err != nil {
					fail(ev, err)
				}
			} else if c, err := pub.PublishAsync(ctx, ev); err != nil {
				fail(ev, err)
			} else {
				confs, confEvs = append(confs, c), append(confEvs, ev)
			}
			published.Add(1)
		}
		for i, c := range confs {
			if err := c.Wait(ctx); err != nil {
				fail(confEvs[i], err)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	testkit.Eventually(t, defaultTimeout, func() error {
		if k := published.Load(); k < n/4 {
			return fmt.Errorf("%d of %d published before the disconnect", k, n)
		}
		return nil
	})
	s.h.Disconnect(t)
	waitClosed(t, 4*defaultTimeout, done, "the publisher finishing its stream")
	mu.Lock()
	failed := errors.Join(errs...)
	mu.Unlock()
	if failed != nil {
		t.Errorf("publishes across the disconnect failed: %v", failed)
	}
	ids := idsOf(evs)
	testkit.Eventually(t, 4*defaultTimeout, func() error { return col.missing(ids...) })
	if d := col.duplicates(ids); len(d) > 0 {
		t.Logf("%d of %d events handled more than once across the reconnect: %s", len(d), n, describeDups(d))
	}
}
