package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/heraldhq/herald/natsserver"
)

// serveProcess is a running `herald serve`.
type serveProcess struct {
	cmd         *exec.Cmd
	api, broker string
	stdout      *testkit.Buffer
	stderr      *testkit.Buffer
}

// startServeProcess runs bin serve with args as a process of its own,
// killed when the test ends.
func startServeProcess(t *testing.T, bin string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var out testkit.Buffer
	api, broker := banner(t, io.TeeReader(stdout, &out))
	return &serveProcess{cmd: cmd, api: api, broker: broker, stdout: &out, stderr: &stderr}
}

// checkpointSize reads the size of the latest checkpoint a serve signed.
func checkpointSize(api string) int64 {
	resp, err := http.Get(api + "/checkpoint")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	cp, err := auditlog.ParseCheckpoint(auditlog.NoteText(b))
	if resp.StatusCode != http.StatusOK || err != nil {
		return -1
	}
	return cp.Size
}

// runBin runs the binary and returns its exit code and output.
func runBin(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// TestVerifyCatchesAnEditOfTheSQLiteFile runs serve, has simulate publish
// a story, verifies through the API, stops serve, edits one payload in
// the database file with the sqlite3 CLI and verifies the store.
func TestVerifyCatchesAnEditOfTheSQLiteFile(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		testkit.SkipUnless(t, "PATH", "the sqlite3 CLI is not installed (apt-get install sqlite3)")
	}
	bin := heraldBinary(t)
	dir := t.TempDir()
	s := startServeProcess(t, bin, "--data", dir, "--nats-listen", "127.0.0.1:0")
	if code, out := runBin(t, bin, "simulate", "--count", "5000", "--seed", "8", "--broker", s.broker); code != 0 {
		t.Fatalf("simulate exited %d: %s", code, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, signingKeyFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("serve's signing key: %v, mode %v; want a file of mode 0600", err, fi.Mode().Perm())
	}
	key, _ := http.Get(s.api + "/checkpoint/key")
	vkey, _ := io.ReadAll(key.Body)
	key.Body.Close()
	if k := strings.TrimSpace(string(vkey)); k == "" || !strings.Contains(s.stdout.String(), "verifier key   "+k) {
		t.Errorf("the banner does not show the verifier key %q that GET /checkpoint/key serves:\n%s", k, s.stdout.String())
	}
	// Every entry stored is integrated once the checkpoint's size stops
	// growing and equals the number of entries.
	// (GET /checkpoint is not a recorded read.) The size must hold for 3 s:
	// verify through the API reads the log in pages, and entries still
	// arriving would be read pending on one page and after an integrated
	// one on the next.
	last, stableSince := int64(-1), time.Now()
	// Nor is GET /logs polled here: each would be a new entry.
	waitFor(t, 120*time.Second, "a checkpoint of every entry", func() bool {
		size := checkpointSize(s.api)
		if size != last {
			last, stableSince = size, time.Now()
		}
		return size > 4000 && time.Since(stableSince) >= 3*time.Second
	})
	code, out := runBin(t, bin, "verify", "--url", s.api, "--data", dir, "--output", "json")
	if code != 0 {
		t.Fatalf("verify --url exited %d:\n%s", code, out)
	}
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK || res.Entries < 4000 || res.Checkpoints == 0 || res.Erased == 0 {
		t.Fatalf("verify --url: %v\n%s", err, out)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.stderr.String())
	}
	db := filepath.Join(dir, "audit.db")
	if code, out := runBin(t, bin, "verify", "--data", dir); code != 0 {
		t.Fatalf("verify --data of the stopped log exited %d:\n%s", code, out)
	}
	// One integrated flow event's flowId, edited as anyone who can write
	// the file could.
	var id string
	{
		cmd := exec.Command("sqlite3", db, `SELECT id FROM entries WHERE seq = (SELECT seq FROM leaves WHERE leaf_index = 1000)`)
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("sqlite3: %v", err)
		}
		id = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("sqlite3", db, `UPDATE entries SET payload = json_set(payload, '$.edited', 1) WHERE seq = (SELECT seq FROM leaves WHERE leaf_index = 1000)`).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	code, out = runBin(t, bin, "verify", "--data", dir)
	if code != 1 || !strings.Contains(out, auditlog.ContentChanged) || !strings.Contains(out, id) || !strings.Contains(out, "leaf 1000") {
		t.Errorf("verify --data of the edited file exited %d, want 1 naming %s at leaf 1000 and %q:\n%s", code, id, auditlog.ContentChanged, out)
	}
}

