// Package httpapi serves the audit log over HTTP with the REST contract of
// Open Integration Hub's audit-log service, so OIH's web UI and scripts
// keep working against herald:
//
//	GET  /logs           entries, paged and filtered; non-admins see only theirs
//	GET  /logs/stream    the same entries as they are stored (Server-Sent Events)
//	POST /logs           store one event
//	POST /events         publish one CloudEvent on the bus (when Config.Publisher is set)
//	GET  /checkpoint     the latest signed checkpoint, and the integrity
//	                     routes of proof.go
//	GET  /healthcheck    store and bus state (no auth)
//	GET  /openapi.json   the OpenAPI 3.1 document of this API (no auth)
//	GET  /metrics        Prometheus metrics (no auth)
//	GET  /               the web console and its files (when Config.Console is set; no auth)
//
// It fixes what OIH's audit log gets wrong: admins are recognised by the
// permission "all", a user without a tenant sees only their own entries,
// the order is really newest first, total counts the filtered entries,
// page sizes are bounded and filter values are never operators.
package httpapi

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi/wire"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
)

// OIH's audit-log permissions (LOG_READ_PERMISSION, LOG_PUSH_PERMISSION
// override them; the cmd layer reads those).
const (
	DefaultReadPermission = "logs.read"
	DefaultPushPermission = "logs.push"
	// DefaultPushAnyPermission lets a caller who is not an admin POST
	// entries for other users and tenants (a service account that
	// records what its users did). It is herald's, not OIH's.
	DefaultPushAnyPermission = "logs.push.any"
)

// Limits of the API's memory, whatever its callers send.
const (
	// DefaultMaxConcurrentBodies is how many request bodies (POST /logs,
	// POST /events) are read at once; others wait for a turn, at most
	// BodyWait, then are answered 503.
	DefaultMaxConcurrentBodies = 4
	// BodyWait is the longest a request body waits for its turn, and a
	// page of GET /logs for its own.
	BodyWait = 10 * time.Second
	// DefaultMaxPageBytes is the byte budget of one page of GET /logs:
	// the headers and payloads of its entries (auditlog.Query.MaxBytes).
	DefaultMaxPageBytes = 4 << 20
	// DefaultMaxConcurrentPages is how many pages of GET /logs are read
	// and written at once; others wait for a turn, at most BodyWait,
	// then are answered 503.
	DefaultMaxConcurrentPages = 8
)

// Config configures the API. Store and Auth are required.
type Config struct {
	// Store holds the entries.
	Store auditlog.Store
	// Auth authenticates every /logs request: an *iam.Introspector
	// against OIH's IAM, or an *iam.StaticToken. There is no anonymous
	// access.
	Auth iam.Authenticator
	// ReadPermission is needed for GET /logs (default logs.read);
	// PushPermission for POST /logs (default logs.push).
	ReadPermission string
	PushPermission string
	// PushAnyPermission lets a non-admin POST entries naming another
	// user or tenant, and under the ids they choose (default
	// logs.push.any). Without it a non-admin writes as themselves.
	PushAnyPermission string
	// IDKey keys the ids of non-admins' POSTed entries (their own id
	// space; see postLog). Give every replica the same key
	// (auditlog.Signer.IDKey); nil: a random key, so retries of a POST
	// are recognised only until the server restarts.
	IDKey []byte
	// MaxConcurrentBodies bounds the request bodies read at once
	// (default DefaultMaxConcurrentBodies): with MaxEventSize, what
	// bodies can hold of memory.
	MaxConcurrentBodies int
	// MaxPageBytes is the byte budget of a page of GET /logs (default
	// DefaultMaxPageBytes), MaxConcurrentPages how many are served at
	// once (default DefaultMaxConcurrentPages): together what pages can
	// hold of memory, whatever the entries' sizes.
	MaxPageBytes       int
	MaxConcurrentPages int
	// Health reports the state of the parts beside the store (the bus:
	// "queue", as OIH names it) for GET /healthcheck. It is called on
	// every healthcheck and should answer fast; nil reports the store
	// only.
	Health func(ctx context.Context) map[string]Check
	// Catalog marks POSTed events whose name it does not know as unknown
	// (nil marks none, as auditlog.EntryFromEvent).
	Catalog *catalog.Catalog
	// Registerer receives the HTTP metrics; Gatherer is what GET /metrics
	// serves. Pass the same *prometheus.Registry to both, and to
	// auditlog.NewMetrics, to serve every metric from one endpoint. A nil
	// Gatherer takes the Registerer when it is one; both nil use a
	// registry of this API's own.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Logger receives server-side failures (default: discard).
	Logger *slog.Logger
	// Now is the receive time of POSTed events (default time.Now).
	Now func() time.Time
	// Version is reported by GET /healthcheck (default "dev").
	Version string
	// MaxEventSize bounds a POSTed event, encoded (default
	// event.DefaultMaxSize).
	MaxEventSize int
	// Publisher, when set, serves POST /events: a CloudEvent published on
	// the bus after catalogue validation. EventsPermission is needed for
	// it (default events.publish).
	Publisher        Publisher
	EventsPermission string
	// Feed hands GET /logs/stream the entries as they are stored; POST
	// /logs announces its commits to it. Give the one the ingester
	// announces its commits to (IngestConfig.OnCommitted: Feed.Committed), and
	// close it when the server shuts down, which ends the streams. nil:
	// the API makes its own, which learns of entries stored by anything
	// but POST /logs by reading the store every second.
	Feed *auditlog.Feed
	// StreamHeartbeat is how often an idle stream sends a comment
	// (default DefaultStreamHeartbeat).
	StreamHeartbeat time.Duration
	// Console, when set, serves GET / and every GET path the API does
	// not: the web console.
	Console http.Handler
	// VerifierKey is the log's note verifier key, served at GET
	// /checkpoint/key (empty: 404).
	VerifierKey string
	// RecordRead, when set, records every read of entries (GET /logs, the
	// opening of a live stream, a proof, an export) as an
	// audit-log.logs.read event {user, tenant, route, query, count},
	// durably, before the answer is written: an Ingester's Record, which
	// group-commits concurrent reads. Nil records no read.
	RecordRead func(ctx context.Context, ev *event.Event) error
	// Eraser, when set, erases deleted users' values in what POST /logs
	// stores, before it is stored (Prepare) and after (Posted, with
	// whether an admin posted it): an *auditlog.Eraser.
	Eraser interface {
		Prepare(ctx context.Context, entries []auditlog.Entry) error
		Posted(ctx context.Context, e auditlog.Entry, admin bool) error
	}
}

