package auditlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the audit log's ingest metrics.
type Metrics struct {
	Ingested   *prometheus.CounterVec
	Duplicates prometheus.Counter
	BatchSize  prometheus.Histogram
	Lag        prometheus.Histogram
	StoreTime  *prometheus.HistogramVec
	Failures   prometheus.Counter
	Anonymised prometheus.Counter
	// Conflicts counts deliveries of an event other than the one stored
	// under its id: not stored, logged.
	Conflicts prometheus.Counter
}

// NewMetrics creates the ingest metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "events_ingested_total",
			Help: "Events written to the audit log, by event name (redeliveries of stored events included; see events_duplicate_total).",
		}, []string{"name"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "events_duplicate_total",
			Help: "Deliveries of events already stored (redeliveries), skipped.",
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "batch_size",
			Help:    "Entries per store transaction.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000},
		}),
		Lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "ingest_lag_seconds",
			Help:    "Time from the publisher's createdAt to the commit of the entry.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		StoreTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "store_seconds",
			Help:    "Store operation latency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"op"}),
		Failures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "batch_failures_total",
			Help: "Store transactions that failed (their deliveries are retried).",
		}),
		Anonymised: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "entries_anonymised_total",
			Help: "Entries anonymised after iam.user.deleted.",
		}),
		Conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "auditlog", Name: "events_conflict_total",
			Help: "Deliveries of an event other than the one stored under its id (another name, serviceName, createdAt, headers or payload): not stored, and logged.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Ingested, m.Duplicates, m.BatchSize, m.Lag, m.StoreTime, m.Failures, m.Anonymised, m.Conflicts)
	}
	return m
}

func (m *Metrics) observeBatch(entries []Entry, inserted int, took time.Duration, err error, now time.Time) {
	m.StoreTime.WithLabelValues("append").Observe(took.Seconds())
	if err != nil {
		m.Failures.Inc()
		return
	}
	m.BatchSize.Observe(float64(len(entries)))
	m.Duplicates.Add(float64(len(entries) - inserted))
	for _, e := range entries {
		m.Ingested.WithLabelValues(e.Name).Inc()
		if !e.CreatedAt.IsZero() {
			m.Lag.Observe(now.Sub(e.CreatedAt).Seconds())
		}
	}
}
