package amqp

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// Option configures a Transport.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	name          string
	window        int
	prefetch      int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	maxRetryDelay time.Duration
	mandatory     bool
	tls           *tls.Config
	heartbeat     time.Duration
	dialTimeout   time.Duration
	closeTimeout  time.Duration
}

// Defaults.
const (
	// DefaultPublishWindow is the default number of published messages
	// waiting for their confirm at once, over all concurrent Publish calls.
	DefaultPublishWindow = 1000
	// DefaultPrefetch is the default number of unsettled deliveries a
	// consumer holds. It is sized for throughput: with prefetch 1 RabbitMQ
	// delivers ~4k/s here, with a few hundred the broker is the limit.
	DefaultPrefetch = 256
	// MinRetryDelay is the shortest retry step; every requested retry
	// delay is rounded up to 100ms·2^k (or to the cap).
	MinRetryDelay = 100 * time.Millisecond
	// DefaultMaxRetryDelay is the default longest retry step.
	DefaultMaxRetryDelay = time.Hour
)

func defaultOptions() options {
	return options{
		logger:        slog.New(slog.DiscardHandler),
		name:          "herald",
		window:        DefaultPublishWindow,
		prefetch:      DefaultPrefetch,
		minBackoff:    100 * time.Millisecond,
		maxBackoff:    5 * time.Second,
		maxRetryDelay: DefaultMaxRetryDelay,
		heartbeat:     10 * time.Second,
		dialTimeout:   10 * time.Second,
		closeTimeout:  10 * time.Second,
	}
}

// WithLogger sets the logger for connection events (lost, reconnected,
// blocked); the default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithConnectionName sets the connection name the broker shows for this
// transport (the connection_name client property; default "herald").
func WithConnectionName(name string) Option { return func(o *options) { o.name = name } }

// WithPublishWindow bounds the published messages waiting for a confirm at
// once, shared by all concurrent Publish calls (default
// DefaultPublishWindow). A Publish beyond the window waits for a slot.
func WithPublishWindow(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.window = n
		}
	}
}

// WithPrefetch sets the default consumer prefetch (default
// DefaultPrefetch); driver.QueueSpec.Prefetch overrides it per consumer.
func WithPrefetch(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.prefetch = n
		}
	}
}

// WithReconnectBackoff sets the first and the longest wait between
// reconnect attempts (default 100ms doubling to 5s, each with jitter).
func WithReconnectBackoff(min, max time.Duration) Option {
	return func(o *options) {
		if min > 0 {
			o.minBackoff = min
		}
		if max >= o.minBackoff {
			o.maxBackoff = max
		}
	}
}

// WithMaxRetryDelay caps the retry delay (default DefaultMaxRetryDelay).
// Retry delays are rounded up to a step of 100ms·2^k, and a delay above the
// cap is cut to it; each step used is one queue.
func WithMaxRetryDelay(d time.Duration) Option {
	return func(o *options) {
		if d >= MinRetryDelay {
			o.maxRetryDelay = d
		}
	}
}

// WithMandatory publishes as AMQP "mandatory": a message no queue is bound
// for comes back from the broker, and its Publish fails with ErrUnroutable.
// By default such a message is confirmed and dropped by the broker, as
// with OIH's library: a publisher does not know who subscribes, and an
// event nobody subscribes to yet (iam.token.modified without an audit log)
// is not a failure of the publisher.
func WithMandatory() Option { return func(o *options) { o.mandatory = true } }

// WithTLS sets the TLS configuration for amqps:// URLs.
func WithTLS(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithHeartbeat sets the AMQP heartbeat interval (default 10s), which is
// how quickly a silently dead connection is noticed.
func WithHeartbeat(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.heartbeat = d
		}
	}
}

// WithCloseTimeout bounds how long Close waits for outstanding confirms
// when its context has no earlier deadline (default 10s).
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.closeTimeout = d
		}
	}
}
