package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

func TestStatusReportsBrokerQueueStoreAndLag(t *testing.T) {
	addr := freeAddr(t)
	data := t.TempDir()
	s := startServe(t, "--nats-listen", addr, "--data", data, "--listen", "127.0.0.1:0")
	pub := natsBus(t, "nats://"+addr, "flow-repository")
	for i := range 5 {
		ev, _ := event.New("flowrepo.flow.created", json.RawMessage(fmt.Sprintf(`{"flowId":"f%d","user":"u1","tenant":"t1"}`, i)))
		if err := pub.Publish(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	// The checkpoint, not GET /logs: a read of the log is an entry too.
	waitFor(t, 30*time.Second, "a checkpoint of 5 entries", func() bool { return checkpointSize(s.api) == 5 })

	code, out, stderr := herald(t, "status", "--broker", "nats://"+addr, "--data", data, "--output", "json")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --output json printed %s: %v", out, err)
	}
	if !r.Broker.OK || r.Queue == nil || r.Queue.Name != "audit-log" || r.Queue.DeadLetters != 0 {
		t.Errorf("broker %+v, queue %+v: want it read, with no dead letter", r.Broker, r.Queue)
	}
	if r.Queue != nil && !slices.Equal(r.Queue.Bindings, slices.Sorted(slices.Values(catalog.Default().Audited()))) {
		t.Errorf("queue bindings %q, want the audited events serve recorded", r.Queue.Bindings)
	}
	if !r.Store.OK || r.Store.Entries != 5 || r.Store.Newest == nil || r.Store.Newest.Name != "flowrepo.flow.created" {
		t.Errorf("store %+v: want 5 entries, the newest a flowrepo.flow.created", r.Store)
	}
	if r.IngestLag == nil || r.IngestLag.Seconds == nil || *r.IngestLag.Seconds < 0 || r.IngestLag.Waiting == nil {
		t.Errorf("ingest lag %+v: want the newest entry's and the queue's", r.IngestLag)
	}
	if c := r.Checkpoint; c == nil || c.TreeSize != 5 || c.Pending != 0 || !strings.HasPrefix(c.Origin, "herald-") || c.Root == "" {
		t.Errorf("checkpoint %+v: want the log's, sealing the 5 entries", r.Checkpoint)
	}

	code, out, _ = herald(t, "status", "--broker", "nats://"+addr, "--data", data)
	for _, want := range []string{"broker", "audit-log: 0 waiting", "5 entries", "ingest lag", "checkpoint  5 entries sealed, 0 not yet"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (text): exit %d, want %q in:\n%s", code, want, out)
		}
	}

	// The broker gone: the store is still reported, and the exit code says so.
	code, out, stderr = herald(t, "status", "--broker", unreachableBroker, "--data", data)
	if code != 1 || !strings.Contains(out, "5 entries") || !strings.Contains(stderr, "the broker could not be read") {
		t.Errorf("status with no broker: exit %d, stdout:\n%s\nstderr %s; want 1, the store reported", code, out, stderr)
	}
}
