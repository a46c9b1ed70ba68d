package amqp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/internal/brokerlock"
	"github.com/heraldhq/herald/internal/testkit"
)

// Test gates and broker control shared by the tests of this package.
//
//	HERALD_TEST_AMQP_URL              the RabbitMQ to test against
//	HERALD_TEST_AMQP_MANAGEMENT_URL   optional, e.g. http://guest:guest@127.0.0.1:15672:
//	                                  close connections through the management API
//	                                  instead of rabbitmqctl
//	HERALD_TEST_OIH_NODE_MODULES      node_modules holding @openintegrationhub/event-bus@1.3.0
//	                                  and amqplib (see .ci/npm-interop.sh)
//	HERALD_TEST_AMQP_NO_RESTART=1     skip the tests that restart or block RabbitMQ
//	HERALD_REQUIRE_SERVICES=1         a missing variable, or a test that would skip,
//	                                  fails instead

const (
	envURL         = "HERALD_TEST_AMQP_URL"
	envManagement  = "HERALD_TEST_AMQP_MANAGEMENT_URL"
	envNodeModules = "HERALD_TEST_OIH_NODE_MODULES"
	envNoRestart   = "HERALD_TEST_AMQP_NO_RESTART"
)

func testURL(t testing.TB) string {
	t.Helper()
	return testkit.Need(t, envURL, "amqp://guest:guest@127.0.0.1:5672/")
}

// connName is the connection name of the transports a test dials; the
// broker controls below close only those.
func connName(t testing.TB) string { return "herald-test " + t.Name() }

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// dialTest dials a transport named after t, closed when t ends.
func dialTest(t testing.TB, opts ...Option) *Transport {
	t.Helper()
	u := testURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	all := append([]Option{WithConnectionName(connName(t)), WithLogger(testLogger(t))}, opts...)
	tr, err := Dial(ctx, u, all...)
	if err != nil {
		t.Fatalf("dial %s: %v", redact(u), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = tr.Close(ctx)
	})
	return tr
}

// closeConnections forcibly closes every broker connection whose name is
// connName(t) or belongs to one of t's subtests, and returns how many it
// closed.
func closeConnections(t testing.TB) int {
	t.Helper()
	name := connName(t)
	match := func(n string) bool { return n == name || strings.HasPrefix(n, name+"/") }
	if m := os.Getenv(envManagement); m != "" {
		return closeViaManagement(t, m, match)
	}
	return closeViaCtl(t, match)
}

func closeViaManagement(t testing.TB, base string, match func(string) bool) int {
	t.Helper()
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil {
		t.Fatalf("%s: %v", envManagement, err)
	}
	user := u.User
	u.User = nil
	do := func(method, path string) []byte {
		req, _ := http.NewRequest(method, u.String()+path, nil)
		if user != nil {
			p, _ := user.Password()
			req.SetBasicAuth(user.Username(), p)
		}
		req.Header.Set("X-Reason", "herald test: forced disconnect")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("management API %s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("management API %s %s: %s %s", method, path, resp.Status, b)
		}
		return b
	}
	var conns []struct {
		Name             string         `json:"name"`
		ClientProperties map[string]any `json:"client_properties"`
	}
	if err := json.Unmarshal(do("GET", "/api/connections?columns=name,client_properties"), &conns); err != nil {
		t.Fatalf("management API: list connections: %v", err)
	}
	n := 0
	for _, c := range conns {
		if cn, _ := c.ClientProperties["connection_name"].(string); match(cn) {
			do("DELETE", "/api/connections/"+url.PathEscape(c.Name))
			n++
		}
	}
	return n
}

func closeViaCtl(t testing.TB, match func(string) bool) int {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "list_connections", "-s", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections (set %s to use the management API instead): %v\n%s", envManagement, err, out)
	}
	var pids []string
	for _, line := range strings.Split(string(out), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		// client_properties prints as Erlang terms:
		// [...,{"connection_name","herald-test TestX"}]
		_, rest, ok := strings.Cut(props, `{"connection_name","`)
		if !ok {
			continue
		}
		cn, _, _ := strings.Cut(rest, `"}`)
		if match(cn) {
			pids = append(pids, pid)
		}
	}
	var wg sync.WaitGroup
	for _, pid := range pids {
		wg.Go(func() {
			// A connection that closed meanwhile is not an error.
			_ = exec.Command("rabbitmqctl", "close_connection", pid, "herald test: forced disconnect").Run()
		})
	}
	wg.Wait()
	return len(pids)
}

