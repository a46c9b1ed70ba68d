package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's HTTP metrics.
type metrics struct {
	requests   *prometheus.CounterVec   // by route and status code
	duration   *prometheus.HistogramVec // by route
	streams    prometheus.Gauge         // open GET /logs/stream
	streamEnds *prometheus.CounterVec   // streams the server ended, by reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests answered, by route and status code.",
	}, []string{"route", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "herald", Subsystem: "http", Name: "request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to ~16 s
	}, []string{"route"})
	streams := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "herald", Subsystem: "http", Name: "streams",
		Help: "Open GET /logs/stream connections.",
	})
	streamEnds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "http", Name: "stream_closes_total",
		Help: "Streams the server ended, by reason (too-slow, shutdown, error).",
	}, []string{"reason"})
	var err error
	if requests, err = register(reg, requests); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	if streams, err = register(reg, streams); err != nil {
		return nil, err
	}
	if streamEnds, err = register(reg, streamEnds); err != nil {
		return nil, err
	}
	return &metrics{requests: requests, duration: duration, streams: streams, streamEnds: streamEnds}, nil
}

// register registers c, or returns the equal collector registered before
// (a second API on the same registry shares the metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register HTTP metrics: %w", err)
}

// instrument counts and times the requests of one route, and turns a
// panic into a 500 (logged) instead of a dropped connection.
func (a *api) instrument(route string, h http.HandlerFunc) http.Handler {
	requests := a.metrics.requests.MustCurryWith(prometheus.Labels{"route": route})
	duration := a.metrics.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.ErrorContext(r.Context(), "panic in handler", "route", route, "panic", p)
				if !rec.wrote {
					writeError(rec, http.StatusInternalServerError, "internal error", "")
				}
			}
			status := rec.status
			if !rec.wrote {
				status = http.StatusOK
			}
			requests.WithLabelValues(strconv.Itoa(status)).Inc()
			duration.Observe(time.Since(start).Seconds())
		}()
		h(rec, r)
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