// Check is the state of one part of the service, in GET /healthcheck's
// details.
type Check struct {
	// Status is "pass" or "fail".
	Status string
	// Message says why a check fails. It is shown to unauthenticated
	// callers: keep secrets (URLs with passwords) out of it.
	Message string
	// Info holds more facts (transport, connected since, …), written
	// beside status and message.
	Info map[string]any
}

// Check statuses, as OIH's healthcheck names them.
const (
	StatusPass = "pass"
	StatusFail = "fail"
)

// MarshalJSON writes {"status":…, "message":…, …Info}.
func (c Check) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(c.Info)+2)
	for k, v := range c.Info {
		m[k] = v
	}
	m["status"] = c.Status
	if c.Message != "" {
		m["message"] = c.Message
	}
	return json.Marshal(m)
}

//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.1 document of the API (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

type api struct {
	bodies    chan struct{} // a token per body being read
	pages     chan struct{} // a token per page of GET /logs being served
	cfg       Config
	log       *slog.Logger
	metrics   *metrics
	feed      *auditlog.Feed
	heartbeat time.Duration
	renders   *renderCache
}

// New returns the API's handler. It panics when Store or Auth is nil, or
// when its metrics cannot be registered (a name taken by a different
// metric), as http.Handle panics on a nil handler: these are wiring
// mistakes, not runtime conditions. Calling New twice with one registry
// shares the metrics.
func New(cfg Config) http.Handler {
	if cfg.Store == nil {
		panic("httpapi: Config.Store is nil")
	}
	if cfg.Auth == nil {
		panic("httpapi: Config.Auth is nil")
	}
	if cfg.ReadPermission == "" {
		cfg.ReadPermission = DefaultReadPermission
	}
	if cfg.PushPermission == "" {
		cfg.PushPermission = DefaultPushPermission
	}
	if cfg.PushAnyPermission == "" {
		cfg.PushAnyPermission = DefaultPushAnyPermission
	}
	if len(cfg.IDKey) == 0 {
		cfg.IDKey = make([]byte, 32)
		rand.Read(cfg.IDKey)
	}
	if cfg.MaxPageBytes <= 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	if cfg.MaxConcurrentPages <= 0 {
		cfg.MaxConcurrentPages = DefaultMaxConcurrentPages
	}
	if cfg.MaxConcurrentBodies <= 0 {
		cfg.MaxConcurrentBodies = DefaultMaxConcurrentBodies
	}
	if cfg.EventsPermission == "" {
		cfg.EventsPermission = DefaultEventsPermission
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.MaxEventSize <= 0 {
		cfg.MaxEventSize = event.DefaultMaxSize
	}
	if cfg.Gatherer == nil {
		if g, ok := cfg.Registerer.(prometheus.Gatherer); ok {
			cfg.Gatherer = g
		} else if cfg.Registerer == nil {
			reg := prometheus.NewRegistry()
			cfg.Registerer, cfg.Gatherer = reg, reg
		} else {
			panic("httpapi: Config.Registerer is not a Gatherer and Config.Gatherer is nil")
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		panic(fmt.Sprintf("httpapi: %v", err))
	}
	if cfg.Feed == nil {
		cfg.Feed = auditlog.NewFeed(auditlog.FeedConfig{Store: cfg.Store, Logger: cfg.Logger})
	}
	if cfg.StreamHeartbeat <= 0 {
		cfg.StreamHeartbeat = DefaultStreamHeartbeat
	}
	a := &api{cfg: cfg, log: cfg.Logger, metrics: m, feed: cfg.Feed, heartbeat: cfg.StreamHeartbeat, renders: new(renderCache),
		bodies: make(chan struct{}, cfg.MaxConcurrentBodies),
		pages:  make(chan struct{}, cfg.MaxConcurrentPages)}

	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, a.instrument(pattern, h))
	}
	handle("GET /logs", a.authorize(cfg.ReadPermission, a.listLogs))
	handle("GET /logs/stream", a.authorize(cfg.ReadPermission, a.streamLogs))
	handle("POST /logs", a.authorize(cfg.PushPermission, a.postLog))
	if cfg.Publisher != nil {
		handle("POST /events", a.authorize(cfg.EventsPermission, a.postEvent))
	}
	handle("GET /logs/{id}/proof", a.authorize(cfg.ReadPermission, a.proof))
	handle("GET /proof/consistency", a.authorize(cfg.ReadPermission, a.consistency))
	handle("GET /checkpoints", a.authorize(cfg.ReadPermission, a.checkpoints))
	handle("GET /export", a.authorize(cfg.ReadPermission, a.export))
	handle("GET /checkpoint", a.checkpoint)
	handle("GET /checkpoint/key", a.checkpointKey)
	handle("GET /healthcheck", a.healthcheck)
	handle("GET /openapi.json", a.openapi)
	mux.Handle("GET /metrics", a.instrument("GET /metrics",
		promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{a.log}}).ServeHTTP))
	if cfg.Console != nil {
		// The console takes every GET path no route of the API takes; a
		// path it does not know either answers in the API's error shape.
		console := cfg.Console
		mux.Handle("GET /", a.instrument("GET /", func(w http.ResponseWriter, r *http.Request) {
			console.ServeHTTP(&routeErrorWriter{ResponseWriter: w, path: r.URL.Path, method: r.Method}, r)
		}))
	}
	return cors(checkQuery(routeErrors(mux)))
}