// TestReplicasOnPostgreSQLHandOverTheIntegrator runs two serve replicas on
// one PostgreSQL schema and one broker, kills the one integrating with
// SIGKILL while events stream in, and checks the other takes over and the
// log verifies.
func TestReplicasOnPostgreSQLHandOverTheIntegrator(t *testing.T) {
	store, _ := postgresSchema(t)
	bin := heraldBinary(t)
	ctx := context.Background()
	broker, err := natsserver.Run(ctx, natsserver.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Shutdown(ctx)
	skey, _, err := auditlog.GenerateKey("replicas")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing-key")
	os.WriteFile(keyFile, []byte(skey), 0o600)

	args := []string{"--store", store, "--broker", broker.ClientURL(), "--signing-key", keyFile, "--log-level", "debug"}
	replicas := []*serveProcess{
		startServeProcess(t, bin, append(args, "--data", t.TempDir())...),
		startServeProcess(t, bin, append(args, "--data", t.TempDir())...),
	}
	integrating := func(p *serveProcess) bool {
		return strings.Contains(p.stderr.String(), "this process integrates the log")
	}
	pub := natsBus(t, broker.ClientURL(), "flow-repository")
	var mu sync.Mutex
	published := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ev, _ := event.New("flowrepo.flow.created", json.RawMessage(fmt.Sprintf(`{"flowId":"f%d","user":"u1","tenant":"t1"}`, i)))
			if err := pub.Publish(ctx, ev); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			published++
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return published }
	waitFor(t, 60*time.Second, "a checkpoint of 1,000 entries", func() bool { return checkpointSize(replicas[0].api) >= 1000 })
	var leader, other *serveProcess
	switch {
	case integrating(replicas[0]) && !integrating(replicas[1]):
		leader, other = replicas[0], replicas[1]
	case integrating(replicas[1]) && !integrating(replicas[0]):
		leader, other = replicas[1], replicas[0]
	default:
		t.Fatalf("want exactly one replica integrating; logs:\n%s\n---\n%s", replicas[0].stderr.String(), replicas[1].stderr.String())
	}
	before := checkpointSize(other.api)
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	leader.cmd.Wait()
	killed := time.Now()
	waitFor(t, 30*time.Second, "the other replica to integrate", func() bool { return integrating(other) && checkpointSize(other.api) > before })
	t.Logf("the integrator was killed at size %d; the other replica signed a larger checkpoint %v later", before, time.Since(killed).Round(time.Millisecond))
	target := count() + 500
	waitFor(t, 60*time.Second, "500 more events", func() bool { return count() >= target })
	close(stop)
	<-done
	total := count()
	waitFor(t, 60*time.Second, "every published event integrated", func() bool { return checkpointSize(other.api) >= int64(total) })
	code, out := runBin(t, bin, "verify", "--store", store, "--signing-key", keyFile, "--output", "json")
	if code != 0 {
		t.Fatalf("verify exited %d:\n%s", code, out)
	}
	var res verifyResult
	json.Unmarshal([]byte(out), &res)
	if res.Integrated < int64(total) {
		t.Errorf("verify saw %d integrated entries, %d events were published", res.Integrated, total)
	}
	t.Logf("%d events published, %d entries verified in %d checkpoints", total, res.Entries, res.Checkpoints)
}

func TestVerifyUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key anywhere", []string{"verify", "--data", t.TempDir()}, 2, "no key to verify with"},
		{"bad output", []string{"verify", "--output", "xml"}, 2, "--output"},
		{"bad url", []string{"verify", "--url", "localhost"}, 2, "--url"},
		{"a key that is not one", []string{"verify", "--data", t.TempDir(), "--key", "nonsense"}, 2, "verifier key"},
	}
	keyOnly := t.TempDir()
	auditlog.LoadOrCreateKey(filepath.Join(keyOnly, signingKeyFileName), "")
	tests = append(tests, struct {
		name string
		args []string
		code int
		want string
	}{"a key but no store", []string{"verify", "--data", keyOnly}, 1, "no audit store"})
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, " ", "_"), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tt.args, &out, &errb); code != tt.code || !strings.Contains(errb.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d naming %q", code, errb.String(), tt.code, tt.want)
			}
		})
	}
}

// TestVerifyOfAStoreWithItsDataFolder verifies a log in process: serve's
// key from the data folder, the SQLite file beside it, and --since a
// checkpoint saved before more entries came.
func TestVerifyOfAStoreWithItsDataFolder(t *testing.T) {
	ctx := context.Background()
	log := newDataFolderLog(t)
	dir, signer := log.dir, log.signer
	add := func(from, n int) auditlog.Checkpoint { return log.add(t, from, n) }
	saved := add(0, 50)
	cpFile := filepath.Join(t.TempDir(), "cp")
	os.WriteFile(cpFile, saved.Note, 0o600)
	add(50, 30)
	log.store.Close()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"verify", "--data", dir, "--since", cpFile, "--output", "json"}, &out, &errb); code != 0 {
		t.Fatalf("verify exited %d: %s %s", code, out.String(), errb.String())
	}
	var res verifyResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || !res.OK || res.Entries != 80 || res.TreeSize != 80 || res.Since == nil || *res.Since != 50 {
		t.Errorf("verify: %v %s", err, out.String())
	}
	// A checkpoint of another log of the same size is a fork.
	other, _, _ := auditlog.LoadOrCreateKey(filepath.Join(t.TempDir(), "k"), "")
	forged, _ := other.Sign(saved.Size, saved.Root, saved.Prev)
	os.WriteFile(cpFile, forged.Note, 0o600)
	out.Reset()
	errb.Reset()
	if code := run(ctx, []string{"verify", "--data", dir, "--since", cpFile}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--since") {
		t.Errorf("verify --since a checkpoint of another key: exit %d, %s", code, errb.String())
	}
	root := saved.Root
	root[0] ^= 1
	forked, _ := signer.Sign(saved.Size, root, saved.Prev)
	os.WriteFile(cpFile, forked.Note, 0o600)
	out.Reset()
	if code := run(ctx, []string{"verify", "--data", dir, "--since", cpFile}, &out, &errb); code != 1 || !strings.Contains(out.String(), auditlog.Fork) {
		t.Errorf("verify --since a checkpoint the log does not extend: exit %d, %s", code, out.String())
	}
}

// tokens authenticates by a fixed table of bearer tokens.
type tokens map[string]*iam.User

