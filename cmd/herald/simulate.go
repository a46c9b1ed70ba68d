package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/simulate"
)

type simulateOptions struct {
	count   int
	rate    float64
	seed    int64
	seedSet bool
	broker  string
	tenants int
	users   int
	oihOnly bool
	timeout time.Duration
	output  string

	brokerDefault bool // neither --broker nor HERALD_BROKER_URL
}

func newSimulateCmd() *cobra.Command {
	var o simulateOptions
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Publish a realistic OIH event stream: the demo and the load generator",
		Long: `simulate publishes the events of a busy Open Integration Hub platform, each
from the service that really publishes it (IAM as "accounts", secret-service,
meta-data-repository, flow-repository, component-orchestrator): tenants and
users are created, log in and sometimes fail to, secrets are stored and read,
domains and schemas defined, flows created, started (flow.starting, then the
orchestrator's flow.started), stopped and deleted, and some users deleted.
Every event is valid against the catalogue and comes after its causes.

The story is a function of --seed: the same seed publishes the same story
(with new event ids). Without --seed a random one is used and printed.

Run herald serve in one terminal, simulate in another, and herald logs shows
the story.`,
		Example: `  herald simulate
  herald simulate --count 10000 --rate 500
  herald simulate --count 0 --rate 20        # a steady trickle until Ctrl-C
  herald simulate --seed 7 --broker amqp://guest:guest@localhost:5672
  herald simulate --oih-only --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.seedSet = cmd.Flags().Changed("seed")
			o.brokerDefault = brokerDefaulted(cmd)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			dial := func(ctx context.Context) (driver.Transport, error) { return openTransport(ctx, o.broker, log) }
			return runSimulate(cmd.Context(), o, dial, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.count, "count", "n", 1000, "events to publish; 0 publishes until interrupted")
	f.Float64Var(&o.rate, "rate", 0, "events per second; 0 is as fast as the broker takes them")
	f.Int64Var(&o.seed, "seed", 0, "seed of the story (default: random, printed in the summary)")
	addBrokerFlag(cmd, &o.broker)
	f.IntVar(&o.tenants, "tenants", 4, "tenants on the simulated platform")
	f.IntVar(&o.users, "users", 40, "users alive on the simulated platform at a time")
	f.BoolVar(&o.oihOnly, "oih-only", false, "publish only the events OIH's services really send, with their exact payloads")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long to wait for the broker to connect and to confirm each event")
	f.StringVarP(&o.output, "output", "o", "text", "summary format: text or json")
	return cmd
}

func runSimulate(ctx context.Context, o simulateOptions, dial func(context.Context) (driver.Transport, error), stdout, stderr io.Writer) error {
	switch {
	case o.count < 0:
		return usagef("--count must be 0 (until interrupted) or more, got %d", o.count)
	case o.rate < 0:
		return usagef("--rate must be 0 (as fast as possible) or more, got %g", o.rate)
	case o.tenants < 1 || o.users < 1:
		return usagef("--tenants and --users must be at least 1")
	case o.timeout <= 0:
		return usagef("--timeout must be positive, got %v", o.timeout)
	case o.output != "text" && o.output != "json":
		return usagef("--output %q: want text or json", o.output)
	}
	if !o.seedSet {
		o.seed = rand.Int64()
	}

	broker := redactURL(o.broker)
	// One connection for the whole story, so that the broker keeps it in
	// order without a confirm per event; each event still carries the
	// serviceName of the service that really publishes it.
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	t, err := dial(dctx)
	cancel()
	if err != nil {
		return brokerError(broker, err)
	}
	if o.brokerDefault {
		noteDefaultBroker(stderr, t, o.broker)
	}
	b, err := bus.New(t, bus.WithService("herald-simulate"))
	if err != nil {
		_ = t.Close(ctx)
		return err
	}
	defer closeBus(ctx, b, 10*time.Second)

	bar := newProgressBar(o.count, stderr)
	sc := simulate.New(o.seed, simulate.Options{Tenants: o.tenants, Users: o.users, OIHOnly: o.oihOnly})
	st, err := simulate.Run(ctx, sc, b, simulate.Config{
		Count:    o.count,
		Rate:     o.rate,
		Timeout:  o.timeout,
		Progress: bar.set,
	})
	bar.finish()
	if perr := printSimulateSummary(stdout, o, st); perr != nil && err == nil {
		err = perr
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return fmt.Errorf("interrupted after %d of %d events", st.Published, o.count)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("%w: the broker at %s did not confirm it within %v (is it running? set --broker or %s; --timeout waits longer)",
			err, broker, o.timeout, envBrokerURL)
	}
	return fmt.Errorf("publishing to %s: %w", broker, err)
}

func printSimulateSummary(w io.Writer, o simulateOptions, st simulate.Stats) error {
	if o.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Published      int            `json:"published"`
			Seed           int64          `json:"seed"`
			Broker         string         `json:"broker"`
			ElapsedSeconds float64        `json:"elapsedSeconds"`
			Rate           float64        `json:"eventsPerSecond"`
			ByService      map[string]int `json:"byService"`
			ByName         map[string]int `json:"byName"`
		}{st.Published, o.seed, redactURL(o.broker), st.Elapsed.Seconds(), st.Rate(), st.ByService, st.ByName})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "published %d events to %s in %v (%.0f events/s), seed %d\n",
		st.Published, redactURL(o.broker), st.Elapsed.Round(time.Millisecond), st.Rate(), o.seed)
	width := 0
	for _, svc := range st.Services() {
		width = max(width, len(svc))
	}
	for _, svc := range st.Services() {
		fmt.Fprintf(&b, "  %-*s %8d\n", width, svc, st.ByService[svc])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
