package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/simulate"
)

type publishOptions struct {
	name       string
	payload    string
	service    string
	user       string
	tenant     string
	count      int
	rate       float64
	noValidate bool
	broker     string
	timeout    time.Duration
	output     string

	brokerDefault bool // neither --broker nor HERALD_BROKER_URL
}

func newPublishCmd() *cobra.Command {
	var o publishOptions
	cmd := &cobra.Command{
		Use:   "publish NAME",
		Short: "Publish an event",
		Long: `publish sends one event (or --count of them) to the broker and returns once
the broker has confirmed each. The payload is checked against the catalogue
first (herald catalog lists every name); --no-validate sends it anyway.

--user and --tenant set the payload's reserved user and tenant fields, the
ones the audit log uses to decide who may see the event.`,
		Example: `  herald publish iam.user.created --payload '{"id":"5f1c0c6e2a9b4c0012345678","username":"jane@example.com"}' --service accounts
  herald publish flowrepo.flow.created --payload @flow.json --user 5f1c…78 --tenant 5f1c…aa
  echo '{"id":"5f1c0c6e2a9b4c0012345678"}' | herald publish iam.user.deleted --payload @-
  herald publish iam.token.modified --payload '{"id":"t1"}' --count 10000 --rate 500
  herald publish my.own.event --no-validate --broker amqp://guest:guest@localhost:5672/`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("publish takes one event name, got %d arguments (see herald publish --help)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			o.brokerDefault = brokerDefaulted(cmd)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			return runPublish(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), log)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.payload, "payload", "p", "{}", "payload: a JSON object, @FILE, or - (or @-) for standard input")
	f.StringVar(&o.service, "service", "herald-cli", "serviceName of the event (the publishing service)")
	f.StringVar(&o.user, "user", "", "set payload.user, the IAM id of the user who caused the event")
	f.StringVar(&o.tenant, "tenant", "", "set payload.tenant, the IAM id of the tenant")
	f.IntVarP(&o.count, "count", "n", 1, "how many events to publish (each with its own id)")
	f.Float64Var(&o.rate, "rate", 0, "events per second with --count; 0 is as fast as the broker confirms")
	f.BoolVar(&o.noValidate, "no-validate", false, "skip the catalogue check of name and payload")
	addBrokerFlag(cmd, &o.broker)
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the broker to connect and to confirm each event")
	f.StringVarP(&o.output, "output", "o", "text", "what to print: text, or json (each event published, in its wire form, one per line)")
	return cmd
}

// publishEvent builds the event publish sends: name, payload with --user
// and --tenant, and checks it (envelope rules, and the catalogue unless
// --no-validate). Errors here are usage errors: nothing was sent.
func (o publishOptions) publishEvent(stdin io.Reader) (*event.Event, error) {
	raw, err := o.readPayload(stdin)
	if err != nil {
		return nil, err
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(raw, &p); err != nil || p == nil {
		return nil, usagef("--payload must be a JSON object: %s", describeJSONError(raw, err))
	}
	for key, val := range map[string]string{event.PayloadUser: o.user, event.PayloadTenant: o.tenant} {
		if val != "" {
			p[key], _ = json.Marshal(val)
		}
	}
	ev, err := event.New(o.name, p)
	if err != nil {
		return nil, usagef("%v", err)
	}
	ev.Headers.ServiceName = o.service
	if err := ev.Validate(0); err != nil {
		return nil, usagef("%v", err)
	}
	if !o.noValidate {
		if err := catalog.Default().Validate(ev); err != nil {
			return nil, usagef("%v (--no-validate sends it anyway)", err)
		}
	}
	return ev, nil
}

func describeJSONError(raw []byte, err error) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	if err == nil {
		return fmt.Sprintf("got %s", s)
	}
	return fmt.Sprintf("%v in %s", err, s)
}

func (o publishOptions) readPayload(stdin io.Reader) ([]byte, error) {
	return readPayloadArg(o.payload, stdin)
}

// readPayloadArg reads a --payload value the way every command takes it:
// the JSON itself, @FILE, or - (also @-) for standard input.
func readPayloadArg(v string, stdin io.Reader) ([]byte, error) {
	src, fromFile := strings.CutPrefix(v, "@")
	if !fromFile && v != "-" {
		return []byte(v), nil
	}
	if v == "-" || src == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read payload from standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return nil, usagef("--payload @%s: %v", src, err)
	}
	return b, nil
}

func runPublish(ctx context.Context, o publishOptions, stdin io.Reader, stdout, stderr io.Writer, log *slog.Logger) error {
	if err := o.check(); err != nil {
		return err
	}
	template, err := o.publishEvent(stdin)
	if err != nil {
		return err
	}
	b, err := o.openBus(ctx, log, stderr)
	if err != nil {
		return err
	}
	defer closeBus(ctx, b, 10*time.Second)
	p := &publisher{
		bus:     b,
		broker:  redactURL(o.broker),
		timeout: o.timeout,
		json:    o.output == "json",
		out:     stdout,
	}
	if o.count == 1 {
		return p.once(ctx, template)
	}
	return p.repeat(ctx, template, o.count, o.rate, newProgressBar(o.count, stderr))
}

// check refuses flags that contradict each other or make no sense.
func (o publishOptions) check() error {
	switch {
	case o.count < 1:
		return usagef("--count must be at least 1, got %d", o.count)
	case o.rate < 0:
		return usagef("--rate must be 0 (as fast as possible) or more, got %g", o.rate)
	case o.rate > 0 && o.count == 1:
		return usagef("--rate paces --count; it needs --count above 1")
	case o.timeout <= 0:
		return usagef("--timeout must be positive, got %v", o.timeout)
	case o.output != "text" && o.output != "json":
		return usagef("--output %q: want text or json", o.output)
	case o.service == "":
		return usagef("--service must not be empty")
	}
	return nil
}

// openBus connects to --broker as --service.
func (o publishOptions) openBus(ctx context.Context, log *slog.Logger, stderr io.Writer) (*bus.Bus, error) {
	t, err := dialBroker(ctx, o.broker, o.timeout, log)
	if err != nil {
		return nil, err
	}
	if o.brokerDefault {
		noteDefaultBroker(stderr, t, o.broker)
	}
	opts := []bus.Option{bus.WithService(o.service), bus.WithLogger(log)}
	if o.noValidate {
		opts = append(opts, bus.WithoutValidation())
	}
	b, err := bus.New(t, opts...)
	if err != nil {
		_ = t.Close(ctx)
		return nil, err
	}
	return b, nil
}

// publisher sends what publish sends, and prints it.
type publisher struct {
	bus     *bus.Bus
	broker  string // without its password
	timeout time.Duration
	json    bool // print each event sent, in its wire form
	out     io.Writer
}

// once publishes ev and says so.
func (p *publisher) once(ctx context.Context, ev *event.Event) error {
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := p.bus.Publish(pctx, ev); err != nil {
		return p.explain(ctx, err)
	}
	if p.json {
		return p.print(ev)
	}
	fmt.Fprintf(p.out, "published %s (id %s) to %s\n", ev.Headers.Name, ev.Headers.ID, p.broker)
	return nil
}

// repeat publishes count copies of template, at most perSecond a second
// (0: as fast as the broker confirms), and says how fast that went.
func (p *publisher) repeat(ctx context.Context, template *event.Event, count int, perSecond float64, bar progressBar) error {
	st, err := p.copies(ctx, template, count, perSecond, bar.set)
	bar.finish()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d of %d events", st.Published, count)
	case err != nil:
		return fmt.Errorf("published %d of %d events, then: %w", st.Published, count, p.explain(ctx, err))
	}
	if !p.json {
		fmt.Fprintf(p.out, "published %d %s events to %s in %v (%.0f events/s)\n",
			st.Published, template.Headers.Name, p.broker, st.Elapsed.Round(time.Millisecond), st.Rate())
	}
	return nil
}

