package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/bus"
	"github.com/heraldhq/herald/event"
)

// dlqService is a service with a handler that fails while failing is set,
// dead-lettering at once, and records the attempts it ran for.
type dlqService struct {
	failing  atomic.Bool
	mu       sync.Mutex
	attempts map[string][]int
}

func (s *dlqService) handle(ctx context.Context, ev *event.Event) error {
	s.mu.Lock()
	s.attempts[ev.Headers.ID] = append(s.attempts[ev.Headers.ID], bus.Attempt(ctx))
	s.mu.Unlock()
	if s.failing.Load() {
		return errors.New("the flow repository is down")
	}
	return nil
}

func (s *dlqService) of(id string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.attempts[id]...)
}

type dlqEntry struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	EventID  string `json:"eventId"`
	Error    string `json:"error"`
	Attempts int    `json:"attempts"`
}

// TestDLQListsShowsReplaysAndPurgesOnBothBrokers runs herald dlq against a
// service's dead letters on the embedded NATS broker and on RabbitMQ.
func TestDLQListsShowsReplaysAndPurgesOnBothBrokers(t *testing.T) {
	brokers := map[string]func(t *testing.T) string{
		"nats": func(t *testing.T) string { return startBroker(t, "--listen", freeAddr(t), "--data", t.TempDir()) },
		"amqp": testBrokerURL,
	}
	for name, broker := range brokers {
		t.Run(name, func(t *testing.T) {
			url := broker(t)
			tag := cliRun()
			service := "clitest-" + tag + "-dlq"
			if name == "amqp" {
				t.Cleanup(func() { deleteTestQueues(t, url, service, service+".dead") })
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tr, err := openTransport(ctx, url, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			svc := &dlqService{attempts: map[string][]int{}}
			svc.failing.Store(true)
			b, err := bus.New(tr, bus.WithService(service), bus.WithoutValidation(), bus.WithRetry(bus.RetryPolicy{MaxAttempts: 1}))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close(context.Background())
			if err := b.Subscribe(ctx, "clitest-"+tag+".#", svc.handle); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for i := range 3 {
				ev, _ := event.New("clitest-"+tag+".flow.created", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
				if err := b.Publish(ctx, ev); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, ev.Headers.ID)
			}
			dlq := func(args ...string) (int, string, string) {
				var out, errb bytes.Buffer
				code := run(ctx, append(append([]string{"dlq"}, args...), "--service", service, "--broker", url), &out, &errb)
				return code, out.String(), errb.String()
			}
			var entries []dlqEntry
			waitFor(t, 30*time.Second, "3 dead letters", func() bool {
				code, out, _ := dlq("list", "--output", "json")
				entries = nil
				return code == 0 && json.Unmarshal([]byte(out), &entries) == nil && len(entries) == 3
			})
			byEvent := map[string]dlqEntry{}
			for _, e := range entries {
				if e.Error != "the flow repository is down" || e.Attempts != 1 || e.Name != "clitest-"+tag+".flow.created" {
					t.Errorf("dead letter %+v: want the handler's error, 1 attempt and the event's name", e)
				}
				byEvent[e.EventID] = e
			}
			code, out, stderr := dlq("list")
			if code != 0 || !strings.Contains(out, "3 dead letters") || !strings.Contains(out, "FIRST FAILURE") || !strings.Contains(out, byEvent[ids[0]].ID) {
				t.Errorf("dlq list: exit %d, stdout:\n%s\nstderr %s", code, out, stderr)
			}
			code, out, _ = dlq("show", byEvent[ids[0]].ID)
			if code != 0 || !strings.Contains(out, ids[0]) || !strings.Contains(out, `"i": 0`) {
				t.Errorf("dlq show: exit %d, stdout:\n%s\nwant the event and its payload", code, out)
			}
			if code, _, stderr := dlq("show", "no-such-id"); code != 1 || !strings.Contains(stderr, "no-such-id") {
				t.Errorf("dlq show of an unknown id: exit %d, stderr %q", code, stderr)
			}

			// Replay one: handled again as a first attempt, and logged.
			svc.failing.Store(false)
			code, out, stderr = dlq("replay", byEvent[ids[0]].ID)
			if code != 0 || !strings.Contains(out, "replayed 1 dead letter") || !strings.Contains(stderr, "replayed dead letter") || !strings.Contains(stderr, ids[0]) {
				t.Errorf("dlq replay: exit %d, stdout %q, stderr %q; want it replayed and logged", code, out, stderr)
			}
			waitFor(t, 30*time.Second, "the replayed event handled", func() bool { return len(svc.of(ids[0])) == 2 })
			if a := svc.of(ids[0]); a[1] != 1 {
				t.Errorf("the replayed event ran for attempts %v, want the replay to be attempt 1", a)
			}

			// Purge asks unless --yes; off a terminal it cannot ask.
			if code, _, stderr := dlq("purge", byEvent[ids[1]].ID); code != 2 || !strings.Contains(stderr, "--yes") {
				t.Errorf("dlq purge without --yes off a terminal: exit %d, stderr %q; want 2 naming --yes", code, stderr)
			}
			if code, out, stderr := dlq("purge", byEvent[ids[1]].ID, "--yes"); code != 0 || !strings.Contains(out, "deleted 1 dead letter") {
				t.Errorf("dlq purge ID --yes: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			if code, out, stderr := dlq("replay", "--all"); code != 0 || !strings.Contains(out, "replayed 1 dead letter") {
				t.Errorf("dlq replay --all: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			waitFor(t, 30*time.Second, "the last replay handled", func() bool { return len(svc.of(ids[2])) == 2 })
			if code, out, _ := dlq("list"); code != 0 || !strings.Contains(out, "no dead letters") {
				t.Errorf("dlq list after all: exit %d, stdout %q", code, out)
			}
			if a := svc.of(ids[1]); len(a) != 1 {
				t.Errorf("the purged dead letter ran for attempts %v, want only the first", a)
			}
		})
	}
}