func (ts tokens) Authenticate(_ context.Context, r *http.Request) (*iam.User, error) {
	if u, ok := ts[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; ok {
		return u, nil
	}
	return nil, iam.ErrTokenNotFound
}

// TestVerifyURLAsAdminAndAsAUser runs verify against the API in process:
// an admin verifies the whole log from the export; a user the inclusion
// of each entry they may read; an entry edited in the store fails both.
func TestVerifyURLAsAdminAndAsAUser(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer, _, _ := auditlog.LoadOrCreateKey(filepath.Join(dir, signingKeyFileName), "")
	store, err := storeSpec{path: filepath.Join(dir, "audit.db")}.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var es []auditlog.Entry
	for i := range 300 {
		user := []string{"u1", "u2", "u3"}[i%3]
		ev := &event.Event{Headers: event.Headers{Name: "flowrepo.flow.created", ServiceName: "flow-repository", ID: fmt.Sprintf("e%03d", i),
			CreatedAt: time.Now(), Extra: map[string]json.RawMessage{"traceId": json.RawMessage(`"t"`)}},
			Payload: json.RawMessage(fmt.Sprintf(`{"user":%q,"flowId":"f%d","n":1.50}`, user, i))}
		e, _ := auditlog.EntryFromEvent(ev, time.Now(), nil)
		es = append(es, e)
	}
	store.Append(ctx, es)
	auditlog.IntegrateAll(ctx, store, signer)
	auditlog.Anonymise(ctx, store, "u2")
	api := httptest.NewServer(httpapi.New(httpapi.Config{Store: store, VerifierKey: signer.VerifierKey(), Auth: tokens{
		"admin": {Sub: "admin", Permissions: []string{"all"}},
		"user":  {Sub: "u1", Permissions: []string{"logs.read"}},
	}}))
	defer api.Close()
	verifyAs := func(token string) (int, verifyResult, string) {
		var out, errb bytes.Buffer
		code := run(ctx, []string{"verify", "--url", api.URL, "--token", token, "--data", dir, "--output", "json"}, &out, &errb)
		var res verifyResult
		json.Unmarshal(out.Bytes(), &res)
		return code, res, out.String() + errb.String()
	}
	if code, res, out := verifyAs("admin"); code != 0 || res.Entries != 300 || res.Erased != 100 || !strings.Contains(res.Mode, "admin export") {
		t.Errorf("verify as admin: exit %d\n%s", code, out)
	}
	if code, res, out := verifyAs("user"); code != 0 || res.Entries != 100 || res.Integrated != 100 || !strings.Contains(res.Mode, "inclusion") {
		t.Errorf("verify as a user: exit %d\n%s", code, out)
	}
	// One of u1's entries edited where it is stored.
	p, _ := store.Query(ctx, auditlog.Query{User: "u1", Limit: 1})
	edited := p.Entries[0]
	raw, _ := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE entries SET payload = json_set(payload, '$.flowId', 'other') WHERE id = ?`, edited.ID); err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"admin", "user"} {
		if code, res, out := verifyAs(token); code != 1 || res.Failure == nil || res.Failure.EntryID != edited.ID || res.Failure.What != auditlog.ContentChanged {
			t.Errorf("verify as %s of an edited entry: exit %d\n%s", token, code, out)
		}
	}
}

// dataFolderLog is a data folder as herald serve leaves it: the log's
// signing key and its SQLite store beside it.
type dataFolderLog struct {
	dir    string
	signer *auditlog.Signer
	store  auditlog.Store
}

func newDataFolderLog(t *testing.T) *dataFolderLog {
	t.Helper()
	l := &dataFolderLog{dir: t.TempDir()}
	var err error
	if l.signer, _, err = auditlog.LoadOrCreateKey(filepath.Join(l.dir, signingKeyFileName), ""); err != nil {
		t.Fatal(err)
	}
	if l.store, err = (storeSpec{path: filepath.Join(l.dir, "audit.db")}).open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l
}

// add appends entries from to from+n-1 and integrates them, returning the
// checkpoint signed.
func (l *dataFolderLog) add(t *testing.T, from, n int) auditlog.Checkpoint {
	t.Helper()
	ctx := context.Background()
	var es []auditlog.Entry
	for i := from; i < from+n; i++ {
		e, _ := auditlog.EntryFromEvent(&event.Event{Headers: event.Headers{Name: "x.y", ID: fmt.Sprint(i), CreatedAt: time.Now()}, Payload: json.RawMessage(`{"i":1}`)}, time.Now(), nil)
		es = append(es, e)
	}
	if _, err := l.store.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	cp, err := auditlog.IntegrateAll(ctx, l.store, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
