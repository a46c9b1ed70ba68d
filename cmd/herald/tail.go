package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/topic"
)

type tailOptions struct {
	patterns []string
	service  string
	output   string
	broker   string
	count    int
	timeout  time.Duration

	brokerDefault bool // neither --broker nor HERALD_BROKER_URL
}

// tailService names tail's temporary queue in the broker's listings.
const tailService = "herald-tail"

// errNotPrinted hands a service's delivery that arrived after --count back
// to the service's queue.
var errNotPrinted = errors.New("herald tail stopped before printing it")

func newTailCmd() *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail [PATTERN…]",
		Short: "Print events as they are published",
		Long: `tail prints every event whose name matches one of the patterns (default "#",
all of them) as it is published, until Ctrl-C (or --count events).

Patterns use AMQP topic rules: words are separated by '.', '*' matches
exactly one word and '#' zero or more, in any position.

Without --service, tail reads a temporary queue of its own: it sees a copy of
each event and takes nothing from any service.

With --service it joins that service's queue as one more replica, to drain
or inspect it: it receives a share of every delivery of the queue and
acknowledges each one it prints, so the service never gets those. It binds
nothing: it reads the bindings herald serve recorded for the queue and takes
exactly what they bring, and it refuses a queue with no recorded bindings.
Since a replica cannot choose which deliveries it is given, patterns cannot
narrow --service (only '#' is accepted): to watch some events of a service
without taking them, drop --service. Deliveries of bindings herald did not
record (an OIH service's, on a shared queue) are handed back to the queue.

--output json prints one event per line in its wire form
({"headers":{…,"id":…},"payload":{…}}), for jq and scripts;
--output cloudevents one CloudEvent per line, in the structured JSON
format ({"specversion":"1.0","id":…,"source":<serviceName>,
"type":<name>,"time":…,"data":<payload>,…}).`,
		Example: `  herald tail
  herald tail 'iam.#' 'secrets.*.*'
  herald tail '#.deleted' --output json | jq .payload
  herald tail flowrepo.flow.created --count 1 --output json
  herald tail 'flow.*' --output cloudevents
  herald tail --broker amqp://guest:guest@localhost:5672/ --service audit-log --count 10`,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.patterns = args
			o.brokerDefault = brokerDefaulted(cmd)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return runTail(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.service, "service", "", "join this service's queue, bound as herald serve recorded it (shares and acknowledges its deliveries), instead of a temporary one")
	f.StringVarP(&o.output, "output", "o", "text", "output format: text, json (one wire-form event per line) or cloudevents (one structured CloudEvent per line)")
	addBrokerFlag(cmd, &o.broker)
	f.IntVarP(&o.count, "count", "n", 0, "stop after this many events (0: until interrupted)")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the broker to connect")
	return cmd
}

func runTail(ctx context.Context, o tailOptions, stdout, stderr io.Writer, log *slog.Logger) error {
	patterns, err := tailPatterns(o, stderr)
	if err != nil {
		return err
	}
	t, err := dialBroker(ctx, o.broker, o.timeout, log)
	if err != nil {
		return err
	}
	if o.brokerDefault {
		noteDefaultBroker(stderr, t, o.broker)
	}
	if o.service != "" {
		// The queue's own bindings: subscribing them changes none.
		if patterns, err = recordedBindings(ctx, t, o.service, o.timeout); err != nil {
			_ = t.Close(ctx)
			return err
		}
	}
	b, err := tailBus(t, o.service, log)
	if err != nil {
		_ = t.Close(ctx)
		return err
	}
	defer closeBus(ctx, b, 5*time.Second)

	tctx, stop := context.WithCancel(ctx)
	defer stop()
	p := &tailPrinter{w: newTailWriter(o.output, stdout), count: o.count, shared: o.service != "", stop: stop}
	// Every pattern at once: a service queue's backlog is handed out from
	// the start, and each delivery must find its handler.
	sctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = b.SubscribeAll(sctx, patterns, p.handle)
	cancel()
	if err != nil {
		return fmt.Errorf("tail %s on %s: %w", strings.Join(patterns, " "), redactURL(o.broker), err)
	}
	if o.service == "" {
		fmt.Fprintf(stderr, "tailing %s on %s (temporary queue; Ctrl-C to stop)\n", strings.Join(patterns, " "), redactURL(o.broker))
	} else {
		fmt.Fprintf(stderr, "tailing queue %s on %s as one of its replicas, bound as recorded (%s): its deliveries are shared, and what tail prints it acknowledges (Ctrl-C to stop)\n",
			o.service, redactURL(o.broker), strings.Join(summarise(patterns, 6), " "))
	}
	<-tctx.Done()
	return p.err()
}

// tailPatterns checks tail's options and returns the patterns to
// subscribe ("#" when none), noting on stderr the ones that match no
// catalogued event.
func tailPatterns(o tailOptions, stderr io.Writer) ([]string, error) {
	switch {
	case o.output != "text" && o.output != "json" && o.output != "cloudevents":
		return nil, usagef("--output %q: want text, json or cloudevents", o.output)
	case o.count < 0:
		return nil, usagef("--count must be 0 (until interrupted) or more, got %d", o.count)
	case o.timeout <= 0:
		return nil, usagef("--timeout must be positive, got %v", o.timeout)
	}
	patterns := o.patterns
	if o.service != "" && slices.ContainsFunc(patterns, func(p string) bool { return p != "#" }) {
		return nil, usagef("tail --service %s takes a share of every delivery of the queue, which its bindings decide, so patterns cannot narrow it (%s): drop them to drain the queue, or drop --service to watch them without taking anything",
			o.service, strings.Join(patterns, " "))
	}
	if len(patterns) == 0 {
		patterns = []string{"#"}
	}
	for _, p := range patterns {
		if err := topic.ValidatePattern(p); err != nil {
			return nil, usagef("pattern %q: %v", p, err)
		}
		if msg := uncatalogued(catalog.Default(), p); msg != "" {
			// Tail prints whatever matches, catalogued or not; a typo
			// would print nothing, silently.
			fmt.Fprintf(stderr, "note: %s (tail prints uncatalogued events too, so it waits for it anyway)\n", msg)
		}
	}
	return patterns, nil
}

