package bus

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// Option configures a Bus.
type Option func(*options)

type options struct {
	service     string
	logger      *slog.Logger
	validator   Validator
	middleware  []Middleware
	concurrency int
	prefetch    int
	temporary   bool
	maxSize     int
	retry       RetryPolicy
	// tracerProvider, when set, has the bus trace (see WithTracerProvider).
	tracerProvider trace.TracerProvider
	// idKey keys the ids derived for events without one (WithIDKey).
	idKey []byte
}

func defaultOptions() options {
	return options{
		logger:      slog.New(slog.DiscardHandler),
		validator:   catalog.Default(),
		concurrency: 1,
		maxSize:     event.DefaultMaxSize,
		retry:       DefaultRetryPolicy(),
	}
}

// WithIDKey has the bus derive the id of a consumed event that has none
// from key, the delivery's identity (driver.Identified) and the body,
// instead of from the body alone (event.DerivedID): nobody without key
// can compute it in advance, redeliveries and retries of one publish
// keep it, and distinct publishes of one body get distinct ids where the
// broker tells them apart (NATS always; AMQP by message-id or timestamp).
// Give every consumer of a queue the same key.
func WithIDKey(key []byte) Option {
	return func(o *options) { o.idKey = append([]byte(nil), key...) }
}

// WithService sets the service name (required). It is the serviceName of
// published events and the name of the queue this service consumes.
func WithService(name string) Option { return func(o *options) { o.service = name } }

// WithLogger sets the logger; the default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithValidator replaces the catalogue that published events are checked
// against.
func WithValidator(v Validator) Option { return func(o *options) { o.validator = v } }

// WithoutValidation turns catalogue validation of published events off. The
// envelope rules (name syntax, object payload, size) still apply.
func WithoutValidation() Option { return func(o *options) { o.validator = nil } }

// WithMiddleware wraps every handler; the first middleware is the
// outermost.
func WithMiddleware(mw ...Middleware) Option {
	return func(o *options) { o.middleware = append(o.middleware, mw...) }
}

// WithConcurrency sets how many deliveries are handled at once (default 1:
// deliveries are handled one at a time, in the order the queue gives them).
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithPrefetch bounds the deliveries the transport hands out before they
// are settled (0: the transport's default).
func WithPrefetch(n int) Option { return func(o *options) { o.prefetch = n } }

// WithTemporaryQueue consumes from a queue of this bus's own that
// disappears when it closes, so the bus never takes deliveries from the
// service's real queue (herald tail).
func WithTemporaryQueue() Option { return func(o *options) { o.temporary = true } }

// WithMaxEventSize sets the largest encoded event Publish accepts and a
// delivery may be (default event.DefaultMaxSize, 1 MiB): a larger delivery
// is dead-lettered unread, with the reason, so a subscriber holds at most
// prefetch × this many bytes of deliveries besides what the broker's own
// message-size limit lets into the client library's buffers.
func WithMaxEventSize(n int) Option { return func(o *options) { o.maxSize = n } }

// WithTracerProvider has the bus trace its publishes and deliveries with
// tp's tracer (named TracerName): a producer span per publish, from the
// call until the broker's confirm, and a consumer span per delivery
// around its handlers, following OpenTelemetry's messaging semantic
// conventions. The publish span's W3C trace context (traceparent,
// tracestate) travels with the event as transport headers (AMQP message
// headers, NATS headers) and in the envelope's headers; a delivery's span
// is its child, and the handlers' context carries it.
//
// Without this option (or with a nil tp) the bus does not trace: it
// injects nothing, extracts nothing and starts no span, whatever ctx
// carries.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithRetry sets the retry policy for failed handlers.
func WithRetry(p RetryPolicy) Option {
	return func(o *options) {
		if p.MaxAttempts < 1 {
			p.MaxAttempts = 1
		}
		o.retry = p
	}
}

// RetryPolicy says how often and how soon a failed delivery is retried.
// The defaults named below are DefaultRetryPolicy's; a policy given to
// WithRetry is taken as it is (a zero InitialDelay retries at once, a zero
// MaxDelay sets no cap, a zero Jitter none), except that MaxAttempts is at
// least 1.
type RetryPolicy struct {
	// MaxAttempts is the number of deliveries before a failing one is
	// dead-lettered (default 5).
	MaxAttempts int
	// InitialDelay is the delay after the first failure (default 1s); each
	// further failure doubles it, up to MaxDelay (default 1m).
	InitialDelay time.Duration
	MaxDelay     time.Duration
	// Jitter is the fraction of each delay that is randomised (default
	// 0.2: a delay of 10s becomes 8s to 10s), so that retries of many
	// deliveries that failed together spread out.
	Jitter float64
}

// DefaultRetryPolicy returns 5 attempts, 1s initial delay doubling to 1m, 20% jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, InitialDelay: time.Second, MaxDelay: time.Minute, Jitter: 0.2}
}

// Backoff returns the delay before the delivery following a failed
// attempt (attempt is 1 for the first delivery).
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := p.InitialDelay
	for i := 1; i < attempt && (p.MaxDelay <= 0 || d < p.MaxDelay); i++ {
		if d > math.MaxInt64/2 {
			// Without a cap, doubling would overflow into a negative
			// delay (attempt 35 from 1s): saturate instead.
			d = math.MaxInt64
			break
		}
		d *= 2
	}
	if p.MaxDelay > 0 && d > p.MaxDelay {
		d = p.MaxDelay
	}
	if p.Jitter > 0 && d > 0 {
		j := p.Jitter
		if j > 1 {
			j = 1
		}
		d -= time.Duration(rand.Float64() * j * float64(d))
	}
	return d
}
