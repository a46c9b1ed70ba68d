package nats

import (
	"log/slog"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// Defaults of Dial's options.
const (
	DefaultStream           = "HERALD_EVENTS"
	DefaultSubjectPrefix    = "herald.events"
	DefaultDeadStream       = "HERALD_DEAD"
	DefaultDeadPrefix       = "herald.dead"
	DefaultMaxAge           = 7 * 24 * time.Hour
	DefaultDuplicateWindow  = 2 * time.Minute
	DefaultAckWait          = 30 * time.Second
	DefaultPublishWindow    = 4096
	DefaultPrefetch         = 256
	defaultAckTimeout       = 10 * time.Second
	defaultConnectTimeout   = 5 * time.Second
	defaultMaxReconnectWait = 2 * time.Second
)

// Option configures Dial.
type Option func(*options)

type options struct {
	stream, prefix         string
	deadStream, deadPrefix string
	maxAge, deadMaxAge     time.Duration
	duplicates             time.Duration
	replicas               int
	ackWait                time.Duration
	window                 int
	name                   string
	logger                 *slog.Logger
	inProcess              natsgo.InProcessConnProvider
	natsOpts               []natsgo.Option
}

func defaultOptions() options {
	return options{
		stream:     DefaultStream,
		prefix:     DefaultSubjectPrefix,
		deadStream: DefaultDeadStream,
		deadPrefix: DefaultDeadPrefix,
		maxAge:     DefaultMaxAge,
		duplicates: DefaultDuplicateWindow,
		replicas:   1,
		ackWait:    DefaultAckWait,
		window:     DefaultPublishWindow,
		name:       "herald",
		logger:     slog.New(slog.DiscardHandler),
	}
}

// WithStream sets the events stream and the subject prefix its events are
// published under (default HERALD_EVENTS and herald.events: an event
// named iam.user.created is stored under herald.events.iam.user.created).
func WithStream(name, subjectPrefix string) Option {
	return func(o *options) {
		if name != "" {
			o.stream = name
		}
		if subjectPrefix != "" {
			o.prefix = subjectPrefix
		}
	}
}

// WithDeadLetterStream sets the stream and subject prefix dead letters are
// kept under (default HERALD_DEAD and herald.dead: a dead letter of queue q
// is stored under herald.dead.<q>.<event name>).
func WithDeadLetterStream(name, subjectPrefix string) Option {
	return func(o *options) {
		if name != "" {
			o.deadStream = name
		}
		if subjectPrefix != "" {
			o.deadPrefix = subjectPrefix
		}
	}
}

// WithMaxAge sets how long the events stream keeps an event (default 7
// days). A consumer that falls further behind loses the oldest events.
func WithMaxAge(d time.Duration) Option { return func(o *options) { o.maxAge = d } }

// WithDeadLetterMaxAge sets how long dead letters are kept (default 0:
// until an operator removes them).
func WithDeadLetterMaxAge(d time.Duration) Option { return func(o *options) { o.deadMaxAge = d } }

// WithDuplicateWindow sets how long the server remembers event ids to drop
// re-sent publishes (default 2 minutes).
func WithDuplicateWindow(d time.Duration) Option { return func(o *options) { o.duplicates = d } }

// WithReplicas sets the streams' replica count on a JetStream cluster
// (default 1).
func WithReplicas(n int) Option { return func(o *options) { o.replicas = n } }

// WithAckWait sets how long the server waits for a delivery to be settled
// before it delivers it again (default 30s). It bounds how long a handler,
// together with the deliveries prefetched ahead of it, may take.
func WithAckWait(d time.Duration) Option { return func(o *options) { o.ackWait = d } }

// WithPublishWindow bounds the publishes waiting for their PubAck at once
// (default 4096); further Publish calls wait for a free slot.
func WithPublishWindow(n int) Option { return func(o *options) { o.window = n } }

// WithName sets the connection name the server shows (default "herald").
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithLogger sets the logger for connection events; the default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithInProcessServer connects to s through an in-process pipe instead of
// the network (the URL is then ignored): s is a server running in this
// process, such as natsserver's, which may have been started without a
// network listener.
func WithInProcessServer(s natsgo.InProcessConnProvider) Option {
	return func(o *options) { o.inProcess = s }
}

// WithNATSOptions adds nats.go connection options (credentials, TLS, …).
// They are applied after herald's own, so they can override them.
func WithNATSOptions(opts ...natsgo.Option) Option {
	return func(o *options) { o.natsOpts = append(o.natsOpts, opts...) }
}