// checkQuery refuses, for every route, a query string with more than
// MaxQueryParams parameters or one net/url cannot read whole: r.URL.Query
// would silently drop what it cannot read.
func checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := queryValues(r.URL.RawQuery); err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// routeErrors answers the requests mux has no route for in the API's
// error shape, not the mux's plain text: 404 for a path nothing serves
// ("/" too, when there is no console), 405 with Allow for a path served
// for other methods. Every other answer, redirects to a cleaned path
// included, is the mux's own.
func routeErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(&routeErrorWriter{ResponseWriter: w, path: r.URL.Path, method: r.Method}, r)
	})
}

// routeErrorWriter turns the mux's plain-text 404 and 405 into the API's
// error body, keeping the headers the mux set (Allow).
type routeErrorWriter struct {
	http.ResponseWriter
	path, method string
	replaced     bool
}

func (w *routeErrorWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		w.replaced = true
		writeError(w.ResponseWriter, code, fmt.Sprintf("no such endpoint: %s (GET /openapi.json lists them)", w.path), "")
	case http.StatusMethodNotAllowed:
		w.replaced = true
		writeError(w.ResponseWriter, code, fmt.Sprintf("%s does not answer %s (allowed: %s)", w.path, w.method, w.Header().Get("Allow")), "")
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *routeErrorWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil // the mux's plain-text body
	}
	return w.ResponseWriter.Write(b)
}

