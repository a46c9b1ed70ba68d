package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/internal/testkit/pgtest"
	"github.com/heraldhq/herald/simulate"
)

// The scale-out test: three herald serve replicas, the real binary, on one
// broker and one PostgreSQL schema, with one signing key; herald simulate
// publishes a story of replicaEvents events, and one replica is killed
// with SIGKILL while the audit log takes them in, then started again on
// its data folder. Every audited event must be stored exactly once, every
// deleted user's entries anonymised, GET /logs must answer the same from
// every replica, and herald verify must pass the log they built.
const (
	replicaEvents = 50_000
	replicaCount  = 3
	replicaSeed   = 11
)

func TestReplicasOnRabbitMQShareTheAuditLog(t *testing.T) {
	store, db := postgresSchema(t)
	broker := testVhost(t)
	runReplicas(t, "RabbitMQ", broker, store, db)
}

func TestReplicasOnNATSShareTheAuditLog(t *testing.T) {
	store, db := postgresSchema(t)
	// An external NATS server, as replicas on several machines use:
	// herald broker, a process of its own, on a free port.
	broker := startProcess(t, nil, "broker", "--listen", freeAddr(t), "--data", t.TempDir(), "--output", "json")
	var out struct{ URL string }
	line := broker.waitLine(t, 60*time.Second, "herald broker's address", func(string) bool { return true })
	if err := json.Unmarshal([]byte(line), &out); err != nil {
		t.Fatalf("herald broker printed %q: %v", line, err)
	}
	runReplicas(t, "NATS", out.URL, store, db)
}

// postgresSchema returns a PostgreSQL URL naming a schema of the test's
// own, dropped when the test ends, and a connection to that schema.
func postgresSchema(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	base := pgtest.URL(t)
	schema := pgtest.Schema(t, base)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("schema", schema)
	u.RawQuery = q.Encode()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `SET search_path TO `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return u.String(), conn
}

// simulation is herald simulate, the real binary, publishing a seeded
// story to the broker in env beside the servers a test runs.
type simulation struct {
	count    int
	out, err testkit.Buffer
	done     chan error
}

func startSimulate(t *testing.T, env []string, count, seed int) *simulation {
	t.Helper()
	s := &simulation{count: count, done: make(chan error, 1)}
	cmd := exec.Command(heraldBinary(t), "simulate", "--count", fmt.Sprint(count), "--seed", fmt.Sprint(seed), "--output", "json")
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = &s.out, &s.err
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	return s
}

// wait waits for simulate to end, fails the test unless the broker
// confirmed every event, and returns how many of each it published.
func (s *simulation) wait(t *testing.T) map[string]int {
	t.Helper()
	if err := <-s.done; err != nil {
		t.Fatalf("simulate: %v\n%s", err, s.err.String())
	}
	var sum struct {
		Published int            `json:"published"`
		ByName    map[string]int `json:"byName"`
	}
	if err := json.Unmarshal([]byte(s.out.String()), &sum); err != nil {
		t.Fatalf("simulate printed %q: %v", s.out.String(), err)
	}
	if sum.Published != s.count {
		t.Fatalf("simulate: %d events confirmed, want %d", sum.Published, s.count)
	}
	return sum.ByName
}

// auditedEvents is how many of each audited event byName holds, and
// their total.
func auditedEvents(byName map[string]int) (map[string]int, int) {
	want := map[string]int{}
	audited := 0
	for name, n := range byName {
		if e, ok := catalog.Default().Lookup(name); ok && e.Audited {
			want[name] = n
			audited += n
		}
	}
	return want, audited
}

type replica struct {
	p    *process
	env  []string
	api  string
	data string
}

// startReplica runs herald serve as a replica would be run (see
// docs/deploy.md): broker, store and data folder from the environment.
func startReplica(t *testing.T, env []string, data string) *replica {
	t.Helper()
	r := &replica{env: env, data: data}
	r.p = startProcess(t, append(slices.Clone(env), envDataDir+"="+data), "serve", "--listen", "127.0.0.1:0", "--log-level", "warn")
	l := r.p.waitLine(t, 60*time.Second, "the replica's banner", func(l string) bool { return apiLine.MatchString(l) })
	r.api = apiLine.FindStringSubmatch(l)[1]
	return r
}

