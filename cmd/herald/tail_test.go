package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/amqp"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestTailUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tail", "--output", "xml"}, "--output"},
		{[]string{"tail", "--count", "-1"}, "--count"},
		{[]string{"tail", "--timeout", "0s"}, "--timeout"},
		{[]string{"tail", "a..b"}, "a..b"},
		{[]string{"tail", "--broker", "ftp://host/"}, "--broker"},
	} {
		code, _, stderr := herald(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("herald %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

func TestTailNamesTheBrokerFlagWhenNothingAnswers(t *testing.T) {
	code, _, stderr := herald(t, "tail", "--broker", unreachableBroker)
	if code != 1 || !strings.Contains(stderr, "no broker answers") || !strings.Contains(stderr, "--broker") {
		t.Errorf("exit %d, stderr %q: want 1, naming --broker", code, stderr)
	}
}

// startTail runs herald tail with args in the background and waits until
// it is subscribed; the returned function waits for its exit code.
func startTail(t *testing.T, ctx context.Context, args ...string) (stdout *testkit.Buffer, wait func() int) {
	t.Helper()
	stdout, stderr := &testkit.Buffer{}, &testkit.Buffer{}
	ready := make(chan struct{})
	stderr.When(testkit.Contains("tailing "), func() { close(ready) })
	code := make(chan int, 1)
	go func() { code <- run(ctx, append([]string{"tail"}, args...), stdout, stderr) }()
	select {
	case <-ready:
	case c := <-code:
		t.Fatalf("tail exited with %d before subscribing: %s", c, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("tail did not subscribe within 30s: %s", stderr)
	}
	return stdout, func() int {
		select {
		case c := <-code:
			if c != 0 {
				t.Errorf("tail: exit %d: %s", c, stderr)
			}
			return c
		case <-time.After(60 * time.Second):
			t.Fatalf("tail did not exit within 60s; stderr: %s", stderr)
		}
		return -1
	}
}

func TestTailPrintsWhatPublishSendsAsWireJSON(t *testing.T) {
	broker := testBrokerURL(t)
	p := "clitest-" + cliRun()
	out, wait := startTail(t, context.Background(), p+".#", "--broker", broker, "--output", "json", "--count", "300")
	code, _, stderr := herald(t, "publish", p+".thing.done", "--no-validate", "--payload", `{"k":[1,"two"]}`,
		"--user", "u-1", "--tenant", "t-1", "--count", "300", "--broker", broker)
	if code != 0 {
		t.Fatalf("publish --count 300: exit %d: %s", code, stderr)
	}
	wait()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 300 {
		t.Fatalf("tail printed %d lines, want 300", len(lines))
	}
	ids := make(map[string]bool)
	for _, line := range lines {
		var wire struct {
			Headers map[string]json.RawMessage `json:"headers"`
			Payload map[string]any             `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &wire); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ev, err := event.Decode([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := wire.Headers["id"]; !ok || ev.Headers.Name != p+".thing.done" || ev.Headers.ServiceName != "herald-cli" {
			t.Errorf("line %s: want the wire form with an id, the name and serviceName herald-cli", line)
		}
		if ev.User() != "u-1" || ev.Tenant() != "t-1" || !jsonSame(ev.Payload, []byte(`{"k":[1,"two"],"user":"u-1","tenant":"t-1"}`)) {
			t.Errorf("line %s: payload %s", line, ev.Payload)
		}
		ids[ev.Headers.ID] = true
	}
	if len(ids) != 300 {
		t.Errorf("%d distinct ids among 300 events", len(ids))
	}
}

func TestTailTextShowsNameServiceAndPayload(t *testing.T) {
	broker := testBrokerURL(t)
	out, wait := startTail(t, context.Background(), "iam.user.deleted", "--broker", broker, "--count", "1")
	id := "5f1c0c6e2a9b4c00" + cliRun()
	if code, _, stderr := herald(t, "publish", "iam.user.deleted", "--payload", `{"id":"`+id+`"}`, "--service", "accounts", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	wait()
	line := out.String()
	// Another run on a shared broker may publish iam.user.deleted too: the
	// line printed is some iam.user.deleted event.
	if !strings.Contains(line, "iam.user.deleted") || strings.Count(line, "\n") != 1 {
		t.Errorf("tail printed %q, want one line with the name", line)
	}
	if strings.Contains(line, id) && !strings.Contains(line, "accounts") {
		t.Errorf("tail printed %q, want the service", line)
	}
}

func TestTailStopsOnInterrupt(t *testing.T) {
	broker := testBrokerURL(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, wait := startTail(t, ctx, "clitest-"+cliRun()+".never", "--broker", broker)
	cancel() // what SIGINT does through main's signal.NotifyContext
	if code := wait(); code != 0 {
		t.Errorf("tail exit %d on interrupt, want 0", code)
	}
}

// TestTailWithServiceSharesTheServiceQueue: with --service, tail is one
// more replica on the service's durable queue and acknowledges what it
// prints, so the events are gone from the queue afterwards.
func TestTailWithServiceSharesTheServiceQueue(t *testing.T) {
	broker := testBrokerURL(t)
	run := cliRun()
	service := "clitest-" + run + "-svc"
	p := "clitest-" + run
	t.Cleanup(func() { deleteTestQueues(t, broker, service, service+".dead", service+".bindings") })
	recordBindings(t, broker, service, p+".x")
	out, wait := startTail(t, context.Background(), "--broker", broker, "--service", service, "--count", "5", "--output", "json")
	if code, _, stderr := herald(t, "publish", p+".x", "--no-validate", "--count", "5", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	wait()
	if n := strings.Count(out.String(), "\n"); n != 5 {
		t.Errorf("tail printed %d events, want 5", n)
	}
	conn, err := amqp091.Dial(broker)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(service, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("the service's durable queue %s: %v", service, err)
	}
	if q.Messages != 0 {
		t.Errorf("queue %s holds %d messages after tail printed them, want 0 (acknowledged)", service, q.Messages)
	}
}

// recordBindings binds service's queue to patterns and records them, as
// herald serve does for the audit log's.
func recordBindings(t *testing.T, broker, service string, patterns ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tr, err := amqp.Dial(ctx, broker)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	if _, err := tr.SetBindings(ctx, service, patterns); err != nil {
		t.Fatal(err)
	}
}

func deleteTestQueues(t *testing.T, broker string, names ...string) {
	conn, err := amqp091.Dial(broker)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, n := range names {
		_, _ = ch.QueueDelete(n, false, false, false)
	}
}

// TestTailWithServiceAcknowledgesOnlyWhatItPrints: the events of a
// service's queue that tail does not print (past --count) stay the
// service's.
func TestTailWithServiceAcknowledgesOnlyWhatItPrints(t *testing.T) {
	broker := testBrokerURL(t)
	run := cliRun()
	service := "clitest-" + run + "-keep"
	name := "clitest-" + run + ".kept"
	t.Cleanup(func() {
		deleteTestQueues(t, broker, service, service+".dead", service+".retry.100ms", service+".bindings")
	})
	conn, err := amqp091.Dial(broker)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The service's queue, as herald serve binds and records it.
	recordBindings(t, broker, service, name)
	if code, _, stderr := herald(t, "publish", name, "--no-validate", "--count", "50", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	out, wait := startTail(t, context.Background(), "--broker", broker, "--service", service, "--count", "1")
	wait()
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("tail --count 1 printed %d lines", n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(service, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages == 49 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s holds %d messages after tail printed one of 50, want 49", service, q.Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTailPrintsCloudEvents(t *testing.T) {
	broker := testBrokerURL(t)
	p := "clitest-" + cliRun()
	out, wait := startTail(t, context.Background(), p+".#", "--broker", broker, "--output", "cloudevents", "--count", "3")
	code, _, stderr := herald(t, "publish", p+".thing.done", "--no-validate", "--payload", `{"k":[1,"two"]}`,
		"--user", "u-1", "--tenant", "t-1", "--service", "flow-repository", "--count", "3", "--broker", broker)
	if code != 0 {
		t.Fatalf("publish --count 3: exit %d: %s", code, stderr)
	}
	wait()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("tail printed %d lines, want 3: %q", len(lines), out.String())
	}
	for _, line := range lines {
		var ce map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &ce); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for k, want := range map[string]string{
			"specversion": `"1.0"`, "source": `"flow-repository"`, "type": `"` + p + `.thing.done"`,
			"oihuser": `"u-1"`, "oihtenant": `"t-1"`, "datacontenttype": `"application/json"`,
		} {
			if string(ce[k]) != want {
				t.Errorf("line %s: %s = %s, want %s", line, k, ce[k], want)
			}
		}
		ev, err := event.DecodeCloudEvent([]byte(line))
		if err != nil {
			t.Fatalf("line %s: %v", line, err)
		}
		if !jsonSame(ev.Payload, []byte(`{"k":[1,"two"],"user":"u-1","tenant":"t-1"}`)) || ev.Headers.CreatedAt.IsZero() {
			t.Errorf("line %s: payload %s, createdAt %v", line, ev.Payload, ev.Headers.CreatedAt)
		}
	}
}

func TestTailNotesAPatternTheCatalogueDoesNotKnow(t *testing.T) {
	// The note comes before tail connects: an unreachable broker ends it.
	_, _, stderr := herald(t, "tail", "iam.user.craeted", "flow.*", "--broker", unreachableBroker)
	if !strings.Contains(stderr, `"iam.user.craeted" matches no catalogued event: did you mean iam.user.created?`) {
		t.Errorf("stderr %q: want a note with the closest name", stderr)
	}
	if strings.Contains(stderr, `"flow.*"`) {
		t.Errorf("a pattern that matches catalogued events is noted: %q", stderr)
	}
}

// TestTailWithServiceNeverChangesTheQueue: tail --service binds nothing,
// refuses patterns that would narrow what it takes, and refuses a queue
// whose bindings were never recorded.
func TestTailWithServiceNeverChangesTheQueue(t *testing.T) {
	broker := testBrokerURL(t)
	run := cliRun()
	service := "clitest-" + run + "-fixed"
	p := "clitest-" + run
	t.Cleanup(func() { deleteTestQueues(t, broker, service, service+".dead", service+".bindings") })
	recordBindings(t, broker, service, p+".a", p+".b")

	code, _, stderr := herald(t, "tail", p+".a", "--service", service, "--broker", broker)
	if code != 2 || !strings.Contains(stderr, "cannot narrow") || !strings.Contains(stderr, "drop --service") {
		t.Errorf("tail --service with a pattern: exit %d, stderr %q; want 2, explaining", code, stderr)
	}
	code, _, stderr = herald(t, "tail", "--service", "clitest-"+run+"-unrecorded", "--broker", broker)
	if code != 1 || !strings.Contains(stderr, "clitest-"+run+"-unrecorded") {
		t.Errorf("tail --service of a queue nobody recorded: exit %d, stderr %q; want 1 naming it", code, stderr)
	}

	// '#' is the queue's whole share, as no pattern is.
	out, wait := startTail(t, context.Background(), "#", "--broker", broker, "--service", service, "--count", "2", "--output", "json")
	if code, _, stderr := herald(t, "publish", p+".a", "--no-validate", "--count", "2", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	wait()
	if n := strings.Count(out.String(), "\n"); n != 2 {
		t.Errorf("tail printed %d events, want 2", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tr, err := amqp.Dial(ctx, broker)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	info, err := tr.InspectQueue(ctx, service)
	if err != nil || !slices.Equal(info.Bindings, []string{p + ".a", p + ".b"}) {
		t.Errorf("recorded bindings after tail: %q (%v), want the two recorded before", info.Bindings, err)
	}
	// Nothing else bound: an event of another name does not reach the queue.
	if code, _, stderr := herald(t, "publish", p+".c", "--no-validate", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	if code, _, stderr := herald(t, "publish", p+".b", "--no-validate", "--broker", broker); code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	if info, err := tr.InspectQueue(ctx, service); err != nil || info.Depth != 1 {
		t.Errorf("queue holds %d messages (%v), want the 1 of a recorded pattern: tail bound another", info.Depth, err)
	}
}
