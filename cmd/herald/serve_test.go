package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/bus"
	natsbus "github.com/heraldhq/herald/bus/nats"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

var (
	apiLine    = regexp.MustCompile(`audit log API\s+(http://\S+)/logs`)
	brokerLine = regexp.MustCompile(`broker\s+(nats://\S+)`)
)

// banner waits for serve's banner on r and returns the API base URL and the
// broker URL. It keeps draining r afterwards so the process never blocks.
func banner(t *testing.T, r io.Reader) (api, broker string) {
	t.Helper()
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		var a, b string
		for sc.Scan() {
			line := sc.Text()
			if m := apiLine.FindStringSubmatch(line); m != nil {
				a = m[1]
			}
			if m := brokerLine.FindStringSubmatch(line); m != nil {
				b = m[1]
			}
			if a != "" && b != "" {
				found <- [2]string{a, b}
				a, b = "", "\x00"
			}
		}
	}()
	select {
	case f := <-found:
		return f[0], f[1]
	case <-time.After(60 * time.Second):
		t.Fatal("serve printed no banner within 60s")
	}
	return "", ""
}

type logsPage struct {
	Data []logsEntry `json:"data"`
	Meta struct {
		Total int `json:"total"`
	} `json:"meta"`
	NextCursor string `json:"nextCursor"`
}

type logsEntry struct {
	ID      string `json:"id"`
	Headers struct {
		Name        string `json:"name"`
		ServiceName string `json:"serviceName"`
	} `json:"headers"`
	Payload   map[string]any `json:"payload"`
	LeafIndex *int64         `json:"leafIndex"`
}

func getLogs(t *testing.T, url, token string) (logsPage, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p logsPage
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return p, resp.StatusCode
}

