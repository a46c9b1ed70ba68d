// Command typed-service is a service on herald's bus that publishes and
// handles events as Go types (package oih): a flow repository that marks a
// flow active when the orchestrator reports it started, and says so with
// flowrepo.flow.modified.
//
//	go run ./examples/typed-service                           # in process
//	go run ./examples/typed-service -broker nats://127.0.0.1:4222
//	go run ./examples/typed-service -broker amqp://guest:guest@127.0.0.1:5672/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/amqp"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/bus/nats"
	"github.com/heraldhq/herald/oih"
)

func main() {
	broker := flag.String("broker", "", "amqp:// or nats:// broker URL (default: an in-process broker)")
	flows := flag.Int("flows", 3, "how many flows the orchestrator starts")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, *broker, *flows, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "typed-service:", err)
		os.Exit(1)
	}
}

// run starts the flow repository, has an orchestrator start flows, and
// returns once the repository has announced every one of them active.
func run(ctx context.Context, broker string, flows int, out io.Writer) error {
	dial := connector(ctx, broker)
	repo, err := newBus(dial, "flow-repository")
	if err != nil {
		return err
	}
	defer repo.Close(ctx)
	orchestrator, err := newBus(dial, "component-orchestrator")
	if err != nil {
		return err
	}
	defer orchestrator.Close(ctx)
	watcher, err := newBus(dial, "typed-service-watcher")
	if err != nil {
		return err
	}
	defer watcher.Close(ctx)

	// Handlers run on the bus's goroutines, beside this one: one line at
	// a time on out.
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}

	// The repository: a started flow is active now; tell everyone.
	err = bus.On(ctx, repo, func(ctx context.Context, e oih.FlowStarted) error {
		say("flow-repository: flow %s started, marking it active", e.ID)
		return bus.PublishTyped(ctx, repo, oih.FlowrepoFlowModified{FlowID: e.ID, User: "5f1c0c6e2a9b4c0012345678", Tenant: ""})
	})
	if err != nil {
		return err
	}
	// Someone who listens to the repository.
	active := make(chan string)
	err = bus.On(ctx, watcher, func(ctx context.Context, e oih.FlowrepoFlowModified) error {
		from := bus.EventFrom(ctx).Headers.ServiceName
		select {
		case active <- fmt.Sprintf("watcher: %s says flow %s changed", from, e.FlowID):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return err
	}

	for i := range flows {
		id := fmt.Sprintf("5f1c0c6e2a9b4c00333333%02d", i)
		if err := bus.PublishTyped(ctx, orchestrator, oih.FlowStarted{ID: id}); err != nil {
			return err
		}
	}
	for range flows {
		select {
		case line := <-active:
			say("%s", line)
		case <-ctx.Done():
			return fmt.Errorf("waiting for the flows to become active: %w", ctx.Err())
		}
	}
	return nil
}

func newBus(dial func() (driver.Transport, error), service string) (*bus.Bus, error) {
	t, err := dial()
	if err != nil {
		return nil, err
	}
	return bus.New(t, bus.WithService(service))
}

// connector returns how to open a transport to broker: the URL's broker,
// or one in-process broker shared by every connection.
func connector(ctx context.Context, broker string) func() (driver.Transport, error) {
	switch {
	case broker == "":
		br := memory.NewBroker()
		return func() (driver.Transport, error) { return br.Connect(), nil }
	case strings.HasPrefix(broker, "amqp://"), strings.HasPrefix(broker, "amqps://"):
		return func() (driver.Transport, error) { return amqp.Dial(ctx, broker) }
	case strings.HasPrefix(broker, "nats://"):
		return func() (driver.Transport, error) { return nats.Dial(ctx, broker) }
	}
	return func() (driver.Transport, error) {
		return nil, errors.New("-broker: want amqp://, amqps:// or nats://")
	}
}
