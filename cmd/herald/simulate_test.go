package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/bus/memory"
	"github.com/heraldhq/herald/event"
)

func simOpts() simulateOptions {
	return simulateOptions{count: 300, seed: 9, seedSet: true, broker: "memory://test", tenants: 4, users: 40, timeout: 5 * time.Second, output: "text"}
}

// auditCollector counts what a subscriber of every event receives.
type auditCollector struct {
	mu        sync.Mutex
	byService map[string]int
	n         int
}

func subscribeAll(t *testing.T, broker *memory.Broker) *auditCollector {
	t.Helper()
	c := &auditCollector{byService: map[string]int{}}
	b, err := bus.New(broker.Connect(), bus.WithService("audit-log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := b.Subscribe(context.Background(), "#", func(_ context.Context, ev *event.Event) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.byService[ev.Headers.ServiceName]++
		c.n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *auditCollector) wait(t *testing.T, n int) map[string]int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		got, by := c.n, maps.Clone(c.byService)
		c.mu.Unlock()
		if got >= n {
			return by
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d events of %d", got, n)
		}
	}
}

func TestSimulatePublishesAndSummarises(t *testing.T) {
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	got := subscribeAll(t, broker)
	dial := func(context.Context) (driver.Transport, error) { return broker.Connect(), nil }

	var out, errb bytes.Buffer
	if err := runSimulate(context.Background(), simOpts(), dial, &out, &errb); err != nil {
		t.Fatal(err)
	}
	by := got.wait(t, 300)
	s := out.String()
	if !strings.HasPrefix(s, "published 300 events to memory://test in ") || !strings.Contains(s, "seed 9") {
		t.Fatalf("summary:\n%s", s)
	}
	for _, svc := range []string{"accounts", "secret-service", "meta-data-repository", "flow-repository", "component-orchestrator"} {
		if by[svc] == 0 || !strings.Contains(s, "  "+svc) {
			t.Errorf("%s: %d received; summary:\n%s", svc, by[svc], s)
		}
	}
	if errb.Len() != 0 {
		t.Errorf("stderr off a terminal: %q", errb.String())
	}
}

func TestSimulateJSONSummary(t *testing.T) {
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	dial := func(context.Context) (driver.Transport, error) { return broker.Connect(), nil }
	o := simOpts()
	o.output, o.count = "json", 50
	var out bytes.Buffer
	if err := runSimulate(context.Background(), o, dial, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Published int            `json:"published"`
		Seed      int64          `json:"seed"`
		ByService map[string]int `json:"byService"`
		ByName    map[string]int `json:"byName"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	total := 0
	for _, n := range sum.ByName {
		total += n
	}
	if sum.Published != 50 || sum.Seed != 9 || total != 50 || sum.ByService["accounts"] == 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestSimulateNamesTheBrokerFlagWhenNothingAnswers(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:4222: connect: connection refused")
	dial := func(context.Context) (driver.Transport, error) { return nil, refused }
	err := runSimulate(context.Background(), simOpts(), dial, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "--broker") || !strings.Contains(err.Error(), envBrokerURL) {
		t.Fatalf("error %v: want the cause, --broker and %s", err, envBrokerURL)
	}
}

// stalledTransport is a transport whose broker takes every publish and
// never confirms one: only the publish's context ends it.
type stalledTransport struct{ driver.Transport }

func (stalledTransport) Publish(ctx context.Context, _ driver.Message, confirm func(error)) error {
	context.AfterFunc(ctx, func() { confirm(ctx.Err()) })
	return nil
}

func TestSimulateGivesUpOnABrokerThatNeverConfirms(t *testing.T) {
	broker := memory.NewBroker()
	t.Cleanup(broker.Close)
	dial := func(context.Context) (driver.Transport, error) { return stalledTransport{broker.Connect()}, nil }
	o := simOpts()
	o.timeout = 50 * time.Millisecond
	var out bytes.Buffer
	err := runSimulate(context.Background(), o, dial, &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--broker") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v: want a deadline naming --broker", err)
	}
	if !strings.HasPrefix(out.String(), "published 0 events") {
		t.Fatalf("summary %q", out.String())
	}
}

func TestSimulateUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--count", "-1"},
		{"--rate", "-5"},
		{"--users", "0"},
		{"--timeout", "0s"},
		{"--broker", "localhost"},
		{"--output", "yaml"},
		{"--count", "many"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"simulate"}, args...), &out, &errb); code != 2 {
			t.Errorf("simulate %v: exit %d (%s), want 2", args, code, errb.String())
		}
	}
}

func TestSimulateAndLogsHaveHelpWithExamples(t *testing.T) {
	for _, c := range []string{"simulate", "logs"} {
		var out bytes.Buffer
		if code := run(context.Background(), []string{c, "--help"}, &out, &out); code != 0 || !strings.Contains(out.String(), "Examples:") {
			t.Errorf("herald %s --help: exit %d\n%s", c, code, out.String())
		}
	}
}
