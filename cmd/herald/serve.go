package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/console"
	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/iam"
	"github.com/heraldhq/herald/natsserver"
)

type serveOptions struct {
	broker     string
	natsListen string
	store      string
	listen     string
	data       string
	events     []string
	noValidate bool
	batchSize  int
	logLevel   string
	signingKey string
	logName    string
	retention  time.Duration
	auditReads bool
	erasure    string
	// tracer is the OTLP tracer provider from the OTEL_* variables; nil
	// when tracing is off.
	tracer trace.TracerProvider

	natsListenSet bool // --nats-listen was given
	brokerFromEnv bool // broker is HERALD_BROKER_URL's, not --broker's
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub: embedded broker, audit log and its HTTP API",
		Long: `serve runs everything herald offers in one process.

With no flags it starts an embedded NATS JetStream broker on 127.0.0.1:4222,
keeps its data and a SQLite audit store in ./herald-data/, and serves the
audit log's OIH-compatible API, its live stream (GET /logs/stream) and a
web console (GET /) on http://127.0.0.1:3007. With no IAM
configured it generates an admin token, stores it in the data folder (mode
0600) and prints where it is.

In production, point it at a shared broker and database: --broker amqp://…
(an OIH RabbitMQ) or nats://…, --store postgres://…?schema=NAME, and OIH IAM
introspection through IAM's environment variables (INTROSPECT_TYPE,
INTROSPECT_ENDPOINT_BASIC, IAM_TOKEN, …). Several replicas may share the
broker and the database (docs/deploy.md), each with a data folder of its
own: a data folder belongs to one process, and a second serve or broker on
it exits at once, naming the pid that holds it.

At start the audit-log queue's bindings become exactly the --events set:
what an earlier start bound and this one does not is unbound, and logged.
Bindings herald did not make (an OIH audit log sharing the queue) stay.

Traces of the bus go to an OpenTelemetry collector over OTLP/HTTP when the
standard variables ask for it (OTEL_EXPORTER_OTLP_ENDPOINT, or
OTEL_TRACES_EXPORTER=otlp; OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and the
other OTEL_* settings apply); otherwise serve traces nothing.`,
		Example: `  herald serve
  herald serve --broker amqp://guest:guest@rabbitmq:5672 --store postgres://herald@db/herald
  PORT=3007 INTROSPECT_ENDPOINT_BASIC=http://iam/api/v1/tokens/introspect IAM_TOKEN=… herald serve --broker amqp://…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.natsListenSet = cmd.Flags().Changed("nats-listen")
			o.brokerFromEnv = !cmd.Flags().Changed("broker") && o.broker != ""
			return serve(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.broker, "broker", os.Getenv(envBrokerURL), "broker URL, amqp:// or nats:// (env "+envBrokerURL+"); empty runs the embedded NATS broker")
	f.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "address of the embedded NATS broker (when --broker is empty)")
	f.StringVar(&o.store, "store", os.Getenv(envStoreURL), "audit store: postgres://…[?schema=NAME] or a SQLite file path (env "+envStoreURL+"); empty uses <data>/audit.db")
	f.StringVar(&o.listen, "listen", defaultServeListen(), "HTTP address of the audit-log API (env "+envPort+" sets the port on all interfaces)")
	addDataDirFlag(cmd, &o.data)
	f.StringSliceVar(&o.events, "events", nil, "event patterns the audit log records (default: every audited catalogue event; '#' for all)")
	f.BoolVar(&o.noValidate, "no-validate", false, "accept --events patterns that match no catalogued event")
	f.IntVar(&o.batchSize, "batch-size", 500, "most events written in one store transaction")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.signingKey, "signing-key", os.Getenv(envSigningKey), "file holding the log's note signing key, shared by replicas (env "+envSigningKey+"); empty: <data>/signing-key, created on first start")
	f.StringVar(&o.logName, "log-name", "", "the log's origin (its key's name) when serve creates the signing key (default: herald- and 16 random hex digits)")
	f.DurationVar(&o.retention, "retention", 0, "delete the headers and payload of entries received longer ago than this, keeping their leaf hashes (0: keep everything)")
	f.StringVar(&o.erasure, "erasure", envOr(envErasure, string(auditlog.ErasureAnonymise)), "what replaces a deleted user's values in the log: anonymise (XXXXXXXXXX) or pseudonymise (one keyed pseudonym per user) (env "+envErasure+"); the key is "+envErasureKey+" or <data>/"+erasureKeyFileName)
	f.BoolVar(&o.auditReads, "audit-reads", true, "record every read of the log (GET /logs, live streams, proofs, exports) in the log as audit-log.logs.read")
	return cmd
}

// defaultServeListen follows OIH's audit log: PORT, when set, is the port
// on every interface (as in its containers); otherwise localhost:3007.
func defaultServeListen() string {
	if p := os.Getenv(envPort); p != "" {
		return ":" + p
	}
	return defaultListen
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usagef("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func serve(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	level, err := o.check()
	if err != nil {
		return err
	}
	storeAt, err := parseStore(o.store, o.data)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	patterns := o.events
	if len(patterns) == 0 {
		patterns = catalog.Default().Audited()
	}
	// Before anything else: one process per data folder.
	lock, err := lockDataDir(o.data)
	if err != nil {
		return err
	}
	defer lock.Release()

	// Bind the HTTP port first: a taken port should fail at once, before
	// anything else starts.
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with --listen)", o.listen, err)
	}
	defer ln.Close()

	// Shutdown order: stop consuming and let running handlers see their
	// batch commit (bus.Close), then stop the ingester, then the store and
	// broker.
	var stop cleanups
	defer stop.run()
	brokerURL, err := o.startBroker(ctx, &stop, stderr, level)
	if err != nil {
		return err
	}
	store, err := storeAt.open(ctx)
	if err != nil {
		return err
	}
	stop.add(func() { store.Close() })
	auth, authDesc, err := serveAuth(o.data)
	if err != nil {
		return err
	}
	signer, keyDesc, err := o.loadSigner()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := o.startTracing(ctx, &stop, log); err != nil {
		return err
	}
	integ := auditlog.RunIntegrator(ctx, auditlog.IntegratorConfig{Store: store, Signer: signer, Logger: log})
	stop.add(integ.Close)
	// The live stream's feed: the ingester announces each commit to it
	// and to the integrator; closing the feed, when the HTTP server shuts
	// down, ends the streams.
	// The ingester hands the feed the entries it committed, as stored, so
	// that the streams need no read of them (Feed.Committed).
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Logger: log})
	metrics := auditlog.NewMetrics(reg)
	// An erasure rewrites and appends entries itself: the feed reads them
	// from the store.
	eraser, err := o.newEraser(store, metrics, func() { feed.Notify(); integ.Kick() }, log)
	if err != nil {
		return err
	}
	b, ingester, err := o.startAuditLog(ctx, &stop, brokerURL, store, metrics, eraser, patterns, feed.Committed, integ.Kick, signer.IDKey(), log)
	if err != nil {
		return err
	}
	if o.retention > 0 {
		go retain(ctx, store, o.retention, ingester, log)
	}

	var watch *queueWatch
	if insp, ok := b.Transport().(driver.QueueInspector); ok {
		watch = newQueueWatch(insp, auditlog.QueueName)
		watch.register(reg)
	}
	api := auditAPI(store, auth, reg, b, feed, watch, log)
	api = withIntegrity(api, signer, ingester, o.auditReads)
	api.Eraser = eraser
	base := "http://" + displayAddr(ln.Addr().String())
	printBanner(stdout, base, o.describeBroker(brokerURL), storeAt.describe(), authDesc, patterns, integrityBanner(base, signer, keyDesc))
	return serveHTTP(ctx, ln, httpapi.New(api), feed.Close, log)
}

// auditAPI is the configuration of the audit log's HTTP API and console,
// reporting b as its queue, with the queue's dead letters and waiting
// messages when watch is not nil.
func auditAPI(store auditlog.Store, auth iam.Authenticator, reg *prometheus.Registry, b *bus.Bus, feed *auditlog.Feed, watch *queueWatch, log *slog.Logger) httpapi.Config {
	return httpapi.Config{
		Store:   store,
		Auth:    auth,
		Feed:    feed,
		Console: console.New(console.Config{Catalog: catalog.Default()}),
		// Empty unless set: the API's defaults are OIH's permissions.
		ReadPermission: os.Getenv("LOG_READ_PERMISSION"),
		PushPermission: os.Getenv("LOG_PUSH_PERMISSION"),
		// logs.push.any unless set: POST for other users and tenants.
		PushAnyPermission: os.Getenv("LOG_PUSH_ANY_PERMISSION"),
		Catalog:           catalog.Default(),
		Registerer:        reg,
		Gatherer:          reg,
		Logger:            log,
		Version:           buildVersion(),
		Health: func(ctx context.Context) map[string]httpapi.Check {
			queue := busCheck(b.Status())
			if watch != nil {
				watch.addTo(ctx, &queue)
			}
			return map[string]httpapi.Check{"queue": queue}
		},

		// POST /events publishes on the audit log's bus.
		Publisher:        b,
		EventsPermission: os.Getenv("EVENTS_PUBLISH_PERMISSION"),
	}
}

// printBanner says where everything serve runs is. broker must come
// without its password (describeBroker).
func printBanner(w io.Writer, base, broker, storeDesc, authDesc string, patterns []string, more string) {
	fmt.Fprintf(w, `herald %s is running
  console        %s/
  audit log API  %s/logs   (OpenAPI: %s/openapi.json, metrics: %s/metrics)
  broker         %s
  audit store    %s
  auth           %s
  recording      %s
%sPress Ctrl-C to stop.
`, buildVersion(), base, base, base, base, broker, storeDesc, authDesc, strings.Join(summarise(patterns, 6), ", "), more)
}

// describeBroker is the broker serve uses, for its banner: without a
// password, and saying when HERALD_BROKER_URL chose it.
func (o serveOptions) describeBroker(url string) string {
	d := redactURL(url)
	if o.brokerFromEnv {
		d += " (from " + envBrokerURL + ")"
	}
	return d
}

// check reads the flags serve cannot start with.
func (o serveOptions) check() (slog.Level, error) {
	level, err := parseLevel(o.logLevel)
	if err != nil {
		return 0, err
	}
	if o.batchSize < 1 {
		return 0, usagef("--batch-size must be at least 1")
	}
	if _, err := auditlog.ParseErasureMode(o.erasure); err != nil {
		return 0, usagef("--erasure: %v", err)
	}
	if o.broker != "" && o.natsListenSet {
		// Otherwise --nats-listen would be ignored without a word.
		from := "--broker"
		if o.brokerFromEnv {
			from = envBrokerURL + "=" + redactURL(o.broker)
		}
		return 0, usagef("--nats-listen sets the embedded broker's address, but %s points serve at another broker: drop one of them", from)
	}
	if !o.noValidate {
		for _, p := range o.events {
			if msg := uncatalogued(catalog.Default(), p); msg != "" {
				return 0, usagef("--events %s (--no-validate records it anyway)", msg)
			}
		}
	}
	return level, nil
}

// cleanups are what serve stops on the way out, last started first.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

// startBroker runs the embedded broker when --broker is empty, and returns
// the URL of the broker serve uses.
func (o serveOptions) startBroker(ctx context.Context, stop *cleanups, stderr io.Writer, level slog.Level) (string, error) {
	if o.broker != "" {
		return o.broker, nil
	}
	host, port, err := splitHostPort(o.natsListen)
	if err != nil {
		return "", usagef("--nats-listen: %v", err)
	}
	srv, err := natsserver.Run(ctx, natsserver.Config{StoreDir: brokerStoreDir(o.data), Host: host, Port: port, Logger: natsLogger(stderr, level)})
	if errors.Is(err, natsserver.ErrAddressInUse) {
		return "", takenBrokerAddress("--nats-listen", o.natsListen, err)
	}
	if err != nil {
		return "", fmt.Errorf("start the embedded broker in %s: %w", brokerStoreDir(o.data), err)
	}
	stop.add(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	return srv.ClientURL(), nil
}

// startTracing sets o.tracer from the OTEL_* variables, and has stop flush
// the spans after the bus has closed.
func (o *serveOptions) startTracing(ctx context.Context, stop *cleanups, log *slog.Logger) error {
	tr, err := startTracing(ctx)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	stop.add(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(sctx); err != nil {
			log.Warn("flushing traces", "error", err)
		}
	})
	o.tracer = tr.provider
	log.Info("tracing", "export", tr.desc)
	return nil
}

// startAuditLog subscribes the audit log's ingester to patterns on the
// broker, as the audit-log service; onCommitted, then onCommit, are
// called after each commit that stored new entries
// (IngestConfig.OnCommitted, OnCommit).
func (o serveOptions) startAuditLog(ctx context.Context, stop *cleanups, brokerURL string, store auditlog.Store, metrics *auditlog.Metrics, eraser *auditlog.Eraser, patterns []string, onCommitted func([]auditlog.Entry), onCommit func(), idKey []byte, log *slog.Logger) (*bus.Bus, *auditlog.Ingester, error) {
	transport, err := openTransport(ctx, brokerURL, log)
	if err != nil {
		return nil, nil, err
	}
	if err := followBindings(ctx, transport, patterns, log); err != nil {
		transport.Close(ctx)
		return nil, nil, err
	}
	b, err := bus.New(transport,
		bus.WithService(auditlog.QueueName),
		// Twice the batch in handlers: the next batch is decoded and
		// sealed while one commits. The deliveries held stay 2 × batch.
		bus.WithConcurrency(2*o.batchSize),
		bus.WithPrefetch(2*o.batchSize),
		bus.WithLogger(log),
		bus.WithTracerProvider(o.tracer),
		// Ids of events without one: keyed by the log's secret and the
		// delivery, not the body's hash anyone can compute.
		bus.WithIDKey(idKey),
	)
	if err != nil {
		transport.Close(ctx)
		return nil, nil, err
	}
	ingester := auditlog.NewIngester(auditlog.IngestConfig{
		Store:       store,
		Catalog:     catalog.Default(),
		BatchSize:   o.batchSize,
		Metrics:     metrics,
		Logger:      log,
		OnCommitted: onCommitted,
		OnCommit:    onCommit,
		Eraser:      eraser,
	})
	stop.add(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(cctx); err != nil {
			log.Error("closing bus", "error", err)
		}
		ingester.Close()
	})
	if err := b.SubscribeAll(ctx, patterns, ingester.Handle); err != nil {
		return nil, nil, fmt.Errorf("audit log: %w", err)
	}
	return b, ingester, nil
}

// newEraser is the audit log's erasure of deleted users, keyed by
// HERALD_ERASURE_KEY, or else by the key in the data folder, created on
// first start. Replicas of one log must share the key: they share the
// store's erasure records, which are digests under it.
func (o serveOptions) newEraser(store auditlog.Store, metrics *auditlog.Metrics, onCommit func(), log *slog.Logger) (*auditlog.Eraser, error) {
	mode, err := auditlog.ParseErasureMode(o.erasure)
	if err != nil {
		return nil, usagef("--erasure: %v", err)
	}
	var key []byte
	if k := os.Getenv(envErasureKey); k != "" {
		key = []byte(k)
	} else {
		path := filepath.Join(o.data, erasureKeyFileName)
		var created bool
		if key, created, err = auditlog.LoadOrCreateErasureKey(path); err != nil {
			return nil, err
		}
		if created {
			log.Info("created the erasure key; replicas sharing this store need the same key ("+envErasureKey+")", "path", path)
		}
	}
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Catalog: catalog.Default(), Key: key, Mode: mode, Metrics: metrics, Logger: log, OnCommit: onCommit})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envErasureKey, err)
	}
	return x, nil
}

// followBindings makes the audit log's queue bound to exactly patterns,
// as far as herald bound it: a pattern an earlier start bound and this one
// does not record is removed, so its events no longer reach the queue to
// be retried and dead-lettered for want of a handler. Bindings herald did
// not make (an OIH audit log sharing the queue) stay. Replicas of one
// audit log should run one --events set: the last to start sets the
// bindings.
func followBindings(ctx context.Context, t driver.Transport, patterns []string, log *slog.Logger) error {
	bs, ok := t.(driver.BindingSetter)
	if !ok {
		return nil
	}
	ch, err := bs.SetBindings(ctx, auditlog.QueueName, patterns)
	if err != nil {
		return fmt.Errorf("audit log: set the bindings of queue %s: %w", auditlog.QueueName, err)
	}
	if len(ch.Removed) > 0 || len(ch.Added) > 0 {
		log.Info("audit-log queue bindings follow --events", "queue", auditlog.QueueName, "added", ch.Added, "removed", ch.Removed)
	}
	return nil
}

// serveHTTP serves api on ln until ctx is done, then lets running
// requests finish; onShutdown ends the ones that would not (the live
// streams).
func serveHTTP(ctx context.Context, ln net.Listener, api http.Handler, onShutdown func(), log *slog.Logger) error {
	srv := httpapi.NewServer(api, httpapi.DefaultTimeouts)
	srv.RegisterOnShutdown(onShutdown)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("http shutdown", "error", err)
	}
	return nil
}

// busCheck reports the bus connection for GET /healthcheck.
func busCheck(s bus.Status) httpapi.Check {
	if s.State == bus.StateConnected {
		return httpapi.Check{Status: httpapi.StatusPass}
	}
	msg := s.State.String()
	if s.LastError != nil {
		msg += ": " + s.LastError.Error()
	}
	return httpapi.Check{Status: httpapi.StatusFail, Message: msg}
}

// natsLogger keeps the embedded server's start-up banner and notices out
// of the log unless --log-level is debug: warnings and errors pass.
func natsLogger(w io.Writer, level slog.Level) *slog.Logger {
	if level > slog.LevelDebug {
		level = max(level, slog.LevelWarn)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("component", "nats")
}

func summarise(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(append([]string(nil), s[:n]...), fmt.Sprintf("… (%d patterns)", len(s)))
}

// serveAuth returns OIH IAM introspection when IAM is configured, else a
// generated admin token kept in the data folder.
func serveAuth(dataDir string) (iam.Authenticator, string, error) {
	cfg, err := iam.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, "", fmt.Errorf("IAM configuration: %w", err)
	}
	if cfg.Configured {
		in, err := iam.NewIntrospector(cfg)
		if err != nil {
			return nil, "", fmt.Errorf("IAM introspection: %w", err)
		}
		return in, "OIH IAM introspection (" + cfg.Type + ")", nil
	}
	path := tokenPath(dataDir)
	token, created, err := iam.LoadOrCreateToken(path)
	if err != nil {
		return nil, "", fmt.Errorf("admin token: %w", err)
	}
	desc := "admin token in " + path
	if created {
		desc += " (new)"
	}
	st, err := iam.NewStaticToken(token)
	if err != nil {
		return nil, "", fmt.Errorf("admin token in %s: %w", path, err)
	}
	return st, desc + " — curl -g -H \"Authorization: Bearer $(cat " + path + ")\" …", nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return host, port, nil
}

// displayAddr turns a listener address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
