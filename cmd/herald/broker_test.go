package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsbus "github.com/heraldhq/herald/bus/nats"
	"github.com/heraldhq/herald/internal/testkit"
)

// freeAddr returns a loopback address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBroker runs `herald broker` with args until the test ends, and
// returns its URL once it has printed it.
func startBroker(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"broker", "--output", "json"}, args...), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("herald broker exited %d after Ctrl-C, want 0; stderr %q", code, stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "\n") {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("herald broker exited %d before it ran: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("herald broker printed nothing in 30s; stderr %q", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var out struct{ URL, Store string }
	if err := json.Unmarshal([]byte(stdout.String()), &out); err != nil {
		t.Fatalf("herald broker --output json printed %q: %v", stdout.String(), err)
	}
	return out.URL
}

func TestBrokerRunsUntilInterruptedAndKeepsItsData(t *testing.T) {
	data := t.TempDir()
	addr := freeAddr(t)
	url := startBroker(t, "--listen", addr, "--data", data)
	if url != "nats://"+addr {
		t.Errorf("URL %q, want nats://%s", url, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := natsbus.Dial(ctx, url)
	if err != nil {
		t.Fatalf("connect to the broker: %v", err)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "nats", "jetstream")); err != nil {
		t.Errorf("no JetStream store in the data folder: %v", err)
	}
}

func TestBrokerTextOutputSaysWhereItRuns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr testkit.Buffer
	done := make(chan int, 1)
	addr := freeAddr(t)
	go func() {
		done <- run(ctx, []string{"broker", "--listen", addr, "--data", t.TempDir()}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"nats://" + addr, "--broker", "Ctrl-C", "stopping"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not mention %q", out, want)
		}
	}
}

func TestBrokerOnATakenPortFailsNamingListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr testkit.Buffer
	code := run(context.Background(), []string{"broker", "--listen", ln.Addr().String(), "--data", t.TempDir()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--listen") || !strings.Contains(stderr.String(), ln.Addr().String()) {
		t.Errorf("exit %d, stderr %q: want 1, naming --listen and %s", code, stderr.String(), ln.Addr())
	}
}

func TestBrokerUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"broker", "--listen", "nowhere"},
		{"broker", "--listen", "127.0.0.1:99999"},
		{"broker", "--output", "xml"},
		{"broker", "extra"},
	} {
		var stdout, stderr testkit.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("herald %s: exit %d, want 2 (usage); stderr %q", strings.Join(args, " "), code, stderr.String())
		}
	}
}

// TestBrokerCarriesPublishToTail is the newcomer's walk-through: herald
// tail in one terminal, herald publish in another, both against herald
// broker.
func TestBrokerCarriesPublishToTail(t *testing.T) {
	url := startBroker(t, "--listen", freeAddr(t), "--data", t.TempDir())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tailOut, tailErr testkit.Buffer
	tailDone := make(chan int, 1)
	go func() {
		tailDone <- run(ctx, []string{"tail", "#", "--count", "1", "--output", "json", "--broker", url}, &tailOut, &tailErr)
	}()
	// tail reads a temporary queue that exists once it has subscribed:
	// publish until it has printed an event (each publish is a new one).
	for i := 0; ; i++ {
		var pubOut, pubErr testkit.Buffer
		payload := fmt.Sprintf(`{"id":"u%d","username":"a@b.c"}`, i)
		if code := run(ctx, []string{"publish", "iam.user.created", "--payload", payload, "--broker", url}, &pubOut, &pubErr); code != 0 {
			t.Fatalf("herald publish: exit %d, stderr %q", code, pubErr.String())
		}
		select {
		case code := <-tailDone:
			if code != 0 {
				t.Fatalf("herald tail: exit %d, stderr %q", code, tailErr.String())
			}
			var ev struct {
				Headers struct{ Name string }
				Payload struct{ ID string }
			}
			if err := json.Unmarshal([]byte(tailOut.String()), &ev); err != nil || ev.Headers.Name != "iam.user.created" || !strings.HasPrefix(ev.Payload.ID, "u") {
				t.Fatalf("herald tail printed %q (%v), want the published iam.user.created", tailOut.String(), err)
			}
			return
		case <-ctx.Done():
			t.Fatalf("herald tail printed nothing after %s publishes; stderr %q", strconv.Itoa(i+1), tailErr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
