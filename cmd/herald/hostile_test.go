package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// The hostile-bus test: what a hostile or broken publisher can put on the
// bus, sent straight through the transport (no validation on the way) to
// the audit log's bindings of herald serve, the real binary. Each message
// must be dead-lettered at once with its reason — never stored, never
// acked and dropped, never blocking the queue — the events after them
// stored, and a flood of oversized events must not grow the process's
// memory by their size.
const (
	hostileFlood     = 48      // oversized events in the flood
	hostileFloodSize = 5 << 20 // each, over the 1 MiB limit and under NATS's 8 MiB
	// hostileRSSCeiling is the peak resident memory herald serve may
	// reach while the flood (240 MiB) goes through it: the bound
	// docs/reliability.md states.
	hostileRSSCeiling = 200 << 20
)

func TestHostileEventsAreDeadLetteredByTheAuditLogOnRabbitMQ(t *testing.T) {
	runHostile(t, "RabbitMQ", testVhost(t))
}

func TestHostileEventsAreDeadLetteredByTheAuditLogOnNATS(t *testing.T) {
	broker := startProcess(t, nil, "broker", "--listen", freeAddr(t), "--data", t.TempDir(), "--output", "json")
	var out struct{ URL string }
	line := broker.waitLine(t, 60*time.Second, "herald broker's address", func(string) bool { return true })
	if err := json.Unmarshal([]byte(line), &out); err != nil {
		t.Fatalf("herald broker printed %q: %v", line, err)
	}
	runHostile(t, "NATS", out.URL)
}

func runHostile(t *testing.T, brokerName, broker string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data := t.TempDir()
	path := filepath.Join(data, "audit.db")
	env := []string{envBrokerURL + "=" + broker, envStoreURL + "=sqlite://" + path}
	serve := startReplica(t, env, data)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	tr, err := openTransport(ctx, broker, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	const name = "flowrepo.flow.created" // audited: the audit log binds it
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	envelope := func(payload string) []byte {
		return []byte(`{"headers":{"name":"` + name + `","id":"hostile-` + run + `-` + strconv.Itoa(len(payload)) + `"},"payload":` + payload + `}`)
	}
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	hostile := []struct {
		what, reason string
		body         []byte
	}{
		{"not JSON", "decode", []byte("not JSON " + run)},
		{"no headers", "decode", []byte(`{"payload":{"run":"` + run + `"}}`)},
		{"an invalid name", "decode", []byte(`{"headers":{"name":"flowrepo flow!"},"payload":{"run":"` + run + `"}}`)},
		{"invalid UTF-8", "UTF-8", envelope("{\"run\":\"" + run + "\",\"x\":\"\xff\"}")},
		{"a payload over the size limit", "too large", envelope(`{"run":"` + run + `","blob":"` + strings.Repeat("x", 2<<20) + `"}`)},
		{"100k-deep nesting", "depth", envelope(`{"run":"` + run + `","deep":` + deep + `}`)},
		{"a NUL no store keeps", "invalid", envelope(`{"run":"` + run + `","x":"\u0000"}`)},
		{"a key given twice", "invalid", envelope(`{"run":"` + run + `","user":"a","user":"b"}`)},
	}
	publish := func(body []byte) {
		t.Helper()
		if err := driver.PublishSync(ctx, tr, driver.Message{ID: event.DerivedID(body), Name: name, Body: body, CreatedAt: time.Now()}); err != nil {
			t.Fatalf("publish through the transport: %v", err)
		}
	}
	for _, h := range hostile {
		publish(h.body)
	}
	// The flood: oversized events, each refused unread.
	flood := bytes.Repeat([]byte("x"), hostileFloodSize)
	for i := range hostileFlood {
		publish(envelope(fmt.Sprintf(`{"run":"%s","i":%d,"blob":"%s"}`, run, i, flood)))
	}
	// A valid event of a name no catalogue knows, sent under an audited
	// name's routing key: the audit log binds the catalogue's audited names
	// only, so this is how an unknown name reaches it. No handler takes
	// it: it is retried (a handler may come with a newer version) and
	// dead-lettered with "no handler".
	uncatalogued, err := event.New("custom.thing.happened", map[string]any{"run": run})
	if err != nil {
		t.Fatal(err)
	}
	ubody, _ := uncatalogued.Encode()
	publish(ubody)
	// Then valid events.
	var after []string
	for i := range 20 {
		ev, err := event.New(name, map[string]any{"run": run, "i": i})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := ev.Encode()
		publish(body)
		after = append(after, ev.Headers.ID)
	}

	lister, ok := tr.(driver.DeadLetterLister)
	if !ok {
		t.Fatalf("%T lists no dead letters", tr)
	}
	var dls []driver.DeadLetter
	deadline := time.Now().Add(120 * time.Second)
	for {
		dls, err = lister.DeadLetters(ctx, auditlog.QueueName)
		if err == nil && len(dls) >= len(hostile)+hostileFlood+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters (%v), want %d: %s", len(dls), err, len(hostile)+hostileFlood+1, serve.p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, h := range hostile {
		found := false
		for _, dl := range dls {
			if bytes.Equal(dl.Body, h.body) {
				found = true
				if dl.Attempts != 1 || !strings.Contains(dl.Error, h.reason) {
					t.Errorf("%s: dead-lettered on attempt %d with %q; want attempt 1 and a reason naming %q", h.what, dl.Attempts, dl.Error, h.reason)
				}
			}
		}
		if !found {
			t.Errorf("%s: not among the %d dead letters", h.what, len(dls))
		}
	}
	tooLarge := 0
	for _, dl := range dls {
		if bytes.Equal(dl.Body, ubody) && !strings.Contains(dl.Error, "no handler") {
			t.Errorf("the uncatalogued event: dead-lettered with %q, want no handler", dl.Error)
		}
		if len(dl.Body) > hostileFloodSize && strings.Contains(dl.Error, "too large") {
			tooLarge++
		}
	}
	if tooLarge != hostileFlood {
		t.Errorf("%d of the %d oversized events dead-lettered as too large", tooLarge, hostileFlood)
	}
	// storedOfRun counts the entries of this run's events.
	storedOfRun := func() (n int, err error) {
		err = db.QueryRow(`SELECT count(*) FROM entries WHERE payload LIKE ?`, `%"run":"`+run+`"%`).Scan(&n)
		return n, err
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		n, err := storedOfRun()
		if err == nil && n >= len(after) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the %d valid events stored (%v): %s", n, len(after), err, serve.p.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	stored, err := storedOfRun()
	if err != nil {
		t.Fatal(err)
	}
	if stored != len(after) {
		t.Errorf("%d entries of this run stored; want the %d valid events and no hostile one", stored, len(after))
	}
	peak := peakRSS(t, serve.p.cmd.Process.Pid)
	t.Logf("RESULT hostile bus input on %s: %d hostile messages and %d oversized events of %d MiB dead-lettered at once, 1 uncatalogued after its retries, %d valid events after them stored; herald serve's peak RSS %d MiB",
		brokerName, len(hostile), hostileFlood, hostileFloodSize>>20, len(after), peak>>20)
	if peak > hostileRSSCeiling {
		t.Errorf("herald serve's peak RSS %d MiB, over the %d MiB ceiling", peak>>20, hostileRSSCeiling>>20)
	}
	serve.p.stop(t)
}

// peakRSS returns a process's peak resident memory (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc to read the peak memory from: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}
