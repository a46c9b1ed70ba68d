package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// sseEvent is one event of a stream, or a comment (name "comment").
type sseEvent struct {
	id   string
	name string
	data string
}

// stream is an open GET /logs/stream.
type stream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	// hold, when not nil, stops the reading after the first event until
	// it is closed: a client that reads nothing.
	hold chan struct{}
}

// openStream opens GET /logs/stream?query as token, with Last-Event-ID
// when lastID is not empty, and parses its events as they come.
func (e *env) openStream(token, query, lastID string) *stream {
	e.t.Helper()
	return e.openStreamHeld(token, query, lastID, nil)
}

func (e *env) openStreamHeld(token, query, lastID string, hold chan struct{}) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/logs/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	s := &stream{resp: resp, events: make(chan sseEvent, 100_000), cancel: cancel, hold: hold}
	e.t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		return s
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					s.events <- ev
					if s.hold != nil {
						<-s.hold
						s.hold = nil
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				s.events <- sseEvent{name: "comment", data: line}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[6:]
			}
		}
	}()
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event that is not a comment.
func (s *stream) next(t *testing.T, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended")
			}
			if ev.name != "comment" {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// streamed is an entry event's data.
type streamed struct {
	ID        string
	Seq       int64
	LeafIndex *int64
	Headers   struct{ Name string }
	Payload   map[string]any
}

func (ev sseEvent) entry(t *testing.T) streamed {
	t.Helper()
	if ev.name != "entry" {
		t.Fatalf("event %q (%s), want an entry", ev.name, ev.data)
	}
	var s streamed
	if err := json.Unmarshal([]byte(ev.data), &s); err != nil {
		t.Fatalf("entry data %s: %v", ev.data, err)
	}
	if ev.id != strconv.FormatInt(s.Seq, 10) {
		t.Fatalf("event id %s, entry seq %d: the id is the entry's position", ev.id, s.Seq)
	}
	return s
}

func (e *env) post(token string, ev map[string]any) {
	e.t.Helper()
	if r := e.do(http.MethodPost, "/logs", token, ev); r.status != http.StatusCreated {
		e.t.Fatalf("POST /logs: %d %s", r.status, r.body)
	}
}

func TestStreamStartsAtTheLastEntryAndSendsNewOnesAsGetLogsShowsThem(t *testing.T) {
	e := newEnv(t)
	e.seed()
	head := e.list("admin", "page[size]=1000").Data
	var last int64
	for _, d := range head {
		last = max(last, d.Seq)
	}
	s := e.openStream("admin", "", "")
	if s.resp.StatusCode != http.StatusOK || s.resp.Header.Get("Content-Type") != "text/event-stream; charset=utf-8" {
		t.Fatalf("GET /logs/stream: %d %s", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
	ready := s.next(t, 5*time.Second)
	if ready.name != "ready" || ready.id != strconv.FormatInt(last, 10) || ready.data != fmt.Sprintf(`{"position":%d}`, last) {
		t.Fatalf("first event %+v, want ready at %d", ready, last)
	}
	e.post("admin", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"flowId": "live-1", "tenant": "tenant-a"}))
	got := s.next(t, 5*time.Second).entry(t)
	if got.Payload["flowId"] != "live-1" || got.Seq <= last {
		t.Fatalf("streamed %+v", got)
	}
	// The data is the entry exactly as GET /logs shows it.
	r := e.do(http.MethodGet, "/logs?filter[flowId]=live-1", "admin", nil)
	var page struct{ Data []json.RawMessage }
	json.Unmarshal(r.body, &page)
	s2 := e.openStream("admin", "filter[flowId]=live-1", strconv.FormatInt(last, 10))
	s2.next(t, 5*time.Second) // ready
	if ev := s2.next(t, 5*time.Second); len(page.Data) != 1 || ev.data != string(page.Data[0]) {
		t.Errorf("streamed %s, GET /logs shows %s", ev.data, page.Data)
	}
}

// TestStreamedEntriesCarryTheLeafIndexTheyHaveWhenRead: an entry read
// after the integrator placed it carries its leafIndex, as in GET /logs;
// one streamed before it does not, and carries it when read again.
func TestStreamedEntriesCarryTheLeafIndexTheyHaveWhenRead(t *testing.T) {
	e, _, signer := integrityEnv(t)
	s := e.openStream("admin", "", "0")
	s.next(t, 5*time.Second) // ready
	for i := range 7 {
		if got := s.next(t, 5*time.Second).entry(t); got.LeafIndex == nil || *got.LeafIndex != int64(i) {
			t.Fatalf("integrated entry %s streamed with leaf index %v, want %d", got.ID, got.LeafIndex, i)
		}
	}
	e.post("admin", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"flowId": "live-1", "tenant": "tenant-a"}))
	live := s.next(t, 5*time.Second).entry(t)
	if live.LeafIndex != nil {
		t.Errorf("an entry not yet integrated streamed with leaf index %d", *live.LeafIndex)
	}
	if _, err := auditlog.IntegrateAll(context.Background(), e.store, signer); err != nil {
		t.Fatal(err)
	}
	again := e.openStream("admin", "", strconv.FormatInt(live.Seq-1, 10))
	again.next(t, 5*time.Second) // ready
	if got := again.next(t, 5*time.Second).entry(t); got.ID != live.ID || got.LeafIndex == nil || *got.LeafIndex != 7 {
		t.Errorf("read again after integration: %s at leaf %v, want %s at 7", got.ID, got.LeafIndex, live.ID)
	}
}

