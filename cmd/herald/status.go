package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/bus/driver"
)

type statusOptions struct {
	broker  string
	store   string
	data    string
	service string
	timeout time.Duration
	output  string

	brokerDefault bool
}

func newStatusCmd() *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show how the broker, the audit log's queue and its store are doing",
		Long: `status asks the broker and the audit store themselves, not a running serve, so
it describes every replica at once:

  broker      the broker's URL and whether it answers
  queue       the audit log's queue (or --service's): messages waiting and
              handed out, consumers, messages waiting to be retried, dead
              letters, and the bindings herald recorded for it
  store       the entries stored, and the newest one
  checkpoint  the newest signed checkpoint: the entries it seals, those not
              sealed yet, the log's name and the tree's root hash (herald
              verify checks them)
  ingest lag  how long the newest entry took from its publisher to the log,
              and how many events wait for the audit log

--broker and --store are those of herald serve (HERALD_BROKER_URL,
HERALD_STORE_URL, default the local serve's). It exits 1 when the broker or
the store cannot be read, after printing what it could.`,
		Example: `  herald status
  herald status --broker amqp://guest:guest@rabbitmq:5672/ --store 'postgres://herald@db/herald?schema=audit'
  herald status --output json | jq .queue.deadLetters`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.brokerDefault = brokerDefaulted(cmd)
			return runStatus(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.store, "store", os.Getenv(envStoreURL), "audit store: postgres://…[?schema=NAME] or a SQLite file path (env "+envStoreURL+"); empty is <data>/audit.db")
	addDataDirFlag(cmd, &o.data)
	f.StringVar(&o.service, "service", auditlog.QueueName, "the queue to report on")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the broker and the store")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text or json")
	return cmd
}

// statusReport is what status prints; its JSON is --output json.
type statusReport struct {
	Broker     brokerStatus      `json:"broker"`
	Queue      *queueStatus      `json:"queue"`
	Store      storeStatus       `json:"store"`
	Checkpoint *checkpointStatus `json:"checkpoint"`
	IngestLag  *lagStatus        `json:"ingestLag"`
}

type brokerStatus struct {
	URL   string `json:"url"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type queueStatus struct {
	Name        string   `json:"name"`
	Messages    int      `json:"messages"`
	Unacked     *int     `json:"unacked"` // null: the broker does not say
	Consumers   *int     `json:"consumers"`
	Retrying    int      `json:"retrying"`
	DeadLetters int      `json:"deadLetters"`
	Bindings    []string `json:"bindings"`
	Error       string   `json:"error,omitempty"`
}

type storeStatus struct {
	Location string       `json:"location"`
	OK       bool         `json:"ok"`
	Entries  int64        `json:"entries"`
	Newest   *entryStatus `json:"newest,omitempty"`
	Error    string       `json:"error,omitempty"`
}

type entryStatus struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"createdAt"`
	ReceivedAt time.Time `json:"receivedAt"`
}

// checkpointStatus is the log's newest signed checkpoint, as stored:
// status reads it, herald verify checks it.
type checkpointStatus struct {
	// TreeSize is the number of entries the checkpoint seals; Pending
	// those stored and not yet in the tree.
	TreeSize int64 `json:"treeSize"`
	Pending  int64 `json:"pending"`
	// Origin names the log (its signing key's name); Root is the tree's
	// root hash, in base64 as in the checkpoint.
	Origin string `json:"origin"`
	Root   string `json:"root"`
}

type lagStatus struct {
	// Seconds is how long the newest entry took from its publisher's
	// createdAt to the log; null without an entry that has a createdAt.
	Seconds *float64 `json:"seconds"`
	// Waiting counts the events in the queue, waiting or handed out.
	Waiting *int `json:"waiting"`
}

func runStatus(ctx context.Context, o statusOptions, stdout, stderr io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usagef("--output %q: want text or json", o.output)
	}
	if o.timeout <= 0 {
		return usagef("--timeout must be positive, got %v", o.timeout)
	}
	spec, err := parseStore(o.store, o.data)
	if err != nil {
		return err
	}
	var r statusReport
	o.readBroker(ctx, &r, stderr)
	readStore(ctx, spec, o.timeout, &r)
	r.IngestLag = ingestLag(r)
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else if err := writeStatus(stdout, r); err != nil {
		return err
	}
	var failed []string
	if !r.Broker.OK {
		failed = append(failed, "the broker")
	}
	if !r.Store.OK {
		failed = append(failed, "the store")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s could not be read", strings.Join(failed, " and "))
	}
	return nil
}

// readBroker connects to the broker and reads the queue.
func (o statusOptions) readBroker(ctx context.Context, r *statusReport, stderr io.Writer) {
	r.Broker.URL = redactURL(o.broker)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	t, err := dialBroker(ctx, o.broker, o.timeout, log)
	if err != nil {
		r.Broker.Error = err.Error()
		return
	}
	defer closeBus(ctx, t, 5*time.Second)
	if o.brokerDefault {
		noteDefaultBroker(stderr, t, o.broker)
	}
	r.Broker.OK = true
	q := &queueStatus{Name: o.service}
	r.Queue = q
	insp, ok := t.(driver.QueueInspector)
	if !ok {
		q.Error = "this broker does not say how its queues are doing"
		return
	}
	qctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	info, err := insp.InspectQueue(qctx, o.service)
	if errors.Is(err, driver.ErrNoQueue) {
		q.Error = "no such queue: no herald serve (or other consumer) has read it yet"
		return
	}
	if err != nil {
		q.Error = err.Error()
		return
	}
	q.Messages, q.Retrying, q.DeadLetters, q.Bindings = info.Depth, info.Retrying, info.DeadLetters, info.Bindings
	if info.Unacked >= 0 {
		q.Unacked = &info.Unacked
	}
	if info.Consumers >= 0 {
		q.Consumers = &info.Consumers
	}
}