// storedIDs pages through every entry of the audit log.
func storedIDs(t *testing.T, api, token string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	url := api + "/logs?page[size]=1000&sort=createdAt"
	for {
		p, code := getLogs(t, url, token)
		if code != http.StatusOK {
			t.Fatalf("GET /logs: status %d", code)
		}
		for _, d := range p.Data {
			ids[d.ID] = true
		}
		if p.NextCursor == "" {
			return ids
		}
		url = api + "/logs?page[size]=1000&sort=createdAt&cursor=" + p.NextCursor
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func natsBus(t *testing.T, url, service string) *bus.Bus {
	t.Helper()
	tr, err := natsbus.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(tr, bus.WithService(service))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

func TestServeRecordsPublishedEventsAndServesThemWithTheGeneratedToken(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		// Reads are not recorded, so that the totals below count only
		// what was published.
		done <- run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--audit-reads=false"}, pw, &stderr)
		pw.Close()
	}()
	api, broker := banner(t, pr)
	tokenBytes, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatalf("serve wrote no admin token: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, tokenFileName)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(tokenBytes))

	if _, code := getLogs(t, api+"/logs", ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /logs: status %d, want 401", code)
	}

	pub := natsBus(t, broker, "accounts")
	for i := range 20 {
		ev, _ := event.New("iam.user.created", json.RawMessage(fmt.Sprintf(`{"id":"u%d","username":"u%d@example.com"}`, i, i)))
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Not audited: never recorded.
	ev, _ := event.New("component.started", json.RawMessage(`{"id":"c1"}`))
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "20 entries", func() bool {
		p, _ := getLogs(t, api+"/logs?filter[service]=accounts", token)
		return p.Meta.Total == 20
	})
	p, _ := getLogs(t, api+"/logs?filter[service]=accounts&filter[name]=iam.user.created&page[size]=5", token)
	if len(p.Data) != 5 || p.Data[0].Headers.Name != "iam.user.created" {
		t.Errorf("filtered page: %+v", p)
	}
	if p, _ := getLogs(t, api+"/logs?filter[name]=component.started", token); p.Meta.Total != 0 {
		t.Errorf("an event the audit log does not record was stored")
	}

	// The demo: simulate publishes a story, logs shows what was recorded.
	var simOut, simErr bytes.Buffer
	if code := run(ctx, []string{"simulate", "--count", "300", "--seed", "3", "--broker", broker, "--output", "json"}, &simOut, &simErr); code != 0 {
		t.Fatalf("simulate exited %d: %s", code, simErr.String())
	}
	var sim struct {
		ByName map[string]int `json:"byName"`
	}
	if err := json.Unmarshal(simOut.Bytes(), &sim); err != nil {
		t.Fatalf("simulate summary %q: %v", simOut.String(), err)
	}
	audited := 20 // the iam.user.created events above
	for name, n := range sim.ByName {
		if e, ok := catalog.Default().Lookup(name); ok && e.Audited {
			audited += n
		}
	}
	// Each deletion of a user also appends the record of its erasure.
	audited += sim.ByName[auditlog.UserDeleted]
	waitFor(t, 20*time.Second, "the simulated story in the audit log", func() bool {
		p, _ := getLogs(t, api+"/logs", token)
		return p.Meta.Total == audited
	})
	var logsOut, logsErr bytes.Buffer
	if code := run(ctx, []string{"logs", "--url", api, "--token", token, "--limit", "0", "--output", "ndjson"}, &logsOut, &logsErr); code != 0 {
		t.Fatalf("logs exited %d: %s", code, logsErr.String())
	}
	if lines := strings.Count(logsOut.String(), "\n"); lines != audited {
		t.Errorf("herald logs printed %d entries, want the %d recorded", lines, audited)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of its signal")
	}
	// Stopped cleanly: every part closed, in an order none complains of
	// (the bus before the broker it uses: no reconnect warning).
	if strings.Contains(stderr.String(), "level=ERROR") || strings.Contains(stderr.String(), "level=WARN") {
		t.Errorf("serve logged warnings or errors while it stopped:\n%s", stderr.String())
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(broker, "nats://"), time.Second); err == nil {
		c.Close()
		t.Errorf("the embedded broker still listens at %s after serve returned", broker)
	}
}

func TestServeOnATakenPortFailsNamingTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct{ flag, other string }{
		{"--listen", "--nats-listen"},
		{"--nats-listen", "--listen"},
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		code := run(context.Background(), []string{"serve", "--data", t.TempDir(), c.flag, taken, c.other, "127.0.0.1:0"}, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), c.flag) {
			t.Errorf("%s on a taken port: exit %d, stderr %q; want exit 1 naming %s", c.flag, code, errb.String(), c.flag)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s on a taken port took %v to fail", c.flag, d)
		}
	}
}

// TestSIGTERMDuringIngestLosesNoAcknowledgedEvent runs the real binary,
// stops it with SIGTERM while events stream in, starts it again on the same
// data folder, and checks that every event whose publish was acknowledged
// is in the audit log.
func TestSIGTERMDuringIngestLosesNoAcknowledgedEvent(t *testing.T) {
	bin := heraldBinary(t)
	dir := t.TempDir()
	start := func() (*exec.Cmd, string, string, *testkit.Buffer) {
		cmd := exec.Command(bin, "serve", "--data", dir, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--batch-size", "100")
		stdout, _ := cmd.StdoutPipe()
		var stderr testkit.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		api, broker := banner(t, stdout)
		return cmd, api, broker, &stderr
	}

	cmd, _, broker, stderr := start()
	tr, err := natsbus.Dial(context.Background(), broker)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bus.New(tr, bus.WithService("flow-repository"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []string
	)
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev, _ := event.New("flowrepo.flow.created", json.RawMessage(fmt.Sprintf(`{"flowId":"f%d","user":"u1","tenant":"t1"}`, i)))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := pub.Publish(ctx, ev)
			cancel()
			if err != nil {
				return // the broker is gone: this event was not acknowledged
			}
			mu.Lock()
			acked = append(acked, ev.Headers.ID)
			mu.Unlock()
		}
	}()
	waitFor(t, 30*time.Second, "2,000 acknowledged publishes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 2000
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, stderr.String())
	}
	close(stop)
	<-published
	pub.Close(context.Background())

	_, api, _, stderr2 := start()
	token, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := append([]string(nil), acked...)
	mu.Unlock()
	var missing []string
	var got map[string]bool
	defer func() {
		if t.Failed() {
			t.Logf("%d of %d acknowledged events missing (%d stored); second run's log:\n%s", len(missing), len(want), len(got), stderr2.String())
		}
	}()
	waitFor(t, 60*time.Second, "every acknowledged event in the audit log", func() bool {
		got = storedIDs(t, api, strings.TrimSpace(string(token)))
		missing = missing[:0]
		for _, id := range want {
			if !got[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	t.Logf("%d acknowledged events, all stored across a SIGTERM and restart", len(want))
}
