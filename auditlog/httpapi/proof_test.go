package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// newSigner is a signer under a new key of the log named origin.
func newSigner(tb testing.TB, origin string) *auditlog.Signer {
	tb.Helper()
	skey, _, err := auditlog.GenerateKey(origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := auditlog.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	return signer
}

// integrityEnv is an API over a seeded, integrated log, with its signer.
func integrityEnv(t *testing.T, mod ...func(*Config)) (*env, map[string]string, *auditlog.Signer) {
	t.Helper()
	signer := newSigner(t, "api-test")
	e := newEnv(t, append([]func(*Config){func(c *Config) { c.VerifierKey = signer.VerifierKey() }}, mod...)...)
	ids := e.seed()
	if _, err := auditlog.IntegrateAll(context.Background(), e.store, signer); err != nil {
		t.Fatal(err)
	}
	return e, ids, signer
}

func TestCheckpointAndKeyAreServedWithoutAuth(t *testing.T) {
	e, _, signer := integrityEnv(t)
	v, err := auditlog.NewVerifier(signer.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/checkpoint", "", nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /checkpoint: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	cp, err := auditlog.OpenCheckpoint(r.body, v)
	if err != nil || cp.Size != 7 || cp.Origin != "api-test" {
		t.Errorf("GET /checkpoint: %+v, %v; want the signed tree of the 7 entries", cp, err)
	}
	r = e.do(http.MethodGet, "/checkpoint/key", "", nil)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != signer.VerifierKey() {
		t.Errorf("GET /checkpoint/key: %d %s, want %s", r.status, r.body, signer.VerifierKey())
	}
	// An empty log has no checkpoint yet; a log without key, no key.
	empty := newEnv(t)
	if r := empty.do(http.MethodGet, "/checkpoint", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /checkpoint of a log that signed nothing: %d", r.status)
	}
	if r := empty.do(http.MethodGet, "/checkpoint/key", "", nil); r.status != http.StatusNotFound {
		t.Errorf("GET /checkpoint/key without a key: %d", r.status)
	}
}

func TestProofIsForTheEntrysReadersOnly(t *testing.T) {
	e, ids, signer := integrityEnv(t)
	v, _ := auditlog.NewVerifier(signer.VerifierKey())
	tests := []struct {
		token, label string
		want         int
	}{
		{"admin", "flow-b1", http.StatusOK},
		{"alice", "flow-a1", http.StatusOK},       // her own
		{"alice", "flow-a2", http.StatusOK},       // her tenant's
		{"alice", "flow-b1", http.StatusNotFound}, // another tenant's: as if it did not exist
		{"carol", "flow-a1", http.StatusNotFound},
		{"alice", "no-such-entry", http.StatusNotFound},
		{"no-perms", "flow-a1", http.StatusForbidden},
		{"", "flow-a1", http.StatusUnauthorized},
	}
	var notFound []byte
	for _, tt := range tests {
		id := ids[tt.label]
		if id == "" {
			id = "0190f0e4-0000-7000-8000-999999999999"
		}
		r := e.do(http.MethodGet, "/logs/"+id+"/proof", tt.token, nil)
		if r.status != tt.want {
			t.Errorf("%s's proof of %s: %d %s, want %d", tt.token, tt.label, r.status, r.body, tt.want)
			continue
		}
		if r.status == http.StatusNotFound {
			// The answer for an entry someone else may read says no more
			// than the one for no entry at all.
			msg := bytes.ReplaceAll(r.body, []byte(id), nil)
			if notFound != nil && !bytes.Equal(msg, notFound) {
				t.Errorf("404 bodies differ: %s and %s", msg, notFound)
			}
			notFound = msg
		}
		if r.status != http.StatusOK {
			continue
		}
		var p proofBody
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Fatal(err)
		}
		cp, err := auditlog.OpenCheckpoint([]byte(p.Checkpoint), v)
		if err != nil || cp.Size != p.TreeSize {
			t.Fatalf("proof's checkpoint: %v", err)
		}
		// Recompute the leaf from the entry as /logs serves it, with the
		// salts the proof carries.
		var l struct{ Data []json.RawMessage }
		json.Unmarshal(e.do(http.MethodGet, "/logs?page[size]=100", tt.token, nil).body, &l)
		var entry auditlog.Entry
		for _, raw := range l.Data {
			var w struct {
				ID      string          `json:"id"`
				Leaf    *int64          `json:"leafIndex"`
				Payload json.RawMessage `json:"payload"`
				Headers struct {
					Name, ServiceName string
					CreatedAt         time.Time
				} `json:"headers"`
				ReceivedAt time.Time `json:"receivedAt"`
			}
			json.Unmarshal(raw, &w)
			if w.ID == id {
				if w.Leaf == nil || *w.Leaf != p.LeafIndex {
					t.Errorf("/logs shows %s at leaf %v, the proof at %d", id, w.Leaf, p.LeafIndex)
				}
				entry = auditlog.Entry{ID: id, Name: w.Headers.Name, ServiceName: w.Headers.ServiceName, CreatedAt: w.Headers.CreatedAt,
					ReceivedAt: w.ReceivedAt, Payload: w.Payload, Salts: p.Salts, Erased: p.Erased}
			}
		}
		h, err := auditlog.LeafHash(entry)
		if err != nil || !bytes.Equal(h[:], p.LeafHash) {
			t.Errorf("%s: the leaf recomputed from the served entry is %x (%v), the proof's %x", tt.label, h, err, p.LeafHash)
		}
		proof := make(tlog.RecordProof, len(p.Proof))
		for i := range p.Proof {
			copy(proof[i][:], p.Proof[i])
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Root, p.LeafIndex, h); err != nil {
			t.Errorf("%s: inclusion proof: %v", tt.label, err)
		}
		if strings.Contains(string(r.body), `"seed"`) {
			t.Errorf("a proof gives the seed away: %s", r.body)
		}
	}
}

func TestConsistencyBetweenCheckpoints(t *testing.T) {
	e, _, signer := integrityEnv(t)
	e.store.Append(context.Background(), []auditlog.Entry{{ID: "later", Name: "x.y", ReceivedAt: base, Payload: json.RawMessage(`{}`)}})
	if _, err := auditlog.IntegrateAll(context.Background(), e.store, signer); err != nil {
		t.Fatal(err)
	}
	r := e.do(http.MethodGet, "/proof/consistency?from=7&to=8", "carol", nil)
	if r.status != http.StatusOK {
		t.Fatalf("consistency 7 to 8: %d %s", r.status, r.body)
	}
	var c struct {
		From, To         int64
		FromRoot, ToRoot []byte
		Proof            [][]byte
	}
	json.Unmarshal(r.body, &c)
	proof := make(tlog.TreeProof, len(c.Proof))
	for i := range c.Proof {
		copy(proof[i][:], c.Proof[i])
	}
	if err := tlog.CheckTree(proof, 8, tlog.Hash(c.ToRoot), 7, tlog.Hash(c.FromRoot)); err != nil || c.From != 7 || c.To != 8 {
		t.Errorf("consistency proof: %+v: %v", c, err)
	}
	for q, want := range map[string]int{"from=9": 404, "from=x": 400, "": 400, "from=7&to=100": 404} {
		if r := e.do(http.MethodGet, "/proof/consistency?"+q, "carol", nil); r.status != want {
			t.Errorf("consistency %q: %d, want %d", q, r.status, want)
		}
	}
	if r := e.do(http.MethodGet, "/proof/consistency?from=7", "no-perms", nil); r.status != http.StatusForbidden {
		t.Errorf("consistency without logs.read: %d", r.status)
	}
}

func TestExportIsForAdminsAndStreamsEveryEntry(t *testing.T) {
	e, _, _ := integrityEnv(t)
	if r := e.do(http.MethodGet, "/export", "alice", nil); r.status != http.StatusForbidden {
		t.Errorf("export as a non-admin: %d", r.status)
	}
	r := e.do(http.MethodGet, "/export", "admin", nil)
	if r.status != http.StatusOK {
		t.Fatalf("export: %d %s", r.status, r.body)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var x ExportedEntry
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		h, err := auditlog.LeafHash(x.Entry())
		if err != nil || !bytes.Equal(h[:], x.LeafHash) || x.LeafIndex == nil {
			t.Errorf("exported entry %s does not recompute to its leaf (%v)", x.ID, err)
		}
		n++
	}
	if n != 7 {
		t.Errorf("export streamed %d entries, want 7", n)
	}
	if r := e.do(http.MethodGet, "/export?after=3&limit=2", "admin", nil); strings.Count(string(r.body), "\n") != 2 {
		t.Errorf("export after 3, limit 2: %s", r.body)
	}
}

// recorder records reads as the ingester would, through one store.
type recorder struct {
	mu    sync.Mutex
	store auditlog.Store
	fail  error
}

func (r *recorder) record(ctx context.Context, ev *event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	e, err := auditlog.EntryFromEvent(ev, time.Now(), nil)
	if err != nil {
		return err
	}
	_, err = r.store.Append(ctx, []auditlog.Entry{e})
	return err
}

func TestReadsAreRecordedBeforeTheAnswer(t *testing.T) {
	rec := &recorder{}
	e, ids, _ := integrityEnv(t, func(c *Config) {
		rec.store = c.Store
		c.RecordRead = rec.record
	})
	e.list("alice", "filter[name]=flowrepo.flow.created")
	e.do(http.MethodGet, "/logs/"+ids["flow-a1"]+"/proof", "alice", nil)
	e.do(http.MethodGet, "/export", "admin", nil)
	// A live stream is recorded when it opens, before its first event.
	s := e.openStream("alice", "filter[service]=flow-repository", "2")
	if ev := s.next(t, 5*time.Second); ev.name != "ready" {
		t.Fatalf("the stream's first event: %+v", ev)
	}
	p, err := e.store.Query(context.Background(), auditlog.Query{Name: ReadEvent, Order: auditlog.OldestFirst})
	if err != nil || len(p.Entries) != 4 {
		t.Fatalf("%d reads recorded (%v), want 4", len(p.Entries), err)
	}
	var opened struct {
		User, Route string
		Query       map[string]any
		Count       *int
	}
	json.Unmarshal(p.Entries[3].Payload, &opened)
	if opened.User != "alice" || opened.Route != "stream" || opened.Query["filter[service]"] != "flow-repository" ||
		opened.Query["lastEventId"] != 2.0 || opened.Count != nil {
		t.Errorf("the recorded stream: %s", p.Entries[3].Payload)
	}
	var first struct {
		User, Tenant, Route string
		Query               map[string]string
		Count               int
	}
	json.Unmarshal(p.Entries[0].Payload, &first)
	if first.User != "alice" || first.Tenant != "tenant-a" || first.Route != "logs" || first.Query["filter[name]"] != "flowrepo.flow.created" || first.Count != 2 {
		t.Errorf("the recorded read: %s", p.Entries[0].Payload)
	}
	if p.Entries[0].ServiceName != "audit-log" || p.Entries[0].User != "alice" {
		t.Errorf("the read's entry: service %q, user %q", p.Entries[0].ServiceName, p.Entries[0].User)
	}
	// Alice sees her own reads; an admin filters them out by name.
	if l := e.list("alice", "filter[name]="+ReadEvent); l.Meta.Total < 1 {
		t.Errorf("alice sees %d of her reads", l.Meta.Total)
	}
	// A read that cannot be recorded is not answered.
	rec.fail = context.DeadlineExceeded
	if r := e.do(http.MethodGet, "/logs", "alice", nil); r.status != http.StatusInternalServerError {
		t.Errorf("a read that could not be recorded answered %d", r.status)
	}
	if s := e.openStream("alice", "", ""); s.resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("a stream whose opening could not be recorded answered %d", s.resp.StatusCode)
	}
}
