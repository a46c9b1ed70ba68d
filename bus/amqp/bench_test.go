package amqp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/cputime"
)

// Benchmarks against a real RabbitMQ (HERALD_TEST_AMQP_URL), herald side
// by side with the raw amqp091-go client given the same guarantees
// (persistent messages, publisher confirms, a prefetch of DefaultPrefetch,
// an ack per delivery) and the same shape: both publish from one loop
// without waiting for each confirm, at most benchInFlight unconfirmed at
// once (herald's publish window, the raw client's slots), and wait for the
// last confirm at the end; and with OIH's Node library
// (HERALD_TEST_OIH_NODE_MODULES), all with the same ~280-byte event.
// Latencies compare like with like only at the same offered rate (the
// paced modes): a flood's latency is the length of the backlog each side
// builds. Run them with:
//
//	HERALD_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
//	HERALD_TEST_OIH_NODE_MODULES=… \
//	go test ./bus/amqp -run '^$' -bench . -benchtime 20000x -count 1
//
// a few times rather than with -count, which repeats one benchmark before
// the next, so that a change in the machine's load does not land on one
// side only.
//
// Metrics: events/s; p50-ms and p99-ms, the latency from publish to
// handler (end-to-end benchmarks); cpu-µs/event, the CPU this process (the
// client side: publisher and consumer) spent per event.

const (
	benchSize     = 280                  // bytes of the encoded event
	benchInFlight = DefaultPublishWindow // unconfirmed publishes at once, both sides
	benchUser     = "5f1c0c6e2a9b4c0012345678"
	benchTenant   = "5f1c0c6e2a9b4c00aaaaaaaa"
)

// benchEvent returns event seq of a run: payload {seq, t (send time, unix
// ns), user, tenant, pad}, padded so that the encoded event is about
// benchSize bytes.
func benchEvent(name, service string, seq int, sent time.Time) *event.Event {
	ev := &event.Event{
		Headers: event.Headers{Name: name, ServiceName: service, CreatedAt: sent, ID: event.NewID()},
		Payload: fmt.Appendf(nil, `{"seq":%d,"t":%d,"user":%q,"tenant":%q,"pad":"%s"}`,
			seq, sent.UnixNano(), benchUser, benchTenant, benchPad(name, service)),
	}
	return ev
}

var benchPads sync.Map // name+service → padding

// benchPad returns the padding that brings an event of name and service to
// benchSize bytes (computed once, for a five-digit seq).
func benchPad(name, service string) string {
	key := name + "\x00" + service
	if p, ok := benchPads.Load(key); ok {
		return p.(string)
	}
	probe := &event.Event{
		Headers: event.Headers{Name: name, ServiceName: service, CreatedAt: time.Now(), ID: event.NewID()},
		Payload: fmt.Appendf(nil, `{"seq":10000,"t":%d,"user":%q,"tenant":%q,"pad":""}`, time.Now().UnixNano(), benchUser, benchTenant),
	}
	body, _ := probe.Encode()
	pad := strings.Repeat("x", max(0, benchSize-len(body)))
	benchPads.Store(key, pad)
	return pad
}

// sentAt reads the payload's "t" from an encoded event without decoding
// all of it; the same helper serves herald and the raw client.
func sentAt(body []byte) (seq int, sent time.Time, ok bool) {
	num := func(key string) (int64, bool) {
		i := bytes.Index(body, []byte(`"`+key+`":`))
		if i < 0 {
			return 0, false
		}
		rest := body[i+len(key)+3:]
		j := bytes.IndexAny(rest, ",}")
		if j < 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
		return n, err == nil
	}
	s, ok1 := num("seq")
	t, ok2 := num("t")
	return int(s), time.Unix(0, t), ok1 && ok2
}

// latencies records the first successful handling of each event.
type latencies struct {
	n       int
	handled atomic.Int64
	done    chan struct{}
	mu      sync.Mutex
	lat     []time.Duration // by seq; 0 = not yet
	last    time.Time
}

func newLatencies(n int) *latencies {
	return &latencies{n: n, done: make(chan struct{}), lat: make([]time.Duration, n)}
}

