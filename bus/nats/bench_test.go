package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/cputime"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

// The benchmarks compare herald (bus.Bus over this transport) with the raw
// nats.go JetStream client given the same guarantees: a publish counts
// once its PubAck has come, every publish carries a Nats-Msg-Id, every
// delivery is acked explicitly, from a durable pull consumer. Both sides
// publish from one loop without waiting for each PubAck, at most
// benchInFlight waiting at once (herald's publish window, nats.go's
// PublishAsyncMaxPending), and wait for the last at the end. Both build
// each event with the event package (a ~280-byte OIH event). The
// "transport" variants use this package without the bus (each event
// encoded once, bodies decoded as the raw consumer does), to tell the
// transport's cost from the bus's and the envelope codec's.
//
//	go test ./bus/nats -run '^$' -bench 'Publish|EndToEnd' -benchtime 50000x -count 1
//	go test ./bus/nats -run '^$' -bench LatencyPaced -benchtime 20000x -count 1
//
// measure against an embedded server; with HERALD_TEST_NATS_URL set, the
// external one too. Run each a few times rather than with -count: -count
// repeats one benchmark before the next, so a change in the machine's load
// lands on one side only. Each benchmark gets a stream of its own.

const (
	benchInFlight = 256  // publishes waiting for a PubAck at once, both sides
	benchPrefetch = 256  // deliveries pulled ahead, both sides
	benchPaceRate = 5000 // events per second in the paced latency benchmark
)

var (
	benchServerOnce sync.Once
	benchServer     *natsserver.Server
	benchServerErr  error
	benchServerDir  string
)

func TestMain(m *testing.M) {
	code := testkit.Main(m)
	if benchServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		_ = benchServer.Shutdown(ctx)
		cancel()
	}
	if benchServerDir != "" {
		os.RemoveAll(benchServerDir)
	}
	os.Exit(code)
}

// benchTargets returns the servers to measure: the embedded one, and the
// external one when HERALD_TEST_NATS_URL is set.
func benchTargets(b *testing.B) []server {
	benchServerOnce.Do(func() {
		benchServerDir, benchServerErr = os.MkdirTemp("", "herald-bench-")
		if benchServerErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		benchServer, benchServerErr = natsserver.Run(ctx, natsserver.Config{StoreDir: benchServerDir, Port: natsserver.RandomPort})
	})
	if benchServerErr != nil {
		b.Fatal(benchServerErr)
	}
	out := []server{{name: "embedded", url: benchServer.ClientURL()}}
	if u := os.Getenv(envTestNATSURL); u != "" {
		out = append(out, server{name: "external", url: u})
	}
	return out
}

type benchPayload struct {
	T   int64  `json:"t"` // publish time, ns since the epoch
	ID  string `json:"id"`
	Pad string `json:"username"`
}

// newBenchEvent returns an OIH event of about 280 encoded bytes holding
// the time it was created.
func newBenchEvent(name string, i int) *event.Event {
	ev, err := event.New(name, benchPayload{T: time.Now().UnixNano(), ID: fmt.Sprintf("user-%09d", i), Pad: "someone.with.a.fairly.long.name@example.com"})
	if err != nil {
		panic(err)
	}
	ev.Headers.ServiceName = "bench-publisher"
	ev.Headers.Extra = map[string]json.RawMessage{"tenant": json.RawMessage(`"tenant-0001"`)}
	return ev
}

// latencies collects publish-to-handler latencies.
type latencies struct {
	n    atomic.Int64
	d    []time.Duration
	done chan struct{}
}

func newLatencies(n int) *latencies {
	return &latencies{d: make([]time.Duration, n), done: make(chan struct{})}
}

// record notes one delivery of an event published at t (ns), and reports
// whether it was the last one expected.
func (l *latencies) record(t int64) {
	i := l.n.Add(1) - 1
	if int(i) < len(l.d) {
		l.d[i] = time.Duration(time.Now().UnixNano() - t)
	}
	if int(i) == len(l.d)-1 {
		close(l.done)
	}
}

