package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/brokerlock"
)

// testBrokerURL returns the RabbitMQ the CLI tests run against, skipping
// (or failing under HERALD_REQUIRE_SERVICES=1) without one.
func testBrokerURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("HERALD_TEST_AMQP_URL")
	if u == "" {
		if os.Getenv("HERALD_REQUIRE_SERVICES") == "1" {
			t.Fatal("HERALD_TEST_AMQP_URL is required (HERALD_REQUIRE_SERVICES=1)")
		}
		t.Skip("set HERALD_TEST_AMQP_URL (for example amqp://guest:guest@127.0.0.1:5672/) to run against RabbitMQ")
	}
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