// readStore opens the store (an absent SQLite file is not created) and
// reads its count and newest entry.
func readStore(ctx context.Context, spec storeSpec, timeout time.Duration, r *statusReport) {
	r.Store.Location = spec.describe()
	if spec.postgres == "" {
		if _, err := os.Stat(spec.path); err != nil {
			r.Store.Error = fmt.Sprintf("no audit store at %s (--store, --data)", spec.path)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	store, err := spec.open(ctx)
	if err != nil {
		r.Store.Error = err.Error()
		return
	}
	defer store.Close()
	page, err := store.Query(ctx, auditlog.Query{Limit: 1})
	if err != nil {
		r.Store.Error = err.Error()
		return
	}
	r.Store.OK, r.Store.Entries = true, page.Total
	if len(page.Entries) > 0 {
		e := page.Entries[0]
		r.Store.Newest = &entryStatus{ID: e.ID, Name: e.Name, CreatedAt: e.CreatedAt, ReceivedAt: e.ReceivedAt}
	}
	r.Checkpoint, err = lastCheckpoint(ctx, store, page.Total)
	if err != nil {
		r.Store.OK, r.Store.Error = false, err.Error()
	}
}

// lastCheckpoint is the newest checkpoint of store, of a log holding
// entries entries; nil when the log has issued none yet.
func lastCheckpoint(ctx context.Context, store auditlog.Store, entries int64) (*checkpointStatus, error) {
	cp, err := store.Checkpoint(ctx, -1)
	if errors.Is(err, auditlog.ErrNoCheckpoint) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the latest checkpoint: %w", err)
	}
	body, err := auditlog.ParseCheckpoint(auditlog.NoteText(cp.Note))
	if err != nil {
		return nil, fmt.Errorf("the latest checkpoint (size %d): %w", cp.Size, err)
	}
	return &checkpointStatus{
		TreeSize: body.Size,
		Pending:  max(entries-body.Size, 0),
		Origin:   body.Origin,
		Root:     base64.StdEncoding.EncodeToString(body.Root[:]),
	}, nil
}

// ingestLag is how far behind the audit log is: the newest entry's time
// from publisher to log, and the events in its queue.
func ingestLag(r statusReport) *lagStatus {
	var lag lagStatus
	if n := r.Store.Newest; n != nil && !n.CreatedAt.IsZero() && !n.ReceivedAt.IsZero() {
		s := n.ReceivedAt.Sub(n.CreatedAt).Seconds()
		lag.Seconds = &s
	}
	if q := r.Queue; q != nil && q.Error == "" {
		w := q.Messages
		if q.Unacked != nil {
			w += *q.Unacked
		}
		lag.Waiting = &w
	}
	if lag.Seconds == nil && lag.Waiting == nil {
		return nil
	}
	return &lag
}

func writeStatus(w io.Writer, r statusReport) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s%s\n", label, fmt.Sprintf(format, args...))
	}
	if r.Broker.OK {
		line("broker", "%s (answers)", r.Broker.URL)
	} else {
		line("broker", "%s: %s", r.Broker.URL, r.Broker.Error)
	}
	if q := r.Queue; q != nil {
		if q.Error != "" {
			line("queue", "%s: %s", q.Name, q.Error)
		} else {
			parts := []string{fmt.Sprintf("%d waiting", q.Messages)}
			if q.Unacked != nil {
				parts = append(parts, fmt.Sprintf("%d handed out", *q.Unacked))
			}
			if q.Consumers != nil {
				parts = append(parts, plural(*q.Consumers, "consumer", "consumers"))
			}
			parts = append(parts, fmt.Sprintf("%d retrying", q.Retrying), plural(q.DeadLetters, "dead letter", "dead letters"))
			line("queue", "%s: %s", q.Name, strings.Join(parts, ", "))
			if len(q.Bindings) > 0 {
				line("", "bound as recorded: %s", strings.Join(summarise(q.Bindings, 6), " "))
			} else {
				line("", "no bindings recorded")
			}
		}
	}
	if r.Store.OK {
		line("store", "%s: %s", r.Store.Location, plural(int(r.Store.Entries), "entry", "entries"))
		if n := r.Store.Newest; n != nil {
			line("", "newest %s, created %s", n.Name, dlqTime(n.CreatedAt))
		}
	} else {
		line("store", "%s: %s", r.Store.Location, r.Store.Error)
	}
	if c := r.Checkpoint; c != nil {
		line("checkpoint", "%s sealed, %d not yet; log %s, root %s", plural(int(c.TreeSize), "entry", "entries"), c.Pending, c.Origin, c.Root)
	} else if r.Store.OK {
		line("checkpoint", "none yet (herald serve's integrator issues the first)")
	}
	if l := r.IngestLag; l != nil {
		var parts []string
		if l.Seconds != nil {
			parts = append(parts, fmt.Sprintf("newest entry stored %v after it was published", time.Duration(*l.Seconds*float64(time.Second)).Round(time.Millisecond)))
		}
		if l.Waiting != nil {
			parts = append(parts, plural(*l.Waiting, "event", "events")+" waiting")
		}
		line("ingest lag", "%s", strings.Join(parts, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