func (l *latencies) record(seq int, sent time.Time) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < 0 || seq >= l.n || l.lat[seq] != 0 {
		return
	}
	l.lat[seq] = max(now.Sub(sent), 1)
	l.last = now
	if l.handled.Add(1) == int64(l.n) {
		close(l.done)
	}
}

func (l *latencies) wait(b *testing.B, timeout time.Duration) {
	select {
	case <-l.done:
	case <-time.After(timeout):
		b.Fatalf("%d of %d events handled after %v", l.handled.Load(), l.n, timeout)
	}
}

// meter is the start of a measurement: the time, and the process's CPU
// time then.
type meter struct {
	start time.Time
	cpu   time.Duration
}

func startMeter() meter {
	cpu, _ := cputime.Process()
	return meter{start: time.Now(), cpu: cpu}
}

// reportCPU reports the CPU time spent per event since m started.
func (m meter) reportCPU(b *testing.B, n int) {
	if cpu, ok := cputime.Process(); ok {
		b.ReportMetric(float64(cpu-m.cpu)/float64(n)/float64(time.Microsecond), "cpu-µs/event")
	}
}

func (l *latencies) report(b *testing.B, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.lat)
	slices.Sort(s)
	pct := func(p float64) float64 {
		i := min(len(s)-1, max(0, int(float64(len(s))*p+0.5)-1))
		return float64(s[i]) / float64(time.Millisecond)
	}
	elapsed := l.last.Sub(start)
	b.ReportMetric(float64(l.n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// pacer hands out sequence numbers 0..n-1, at rate per second when rate >
// 0; -1 when done.
type pacer struct {
	n, rate int
	next    atomic.Int64
	start   time.Time
}

func (p *pacer) take() int {
	i := int(p.next.Add(1) - 1)
	if i >= p.n {
		return -1
	}
	if p.rate > 0 {
		if d := time.Until(p.start.Add(time.Duration(i) * time.Second / time.Duration(p.rate))); d > 0 {
			time.Sleep(d)
		}
	}
	return i
}

func benchURL(b *testing.B) string {
	b.Helper()
	return testURL(b)
}

// benchQueue declares a durable queue bound to name (so that published
// messages are stored, as with a subscriber) and deletes it afterwards.
func benchQueue(b *testing.B, name, queue string) {
	b.Helper()
	conn, err := amqp091.Dial(benchURL(b))
	if err != nil {
		b.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	if err := ch.QueueBind(queue, name, Exchange, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = ch.QueueDelete(queue, false, false, false)
		conn.Close()
	})
}

func heraldBenchBus(b *testing.B, service string, opts ...bus.Option) *bus.Bus {
	b.Helper()
	tr := dialTest(b, WithPublishWindow(benchInFlight), WithPrefetch(DefaultPrefetch))
	bb, err := bus.New(tr, append([]bus.Option{bus.WithService(service), bus.WithoutValidation()}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bb.Close(ctx)
		deleteQueues(b, service)
	})
	return bb
}

// heraldPublish publishes n events from one loop with PublishAsync, paced
// at rate per second when rate > 0, and waits for every confirm.
func heraldPublish(b *testing.B, pub *bus.Bus, name string, n, rate int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p := &pacer{n: n, rate: rate, start: time.Now()}
	confs := make([]*bus.Confirmation, 0, n)
	for i := p.take(); i >= 0; i = p.take() {
		c, err := pub.PublishAsync(ctx, benchEvent(name, pub.Service(), i, time.Now()))
		if err != nil {
			b.Fatalf("publish: %v", err)
		}
		confs = append(confs, c)
	}
	for _, c := range confs {
		if err := c.Wait(ctx); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
}

// rawPublisher is amqp091-go used as well as it can be for confirmed
// publishing: one confirm-mode channel, publishes pipelined through a
// window of benchInFlight slots released as confirms arrive.
type rawPublisher struct {
	ch     *amqp091.Channel
	slots  chan struct{}
	nacked atomic.Int64
	done   chan struct{}
}

func newRawPublisher(b *testing.B) *rawPublisher {
	b.Helper()
	conn, err := amqp091.Dial(benchURL(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, benchInFlight))
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	p := &rawPublisher{ch: ch, slots: make(chan struct{}, benchInFlight), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for c := range confirms {
			if !c.Ack {
				p.nacked.Add(1)
			}
			<-p.slots
		}
	}()
	return p
}

func (p *rawPublisher) publish(exchange, key string, ev *event.Event) error {
	body, err := ev.Encode()
	if err != nil {
		return err
	}
	p.slots <- struct{}{}
	return p.ch.Publish(exchange, key, false, false, amqp091.Publishing{
		ContentType: "application/json", DeliveryMode: amqp091.Persistent,
		MessageId: ev.Headers.ID, Timestamp: ev.Headers.CreatedAt, Body: body,
	})
}

// drain waits until every publish is confirmed.
func (p *rawPublisher) drain(b *testing.B) {
	for i := 0; i < cap(p.slots); i++ {
		p.slots <- struct{}{}
	}
	if n := p.nacked.Load(); n > 0 {
		b.Fatalf("%d publishes nacked", n)
	}
	for i := 0; i < cap(p.slots); i++ {
		<-p.slots
	}
}

func (p *rawPublisher) run(b *testing.B, name string, n, rate int) {
	pc := &pacer{n: n, rate: rate, start: time.Now()}
	for i := pc.take(); i >= 0; i = pc.take() {
		if err := p.publish(Exchange, name, benchEvent(name, "bench-raw", i, time.Now())); err != nil {
			b.Fatal(err)
		}
	}
	p.drain(b)
}

// BenchmarkPublishConfirmed: publishes into a durable queue nobody reads,
// timed until the last confirm.
func BenchmarkPublishConfirmed(b *testing.B) {
	benchURL(b)
	b.Run("herald", func(b *testing.B) {
		run := runID()
		name := "bench-" + run + ".event"
		benchQueue(b, name, "bench-"+run+"-sink")
		pub := heraldBenchBus(b, "bench-"+run+"-pub")
		b.ResetTimer()
		m := startMeter()
		heraldPublish(b, pub, name, b.N, 0)
		b.ReportMetric(float64(b.N)/time.Since(m.start).Seconds(), "events/s")
		m.reportCPU(b, b.N)
	})
	b.Run("amqp091", func(b *testing.B) {
		run := runID()
		name := "bench-" + run + ".event"
		benchQueue(b, name, "bench-"+run+"-sink")
		p := newRawPublisher(b)
		b.ResetTimer()
		m := startMeter()
		p.run(b, name, b.N, 0)
		b.ReportMetric(float64(b.N)/time.Since(m.start).Seconds(), "events/s")
		m.reportCPU(b, b.N)
	})
}

// endToEndModes: flooding (as fast as confirms allow: the rate), and
// paced at 5,000/s and 10,000/s (the latency, at the same offered rate on
// both sides); each without failures and with 1% of the events failing
// their first attempt (retried after 100ms, the shortest retry step).
var endToEndModes = []struct {
	name    string
	rate    int
	failPct int
}{
	{"saturated", 0, 0},
	{"saturated-retry1pct", 0, 1},
	{"paced5k", 5000, 0},
	{"paced5k-retry1pct", 5000, 1},
	{"paced10k", 10000, 0},
}

func failsFirst(seq, pct int) bool { return pct > 0 && seq%(100/pct) == 0 }

func BenchmarkEndToEnd(b *testing.B) {
	benchURL(b)
	for _, m := range endToEndModes {
		b.Run(m.name+"/herald", func(b *testing.B) {
			run := runID()
			name := "bench-" + run + ".event"
			lat := newLatencies(b.N)
			sub := heraldBenchBus(b, "bench-"+run+"-sub",
				bus.WithRetry(bus.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}))
			err := sub.Subscribe(context.Background(), name, func(ctx context.Context, ev *event.Event) error {
				seq, sent, ok := sentAt(ev.Payload)
				if !ok {
					return errors.New("no seq/t in payload")
				}
				if failsFirst(seq, m.failPct) && bus.Attempt(ctx) == 1 {
					return errors.New("fails once")
				}
				lat.record(seq, sent)
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			pub := heraldBenchBus(b, "bench-"+run+"-pub")
			b.ResetTimer()
			mt := startMeter()
			heraldPublish(b, pub, name, b.N, m.rate)
			lat.wait(b, 5*time.Minute)
			b.StopTimer()
			lat.report(b, mt.start)
			mt.reportCPU(b, b.N)
		})
		b.Run(m.name+"/amqp091", func(b *testing.B) {
			run := runID()
			name := "bench-" + run + ".event"
			queue := "bench-" + run + "-sub"
			lat := newLatencies(b.N)
			rawConsume(b, name, queue, lat, m.failPct)
			p := newRawPublisher(b)
			b.ResetTimer()
			mt := startMeter()
			p.run(b, name, b.N, m.rate)
			lat.wait(b, 5*time.Minute)
			b.StopTimer()
			lat.report(b, mt.start)
			mt.reportCPU(b, b.N)
		})
	}
}

// rawConsume is amqp091-go consuming with the same guarantees as herald's
// consumer: a durable queue, prefetch DefaultPrefetch, an ack per
// delivery, and a failed delivery moved to a TTL retry queue (published
// with a confirm, then acked), as herald does.
func rawConsume(b *testing.B, name, queue string, lat *latencies, failPct int) {
	b.Helper()
	conn, err := amqp091.Dial(benchURL(b))
	if err != nil {
		b.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	retryQ := retryQueueName(queue, MinRetryDelay)
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(ch.Qos(DefaultPrefetch, 0, false))
	must(ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil))
	_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
	must(err)
	_, err = ch.QueueDeclare(retryQ, true, false, false, false, amqp091.Table{
		"x-message-ttl": MinRetryDelay.Milliseconds(), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue,
	})
	must(err)
	must(ch.QueueBind(queue, name, Exchange, false, nil))
	pub, err := conn.Channel()
	must(err)
	must(pub.Confirm(false))
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	must(err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range ds {
			seq, sent, ok := sentAt(d.Body)
			if ok && failsFirst(seq, failPct) && d.Headers[HeaderAttempt] == nil {
				h := amqp091.Table{HeaderAttempt: int32(2)}
				dc, err := pub.PublishWithDeferredConfirm("", retryQ, true, false, amqp091.Publishing{
					Headers: h, ContentType: d.ContentType, DeliveryMode: amqp091.Persistent,
					MessageId: d.MessageId, Timestamp: d.Timestamp, Body: d.Body,
				})
				if err == nil && dc.Wait() {
					_ = d.Ack(false)
				} else {
					_ = d.Nack(false, true)
				}
				continue
			}
			if ok {
				lat.record(seq, sent)
			}
			_ = d.Ack(false)
		}
	}()
	b.Cleanup(func() {
		_, _ = pub.QueueDelete(queue, false, false, false)
		_, _ = pub.QueueDelete(retryQ, false, false, false)
		conn.Close()
		<-done
	})
}

// BenchmarkOIHNode runs OIH's Node library end to end (an EventBus
// publishing, another subscribing and acking) on the same broker with the
// same event size, through testdata/node/oih-bench.js.
func BenchmarkOIHNode(b *testing.B) {
	benchURL(b)
	modules := nodeModules(b)
	for _, m := range []struct {
		name string
		rate int
	}{{"saturated", 0}, {"paced5k", 5000}} {
		b.Run(m.name, func(b *testing.B) {
			node := startNode(b, modules, "oih-bench.js", "--url", benchURL(b), "--count", strconv.Itoa(b.N),
				"--rate", strconv.Itoa(m.rate), "--size", strconv.Itoa(benchSize), "--run", runID())
			sum := node.finish(5*time.Minute, nil)
			if sum.Received < b.N {
				b.Fatalf("OIH subscriber received %d of %d", sum.Received, b.N)
			}
			b.ReportMetric(sum.Rate, "events/s")
			b.ReportMetric(sum.P50, "p50-ms")
			b.ReportMetric(sum.P99, "p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func TestBenchEventIsTheBaselineSize(t *testing.T) {
	for _, seq := range []int{0, 10000, 99999} {
		body, err := benchEvent("bench-01234567.event", "bench-01234567-pub", seq, time.Now()).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if len(body) < benchSize-5 || len(body) > benchSize+5 {
			t.Errorf("seq %d: %d bytes, want about %d", seq, len(body), benchSize)
		}
		if s, _, ok := sentAt(body); !ok || s != seq {
			t.Errorf("sentAt(%s) = %d, %v", body, s, ok)
		}
	}
}