// authorize authenticates the request and checks perm, answering as OIH's
// iam-utils does on failure: 401 with its message, 403 MISSING_PERMISSION.
func (a *api) authorize(perm string, next func(http.ResponseWriter, *http.Request, *iam.User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := a.cfg.Auth.Authenticate(r.Context(), r)
		if err != nil {
			var e *iam.Error
			if !errors.As(err, &e) {
				e = iam.ErrAuthorizationFailed
			}
			level := slog.LevelDebug
			if errors.Is(err, iam.ErrAuthorizationFailed) {
				// IAM could not answer: an operator should know.
				level = slog.LevelWarn
			}
			a.log.Log(r.Context(), level, "authentication failed", "path", r.URL.Path, "error", err)
			writeError(w, e.Status, e.Message, "")
			return
		}
		if !u.Can(perm) {
			details, _ := json.Marshal([]string{perm})
			writeError(w, http.StatusForbidden, iam.ErrMissingPermission.Message, string(details))
			return
		}
		next(w, r, u)
	}
}

// bodyLimit is the most bytes of a request body read: room for an event
// of MaxEventSize pretty-printed to twice its size (the encoded event is
// checked after).
func (a *api) bodyLimit() int64 { return int64(a.cfg.MaxEventSize)*2 + 4096 }

// readBody reads r's body, at most bodyLimit bytes, into a buffer sized
// by its Content-Length when it has one.
func (a *api) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := a.bodyLimit()
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength > 0 && r.ContentLength <= limit {
		// net/http ends the body at its Content-Length.
		b := make([]byte, r.ContentLength)
		_, err := io.ReadFull(body, b)
		return b, err
	}
	return io.ReadAll(body)
}

// takeBody reads r's body in its turn (acquireBody, readBody), answering
// 413, 503 or 400 itself and returning false when it cannot.
func (a *api) takeBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	release, ok := a.acquireBody(w, r)
	if !ok {
		return nil, false
	}
	body, err := a.readBody(w, r)
	release()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", a.bodyLimit()), "")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "read request body: "+err.Error(), "")
		return nil, false
	}
	return body, true
}

// acquireBody waits for a turn to read r's body (MaxConcurrentBodies at
// once), at most BodyWait: past it, or when the request ends, it answers
// 503 and returns false. The body of a request too large by its
// Content-Length is refused first, with 413, without a turn.
func (a *api) acquireBody(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if limit := a.bodyLimit(); r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit), "")
		return nil, false
	}
	return acquire(w, r, a.bodies, "too many request bodies are being read; retry")
}

// acquire waits for a token of sem, at most BodyWait: past it, or when
// the request ends, it answers 503 with busy and returns false.
func acquire(w http.ResponseWriter, r *http.Request, sem chan struct{}, busy string) (release func(), ok bool) {
	t := time.NewTimer(BodyWait)
	defer t.Stop()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-t.C:
	case <-r.Context().Done():
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, busy, "")
	return nil, false
}

// writeError answers OIH's error shape: {"errors":[{"message","code"}]}.
func writeError(w http.ResponseWriter, status int, message, details string) {
	writeJSON(w, status, wire.ErrorBody{Errors: []wire.ErrorMessage{{Message: message, Code: status, Details: details}}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"message":"encode response","code":500}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// internalError logs err and answers 500 without its details, which may
// name hosts or files.
func (a *api) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.ErrorContext(r.Context(), what, "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, what, "")
}

func (a *api) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(openAPIDocument)
}

// healthcheck answers as OIH's: {status, version, details:{…}}, 200 when
// every part passes, else 500. The store is pinged; the rest comes from
// Config.Health.
func (a *api) healthcheck(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	details := map[string]Check{}
	if a.cfg.Health != nil {
		for k, c := range a.cfg.Health(ctx) {
			details[k] = c
		}
	}
	store := Check{Status: StatusPass}
	if err := a.cfg.Store.Ping(ctx); err != nil {
		a.log.WarnContext(ctx, "healthcheck: store unreachable", "error", err)
		store = Check{Status: StatusFail, Message: "store unreachable"}
	}
	details["store"] = store
	status, code := StatusPass, http.StatusOK
	for _, c := range details {
		if c.Status != StatusPass {
			status, code = StatusFail, http.StatusInternalServerError
		}
	}
	writeJSON(w, code, struct {
		Status  string           `json:"status"`
		Version string           `json:"version"`
		Details map[string]Check `json:"details"`
	}{status, a.cfg.Version, details})
}

// cors answers as the cors middleware OIH's services use with its
// defaults: any origin (the API takes bearer tokens, never cookies), and
// preflight requests with 204.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req)
				h.Add("Vary", "Access-Control-Request-Headers")
			}
			h.Set("Content-Length", "0")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// slogPrinter adapts a *slog.Logger to promhttp's ErrorLog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	p.log.Error(strings.TrimSpace(fmt.Sprintln(v...)))
}