// copies publishes count copies of template, each with its own id and
// createdAt, through simulate's loop: handed over without waiting for each
// confirm (the transport's window bounds how many wait at once), paced by
// its limiter, which lets no burst catch up after a stall. It returns what
// the broker confirmed. The first failure, a refused publish or an event
// that cannot be printed, stops the run and is returned.
func (p *publisher) copies(ctx context.Context, template *event.Event, count int, perSecond float64, progress func(done int)) (simulate.Stats, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	src := simulate.SourceFunc(func() *event.Event {
		ev := template.Clone()
		ev.Headers.ID = event.NewID()
		ev.Headers.CreatedAt = time.Now()
		return ev
	})
	cfg := simulate.Config{Count: count, Rate: perSecond, Timeout: p.timeout, Progress: progress}
	var printErr error
	if p.json {
		cfg.Confirmed = func(ev *event.Event) {
			if printErr == nil {
				printErr = p.print(ev)
				if printErr != nil {
					stop()
				}
			}
		}
	}
	st, err := simulate.Run(ctx, src, p.bus, cfg)
	if printErr != nil {
		// Run saw the stop as the end of ctx.
		err = printErr
	}
	return st, err
}

// explain adds to an unconfirmed publish what to check, unless ctx, the
// command's, ended it.
func (p *publisher) explain(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return fmt.Errorf("%w: the broker at %s did not confirm it within %v (is it running? --timeout waits longer)", err, p.broker, p.timeout)
	}
	return err
}

// print writes ev in its wire form, one line.
func (p *publisher) print(ev *event.Event) error {
	wire, err := ev.Encode()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(p.out, "%s\n", wire)
	return err
}

// redactURL hides a password in a broker URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