func runReplicas(t *testing.T, brokerName, broker, store string, db *pgx.Conn) {
	start := time.Now()
	// One key for every replica (docs/deploy.md), created as an operator
	// would, before the first start.
	skey, _, err := auditlog.GenerateKey("replicas")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key")
	if err := os.WriteFile(keyFile, []byte(skey), 0o600); err != nil {
		t.Fatal(err)
	}
	// And one erasure key: the replicas share the store's erasure records.
	env := []string{envBrokerURL + "=" + broker, envStoreURL + "=" + store, envSigningKey + "=" + keyFile, envErasureKey + "=replicas-share-this-erasure-key"}
	replicas := make([]*replica, replicaCount)
	for i := range replicas {
		replicas[i] = startReplica(t, env, t.TempDir())
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for i, r := range replicas {
			out := r.p.stderr.String()
			t.Logf("replica %d's warnings and errors (the last 4,000 bytes):\n%s", i, out[max(0, len(out)-4000):])
		}
	})
	stored := func() int64 {
		var n int64
		if err := db.QueryRow(context.Background(), `SELECT n FROM entry_count`).Scan(&n); err != nil {
			t.Fatalf("count entries: %v", err)
		}
		return n
	}

	sim := startSimulate(t, env, replicaEvents, replicaSeed)

	// Mid-stream: a replica dies with its deliveries in flight, and comes
	// back on its own data folder (its lock went with it).
	waitFor(t, 120*time.Second, "a fifth of the story stored", func() bool { return stored() >= replicaEvents/5 })
	midway := stored()
	replicas[0].p.kill()
	kills := 1
	replicas[0] = startReplica(t, env, replicas[0].data)

	published := sim.wait(t)
	want, audited := auditedEvents(published)
	// Each deletion's erasure is recorded once in the log, however many
	// times it was delivered.
	want[auditlog.SubjectErased] = published[auditlog.UserDeleted]
	audited += want[auditlog.SubjectErased]

	// Every audited event in, and nothing left for the audit log: the
	// killed replica's deliveries have come back (on NATS after their
	// AckWait) and been stored.
	// A loaded machine (CI runs packages side by side) ingests slower, so
	// the wait is for progress: it fails when neither the entries stored
	// nor the queue moved for 90 s (longer than the redelivery wait of the
	// killed replica's deliveries), or after 10 minutes in all.
	var status statusReport
	var last string
	progress := time.Now()
	// stalled reports whether state has stayed as it is for 90 s.
	stalled := func(state ...any) bool {
		if now := fmt.Sprint(state...); now != last {
			last, progress = now, time.Now()
		}
		return time.Since(progress) > 90*time.Second
	}
	waitFor(t, 10*time.Minute, "every audited event stored and the queue drained", func() bool {
		n := stored()
		if n < int64(audited) {
			if stalled(n) {
				t.Fatalf("no progress for 90 s: %d of %d audited events stored", n, audited)
			}
			time.Sleep(200 * time.Millisecond)
			return false
		}
		status = replicaStatus(t, env)
		q := status.Queue
		if q == nil {
			return false
		}
		unacked := 0
		if q.Unacked != nil {
			unacked = *q.Unacked
		}
		if stalled(n, q.Messages, unacked, q.Retrying) {
			t.Fatalf("no progress for 90 s: %d entries, queue %d ready, %d unacknowledged, %d retrying", n, q.Messages, unacked, q.Retrying)
		}
		return q.Messages == 0 && unacked == 0 && q.Retrying == 0
	})
	got := map[string]int{}
	rows, err := db.Query(context.Background(), `SELECT name, count(*), count(DISTINCT id) FROM entries GROUP BY name`)
	if err != nil {
		t.Fatal(err)
	}
	total, duplicates := 0, 0
	for rows.Next() {
		var name string
		var n, distinct int
		if err := rows.Scan(&name, &n, &distinct); err != nil {
			t.Fatal(err)
		}
		got[name] = n
		total += n
		duplicates += n - distinct + max(0, n-want[name])
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name, n := range want {
		if got[name] != n {
			t.Errorf("%s: %d stored, %d published", name, got[name], n)
		}
	}
	for name, n := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %d stored, none audited published", name, n)
		}
	}
	if status.Queue.DeadLetters != 0 || status.Store.Entries != int64(audited) {
		t.Errorf("herald status: %d dead letters, %d entries; want none and %d", status.Queue.DeadLetters, status.Store.Entries, audited)
	}

	checkAnonymised(t, db)
	checkSameLogs(t, replicas, audited)
	checkVerifies(t, env, audited)
	// Every simulated event is distinct: a conflict is a redelivery (of an
	// event erased since, or erased before its append) taken for another
	// event.
	for i, r := range replicas {
		if n := strings.Count(r.p.stderr.String(), "a different event under an id already stored"); n > 0 {
			t.Errorf("replica %d logged %d redeliveries as conflicts", i, n)
		}
	}

	t.Logf("%s: %d events published, %d audited; %d replicas, %d killed with SIGKILL (at %d stored) and restarted; %d stored, %d duplicates; %d dead letters; %v",
		brokerName, replicaEvents, audited, replicaCount, kills, midway, total, duplicates, status.Queue.DeadLetters, time.Since(start).Round(time.Second))
	for _, r := range replicas {
		r.p.stop(t)
	}
}

// replicaStatus runs herald status against the replicas' broker and store.
func replicaStatus(t *testing.T, env []string) statusReport {
	t.Helper()
	cmd := exec.Command(heraldBinary(t), "status", "--output", "json")
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("herald status: %v\n%s", err, out)
	}
	var r statusReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("herald status printed %s: %v", out, err)
	}
	return r
}