// tailBus is the bus tail subscribes on: a temporary queue of its own, or
// a share of service's queue.
func tailBus(t driver.Transport, service string, log *slog.Logger) (*bus.Bus, error) {
	// tail's handler fails only for a delivery it hands back (see
	// errNotPrinted): soon, and never into the service's dead letters.
	retry := bus.RetryPolicy{MaxAttempts: math.MaxInt32, InitialDelay: time.Millisecond, MaxDelay: time.Millisecond}
	opts := []bus.Option{bus.WithLogger(log), bus.WithRetry(retry)}
	if service == "" {
		service = tailService
		opts = append(opts, bus.WithTemporaryQueue())
	}
	return bus.New(t, append(opts, bus.WithService(service))...)
}

// tailPrinter prints each event once, stopping tail after count (0: no
// limit) or at the first write error.
type tailPrinter struct {
	w      *tailWriter
	count  int
	shared bool // deliveries of a service's queue, not tail's own
	stop   func()

	mu      sync.Mutex
	last    *event.Event // the bus hands every matching handler the same event
	printed int
	werr    error
}

func (p *tailPrinter) handle(_ context.Context, ev *event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev == p.last {
		return nil
	}
	if p.werr != nil || (p.count > 0 && p.printed >= p.count) {
		// Arrived while tail stops. A copy on tail's own queue can go;
		// a delivery of a service's queue goes back to it (retried after
		// the shortest delay), since tail did not print it.
		if p.shared {
			return errNotPrinted
		}
		return nil
	}
	p.last = ev
	if p.werr = p.w.write(ev); p.werr != nil {
		p.stop()
		return nil
	}
	if p.printed++; p.count > 0 && p.printed >= p.count {
		p.stop()
	}
	return nil
}

// err is the write error that stopped tail, if any.
func (p *tailPrinter) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.werr != nil {
		return fmt.Errorf("write: %w", p.werr)
	}
	return nil
}

// recordedBindings returns the patterns herald recorded for service's
// queue on the broker t reaches.
func recordedBindings(ctx context.Context, t driver.Transport, service string, timeout time.Duration) ([]string, error) {
	insp, ok := t.(driver.QueueInspector)
	if !ok {
		return nil, fmt.Errorf("tail --service: this broker cannot say how %s's queue is bound", service)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	info, err := insp.InspectQueue(ctx, service)
	if errors.Is(err, driver.ErrNoQueue) {
		return nil, fmt.Errorf("tail --service %s: the broker has no queue %s", service, service)
	}
	if err != nil {
		return nil, fmt.Errorf("tail --service %s: %w", service, err)
	}
	if len(info.Bindings) == 0 {
		return nil, fmt.Errorf("tail --service %s: no bindings are recorded for its queue (herald serve records the audit log's), so tail cannot join it without changing them; drop --service to watch its events", service)
	}
	return info.Bindings, nil
}

// tailWriter prints events as text (a line each, aligned, the name coloured
// on a terminal), as wire-form JSON lines or as CloudEvents JSON lines.
type tailWriter struct {
	format string
	w      io.Writer
	color  bool
	width  int
}

func newTailWriter(format string, w io.Writer) *tailWriter {
	tw := &tailWriter{format: format, w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tw.color = os.Getenv("NO_COLOR") == ""
		if width, _, err := term.GetSize(int(f.Fd())); err == nil {
			tw.width = width
		}
	}
	return tw
}

func (tw *tailWriter) write(ev *event.Event) error {
	if tw.format == "json" || tw.format == "cloudevents" {
		encode := ev.Encode
		if tw.format == "cloudevents" {
			encode = ev.EncodeCloudEvent
		}
		line, err := encode()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(tw.w, "%s\n", line)
		return err
	}
	when := "-"
	if !ev.Headers.CreatedAt.IsZero() {
		when = ev.Headers.CreatedAt.Local().Format("2006-01-02 15:04:05.000")
	}
	var p bytes.Buffer
	if err := json.Compact(&p, ev.Payload); err != nil {
		p.Reset()
		p.Write(ev.Payload)
	}
	name := pad(ev.Headers.Name, 30)
	if tw.color {
		if c := verbColor(ev.Headers.Name); c != "" {
			name = c + name + ansiReset
		}
	}
	line := fmt.Sprintf("%-23s  %s  %-22s  ", when, name, orDash(ev.Headers.ServiceName))
	payload := p.String()
	if tw.width > 0 {
		// On a terminal, one event is one screen line.
		room := tw.width - (23 + 2 + max(30, len(ev.Headers.Name)) + 2 + max(22, len(ev.Headers.ServiceName)) + 2)
		payload = truncate(payload, max(room, 20))
	}
	_, err := fmt.Fprintf(tw.w, "%s%s\n", line, payload)
	return err
}