func (l *latencies) report(b *testing.B) {
	d := slices.Clone(l.d)
	slices.Sort(d)
	q := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// publishEncoded hands bench event i straight to a transport, encoded
// once, without the bus; confirm is called with its PubAck.
func publishEncoded(ctx context.Context, tr driver.Transport, i int, confirm func(error)) error {
	ev := newBenchEvent("bench.user.created", i)
	body, err := ev.Encode()
	if err != nil {
		return err
	}
	return tr.Publish(ctx, driver.Message{ID: ev.Headers.ID, Name: ev.Headers.Name, Body: body, CreatedAt: ev.Headers.CreatedAt}, confirm)
}

// confirmations counts the answers of a stream of transport publishes.
type confirmations struct {
	wg     sync.WaitGroup
	failed atomic.Pointer[error]
}

// add returns the confirm function of one more publish.
func (c *confirmations) add() func(error) {
	c.wg.Add(1)
	return func(err error) {
		if err != nil {
			c.failed.CompareAndSwap(nil, &err)
		}
		c.wg.Done()
	}
}

// wait waits for every answer and fails b on the first error.
func (c *confirmations) wait(b *testing.B) {
	c.wg.Wait()
	if err := c.failed.Load(); err != nil {
		b.Fatal(*err)
	}
}

// publishBus publishes bench events 0..n-1 through pub from this
// goroutine, without waiting for each confirm, and returns once every one
// is confirmed.
func publishBus(b *testing.B, pub *bus.Bus, n int, next func(i int) *event.Event) {
	ctx := context.Background()
	confs := make([]*bus.Confirmation, 0, n)
	for i := range n {
		c, err := pub.PublishAsync(ctx, next(i))
		if err != nil {
			b.Fatal(err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// publishTransport hands bench events 0..n-1 to tr from this goroutine
// and returns once every one is confirmed.
func publishTransport(b *testing.B, tr driver.Transport, n int) {
	ctx := context.Background()
	var confs confirmations
	for i := range n {
		if err := publishEncoded(ctx, tr, i, confs.add()); err != nil {
			b.Fatal(err)
		}
	}
	confs.wait(b)
}

// measure starts timing n events; the function it returns reports their
// rate and the CPU time the process spent per event meanwhile (with the
// embedded server, the server's share included).
func measure(b *testing.B, n int) func() {
	cpu0, _ := cputime.Process()
	start := time.Now()
	return func() {
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
		if cpu1, ok := cputime.Process(); ok {
			b.ReportMetric(float64(cpu1-cpu0)/float64(n)/float64(time.Microsecond), "cpu-µs/event")
		}
	}
}

// BenchmarkPublish measures confirmed publishes: benchInFlight publishes
// waiting for their PubAck at once.
func BenchmarkPublish(b *testing.B) {
	for _, s := range benchTargets(b) {
		b.Run(s.name+"/herald", func(b *testing.B) {
			opts := isolated(b, s.url)
			pub := benchBus(b, s.url, opts, "bench-pub")
			b.ResetTimer()
			done := measure(b, b.N)
			publishBus(b, pub, b.N, func(i int) *event.Event { return newBenchEvent("bench.user.created", i) })
			done()
		})
		// The bus with catalogue validation on, as services run it: a
		// catalogue name, its payload checked against the JSON Schema.
		b.Run(s.name+"/herald-validated", func(b *testing.B) {
			opts := isolated(b, s.url)
			pub := newBus(b, dial(b, s.url, append(opts, WithPublishWindow(benchInFlight))...), "bench-pub", bus.WithValidator(catalog.Default()))
			entry, ok := catalog.Default().Lookup("iam.user.created")
			if !ok {
				b.Fatal("no iam.user.created in the catalogue")
			}
			b.ResetTimer()
			done := measure(b, b.N)
			publishBus(b, pub, b.N, func(int) *event.Event {
				ev, err := event.New("iam.user.created", entry.Example)
				if err != nil {
					b.Fatal(err)
				}
				return ev
			})
			done()
		})
		// The transport alone, given each event encoded once: what this
		// package adds to the raw client, without the bus's checks.
		b.Run(s.name+"/transport", func(b *testing.B) {
			tr := dial(b, s.url, append(isolated(b, s.url), WithPublishWindow(benchInFlight))...)
			b.ResetTimer()
			done := measure(b, b.N)
			publishTransport(b, tr, b.N)
			done()
		})
		b.Run(s.name+"/raw", func(b *testing.B) {
			opts := isolated(b, s.url)
			raw := newRawClient(b, s.url, opts)
			b.ResetTimer()
			done := measure(b, b.N)
			raw.publishAll(b, b.N, "bench.user.created")
			done()
		})
	}
}

// BenchmarkEndToEnd publishes b.N events as fast as they are confirmed
// while one consumer handles them; it reports the rate until the last is
// handled and the publish-to-handler latency (a flood builds a backlog,
// so the latency is mostly queueing).
func BenchmarkEndToEnd(b *testing.B) {
	for _, s := range benchTargets(b) {
		b.Run(s.name+"/herald", func(b *testing.B) {
			opts := isolated(b, s.url)
			lat := newLatencies(b.N)
			benchSubscriber(b, s.url, opts, lat)
			pub := benchBus(b, s.url, opts, "bench-pub")
			b.ResetTimer()
			done := measure(b, b.N)
			publishBus(b, pub, b.N, func(i int) *event.Event { return newBenchEvent("bench.user.created", i) })
			<-lat.done
			done()
			b.StopTimer()
			lat.report(b)
		})
		// The transport alone on both ends: events encoded once, bodies
		// decoded as the raw consumer does, without the bus.
		b.Run(s.name+"/transport", func(b *testing.B) {
			opts := isolated(b, s.url)
			lat := newLatencies(b.N)
			sub := dial(b, s.url, opts...)
			ctx := context.Background()
			c, err := sub.Consume(ctx, driver.QueueSpec{Name: "bench-sub", Prefetch: benchPrefetch}, []string{"bench.#"}, func(d driver.Delivery) {
				var ev struct{ Payload benchPayload }
				if err := json.Unmarshal(d.Body(), &ev); err != nil {
					_ = d.DeadLetter(ctx, err)
					return
				}
				lat.record(ev.Payload.T)
				_ = d.Ack(ctx)
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Stop(context.Background()) })
			pub := dial(b, s.url, append(opts, WithPublishWindow(benchInFlight))...)
			b.ResetTimer()
			done := measure(b, b.N)
			publishTransport(b, pub, b.N)
			<-lat.done
			done()
			b.StopTimer()
			lat.report(b)
		})
		b.Run(s.name+"/raw", func(b *testing.B) {
			opts := isolated(b, s.url)
			raw := newRawClient(b, s.url, opts)
			lat := newLatencies(b.N)
			raw.consume(b, lat)
			b.ResetTimer()
			done := measure(b, b.N)
			raw.publishAll(b, b.N, "bench.user.created")
			<-lat.done
			done()
			b.StopTimer()
			lat.report(b)
		})
	}
}

// BenchmarkLatencyPaced publishes at benchPaceRate events per second
// (below what either side sustains) and reports the publish-to-handler
// latency without a backlog.
func BenchmarkLatencyPaced(b *testing.B) {
	for _, s := range benchTargets(b) {
		b.Run(s.name+"/herald", func(b *testing.B) {
			opts := isolated(b, s.url)
			lat := newLatencies(b.N)
			benchSubscriber(b, s.url, opts, lat)
			pub := benchBus(b, s.url, opts, "bench-pub")
			ctx := context.Background()
			var confs []*bus.Confirmation
			b.ResetTimer()
			paced(b, b.N, func(i int) error {
				c, err := pub.PublishAsync(ctx, newBenchEvent("bench.user.created", i))
				confs = append(confs, c)
				return err
			})
			for _, c := range confs {
				if err := c.Wait(ctx); err != nil {
					b.Fatal(err)
				}
			}
			<-lat.done
			b.StopTimer()
			lat.report(b)
		})
		b.Run(s.name+"/raw", func(b *testing.B) {
			opts := isolated(b, s.url)
			raw := newRawClient(b, s.url, opts)
			lat := newLatencies(b.N)
			raw.consume(b, lat)
			b.ResetTimer()
			paced(b, b.N, func(i int) error { return raw.publishAsync("bench.user.created", i) })
			raw.waitAcks(b)
			<-lat.done
			b.StopTimer()
			lat.report(b)
		})
	}
}

func benchBus(b *testing.B, url string, opts []Option, service string) *bus.Bus {
	return newBus(b, dial(b, url, append(opts, WithPublishWindow(benchInFlight))...), service, bus.WithPrefetch(benchPrefetch))
}

// benchSubscriber subscribes a herald service to the benchmark's events,
// recording each one's latency.
func benchSubscriber(b *testing.B, url string, opts []Option, lat *latencies) {
	sub := benchBus(b, url, opts, "bench-sub")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := sub.Subscribe(ctx, "bench.#", func(_ context.Context, ev *event.Event) error {
		var p benchPayload
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			return err
		}
		lat.record(p.T)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}

// paced calls publish n times at benchPaceRate per second, from this
// goroutine: publish hands an event over without waiting for its ack.
func paced(b *testing.B, n int, publish func(i int) error) {
	const perTick = benchPaceRate / 1000
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; {
		<-tick.C
		for k := 0; k < perTick && i < n; k, i = k+1, i+1 {
			if err := publish(i); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// rawClient is the nats.go JetStream client used directly, with the
// guarantees herald gives.
type rawClient struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	stream  string
	prefix  string
	errs    atomic.Int64
	lastErr atomic.Pointer[error]
}

func newRawClient(b *testing.B, url string, opts []Option) *rawClient {
	// The streams are made as herald makes them (the same options), so
	// both sides write to identically configured streams.
	tr := dial(b, url, opts...)
	nc, err := natsgo.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	r := &rawClient{nc: nc, stream: tr.o.stream, prefix: tr.o.prefix}
	r.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(benchInFlight),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *natsgo.Msg, err error) {
			r.errs.Add(1)
			r.lastErr.Store(&err)
		}),
	)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func (r *rawClient) msg(name string, i int) *natsgo.Msg {
	ev := newBenchEvent(name, i)
	body, err := ev.Encode()
	if err != nil {
		panic(err)
	}
	return &natsgo.Msg{
		Subject: r.prefix + "." + name,
		Data:    body,
		Header:  natsgo.Header{jetstream.MsgIDHeader: []string{ev.Headers.ID}},
	}
}

// publishAll publishes n events asynchronously, at most benchInFlight
// waiting for a PubAck, and returns once every PubAck has come.
func (r *rawClient) publishAll(b *testing.B, n int, name string) {
	for i := range n {
		if err := r.publishAsync(name, i); err != nil {
			b.Fatal(err)
		}
	}
	r.waitAcks(b)
}

func (r *rawClient) publishAsync(name string, i int) error {
	_, err := r.js.PublishMsgAsync(r.msg(name, i), jetstream.WithStallWait(time.Minute))
	return err
}

// waitAcks waits for every PubAck and fails b if a publish failed.
func (r *rawClient) waitAcks(b *testing.B) {
	select {
	case <-r.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("PubAcks did not all come within a minute")
	}
	if n := r.errs.Load(); n > 0 {
		b.Fatalf("%d publishes failed: %v", n, *r.lastErr.Load())
	}
}

// consume reads the stream through a durable pull consumer, acking each
// delivery after decoding it.
func (r *rawClient) consume(b *testing.B, lat *latencies) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cons, err := r.js.CreateOrUpdateConsumer(ctx, r.stream, jetstream.ConsumerConfig{
		Durable:       "bench-raw",
		FilterSubject: r.prefix + ".>",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       DefaultAckWait,
		MaxDeliver:    -1,
		MaxAckPending: 4 * benchPrefetch,
	})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev struct{ Payload benchPayload }
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			_ = m.Term()
			return
		}
		lat.record(ev.Payload.T)
		_ = m.Ack()
	}, jetstream.PullMaxMessages(benchPrefetch))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
}
