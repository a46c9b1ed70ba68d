package simulate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
)

// Source gives the events Run publishes, one at a time. *Scenario is one;
// SourceFunc makes one of a function.
type Source interface {
	Next() *event.Event
}

// SourceFunc is a Source whose Next calls the function.
type SourceFunc func() *event.Event

// Next returns f().
func (f SourceFunc) Next() *event.Event { return f() }

// Publisher hands events to the broker without waiting for each one's
// confirm. *bus.Bus satisfies it.
type Publisher interface {
	PublishAsync(ctx context.Context, ev *event.Event) (*bus.Confirmation, error)
}

// Config says how much of the story Run publishes, and how fast.
type Config struct {
	// Count is the number of events to publish; 0 publishes until ctx is
	// done.
	Count int
	// Rate bounds the events published per second; 0 publishes as fast as
	// the publisher takes them.
	Rate float64
	// Timeout bounds each event's publish, from handing it over to the
	// broker's confirm. With a Timeout, the events already handed over
	// when ctx ends still get their answer; without one, ctx bounds them.
	Timeout time.Duration
	// Confirmed, when set, is called with each confirmed event, in the
	// order they were handed over, from Run's goroutine.
	Confirmed func(ev *event.Event)
	// Progress, when set, is called after each confirmed event with the
	// number confirmed so far, from Run's goroutine.
	Progress func(done int)
}

// Stats says what Run published.
type Stats struct {
	// Published counts the events the broker confirmed.
	Published int
	// ByService and ByName count them per serviceName and per event name.
	ByService map[string]int
	ByName    map[string]int
	// Elapsed is the time from the first publish to the return of Run.
	Elapsed time.Duration
}

// Rate returns the events published per second.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Published) / s.Elapsed.Seconds()
}

// Services returns the serviceNames that published, in name order.
func (s Stats) Services() []string { return slices.Sorted(maps.Keys(s.ByService)) }

// maxUnconfirmed bounds the events Run has handed over and not yet seen
// confirmed, for a publisher that does not bound them itself.
const maxUnconfirmed = 4096

// Run publishes src's next events through pub, in order, without waiting
// for each confirm: a publisher over one connection keeps that order (but
// for an event sent again after a lost connection), so with a Scenario
// every consumer sees cause before effect. It returns what
// the broker confirmed; the error, when not nil, is the first publish that
// failed (Run hands over no more events after it, and waits for those it
// has) or ctx's error when ctx ended a run with a Count. A run without a
// Count ends with ctx and no error.
func Run(ctx context.Context, src Source, pub Publisher, cfg Config) (st Stats, err error) {
	st = Stats{ByService: make(map[string]int), ByName: make(map[string]int)}
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		// A bucket of 10 ms worth of events (at least one) keeps high rates
		// reachable without turning a pause into a burst.
		burst := max(1, int(cfg.Rate/100))
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	start := time.Now()
	defer func() { st.Elapsed = time.Since(start) }()

	w := &waiter{st: &st, confirmed: cfg.Confirmed, progress: cfg.Progress}
	defer w.cancelAll()
	for sent := 0; (cfg.Count <= 0 || sent < cfg.Count) && w.err == nil; sent++ {
		if ctx.Err() != nil {
			break
		}
		if lim != nil && lim.Wait(ctx) != nil {
			break
		}
		ev := src.Next()
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if cfg.Timeout > 0 {
			pctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout)
		}
		c, perr := pub.PublishAsync(pctx, ev)
		if perr != nil {
			cancel()
			if ctx.Err() == nil {
				w.fail(sent+1, ev, perr)
			}
			break
		}
		w.add(unconfirmed{n: sent + 1, ev: ev, c: c, cancel: cancel})
		w.reap(len(w.q) >= maxUnconfirmed)
	}
	for len(w.q) > 0 {
		w.reap(true)
	}
	if w.err != nil {
		return st, w.err
	}
	if ctx.Err() != nil {
		return st, stopErr(ctx, cfg)
	}
	return st, nil
}

// unconfirmed is an event handed over whose confirm Run has not seen.
type unconfirmed struct {
	n      int // its place in the story, from 1
	ev     *event.Event
	c      *bus.Confirmation
	cancel context.CancelFunc
}

// waiter collects confirmations in the order the events were handed over.
type waiter struct {
	q         []unconfirmed
	st        *Stats
	confirmed func(ev *event.Event)
	progress  func(done int)
	err       error // the first failed publish
}

func (w *waiter) add(u unconfirmed) { w.q = append(w.q, u) }

// reap takes the answered confirmations at the head of the queue, waiting
// for the first one when block is set.
func (w *waiter) reap(block bool) {
	for len(w.q) > 0 {
		u := w.q[0]
		if block {
			<-u.c.Done()
			block = false
		}
		select {
		case <-u.c.Done():
		default:
			return
		}
		w.q[0] = unconfirmed{}
		w.q = w.q[1:]
		u.cancel()
		if err := u.c.Err(); err != nil {
			w.fail(u.n, u.ev, err)
			continue
		}
		w.st.Published++
		w.st.ByService[u.ev.Headers.ServiceName]++
		w.st.ByName[u.ev.Headers.Name]++
		if w.confirmed != nil {
			w.confirmed(u.ev)
		}
		if w.progress != nil {
			w.progress(w.st.Published)
		}
	}
}

func (w *waiter) fail(n int, ev *event.Event, err error) {
	if w.err == nil {
		w.err = fmt.Errorf("event %d (from %s): %w", n, ev.Headers.ServiceName, err)
	}
}

// cancelAll releases the contexts of events still unconfirmed when Run
// returns early.
func (w *waiter) cancelAll() {
	for _, u := range w.q {
		u.cancel()
	}
}

func stopErr(ctx context.Context, cfg Config) error {
	if cfg.Count <= 0 {
		return nil
	}
	return ctx.Err()
}