func TestStreamResumesAfterLastEventIDInOrderWithoutGapOrRepeat(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var entries []auditlog.Entry
	for i := range 2500 {
		entries = append(entries, auditlog.Entry{
			ID: fmt.Sprintf("r%05d", i), Name: "flowrepo.flow.created", ServiceName: "flow-repository",
			CreatedAt: base.Add(time.Duration(i%97) * time.Second), ReceivedAt: base, // createdAt out of order
			Payload: json.RawMessage(fmt.Sprintf(`{"n":"%d"}`, i)),
		})
	}
	if _, err := e.store.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	all, _ := e.store.Query(ctx, auditlog.Query{Order: auditlog.BySeq})
	from := all.Entries[999].Seq
	for _, how := range []string{"header", "parameter"} {
		t.Run(how, func(t *testing.T) {
			var s *stream
			if how == "header" {
				s = e.openStream("admin", "", strconv.FormatInt(from, 10))
			} else {
				s = e.openStream("admin", "lastEventId="+strconv.FormatInt(from, 10), "")
			}
			if ev := s.next(t, 5*time.Second); ev.name != "ready" || ev.id != strconv.FormatInt(from, 10) {
				t.Fatalf("first event %+v", ev)
			}
			for i := 1000; i < 2500; i++ {
				if got := s.next(t, 10*time.Second).entry(t); got.ID != fmt.Sprintf("r%05d", i) {
					t.Fatalf("entry %d is %s", i, got.ID)
				}
			}
			select {
			case ev := <-s.events:
				if ev.name != "comment" {
					t.Fatalf("after the last stored entry: %+v", ev)
				}
			default:
			}
		})
	}
}

func TestStreamRefusesWhatGetLogsRefuses(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		token, query, lastID string
		status               int
	}{
		{"", "", "", http.StatusUnauthorized},
		{"no-perms", "", "", http.StatusForbidden},
		{"admin", "filter[user][$ne]=x", "", http.StatusBadRequest},
		{"admin", "", "abc", http.StatusBadRequest},
		{"admin", "", "-1", http.StatusBadRequest},
		{"admin", "lastEventId=1&lastEventId=2", "", http.StatusBadRequest},
	} {
		s := e.openStream(c.token, c.query, c.lastID)
		if s.resp.StatusCode != c.status {
			t.Errorf("token %q, query %q, Last-Event-ID %q: %d, want %d", c.token, c.query, c.lastID, s.resp.StatusCode, c.status)
		}
	}
}