// checkAnonymised replays the story simulate published (the same seed
// tells the same story) to learn which users were deleted, and checks that
// no stored entry names one of them by id or username anywhere: in its
// user column or in its payload at any depth (flow.starting's startedBy
// and owners[].id included).
//
// On RabbitMQ a replica may still be erasing when the queue looks
// drained (a passive declaration does not count the deliveries being
// handled), so the check is repeated until it holds or a minute passes.
func checkAnonymised(t *testing.T, db *pgx.Conn) {
	t.Helper()
	story := simulate.New(replicaSeed, simulate.Options{Tenants: 4, Users: 40})
	usernames := map[string]string{} // user id → username
	forgotten := map[string]bool{}
	for range replicaEvents {
		ev := story.Next()
		var p struct{ ID, Username string }
		_ = json.Unmarshal(ev.Payload, &p)
		switch ev.Headers.Name {
		case "iam.user.created", "iam.user.modified":
			if p.Username != "" {
				usernames[p.ID] = p.Username
			}
		case auditlog.UserDeleted:
			forgotten[p.ID] = true
			forgotten[usernames[p.ID]] = true
		}
	}
	delete(forgotten, "")
	if len(forgotten) == 0 {
		t.Fatal("the story deleted nobody: nothing to check")
	}
	var leaks []string
	var redacted int
	deadline := time.Now().Add(time.Minute)
	for {
		leaks, redacted = nil, 0
		rows, err := db.Query(context.Background(), `SELECT id, name, "user", payload FROM entries`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, name, user string
			var payload map[string]any
			if err := rows.Scan(&id, &name, &user, &payload); err != nil {
				t.Fatal(err)
			}
			var walk func(path string, v any)
			walk = func(path string, v any) {
				switch v := v.(type) {
				case map[string]any:
					for k, x := range v {
						walk(path+"/"+k, x)
					}
				case []any:
					for i, x := range v {
						walk(fmt.Sprintf("%s/%d", path, i), x)
					}
				case string:
					switch {
					case v == auditlog.Redacted:
						redacted++
					case forgotten[v]:
						leaks = append(leaks, fmt.Sprintf("entry %s (%s) still names a deleted user: %s = %q", id, name, path, v))
					}
				}
			}
			walk("", payload)
			if forgotten[user] {
				leaks = append(leaks, fmt.Sprintf("entry %s (%s) still has a deleted user: %q", id, name, user))
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for i, l := range leaks {
		if i == 5 {
			break
		}
		t.Error(l)
	}
	if len(leaks) > 0 || redacted == 0 {
		t.Errorf("%d values still name one of the %d deleted ids and usernames, %d anonymised", len(leaks), len(forgotten), redacted)
	}
	t.Logf("erasure: %d deleted ids and usernames, %d values anonymised", len(forgotten), redacted)
}

// checkVerifies runs herald verify on the replicas' store with their key:
// the checkpoints every replica signed hold, and so do the leaves of the
// entries anonymised, early or late.
func checkVerifies(t *testing.T, env []string, audited int) {
	t.Helper()
	cmd := exec.Command(heraldBinary(t), "verify", "--output", "json")
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.Output()
	var r verifyResult
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("herald verify: %v, printed %s: %v", err, out, jerr)
	}
	if err != nil || !r.OK || r.Entries < int64(audited) || r.Checkpoints == 0 || r.Erased == 0 {
		t.Errorf("herald verify of the replicas' log: %v; %d entries, %d checkpoints, %d erased, failure %v", err, r.Entries, r.Checkpoints, r.Erased, r.Failure)
	}
}

// checkSameLogs reads GET /logs to the end from every replica, each with
// its own token, and compares them. Each read is recorded in the log
// (audit-log.logs.read), so the replicas read later see more of those:
// they are left out of the comparison.
func checkSameLogs(t *testing.T, replicas []*replica, want int) {
	t.Helper()
	var first []byte
	for i, r := range replicas {
		token := readToken(t, r.data)
		var all []json.RawMessage
		next := r.api + "/logs?page[size]=1000&sort=createdAt"
		for next != "" {
			req, _ := http.NewRequest(http.MethodGet, next, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Data       []json.RawMessage `json:"data"`
				NextCursor string            `json:"nextCursor"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("replica %d: GET /logs: %d, %v", i, resp.StatusCode, err)
			}
			for _, e := range page.Data {
				var h struct {
					Headers struct{ Name string }
				}
				if json.Unmarshal(e, &h) == nil && h.Headers.Name != httpapi.ReadEvent {
					all = append(all, e)
				}
			}
			next = ""
			if page.NextCursor != "" {
				next = r.api + "/logs?page[size]=1000&sort=createdAt&cursor=" + url.QueryEscape(page.NextCursor)
			}
		}
		if len(all) != want {
			t.Errorf("replica %d: GET /logs listed %d entries, want %d", i, len(all), want)
		}
		b, _ := json.Marshal(all)
		if i == 0 {
			first = b
		} else if string(b) != string(first) {
			t.Errorf("replica %d answers GET /logs differently from replica 0", i)
		}
	}
	if !strings.Contains(string(first), `"id"`) {
		t.Errorf("GET /logs listed no entries")
	}
}
