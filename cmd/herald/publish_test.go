package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/brokerlock"
	"github.com/heraldhq/herald/internal/testkit"
)

// testBrokerURL returns the RabbitMQ the CLI tests run against, skipping
// (or failing under HERALD_REQUIRE_SERVICES=1) without one.
func testBrokerURL(t *testing.T) string {
	t.Helper()
	u := testkit.Need(t, "HERALD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
	// bus/amqp's tests restart the broker; not while this test uses it.
	brokerlock.Hold(t, false)
	return u
}

// unreachableBroker is a broker URL nothing answers at.
const unreachableBroker = "amqp://guest:guest@127.0.0.1:1/"

func TestPublishUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.json")
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"publish"}, "one event name"},
		{[]string{"publish", "a.b", "c.d"}, "one event name"},
		{[]string{"publish", "iam.user.deleted", "--payload", "not json"}, "JSON object"},
		{[]string{"publish", "iam.user.deleted", "--payload", "[1,2]"}, "JSON object"},
		{[]string{"publish", "iam.user.deleted", "--payload", "@" + missing}, "missing.json"},
		{[]string{"publish", "iam.user.deleted", "--count", "0"}, "--count"},
		{[]string{"publish", "iam.user.deleted", "--count", "5", "--rate", "-1"}, "--rate"},
		{[]string{"publish", "iam.user.deleted", "--rate", "10"}, "--count"},
		{[]string{"publish", "iam.user.deleted", "--output", "xml"}, "--output"},
		{[]string{"publish", "iam.user.deleted", "--timeout", "0s"}, "--timeout"},
		{[]string{"publish", "iam.user.deleted", "--service", ""}, "--service"},
		{[]string{"publish", "iam.user.craeted", "--payload", `{"id":"x"}`}, "iam.user.created"}, // did you mean
		{[]string{"publish", "iam.user.created", "--payload", `{"id":42}`}, "--no-validate"},     // breaks the schema
		{[]string{"publish", "bad..name", "--no-validate"}, "name"},
		{[]string{"publish", "iam.user.deleted", "--payload", `{"id":"x"}`, "--broker", "ftp://host/"}, "--broker"},
		{[]string{"publish", "iam.user.deleted", "--payload", `{"id":"x"}`, "--broker", "localhost:5672"}, "--broker"},
		{[]string{"publish", "iam.user.deleted", "--bogus"}, "bogus"},
	} {
		code, _, stderr := herald(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("herald %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

func TestPublishNamesTheBrokerFlagWhenNothingAnswers(t *testing.T) {
	code, _, stderr := herald(t, "publish", "iam.user.deleted", "--payload", `{"id":"x"}`, "--broker", unreachableBroker)
	if code != 1 || !strings.Contains(stderr, "no broker answers") || !strings.Contains(stderr, "--broker") || !strings.Contains(stderr, envBrokerURL) {
		t.Errorf("exit %d, stderr %q: want 1, saying no broker answers and naming --broker and %s", code, stderr, envBrokerURL)
	}
	if strings.Contains(stderr, "guest:guest") {
		t.Errorf("stderr %q shows the password", stderr)
	}
}

func TestPublishBuildsTheEventFromFlagsFilesAndStandardInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(file, []byte(`{"flowId":"f-1","tenant":"old"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		payload, stdin string
		want           string
	}{
		{`{"flowId":"f-1"}`, "", `{"flowId":"f-1","user":"u-1","tenant":"t-1"}`},
		{"@" + file, "", `{"flowId":"f-1","user":"u-1","tenant":"t-1"}`},
		{"@-", `{"flowId":"f-2"}`, `{"flowId":"f-2","user":"u-1","tenant":"t-1"}`},
		// As herald catalog check takes it: one way for both commands.
		{"-", `{"flowId":"f-3"}`, `{"flowId":"f-3","user":"u-1","tenant":"t-1"}`},
	} {
		o := publishOptions{name: "flowrepo.flow.created", payload: tc.payload, service: "flow-repository", user: "u-1", tenant: "t-1"}
		ev, err := o.publishEvent(strings.NewReader(tc.stdin))
		if err != nil {
			t.Fatalf("payload %s: %v", tc.payload, err)
		}
		if !jsonSame(ev.Payload, []byte(tc.want)) || ev.Headers.ServiceName != "flow-repository" || ev.Headers.ID == "" {
			t.Errorf("payload %s: event %s %s, want payload %s from flow-repository with an id", tc.payload, ev.Headers.ServiceName, ev.Payload, tc.want)
		}
	}
}

func TestPublishAndTailHaveHelpWithExamples(t *testing.T) {
	for _, cmd := range []string{"publish", "tail"} {
		code, stdout, _ := herald(t, cmd, "--help")
		if code != 0 || !strings.Contains(stdout, "Examples:") || !strings.Contains(stdout, "herald "+cmd) || !strings.Contains(stdout, "--broker") {
			t.Errorf("herald %s --help: exit %d, output lacks examples or --broker:\n%s", cmd, code, stdout)
		}
	}
}

func jsonSame(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestPublishPrintsTheEventItSentAsJSON(t *testing.T) {
	broker := testBrokerURL(t)
	code, stdout, stderr := herald(t, "publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`,
		"--service", "accounts", "--broker", broker, "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ev, err := event.Decode([]byte(strings.TrimSpace(stdout)))
	if err != nil {
		t.Fatalf("output %q is not an event: %v", stdout, err)
	}
	if ev.Headers.Name != "iam.user.deleted" || ev.Headers.ServiceName != "accounts" || ev.Headers.ID == "" || ev.Headers.CreatedAt.IsZero() {
		t.Errorf("printed %s", stdout)
	}
}

func TestPublishTextSaysWhatWasSent(t *testing.T) {
	broker := testBrokerURL(t)
	code, stdout, stderr := herald(t, "publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`, "--broker", broker)
	if code != 0 || !strings.HasPrefix(stdout, "published iam.user.deleted (id ") || strings.Contains(stdout, "guest:guest") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func cliRun() string { return fmt.Sprintf("%08x", rand.Uint32()) }

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestPublishCountSendsEachCopyAtTheRate publishes --count copies through
// the embedded broker of herald broker. The duration is a lower bound only
// (the limiter's), which a slow machine cannot break.
func TestPublishCountSendsEachCopyAtTheRate(t *testing.T) {
	broker := startBroker(t, "--listen", "127.0.0.1:0", "--data", t.TempDir())
	const count, perSecond = 40, 100.0
	start := time.Now()
	code, stdout, stderr := herald(t, "publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`,
		"--count", strconv.Itoa(count), "--rate", fmt.Sprint(perSecond), "--broker", broker, "--output", "json")
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		ev, err := event.Decode([]byte(line))
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		ids[ev.Headers.ID] = true
	}
	if len(ids) != count {
		t.Errorf("%d distinct events printed, want %d", len(ids), count)
	}
	// A bucket of one event at 100/s: the first goes at once, each other
	// waits 10 ms.
	if least := time.Duration(count-1) * time.Second / time.Duration(perSecond); elapsed < least {
		t.Errorf("%d events at %v/s took %v, less than %v", count, perSecond, elapsed, least)
	}
}

func TestPublishCountStopsWhenTheBrokerGoes(t *testing.T) {
	ctx, stopBroker := context.WithCancel(context.Background())
	defer stopBroker()
	var brokerOut, brokerErr testkit.Buffer
	brokerDone := make(chan int, 1)
	go func() {
		brokerDone <- run(ctx, []string{"broker", "--output", "json", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, &brokerOut, &brokerErr)
	}()
	waitFor(t, 30*time.Second, "the broker's URL", func() bool { return strings.Contains(brokerOut.String(), "\n") })
	var b struct{ URL string }
	if err := json.Unmarshal([]byte(brokerOut.String()), &b); err != nil {
		t.Fatal(err)
	}

	// Far more than can be sent before the broker goes: a run that kept
	// going would take 100 s.
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`,
			"--count", "100000", "--rate", "1000", "--timeout", "1s", "--broker", b.URL, "--output", "json"}, &out, &errb)
	}()
	waitFor(t, 30*time.Second, "the first events", func() bool { return strings.Count(out.String(), "\n") >= 20 })
	stopBroker()
	<-brokerDone
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errb.String(), " of 100000 events, then:") || !strings.Contains(errb.String(), "did not confirm it within 1s") {
			t.Errorf("exit %d, stderr %q: want 1, the count before the failure, and the broker's silence", code, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("publish went on after the broker had gone")
	}
}

func TestPublishCountSaysHowFarItGotWhenInterrupted(t *testing.T) {
	broker := startBroker(t, "--listen", "127.0.0.1:0", "--data", t.TempDir())
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	var out, errb testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`,
			"--count", "100000", "--rate", "1000", "--broker", broker, "--output", "json"}, &out, &errb)
	}()
	waitFor(t, 30*time.Second, "the first events", func() bool { return strings.Count(out.String(), "\n") >= 20 })
	interrupt()
	select {
	case code := <-done:
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(errb.String(), "herald: "), "interrupted after %d of 100000 events", &n); code != 1 || err != nil || n < 20 || n != strings.Count(out.String(), "\n") {
			t.Errorf("exit %d, stderr %q, %d events printed: want 1, and how many of 100000 were sent before Ctrl-C", code, errb.String(), strings.Count(out.String(), "\n"))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publish went on after Ctrl-C")
	}
}

// failingWriter refuses every write, as a closed pipe does.
type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestPublishCountStopsWhenItCannotPrint(t *testing.T) {
	broker := startBroker(t, "--listen", "127.0.0.1:0", "--data", t.TempDir())
	closed := errors.New("broken pipe")
	var errb testkit.Buffer
	done := make(chan int, 1)
	// A run that kept going after the first refused write would take 100 s.
	go func() {
		done <- run(context.Background(), []string{"publish", "iam.user.deleted", "--payload", `{"id":"5f1c0c6e2a9b4c0012345678"}`,
			"--count", "100000", "--rate", "1000", "--broker", broker, "--output", "json"}, failingWriter{closed}, &errb)
	}()
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(errb.String(), " of 100000 events, then: broken pipe") {
			t.Errorf("exit %d, stderr %q: want 1, the count, and the write's error", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publish went on after its output was refused")
	}
}
