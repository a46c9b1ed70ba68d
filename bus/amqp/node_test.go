package amqp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/testkit"
)

// The Node side of the interop and reliability tests: scripts in
// testdata/node run with OIH's real library, @openintegrationhub/event-bus
// 1.3.0 (and amqplib 0.8.0, its dependency), installed by
// .ci/npm-interop.sh into the folder HERALD_TEST_OIH_NODE_MODULES names.

// nodeModules returns the node_modules folder holding OIH's library,
// skipping (or failing) the test when it or node is missing.
func nodeModules(t testing.TB) string {
	t.Helper()
	dir := testkit.Need(t, envNodeModules, "the node_modules folder .ci/npm-interop.sh prints")
	pkg := filepath.Join(dir, "@openintegrationhub", "event-bus", "package.json")
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatalf("%s=%s: %v (install with .ci/npm-interop.sh)", envNodeModules, dir, err)
	}
	var p struct{ Version string }
	if err := json.Unmarshal(b, &p); err != nil || p.Version != "1.3.0" {
		t.Fatalf("%s: version %q, want 1.3.0 (%v)", pkg, p.Version, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		testkit.SkipUnless(t, "PATH", fmt.Sprintf("node is not on PATH: %v", err))
	}
	return dir
}

// nodeMsg is one "@@ {json}" line of a script.
type nodeMsg struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	ServiceName string          `json:"serviceName"`
	ID          string          `json:"id"`
	CreatedAt   json.RawMessage `json:"createdAt"`
	Payload     json.RawMessage `json:"payload"`
	Traceparent string          `json:"traceparent"`
	Body        string          `json:"body"`
	Properties  struct {
		ContentType  string `json:"contentType"`
		DeliveryMode int    `json:"deliveryMode"`
		MessageID    string `json:"messageId"`
		Timestamp    int64  `json:"timestamp"`
	} `json:"properties"`
	Published  int     `json:"published"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"firstError"`
	Received   int     `json:"received"`
	Distinct   int     `json:"distinct"`
	Seconds    float64 `json:"seconds"`
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
	Rate       float64 `json:"rate"`
	Error      string  `json:"error"`
}

// nodeProc is a running script.
type nodeProc struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	msgs   chan nodeMsg
	exited chan struct{}

	mu     sync.Mutex
	stderr bytes.Buffer
	err    error
}

// startNode runs testdata/node/<script> with args; the process is killed
// when the test ends if it is still running.
func startNode(t testing.TB, modules, script string, args ...string) *nodeProc {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", "node", script))
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{t: t, name: script, msgs: make(chan nodeMsg, 1<<16), exited: make(chan struct{})}
	p.cmd = exec.Command("node", append([]string{path}, args...)...)
	p.cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "@@ ")
			if !ok {
				continue
			}
			var m nodeMsg
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				m = nodeMsg{Type: "error", Error: fmt.Sprintf("bad line %q: %v", line, err)}
			}
			p.msgs <- m
		}
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.msgs)
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *nodeProc) describe() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := strings.TrimSpace(p.stderr.String())
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return fmt.Sprintf("node %s (exit: %v) stderr:\n%s", p.name, p.err, s)
}

// next returns the script's next message, failing on an error message, an
// early exit or timeout.
func (p *nodeProc) next(timeout time.Duration) nodeMsg {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-p.msgs:
		if !ok {
			p.t.Fatalf("%s ended without the expected output", p.describe())
		}
		if m.Type == "error" {
			p.t.Fatalf("node %s: %s\n%s", p.name, m.Error, p.describe())
		}
		return m
	case <-timer.C:
		p.t.Fatalf("no output from %s within %v", p.describe(), timeout)
	}
	return nodeMsg{}
}

// waitType skips messages until one of type typ, handing the others to
// each (when not nil).
func (p *nodeProc) waitType(typ string, timeout time.Duration, each func(nodeMsg)) nodeMsg {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := p.next(time.Until(deadline))
		if m.Type == typ {
			return m
		}
		if each != nil {
			each(m)
		}
	}
}

// finish closes the script's stdin (the signal to stop for scripts that
// run until then), waits for its summary and its exit.
func (p *nodeProc) finish(timeout time.Duration, each func(nodeMsg)) nodeMsg {
	p.t.Helper()
	_ = p.stdin.Close()
	m := p.waitType("summary", timeout, each)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit", p.describe())
	}
	p.mu.Lock()
	err := p.err
	p.mu.Unlock()
	if err != nil {
		p.t.Fatalf("%s", p.describe())
	}
	return m
}

func runID() string { return fmt.Sprintf("%08x", rand.Uint32()) }

// brokerAdmin is a plain amqp091 connection for looking at queues.
type brokerAdmin struct {
	t    testing.TB
	conn *amqp091.Connection
}

func newBrokerAdmin(t testing.TB) *brokerAdmin {
	t.Helper()
	conn, err := amqp091.Dial(testURL(t))
	if err != nil {
		t.Fatalf("admin connection: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &brokerAdmin{t: t, conn: conn}
}

// consumers returns the consumer count of queue (an error when it does not
// exist yet).
func (a *brokerAdmin) consumers(queue string) (int, error) {
	ch, err := a.conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Consumers, nil
}

// waitConsumers waits until queue has n consumers.
func (a *brokerAdmin) waitConsumers(queue string, n int, timeout time.Duration) {
	a.t.Helper()
	testkit.Eventually(a.t, timeout, func() error {
		got, err := a.consumers(queue)
		if err != nil {
			return fmt.Errorf("queue %s: %w", queue, err)
		}
		if got != n {
			return fmt.Errorf("queue %s has %d consumers, want %d", queue, got, n)
		}
		return nil
	})
}

// messages returns the number of ready messages in queue.
func (a *brokerAdmin) messages(queue string) (int, error) {
	ch, err := a.conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Messages, nil
}

func (a *brokerAdmin) deleteQueue(name string) {
	ch, err := a.conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	_, _ = ch.QueueDelete(name, false, false, false)
}
