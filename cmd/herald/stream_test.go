package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog/client"
	"github.com/heraldhq/herald/internal/testkit"
)

// gatedStreams holds every GET /logs/stream after the first until open
// is closed: the client stays away while the server restarts and stores.
type gatedStreams struct {
	mu     sync.Mutex
	opened int
	open   chan struct{}
}

func (g *gatedStreams) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/logs/stream") {
		g.mu.Lock()
		g.opened++
		first := g.opened == 1
		g.mu.Unlock()
		if !first {
			select {
			case <-g.open:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestFollowResumesAcrossAServerRestart follows a real herald serve with
// the live stream, stops the server, starts it again on the same data and
// address, stores more while the follower is away, and lets it reconnect:
// it gets every entry once, in the order they were stored.
func TestFollowResumesAcrossAServerRestart(t *testing.T) {
	dir := t.TempDir()
	listen, natsListen := freeAddr(t), freeAddr(t)
	start := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		var stderr testkit.Buffer
		go func() {
			done <- run(ctx, []string{"serve", "--data", dir, "--listen", listen, "--nats-listen", natsListen}, pw, &stderr)
			pw.Close()
		}()
		banner(t, pr)
		return func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("serve exited %d: %s", code, stderr.String())
			}
		}
	}
	publish := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			var out, errb bytes.Buffer
			args := []string{"publish", "flowrepo.flow.created", "--broker", "nats://" + natsListen, "--service", "flow-repository",
				"--payload", fmt.Sprintf(`{"flowId":"f%04d","user":"u","tenant":"t"}`, i)}
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("publish: %d %s", code, errb.String())
			}
		}
	}

	stop := start()
	token, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	gate := &gatedStreams{open: make(chan struct{})}
	c, err := client.New("http://"+listen, client.WithToken(strings.TrimSpace(string(token))),
		client.WithHTTPClient(&http.Client{Transport: gate}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu  sync.Mutex
		got []client.Entry
	)
	followed := make(chan error, 1)
	go func() {
		for batch, err := range c.Follow(ctx, client.Query{Name: "flowrepo.flow.created"}) {
			if err != nil {
				followed <- err
				return
			}
			mu.Lock()
			got = append(got, batch...)
			mu.Unlock()
		}
		followed <- nil
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}
	// Follow opens its stream before it reads the newest entries: wait for
	// it, so that what follows is all new.
	waitFor(t, 30*time.Second, "the stream to open", func() bool {
		gate.mu.Lock()
		defer gate.mu.Unlock()
		return gate.opened == 1
	})
	publish(0, 40)
	waitFor(t, 30*time.Second, "the first 40 entries", func() bool { return count() == 40 })

	stop()
	stop = start()
	defer func() { stop() }()
	publish(40, 60)
	api := "http://" + listen
	waitFor(t, 30*time.Second, "the restarted server to store 60 more", func() bool {
		p, _ := getLogs(t, api+"/logs?filter[name]=flowrepo.flow.created", strings.TrimSpace(string(token)))
		return p.Meta.Total == 100
	})
	if n := count(); n != 40 {
		t.Fatalf("the follower got %d entries while it was away", n)
	}
	close(gate.open) // the follower reconnects with the last id it got
	waitFor(t, 30*time.Second, "all 100 entries", func() bool { return count() >= 100 })
	cancel()
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 100 {
		t.Fatalf("%d entries, want 100, each once", len(got))
	}
	for i, e := range got {
		if want := fmt.Sprintf(`"f%04d"`, i); !strings.Contains(string(e.Payload), want) {
			t.Fatalf("entry %d holds %s, want flowId %s: in the order stored, none lost or repeated", i, e.Payload, want)
		}
		if i > 0 && e.Seq <= got[i-1].Seq {
			t.Fatalf("entry %d has seq %d after %d", i, e.Seq, got[i-1].Seq)
		}
	}
	if gate.opened < 2 {
		t.Fatalf("the stream was opened %d times: it did not reconnect", gate.opened)
	}
}
