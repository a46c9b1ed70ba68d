package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/bus/amqp"
	natsbus "github.com/heraldhq/herald/bus/nats"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// runningServe is a herald serve run in-process by a test.
type runningServe struct {
	api    string // the API's base URL
	banner string
	stderr *testkit.Buffer
	stop   func() int // stops serve and returns its exit code
}

// startServe runs herald serve with args until the test ends (or stop),
// and returns once it printed its banner.
func startServe(t *testing.T, args ...string) *runningServe {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &runningServe{stderr: &testkit.Buffer{}}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve"}, args...), pw, s.stderr)
		pw.Close()
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				s.api = m[1]
			}
			if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
				s.banner = b.String()
				close(ready)
			}
		}
	}()
	var code int
	stopped := false
	s.stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			code = <-done
		}
		return code
	}
	t.Cleanup(func() { s.stop() })
	select {
	case <-ready:
	case c := <-done:
		stopped, code = true, c
		t.Fatalf("serve exited %d before its banner: %s", c, s.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("serve printed no banner within 60s: %s", s.stderr.String())
	}
	return s
}

// TestServeOnRabbitMQBindsExactlyItsEvents: a serve with --events '#',
// then a default one on the same queue: '#' is unbound, so the events the
// audit log does not record no longer reach its queue to be retried and
// dead-lettered; what changed is logged.
func TestServeOnRabbitMQBindsExactlyItsEvents(t *testing.T) {
	broker := testVhost(t)
	data := t.TempDir()
	first := startServe(t, "--broker", broker, "--events", "#", "--data", data, "--listen", "127.0.0.1:0")
	if strings.Contains(first.banner, ":guest@") || !strings.Contains(first.banner, "amqp://guest:xxxxx@") {
		t.Errorf("the banner shows the broker's password:\n%s", first.banner)
	}
	if code := first.stop(); code != 0 {
		t.Fatalf("first serve exited %d: %s", code, first.stderr.String())
	}

	second := startServe(t, "--broker", broker, "--data", data, "--listen", "127.0.0.1:0")
	if log := second.stderr.String(); !strings.Contains(log, "bindings follow --events") || !strings.Contains(log, "removed=[#]") {
		t.Errorf("the second serve did not log the bindings it changed:\n%s", log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := amqp.Dial(ctx, broker)
	if err != nil {
		t.Fatal(err)
	}
	info, err := tr.InspectQueue(ctx, auditlog.QueueName)
	if err != nil {
		t.Fatal(err)
	}
	if want := slices.Sorted(slices.Values(catalog.Default().Audited())); !slices.Equal(info.Bindings, want) {
		t.Errorf("recorded bindings %q, want the %d audited patterns", info.Bindings, len(want))
	}
	pub, err := bus.New(tr, bus.WithService("component-orchestrator"))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	// Not recorded by the audit log: with '#' still bound, each would be
	// retried and dead-lettered for want of a handler.
	for _, name := range []string{"component.failed", "flow.failed"} {
		ev, _ := event.New(name, json.RawMessage(`{"id":"x"}`))
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	marker, _ := event.New("flowrepo.flow.created", json.RawMessage(`{"flowId":"f1","user":"u1","tenant":"t1"}`))
	if err := pub.Publish(ctx, marker); err != nil {
		t.Fatal(err)
	}
	token := readToken(t, data)
	waitFor(t, 30*time.Second, "the audited event in the log", func() bool {
		p, _ := getLogs(t, second.api+"/logs?filter[name]=flowrepo.flow.created", token)
		return p.Meta.Total == 1
	})
	info, err = tr.InspectQueue(ctx, auditlog.QueueName)
	if err != nil || info.Retrying != 0 || info.DeadLetters != 0 || info.Depth != 0 {
		t.Errorf("audit-log queue %+v (%v): want nothing retrying, dead or waiting", info, err)
	}
	if log := second.stderr.String(); strings.Contains(log, "no handler") {
		t.Errorf("serve handled events it does not record:\n%s", log)
	}
}

// TestServeOnNATSFiltersExactlyItsEvents: the same on the embedded NATS
// broker: the durable consumer's filter and recorded bindings become the
// new --events set.
func TestServeOnNATSFiltersExactlyItsEvents(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	first := startServe(t, "--nats-listen", addr, "--events", "#", "--data", data, "--listen", "127.0.0.1:0")
	if code := first.stop(); code != 0 {
		t.Fatalf("first serve exited %d: %s", code, first.stderr.String())
	}
	second := startServe(t, "--nats-listen", addr, "--events", "iam.#,flowrepo.flow.created", "--data", data, "--listen", "127.0.0.1:0")
	if log := second.stderr.String(); !strings.Contains(log, "removed=[#]") {
		t.Errorf("the second serve did not log the bindings it changed:\n%s", log)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := natsbus.Dial(ctx, "nats://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(context.Background())
	info, err := tr.InspectQueue(ctx, auditlog.QueueName)
	if err != nil || !slices.Equal(info.Bindings, []string{"flowrepo.flow.created", "iam.#"}) {
		t.Errorf("recorded bindings %q (%v), want the second serve's", info.Bindings, err)
	}
}

// readToken returns the admin token serve wrote to data.
func readToken(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
