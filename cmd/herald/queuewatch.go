package main

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/bus/driver"
)

// queueWatch reads the audit log's queue from the broker for /metrics and
// /healthcheck, at most once per maxAge however often they are asked: on
// RabbitMQ a reading is a score of passive declarations.
type queueWatch struct {
	insp   driver.QueueInspector
	queue  string
	maxAge time.Duration

	mu   sync.Mutex
	at   time.Time
	info driver.QueueInfo
	err  error
}

func newQueueWatch(insp driver.QueueInspector, queue string) *queueWatch {
	return &queueWatch{insp: insp, queue: queue, maxAge: 5 * time.Second}
}

// get returns the last reading, reading again when it is older than
// maxAge.
func (w *queueWatch) get(ctx context.Context) (driver.QueueInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.at) < w.maxAge {
		return w.info, w.err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	w.info, w.err = w.insp.InspectQueue(ctx, w.queue)
	w.at = time.Now()
	return w.info, w.err
}

// register adds the queue's gauges to reg: the dead letters and the
// messages waiting. A reading that fails reports nothing (the gauge is
// absent) rather than a zero that would read as all clear.
func (w *queueWatch) register(reg prometheus.Registerer) {
	labels := prometheus.Labels{"queue": w.queue}
	reg.MustRegister(&queueCollector{w: w,
		dead: prometheus.NewDesc("herald_auditlog_dead_letters", "Dead letters of the audit log's queue, as the broker counts them.", nil, labels),
		wait: prometheus.NewDesc("herald_auditlog_queue_messages", "Messages waiting in the audit log's queue, not yet handed out.", nil, labels),
	})
}

type queueCollector struct {
	w          *queueWatch
	dead, wait *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.dead; ch <- c.wait }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	info, err := c.w.get(context.Background())
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(info.DeadLetters))
	ch <- prometheus.MustNewConstMetric(c.wait, prometheus.GaugeValue, float64(info.Depth))
}

// addTo adds the queue's dead letters and waiting messages to the queue
// check of /healthcheck. They inform; they do not fail the check: a dead
// letter is for an operator to look at (herald dlq), not a reason to
// restart the service.
func (w *queueWatch) addTo(ctx context.Context, c *httpapi.Check) {
	info, err := w.get(ctx)
	if err != nil {
		return
	}
	if c.Info == nil {
		c.Info = map[string]any{}
	}
	c.Info["deadLetters"] = info.DeadLetters
	c.Info["messages"] = info.Depth
}