// TestTenantStreamsNeverCarryAnotherTenantsEntry stores random entries,
// some before the streams open (read back from the store) and the rest
// while they run (handed on live), and checks that each caller's stream
// carries exactly the entries GET /logs would show them, in order.
func TestTenantStreamsNeverCarryAnotherTenantsEntry(t *testing.T) {
	var feed *auditlog.Feed
	var store auditlog.Store
	e := newEnv(t, func(c *Config) {
		store = c.Store
		// No poll: what the streams carry comes from Committed.
		feed = auditlog.NewFeed(auditlog.FeedConfig{Store: c.Store, Buffer: 100_000, Poll: time.Hour})
		c.Feed = feed
	})
	t.Cleanup(feed.Close)
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	users := []string{"alice", "carol", "nora", "mia", "someone", ""}
	tenants := []string{"tenant-a", "tenant-b", "tenant-c", ""}
	const total = 1500
	var entries []auditlog.Entry
	for i := range total {
		u, tn := users[r.IntN(len(users))], tenants[r.IntN(len(tenants))]
		payload, _ := json.Marshal(map[string]string{"user": u, "tenant": tn, "n": strconv.Itoa(i)})
		entries = append(entries, auditlog.Entry{
			ID: fmt.Sprintf("i%05d", i), Name: "flowrepo.flow.created", ServiceName: "flow-repository",
			CreatedAt: base.Add(time.Duration(r.IntN(100000)) * time.Millisecond), ReceivedAt: base,
			User: u, Tenant: tn, Payload: payload,
		})
	}
	ctx := context.Background()
	if _, err := store.Append(ctx, entries[:500]); err != nil {
		t.Fatal(err)
	}
	// alice: tenant-a; carol: tenant-b; nora: no tenant; mia: tenant-a by
	// her active membership.
	visible := map[string]func(auditlog.Entry) bool{
		"alice": func(x auditlog.Entry) bool { return x.User == "alice" || x.Tenant == "tenant-a" },
		"carol": func(x auditlog.Entry) bool { return x.User == "carol" || x.Tenant == "tenant-b" },
		"nora":  func(x auditlog.Entry) bool { return x.User == "nora" },
		"member": func(x auditlog.Entry) bool {
			return x.User == "mia" || x.Tenant == "tenant-a"
		},
	}
	streams := map[string]*stream{}
	for who := range visible {
		streams[who] = e.openStream(who, "", "0")
		if ev := streams[who].next(t, 5*time.Second); ev.name != "ready" {
			t.Fatalf("%s: first event %+v", who, ev)
		}
	}
	// check reads each stream's entries of part, in order.
	check := func(part []auditlog.Entry) {
		t.Helper()
		for who, sees := range visible {
			var want []string
			for _, x := range part {
				if sees(x) {
					want = append(want, x.ID)
				}
			}
			if len(want) == 0 {
				t.Fatalf("%s sees nothing: the test proves nothing (seed %d)", who, seed)
			}
			for i, id := range want {
				got := streams[who].next(t, 10*time.Second).entry(t)
				if got.ID != id {
					t.Fatalf("%s (seed %d): entry %d is %s (user %v, tenant %v), want %s", who, seed, i, got.ID, got.Payload["user"], got.Payload["tenant"], id)
				}
			}
		}
	}
	// Caught up on what was stored: each stream follows the feed now.
	check(entries[:500])
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rest := entries[500:]; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(40))
			if _, err := store.Append(ctx, rest[:n]); err != nil {
				t.Error(err)
				return
			}
			// As the ingester hands them on: as stored when the store
			// gave them so (SQLite), else the feed reads them.
			feed.Committed(rest[:n])
			rest = rest[n:]
		}
	}()
	wg.Wait()
	check(entries[500:])
	// Nothing more: an entry another tenant's stream would carry comes
	// after the last one a caller may see, if anywhere.
	e.post("admin", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"user": "alice", "tenant": "tenant-a", "n": "end"}))
	for who := range visible {
		if who == "alice" || who == "member" {
			if got := streams[who].next(t, 5*time.Second).entry(t); got.Payload["n"] != "end" {
				t.Errorf("%s: after the last entry, %v", who, got.Payload)
			}
		}
	}
	for _, who := range []string{"carol", "nora"} {
		select {
		case ev := <-streams[who].events:
			if ev.name != "comment" {
				t.Errorf("%s got %+v, outside their scope", who, ev)
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestSlowStreamIsClosedWithAReasonAndIngestGoesOn(t *testing.T) {
	var feed *auditlog.Feed
	var store auditlog.Store
	e := newEnv(t, func(c *Config) {
		store = c.Store
		feed = auditlog.NewFeed(auditlog.FeedConfig{Store: c.Store, Buffer: 20})
		c.Feed = feed
	})
	t.Cleanup(feed.Close)
	hold := make(chan struct{})
	s := e.openStreamHeld("admin", "", "", hold)
	if ev := s.next(t, 5*time.Second); ev.name != "ready" {
		t.Fatal(ev)
	}
	// The client reads nothing while 40 MB of entries are stored: the
	// socket's buffers fill, the server's writes block, the entries waiting
	// for this client pass its buffer.
	big := strings.Repeat("x", 200_000)
	ctx := context.Background()
	for i := range 200 {
		p, _ := json.Marshal(map[string]string{"blob": big})
		if _, err := store.Append(ctx, []auditlog.Entry{{ID: fmt.Sprintf("b%03d", i), Name: "x.y", ServiceName: "x", CreatedAt: base, ReceivedAt: base, Payload: p}}); err != nil {
			t.Fatal(err)
		}
		feed.Notify()
	}
	// Now read: entries, then the close event with its reason.
	close(hold)
	for {
		ev := s.next(t, 30*time.Second)
		if ev.name == "entry" {
			continue
		}
		if ev.name != "close" || !strings.Contains(ev.data, `"reason":"too-slow"`) {
			t.Fatalf("event %s %s, want close too-slow", ev.name, ev.data)
		}
		break
	}
	if _, ok := <-s.events; ok {
		t.Error("the stream went on after its close event")
	}
}

func TestStreamSendsHeartbeatsAndEndsOnShutdown(t *testing.T) {
	var feed *auditlog.Feed
	e := newEnv(t, func(c *Config) {
		feed = auditlog.NewFeed(auditlog.FeedConfig{Store: c.Store})
		c.Feed = feed
		c.StreamHeartbeat = 20 * time.Millisecond
	})
	s := e.openStream("alice", "", "")
	s.next(t, 5*time.Second) // ready
	select {
	case ev := <-s.events:
		if ev.name != "comment" || ev.data != ": heartbeat" {
			t.Fatalf("idle stream sent %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	feed.Close()
	if ev := s.next(t, 5*time.Second); ev.name != "close" || !strings.Contains(ev.data, `"reason":"shutdown"`) {
		t.Fatalf("on shutdown: %+v", ev)
	}
}