// needBrokerControl lets the test stop, start or block the RabbitMQ under
// test (what says which), holding the broker lock exclusively until it
// ends. It skips the test when that cannot be done here (a broker that is
// not local, no working rabbitmqctl, or HERALD_TEST_AMQP_NO_RESTART=1),
// saying why and what would enable it; under HERALD_REQUIRE_SERVICES=1 it
// fails it instead, since then nothing may skip.
func needBrokerControl(t testing.TB, what string) {
	t.Helper()
	why := brokerControlUnavailable(t)
	if why == "" {
		// No other package's test may use the broker while this one
		// restarts or blocks it.
		brokerlock.Hold(t, true)
		return
	}
	testkit.SkipUnless(t, envNoRestart, fmt.Sprintf("cannot %s here: %s", what, why))
}

// brokerControlUnavailable says why the RabbitMQ under test cannot be
// restarted from here, or returns "" when it can.
func brokerControlUnavailable(t testing.TB) string {
	t.Helper()
	if os.Getenv(envNoRestart) == "1" {
		return envNoRestart + "=1 (unset it to run this test)"
	}
	u, err := url.Parse(testURL(t))
	if err != nil {
		return err.Error()
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return fmt.Sprintf("the broker at %s is not local, so rabbitmqctl cannot control it (point %s at a local RabbitMQ)", h, envURL)
	}
	if out, err := exec.Command("rabbitmqctl", "-q", "status").CombinedOutput(); err != nil {
		return fmt.Sprintf("rabbitmqctl status failed (run the tests as root on the broker's machine): %v: %s", err, firstLine(out))
	}
	return ""
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// restartBroker runs rabbitmqctl stop_app and start_app. A cleanup
// registered first starts the app again whatever happens.
func restartBroker(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app (cleanup): %v: %s", err, out)
		}
	})
	if out, err := exec.Command("rabbitmqctl", "stop_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl stop_app: %v: %s", err, out)
	}
	if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl start_app: %v: %s", err, out)
	}
}

// deleteQueues deletes the durable queues herald declares for each service
// (its queue, its dead-letter queue and every retry step), so that test
// runs leave nothing behind on a shared broker.
func deleteQueues(t testing.TB, services ...string) {
	t.Helper()
	if len(services) == 0 {
		return
	}
	conn, err := amqp091.Dial(testURL(t))
	if err != nil {
		t.Logf("cleanup: cannot delete test queues: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, s := range services {
		names := []string{s, s + ".dead", bindingsQueue(s)}
		for step := MinRetryDelay; step <= DefaultMaxRetryDelay; step *= 2 {
			names = append(names, retryQueueName(s, step))
		}
		names = append(names, retryQueueName(s, DefaultMaxRetryDelay))
		for _, q := range names {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				if ch, err = conn.Channel(); err != nil {
					return
				}
			}
		}
	}
}

// queueRecorder wraps transports to note the durable queues they consume,
// for deleteQueues.
type queueRecorder struct {
	mu    sync.Mutex
	names map[string]bool
}

func (r *queueRecorder) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names == nil {
		r.names = make(map[string]bool)
	}
	r.names[name] = true
}

func (r *queueRecorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.names {
		out = append(out, n)
	}
	return out
}

// recordingTransport is a Transport that notes its durable queues.
type recordingTransport struct {
	*Transport
	rec *queueRecorder
}

func (r recordingTransport) Consume(ctx context.Context, q driver.QueueSpec, patterns []string, deliver func(driver.Delivery)) (driver.Consumer, error) {
	if !q.Temporary {
		r.rec.add(q.Name)
	}
	return r.Transport.Consume(ctx, q, patterns, deliver)
}

func (r recordingTransport) SetBindings(ctx context.Context, queue string, patterns []string) (driver.BindingChanges, error) {
	r.rec.add(queue)
	return r.Transport.SetBindings(ctx, queue, patterns)
}
