package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/client"
	"github.com/heraldhq/herald/auditlog/httpapi"
	"github.com/heraldhq/herald/auditlog/httpapi/wire"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
)

// The tokens the test API accepts.
const (
	adminToken  = "admin-token"
	pusherToken = "pusher-token" // logs.push only
	// anyToken is a service's that records what its users did: logs.push
	// and logs.push.any.
	anyToken = "any-token"
)

// tokenUsers authenticates bearer tokens as fixed identities, as OIH's
// IAM answers for them; an unknown token is IAM's 404.
type tokenUsers map[string]*iam.User

func (u tokenUsers) Authenticate(_ context.Context, r *http.Request) (*iam.User, error) {
	tok, err := iam.BearerToken(r)
	if err != nil {
		return nil, err
	}
	if user, ok := u[tok]; ok {
		return user, nil
	}
	return nil, iam.ErrTokenNotFound
}

// server is herald's /logs API over a SQLite store, recording the query
// of every GET /logs it answers.
type server struct {
	url     string
	store   auditlog.Store
	healthy atomic.Bool // the bus check GET /healthcheck reports

	mu      sync.Mutex
	queries []url.Values
	// onQuery, when set, runs before each GET /logs is answered.
	onQuery func(r *http.Request)
}

// newServer serves the real API over a real store; oihShape rewrites its
// answers into what OIH's audit log sends.
func newServer(t *testing.T, oihShape bool) *server {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := &server{store: store}
	s.healthy.Store(true)
	var h http.Handler = httpapi.New(httpapi.Config{
		Store: store,
		Auth: tokenUsers{
			adminToken:  {Sub: "admin-1", Permissions: []string{iam.PermissionAll}, IsAdmin: true},
			pusherToken: {Sub: "svc-1", Username: "flow-repository", Permissions: []string{httpapi.DefaultPushPermission}},
			anyToken:    {Sub: "svc-2", Username: "flow-repository", Permissions: []string{httpapi.DefaultPushPermission, httpapi.DefaultPushAnyPermission}},
		},
		Version: "test",
		Health: func(context.Context) map[string]httpapi.Check {
			if s.healthy.Load() {
				return map[string]httpapi.Check{"queue": {Status: httpapi.StatusPass, Info: map[string]any{"transport": "nats"}}}
			}
			return map[string]httpapi.Check{"queue": {Status: httpapi.StatusFail, Message: "disconnected"}}
		},
	})
	if oihShape {
		h = oih(h)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/logs" {
			s.mu.Lock()
			s.queries = append(s.queries, r.URL.Query())
			hook := s.onQuery
			s.mu.Unlock()
			if hook != nil {
				hook(r)
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// oih turns herald's GET /logs answers into OIH's audit log's: entries
// with _id but no id, seq or receivedAt, and no nextCursor (OIH pages by
// number only).
func oih(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logs/stream" {
			http.NotFound(w, r) // OIH's audit log has no live stream
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if r.Method != http.MethodGet || r.URL.Path != "/logs" || rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		delete(body, "nextCursor")
		for _, e := range body["data"].([]any) {
			m := e.(map[string]any)
			delete(m, "id")
			delete(m, "seq")
			delete(m, "receivedAt")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	})
}

// takeQueries returns the GET /logs queries answered since the last call.
func (s *server) takeQueries() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queries
	s.queries = nil
	return q
}

var t0 = time.Date(2025, 3, 31, 9, 0, 0, 0, time.UTC)

// fixtureEvent is the i-th event of the tests' story: one a second from
// t0, from three services in turn, users u0–u3, tenants t0 and t1 (none
// for every fifth), flows f0–f2, and its index as payload n.
func fixtureEvent(i int) *event.Event {
	services := []string{"accounts", "flow-repository", "secret-service"}
	names := []string{"iam.user.created", "flowrepo.flow.created", "secret-service.secret.created"}
	p := map[string]any{"n": i, "user": fmt.Sprintf("u%d", i%4), "flowId": fmt.Sprintf("f%d", i%3)}
	if i%5 != 0 {
		p["tenant"] = fmt.Sprintf("t%d", i%2)
	}
	ev, err := event.New(names[i%3], p)
	if err != nil {
		panic(err)
	}
	ev.Headers.ServiceName = services[i%3]
	ev.Headers.CreatedAt = t0.Add(time.Duration(i) * time.Second)
	return ev
}

// add stores the fixture's events from..to-1, and returns them.
func (s *server) add(t *testing.T, from, to int) []*event.Event {
	t.Helper()
	var evs []*event.Event
	var entries []auditlog.Entry
	for i := from; i < to; i++ {
		ev := fixtureEvent(i)
		e, err := auditlog.EntryFromEvent(ev, ev.Headers.CreatedAt.Add(time.Millisecond), nil)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		entries = append(entries, e)
	}
	if _, err := s.store.Append(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	return evs
}

func newClient(t *testing.T, s *server, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(s.url, append([]client.Option{client.WithToken(adminToken)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// collect runs All and returns the ids, or fails the test.
func collect(t *testing.T, c *client.Client, q client.Query) []string {
	t.Helper()
	var ids []string
	for e, err := range c.All(context.Background(), q) {
		if err != nil {
			t.Fatalf("All(%+v): %v", q, err)
		}
		ids = append(ids, e.ID)
	}
	return ids
}

// ids returns the ids of the events keep selects, newest first.
func ids(evs []*event.Event, keep func(i int, ev *event.Event) bool) []string {
	var out []string
	for i, ev := range evs {
		if keep(i, ev) {
			out = append(out, ev.Headers.ID)
		}
	}
	slices.Reverse(out)
	return out
}

func payload(ev *event.Event, key string) string {
	var p map[string]any
	json.Unmarshal(ev.Payload, &p)
	s, _ := p[key].(string)
	return s
}

func TestAllSelectsWhatEachFilterSays(t *testing.T) {
	s := newServer(t, false)
	evs := s.add(t, 0, 60)
	c := newClient(t, s)
	for _, tc := range []struct {
		name  string
		query client.Query
		keep  func(i int, ev *event.Event) bool
		order client.Order
	}{
		{"nothing", client.Query{}, func(int, *event.Event) bool { return true }, client.NewestFirst},
		{"service", client.Query{Service: "accounts"}, func(_ int, ev *event.Event) bool { return ev.Headers.ServiceName == "accounts" }, client.NewestFirst},
		{"name", client.Query{Name: "flowrepo.flow.created"}, func(_ int, ev *event.Event) bool { return ev.Headers.Name == "flowrepo.flow.created" }, client.NewestFirst},
		{"user", client.Query{User: "u1"}, func(_ int, ev *event.Event) bool { return ev.User() == "u1" }, client.NewestFirst},
		{"tenant", client.Query{Tenant: "t1"}, func(_ int, ev *event.Event) bool { return ev.Tenant() == "t1" }, client.NewestFirst},
		{"payload key", client.Query{Payload: map[string]string{"flowId": "f2"}}, func(_ int, ev *event.Event) bool { return payload(ev, "flowId") == "f2" }, client.NewestFirst},
		{"from inclusive, to exclusive", client.Query{From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second)}, func(i int, _ *event.Event) bool { return i >= 10 && i < 20 }, client.NewestFirst},
		{"oldest first, service and tenant", client.Query{Service: "secret-service", Tenant: "t0", Order: client.OldestFirst},
			func(_ int, ev *event.Event) bool {
				return ev.Headers.ServiceName == "secret-service" && ev.Tenant() == "t0"
			}, client.OldestFirst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := ids(evs, tc.keep)
			if tc.order == client.OldestFirst {
				slices.Reverse(want)
			}
			if len(want) == 0 || len(want) == len(evs) && tc.name != "nothing" {
				t.Fatalf("the fixture selects %d of %d entries: the case tells nothing", len(want), len(evs))
			}
			if got := collect(t, c, tc.query); !slices.Equal(got, want) {
				t.Errorf("got %d entries %v\nwant %d %v", len(got), got, len(want), want)
			}
		})
	}
}

func TestPayloadMayNotNameTheFieldsOfTheirOwn(t *testing.T) {
	s := newServer(t, false)
	c := newClient(t, s)
	for _, key := range []string{"service", "name", "user", "tenant"} {
		_, err := c.List(context.Background(), client.Query{Payload: map[string]string{key: "x"}})
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("Payload[%q]: err %v, want a refusal naming it", key, err)
		}
	}
	if q := s.takeQueries(); len(q) != 0 {
		t.Errorf("refused queries were sent: %v", q)
	}
}

func TestListReturnsOnePageWhereThePageOrCursorSays(t *testing.T) {
	s := newServer(t, false)
	evs := s.add(t, 0, 23)
	all := ids(evs, func(int, *event.Event) bool { return true })
	c := newClient(t, s)
	ctx := context.Background()

	p, err := c.List(ctx, client.Query{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(p.Entries); !slices.Equal(got, all[:5]) || p.Number != 1 || p.PerPage != 5 || p.Total != 23 || p.TotalPages != 5 || p.NextCursor == "" {
		t.Fatalf("first page %v (page %d of %d, %d per page, total %d, cursor %q), want %v", got, p.Number, p.TotalPages, p.PerPage, p.Total, p.NextCursor, all[:5])
	}
	next, err := c.List(ctx, client.Query{Limit: 5, Cursor: p.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(next.Entries); !slices.Equal(got, all[5:10]) || next.Number != 2 {
		t.Errorf("page after the cursor %v (page %d), want %v", got, next.Number, all[5:10])
	}
	third, err := c.List(ctx, client.Query{Limit: 5, Page: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := entryIDs(third.Entries); !slices.Equal(got, all[10:15]) || third.Number != 3 {
		t.Errorf("page 3 %v (page %d), want %v", got, third.Number, all[10:15])
	}
	def, err := c.List(ctx, client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Entries) != wire.DefaultPageSize {
		t.Errorf("a page without a limit holds %d entries, want the server's default %d", len(def.Entries), wire.DefaultPageSize)
	}
	if _, err := c.List(ctx, client.Query{Limit: wire.MaxPageSize + 1}); err == nil {
		t.Error("a page above the API's largest was asked for")
	}
}

func entryIDs(es []client.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestEntryHoldsWhatTheLogStored(t *testing.T) {
	s := newServer(t, false)
	ev := s.add(t, 7, 8)[0]
	odd := fixtureEvent(9)
	odd.Headers.Name = "no.such.event"
	unknown, err := auditlog.EntryFromEvent(odd, time.Now(), catalog.Default())
	if err != nil || !unknown.Unknown {
		t.Fatalf("%+v, %v: want an entry the catalogue does not know", unknown, err)
	}
	if _, err := s.store.Append(context.Background(), []auditlog.Entry{unknown}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s)
	p, err := c.List(context.Background(), client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 2 || p.Entries[0].ID != odd.Headers.ID || !p.Entries[0].Unknown {
		t.Fatalf("%d entries, the first %s: want the unknown event first, marked", len(p.Entries), p.Entries[0].Raw)
	}
	e := p.Entries[1]
	var payload map[string]any
	if err := json.Unmarshal(e.Payload, &payload); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	switch {
	case e.ID != ev.Headers.ID, e.Seq < 1, e.Unknown, e.Name != "flowrepo.flow.created", e.ServiceName != "flow-repository":
		t.Errorf("entry %s decoded as id %s, seq %d, name %s, service %s, unknown %t", e.Raw, e.ID, e.Seq, e.Name, e.ServiceName, e.Unknown)
	case !e.CreatedAt.Equal(t0.Add(7 * time.Second)), !e.ReceivedAt.Equal(t0.Add(7*time.Second + time.Millisecond)):
		t.Errorf("createdAt %v, receivedAt %v", e.CreatedAt, e.ReceivedAt)
	case e.User != "u3", e.Tenant != "t1", payload["flowId"] != "f1", payload["n"] != 7.0:
		t.Errorf("user %q, tenant %q, payload %s", e.User, e.Tenant, e.Payload)
	case raw["_id"] != ev.Headers.ID, !strings.Contains(string(e.Headers), `"serviceName":"flow-repository"`):
		t.Errorf("raw %s, headers %s", e.Raw, e.Headers)
	}
}

func TestAllPagesThroughTheWholeLog(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oih      bool
		position string   // the parameter that moves from page to page
		sizes    []string // the page sizes asked for 2,200 entries
	}{
		// A cursor's last page asks for what is missing; numbered pages
		// keep one size, or the page number would point elsewhere.
		{"herald follows cursors", false, "cursor", []string{"1000", "1000", "200"}},
		{"OIH's audit log pages by number", true, "page[number]", []string{"1000", "1000", "1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.oih)
			all := ids(s.add(t, 0, 2500), func(int, *event.Event) bool { return true })
			c := newClient(t, s)

			if got := collect(t, c, client.Query{Limit: 2200}); !slices.Equal(got, all[:2200]) {
				t.Fatalf("Limit 2200: %d entries, want the newest 2200 in order", len(got))
			}
			qs := s.takeQueries()
			var sizes []string
			for _, q := range qs {
				sizes = append(sizes, q.Get("page[size]"))
			}
			if !slices.Equal(sizes, tc.sizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.sizes)
			}
			if len(qs) == 3 && (qs[1].Get(tc.position) == "" || qs[2].Get(tc.position) == "") {
				t.Errorf("queries %v: later pages without %s", qs, tc.position)
			}

			if got := collect(t, c, client.Query{}); !slices.Equal(got, all) {
				t.Fatalf("no limit: %d entries, want all %d in order", len(got), len(all))
			}
			if n := len(s.takeQueries()); n != 3 {
				t.Errorf("%d requests for 2,500 entries, want 3", n)
			}

			old := collect(t, c, client.Query{Order: client.OldestFirst, Limit: 1500})
			want := slices.Clone(all)
			slices.Reverse(want)
			if !slices.Equal(old, want[:1500]) {
				t.Errorf("oldest first: %d entries, want the oldest 1500 in order", len(old))
			}
		})
	}
}

func TestAllStopsWhenTheLoopDoes(t *testing.T) {
	s := newServer(t, false)
	s.add(t, 0, 1500)
	c := newClient(t, s)
	n := 0
	for _, err := range c.All(context.Background(), client.Query{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if q := s.takeQueries(); n != 3 || len(q) != 1 {
		t.Errorf("%d entries in %d requests, want 3 in 1", n, len(q))
	}
}

func TestErrorsSayWhatTheLogRefused(t *testing.T) {
	s := newServer(t, false)
	ctx := context.Background()
	stored := s.add(t, 0, 1)[0]
	sentinels := []error{client.ErrBadRequest, client.ErrUnauthorized, client.ErrForbidden, client.ErrConflict}
	for _, tc := range []struct {
		name    string
		token   string
		call    func(c *client.Client) error
		want    error
		message string
		perms   []string
	}{
		{"no token", "", list(client.Query{}), client.ErrUnauthorized, iam.ErrMissingAuthorization.Message, nil},
		{"a token IAM does not know", "nobody", list(client.Query{}), client.ErrUnauthorized, iam.ErrTokenNotFound.Message, nil},
		{"a token without the read permission", pusherToken, list(client.Query{}), client.ErrForbidden, iam.ErrMissingPermission.Message, []string{httpapi.DefaultReadPermission}},
		{"a payload key the API refuses", adminToken, list(client.Query{Payload: map[string]string{"not a key": "x"}}), client.ErrBadRequest, "filter key", nil},
		{"an event under a stored id with another name", adminToken, func(c *client.Client) error {
			ev := stored.Clone()
			ev.Headers.Name = "iam.user.deleted"
			_, _, err := c.Post(ctx, ev)
			return err
		}, client.ErrConflict, stored.Headers.ID, nil},
		{"an event with an invalid name", adminToken, func(c *client.Client) error {
			ev := fixtureEvent(1)
			ev.Headers.Name = "bad..name"
			_, _, err := c.Post(ctx, ev)
			return err
		}, client.ErrBadRequest, "name", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(s.url, client.WithToken(tc.token))
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(c)
			var ae *client.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err %v (%T), want a *client.Error", err, err)
			}
			for _, sentinel := range sentinels {
				if errors.Is(err, sentinel) != (sentinel == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %t", err, sentinel, !(sentinel == tc.want))
				}
			}
			if !strings.Contains(ae.Message(), tc.message) || !strings.Contains(err.Error(), tc.message) {
				t.Errorf("message %q (error %q), want it to hold %q", ae.Message(), err, tc.message)
			}
			if !slices.Equal(ae.MissingPermissions(), tc.perms) {
				t.Errorf("missing permissions %v, want %v", ae.MissingPermissions(), tc.perms)
			}
		})
	}
}

func list(q client.Query) func(*client.Client) error {
	return func(c *client.Client) error {
		_, err := c.List(context.Background(), q)
		return err
	}
}

func TestErrorFromAServerThatIsNotAnAuditLog(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>upstream timed out</html>", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background(), client.Query{})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadGateway || !strings.Contains(err.Error(), "upstream timed out") {
		t.Fatalf("err %v, want a 502 quoting the body", err)
	}
}

func TestUnreachableNamesTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	c, err := client.New(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background(), client.Query{})
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("err %v, want ErrUnreachable naming %s", err, srv.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.List(ctx, client.Query{}); !errors.Is(err, context.Canceled) || errors.Is(err, client.ErrUnreachable) {
		t.Errorf("cancelled: err %v, want context.Canceled only", err)
	}
}

func TestNewRefusesWhatIsNotAnHTTPURL(t *testing.T) {
	for _, u := range []string{"localhost:3007", "ftp://host/", "http://", "127.0.0.1", "::"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted it", u)
		}
	}
	c, err := client.New("https://user:secret@audit.example.com/prefix/")
	if err != nil || strings.Contains(c.URL(), "secret") || !strings.HasSuffix(c.URL(), "/prefix") {
		t.Errorf("New: %v, URL %q: want the password hidden and the path kept", err, c.URL())
	}
}

func TestPostStoresAnEventOnce(t *testing.T) {
	s := newServer(t, false)
	c := newClient(t, s)
	ctx := context.Background()
	ev := fixtureEvent(4)
	e, created, err := c.Post(ctx, ev)
	if err != nil || !created {
		t.Fatalf("first post: created %t, %v", created, err)
	}
	if e.ID != ev.Headers.ID || e.Seq < 1 || e.Name != ev.Headers.Name || e.ServiceName != "flow-repository" || e.User != "u0" || !e.CreatedAt.Equal(ev.Headers.CreatedAt) {
		t.Errorf("stored entry %s", e.Raw)
	}
	again, created, err := c.Post(ctx, ev)
	if err != nil || created || again.Seq != e.Seq {
		t.Errorf("second post: created %t, seq %d (first %d), %v; want the stored entry", created, again.Seq, e.Seq, err)
	}
	if ids := collect(t, c, client.Query{}); len(ids) != 1 {
		t.Errorf("%d entries stored, want 1", len(ids))
	}

	// A service's own token writes as itself, whatever the event says;
	// naming a user needs logs.push.any.
	svc, err := client.New(s.url, client.WithToken(pusherToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Post(ctx, fixtureEvent(5)); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("a post naming user u1 without logs.push.any: %v, want ErrForbidden", err)
	}
	anySvc, err := client.New(s.url, client.WithToken(anyToken))
	if err != nil {
		t.Fatal(err)
	}
	e, created, err = anySvc.Post(ctx, fixtureEvent(5))
	if err != nil || !created || e.ServiceName != "flow-repository" || e.User != "u1" {
		t.Errorf("a service's post: %+v, created %t, %v; want it stored as flow-repository for u1", e, created, err)
	}
}

func TestHealthReportsEachPart(t *testing.T) {
	s := newServer(t, false)
	c, err := client.New(s.url) // the health check needs no token
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !h.OK || h.Status != "pass" || h.Version != "test" || h.Details["store"].Status != "pass" || h.Details["queue"].Info["transport"] != "nats" {
		t.Errorf("healthy: %+v", h)
	}
	s.healthy.Store(false)
	h, err = c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.OK || h.Status != "fail" || h.Details["queue"].Message != "disconnected" || h.Details["store"].Status != "pass" {
		t.Errorf("bus down: %+v", h)
	}
}

func TestFollowReturnsTheNewestThenEachNewEntryOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		oih  bool
	}{
		{"herald", false},
		{"OIH's audit log, without seq", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.oih)
			s.add(t, 0, 5)
			c := newClient(t, s, client.WithPollInterval(10*time.Millisecond))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []int
			for batch, err := range c.Follow(ctx, client.Query{Limit: 3}) {
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range batch {
					var p struct{ N int }
					json.Unmarshal(e.Payload, &p)
					got = append(got, p.N)
				}
				switch len(got) {
				case 3: // the newest three; two more arrive
					s.add(t, 10, 12)
				case 5:
					// Created before the newest seen, stored after it:
					// what another batch or publisher delivers late.
					late := fixtureEvent(8)
					late.Headers.CreatedAt = t0.Add(10*time.Second + 500*time.Millisecond)
					e, _ := auditlog.EntryFromEvent(late, time.Now(), nil)
					if _, err := s.store.Append(ctx, []auditlog.Entry{e}); err != nil {
						t.Fatal(err)
					}
				case 6:
					cancel()
				}
			}
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("follow ended before the new entries came (%v), got %v", ctx.Err(), got)
			}
			if !slices.Equal(got, []int{2, 3, 4, 10, 11, 8}) {
				t.Fatalf("got %v, want [2 3 4 10 11 8]: the newest three oldest first, then each new entry once", got)
			}
			last := s.takeQueries()
			switch q := last[len(last)-1]; {
			case !tc.oih && len(last) != 1:
				t.Errorf("%d GET /logs: want the newest entries once, then the stream", len(last))
			case tc.oih && (q.Get("sort") != "createdAt" || q.Get("from") == ""):
				t.Errorf("poll query %v: want oldest first, from shortly before the newest entry seen", q)
			}
		})
	}
}

func TestFollowEndsWithAnErrorWhenTheLogRefuses(t *testing.T) {
	s := newServer(t, false)
	c, err := client.New(s.url, client.WithToken(pusherToken))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range c.Follow(context.Background(), client.Query{}) {
		n++
		if !errors.Is(err, client.ErrForbidden) {
			t.Errorf("err %v, want ErrForbidden", err)
		}
	}
	if n != 1 {
		t.Errorf("%d values, want the one error", n)
	}
}

func TestFollowEndsQuietlyWhenCancelledDuringAPoll(t *testing.T) {
	s := newServer(t, true) // polls: no stream
	s.add(t, 0, 2)
	c := newClient(t, s, client.WithPollInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	polls := 0
	s.onQuery = func(r *http.Request) {
		if polls++; polls == 2 { // the first poll after the newest entries
			cancel()
			<-r.Context().Done() // answer only once the client gave up
		}
	}
	var got []client.Entry
	for batch, err := range c.Follow(ctx, client.Query{}) {
		if err != nil {
			t.Fatalf("cancelled follow: %v, want it to end without an error", err)
		}
		got = append(got, batch...)
	}
	if polls != 2 || len(got) != 2 {
		t.Fatalf("%d requests, %d entries: want the cancel during the first poll, after both entries", polls, len(got))
	}
}

// TestFollowGetsAnEntryStoredLongAfterItsCreatedAt is what polling by
// createdAt misses: a backlog caught up after a restart stores events
// created an hour before. The stream hands on what is stored, whenever it
// was created, and only what matches the query.
func TestFollowGetsAnEntryStoredLongAfterItsCreatedAt(t *testing.T) {
	s := newServer(t, false)
	s.add(t, 3600, 3602) // created an hour after t0
	c := newClient(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []int
	for batch, err := range c.Follow(ctx, client.Query{Service: "accounts"}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			var p struct{ N int }
			json.Unmarshal(e.Payload, &p)
			got = append(got, p.N)
		}
		if len(got) == 1 {
			s.add(t, 0, 7) // created an hour earlier, stored now
		}
		if len(got) == 4 {
			break
		}
	}
	if !slices.Equal(got, []int{3600, 0, 3, 6}) {
		t.Fatalf("got %v, want [3600 0 3 6]: the newest accounts entry, then each one stored after it", got)
	}
}
