package simulate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/event"
)

// Publisher publishes one event. *bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, ev *event.Event) error
}

// Config says how much of the story Run publishes, and how fast.
type Config struct {
	// Count is the number of events to publish; 0 publishes until ctx is
	// done.
	Count int
	// Rate bounds the events published per second; 0 publishes as fast as
	// the publisher takes them.
	Rate float64
	// Progress, when set, is called after each published event with the
	// number published so far, from Run's goroutine.
	Progress func(done int)
}

// Stats says what Run published.
type Stats struct {
	// Published counts the events the publisher accepted.
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

// Run publishes the scenario's next events through pub, one at a time and
// in story order, so that every consumer sees cause before effect. It
// returns what was published; the error, when not nil, is the first
// publish that failed (Run stops there) or ctx's error when ctx ended a
// run with a Count. A run without a Count ends with ctx and no error.
func Run(ctx context.Context, s *Scenario, pub Publisher, cfg Config) (st Stats, err error) {
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
	for cfg.Count <= 0 || st.Published < cfg.Count {
		if ctx.Err() != nil {
			return st, stopErr(ctx, cfg)
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return st, stopErr(ctx, cfg)
			}
		}
		ev := s.Next()
		if err = pub.Publish(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return st, stopErr(ctx, cfg)
			}
			return st, fmt.Errorf("event %d (from %s): %w", st.Published+1, ev.Headers.ServiceName, err)
		}
		st.Published++
		st.ByService[ev.Headers.ServiceName]++
		st.ByName[ev.Headers.Name]++
		if cfg.Progress != nil {
			cfg.Progress(st.Published)
		}
	}
	return st, nil
}

func stopErr(ctx context.Context, cfg Config) error {
	if cfg.Count <= 0 {
		return nil
	}
	return ctx.Err()
}

// Router is a Publisher that publishes each event through the publisher of
// its serviceName, made on first use, so every event leaves from a
// connection of the service it names (one bus.Bus per service).
type Router struct {
	newPublisher func(service string) (Publisher, error)

	mu   sync.Mutex
	pubs map[string]Publisher
}

// NewRouter returns a Router that makes the publisher of a service with
// newPublisher.
func NewRouter(newPublisher func(service string) (Publisher, error)) *Router {
	return &Router{newPublisher: newPublisher, pubs: make(map[string]Publisher)}
}

// Open makes the publishers of services now rather than on first use, so
// that a broker nobody answers on is reported before anything is sent.
func (r *Router) Open(services ...string) error {
	for _, svc := range services {
		if _, err := r.publisher(svc); err != nil {
			return err
		}
	}
	return nil
}

// Publish publishes ev through the publisher of ev's serviceName.
func (r *Router) Publish(ctx context.Context, ev *event.Event) error {
	p, err := r.publisher(ev.Headers.ServiceName)
	if err != nil {
		return err
	}
	return p.Publish(ctx, ev)
}

func (r *Router) publisher(service string) (Publisher, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pubs[service]; ok {
		return p, nil
	}
	p, err := r.newPublisher(service)
	if err != nil {
		return nil, fmt.Errorf("publisher for %s: %w", service, err)
	}
	r.pubs[service] = p
	return p, nil
}

// Close closes every publisher the router made that has a
// Close(context.Context) error method (a *bus.Bus does).
func (r *Router) Close(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, svc := range slices.Sorted(maps.Keys(r.pubs)) {
		if c, ok := r.pubs[svc].(interface{ Close(context.Context) error }); ok {
			if err := c.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("close publisher for %s: %w", svc, err))
			}
		}
	}
	clear(r.pubs)
	return errors.Join(errs...)
}
