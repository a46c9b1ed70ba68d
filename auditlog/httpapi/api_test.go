package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/console"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/iam"
)

// The identities the emulated IAM knows, by token. They are what IAM's
// basic introspection really returns: account documents with _id and
// permissions, no sub and no role (except the one OIH's tests use).
var identities = map[string]string{
	"admin":        `{"_id":"admin-1","username":"admin@example.com","permissions":["all"]}`,
	"role-admin":   `{"_id":"ra-1","username":"ra@example.com","role":"ADMIN","permissions":[]}`,
	"alice":        `{"_id":"alice","username":"alice@a.example","tenant":"tenant-a","permissions":["logs.read","logs.push"]}`,
	"carol":        `{"_id":"carol","username":"carol@b.example","tenant":"tenant-b","permissions":["logs.read"]}`,
	"nora":         `{"_id":"nora","username":"nora@example.com","permissions":["logs.read","logs.push"]}`,
	"no-perms":     `{"_id":"pat","username":"pat@a.example","tenant":"tenant-a","permissions":[]}`,
	"tenant-admin": `{"_id":"tad","username":"tad@a.example","tenant":"tenant-a","permissions":["tenant.all"]}`,
	"flowrepo":     `{"_id":"svc-flowrepo","username":"flow-repository","permissions":["logs.push"]}`,
	"flowrepo-any": `{"_id":"svc-flowrepo-any","username":"flow-repository-any","permissions":["logs.push","logs.push.any"]}`,
	"member":       `{"_id":"mia","username":"mia@a.example","memberships":[{"tenant":"tenant-b","active":false},{"tenant":"tenant-a","active":true}],"permissions":["logs.read"]}`,
}

// newIAM emulates OIH's IAM basic introspection: known tokens answer their
// account, others 404.
func newIAM(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer svc-token" || r.Header.Get("x-auth-type") != "basic" {
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		var body struct{ Token string }
		json.NewDecoder(r.Body).Decode(&body)
		doc, ok := identities[body.Token]
		if !ok {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func newStore(t *testing.T) auditlog.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fixedClock is a settable clock.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	url   string
	store auditlog.Store
	clock *fixedClock
	reg   *prometheus.Registry
	// handler is the API the env serves.
	handler http.Handler
}

// newEnv serves the API with the real SQLite store and the real
// Introspector against an emulated IAM.
func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, newStore(t), mod...)
}

// newEnvOn is newEnv over store.
func newEnvOn(t *testing.T, store auditlog.Store, mod ...func(*Config)) *env {
	t.Helper()
	iamSrv := newIAM(t)
	auth, err := iam.NewIntrospector(iam.Config{
		EndpointBasic: iamSrv.URL + "/api/v1/tokens/introspect",
		EndpointOIDC:  iamSrv.URL + "/op/userinfo",
		IAMToken:      "svc-token",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, clock: &fixedClock{t: time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)}, reg: prometheus.NewRegistry()}
	cfg := Config{
		Store:      e.store,
		Auth:       auth,
		Catalog:    catalog.Default(),
		Registerer: e.reg,
		Now:        e.clock.now,
		Version:    "test",
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.handler = New(cfg)
	srv := httptest.NewServer(e.handler)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

// errorMessage returns the message of an OIH error body.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	var b struct {
		Errors []struct {
			Message string
			Code    int
		}
	}
	if err := json.Unmarshal(r.body, &b); err != nil || len(b.Errors) != 1 {
		t.Fatalf("answer %d is not {errors:[…]}: %s", r.status, r.body)
	}
	if b.Errors[0].Code != r.status {
		t.Errorf("errors[0].code %d, status %d", b.Errors[0].Code, r.status)
	}
	return b.Errors[0].Message
}

func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// list is a decoded GET /logs answer.
type list struct {
	Data []struct {
		MongoID string `json:"_id"`
		ID      string
		Seq     int64
		Headers struct {
			Name        string
			ServiceName string
			CreatedAt   *string
			ID          string
		}
		Payload    map[string]any
		ReceivedAt string
		Unknown    bool
	}
	Meta struct {
		Page, PerPage     int
		Total, TotalPages int64
	}
	NextCursor string
}

func (l list) ids() []string {
	var ids []string
	for _, d := range l.Data {
		ids = append(ids, d.ID)
	}
	return ids
}

func (e *env) list(token, query string) list {
	e.t.Helper()
	r := e.do(http.MethodGet, "/logs?"+query, token, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET /logs?%s as %s: %d %s", query, token, r.status, r.body)
	}
	var l list
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l
}

// base is the createdAt of the seeded entries.
var base = time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC)

// seed stores a small audit log, deliberately not in createdAt order, and
// returns the ids by label.
func (e *env) seed() map[string]string {
	e.t.Helper()
	type s struct {
		label, name, service, user, tenant string
		minute                             int
		payload                            string
	}
	rows := []s{
		{"flow-a1", "flowrepo.flow.created", "flow-repository", "alice", "tenant-a", 3, `{"id":"flow-1","user":"alice","tenant":"tenant-a"}`},
		{"user-created", "iam.user.created", "accounts", "", "", 0, `{"id":"bob","username":"bob@b.example"}`},
		{"flow-a2", "flowrepo.flow.created", "flow-repository", "amos", "tenant-a", 5, `{"id":"flow-2","user":"amos","tenant":"tenant-a"}`},
		{"flow-b1", "flowrepo.flow.created", "flow-repository", "carol", "tenant-b", 1, `{"id":"flow-3","user":"carol","tenant":"tenant-b"}`},
		{"secret-nora", "secret-service.secret.created", "secret-service", "nora", "", 4, `{"id":"secret-1","user":"nora"}`},
		{"login-failed", "iam.user.loginFailed", "accounts", "someone@x.example", "", 2, `{"user":"someone@x.example"}`},
		{"domain-b", "metadata.domain.created", "meta-data-repository", "carl", "tenant-b", 6, `{"id":"dom-1","user":"carl","tenant":"tenant-b"}`},
	}
	ids := map[string]string{}
	var entries []auditlog.Entry
	for i, r := range rows {
		id := fmt.Sprintf("0190f0e4-0000-7000-8000-%012d", i+1)
		ids[r.label] = id
		entries = append(entries, auditlog.Entry{
			ID: id, Name: r.name, ServiceName: r.service, User: r.user, Tenant: r.tenant,
			CreatedAt:  base.Add(time.Duration(r.minute) * time.Minute),
			ReceivedAt: base.Add(time.Hour),
			Payload:    json.RawMessage(r.payload),
		})
	}
	if _, err := e.store.Append(context.Background(), entries); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func labels(ids map[string]string, got []string) []string {
	byID := map[string]string{}
	for l, id := range ids {
		byID[id] = l
	}
	var out []string
	for _, id := range got {
		out = append(out, byID[id])
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestUnauthenticatedRequestsGetOIHMessages(t *testing.T) {
	e := newEnv(t)
	ev := map[string]any{"headers": map[string]any{"name": "flowrepo.flow.created"}, "payload": map[string]any{}}
	for _, tt := range []struct {
		method, authorization string
		want                  string
	}{
		{http.MethodGet, "", "Missing authorization header."},
		{http.MethodPost, "", "Missing authorization header."},
		{http.MethodGet, "Bearer", "Invalid authorization header"},
		{http.MethodPost, "Bearer", "Invalid authorization header"},
		{http.MethodGet, "Bearer nobody-knows-me", "Token invalid. Error: Error. Details: Token not found in IAM"},
		{http.MethodPost, "Bearer nobody-knows-me", "Token invalid. Error: Error. Details: Token not found in IAM"},
	} {
		j, _ := json.Marshal(ev)
		req, _ := http.NewRequest(tt.method, e.url+"/logs", bytes.NewReader(j))
		if tt.authorization != "" {
			req.Header.Set("Authorization", tt.authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{resp.StatusCode, resp.Header, b}
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s /logs with %q: %d, want 401", tt.method, tt.authorization, r.status)
			continue
		}
		if msg := r.errorMessage(t); msg != tt.want {
			t.Errorf("%s /logs with %q: message %q, want %q", tt.method, tt.authorization, msg, tt.want)
		}
	}
	if got := len(e.list("admin", "").Data); got != 0 {
		t.Errorf("refused POSTs stored %d entries", got)
	}
}

func TestMissingPermissionIs403(t *testing.T) {
	e := newEnv(t)
	ev := map[string]any{"headers": map[string]any{"name": "flowrepo.flow.created"}}
	for _, tt := range []struct {
		method, token string
		perm          string
	}{
		{http.MethodGet, "no-perms", "logs.read"},
		{http.MethodPost, "no-perms", "logs.push"},
		{http.MethodPost, "carol", "logs.push"},       // read only
		{http.MethodGet, "flowrepo", "logs.read"},     // push only
		{http.MethodGet, "tenant-admin", "logs.read"}, // logs.* is not a common permission, as in OIH
	} {
		var body any
		if tt.method == http.MethodPost {
			body = ev
		}
		r := e.do(tt.method, "/logs", tt.token, body)
		if r.status != http.StatusForbidden || r.errorMessage(t) != "MISSING_PERMISSION" {
			t.Errorf("%s /logs as %s: %d %s, want 403 MISSING_PERMISSION", tt.method, tt.token, r.status, r.body)
		}
		if !strings.Contains(string(r.body), tt.perm) {
			t.Errorf("%s /logs as %s: details do not name %s: %s", tt.method, tt.token, tt.perm, r.body)
		}
	}
}

func TestPermissionsAreConfigurable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReadPermission = "audit.view" })
	if r := e.do(http.MethodGet, "/logs", "alice", nil); r.status != http.StatusForbidden {
		t.Errorf("logs.read accepted where audit.view is required: %d", r.status)
	}
	if r := e.do(http.MethodGet, "/logs", "admin", nil); r.status != http.StatusOK {
		t.Errorf("admin refused: %d", r.status)
	}
}

// OIH's audit log tested user.role, which IAM never sends: nobody was an
// admin. The permission "all" is what makes one.
func TestAdminIsThePermissionAllWithoutRole(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	l := e.list("admin", "page[size]=100")
	if len(l.Data) != len(ids) || l.Meta.Total != int64(len(ids)) {
		t.Errorf("admin sees %d of %d entries (total %d)", len(l.Data), len(ids), l.Meta.Total)
	}
}

func TestRoleADMINIsAnAdminToo(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	if l := e.list("role-admin", "page[size]=100"); len(l.Data) != len(ids) {
		t.Errorf("role ADMIN sees %d of %d entries", len(l.Data), len(ids))
	}
}

func TestTenantUserSeesOnlyTheirTenantsAndOwnEntries(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	got := labels(ids, e.list("alice", "page[size]=100").ids())
	if want := []string{"flow-a1", "flow-a2"}; !sameSet(got, want) {
		t.Errorf("alice (tenant-a) sees %v, want %v", got, want)
	}
	got = labels(ids, e.list("carol", "page[size]=100").ids())
	if want := []string{"flow-b1", "domain-b"}; !sameSet(got, want) {
		t.Errorf("carol (tenant-b) sees %v, want %v", got, want)
	}
	// The tenant of the first active membership.
	got = labels(ids, e.list("member", "page[size]=100").ids())
	if want := []string{"flow-a1", "flow-a2"}; !sameSet(got, want) {
		t.Errorf("mia (active in tenant-a) sees %v, want %v", got, want)
	}
}

// OIH matched {'payload.tenant': null} for a user without a tenant, which
// selects every entry without a tenant: most IAM and secret events.
func TestUserWithoutTenantSeesOnlyOwnEntries(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	l := e.list("nora", "page[size]=100")
	if got := labels(ids, l.ids()); !sameSet(got, []string{"secret-nora"}) {
		t.Errorf("nora (no tenant) sees %v, want only her own [secret-nora]", got)
	}
	if l.Meta.Total != 1 {
		t.Errorf("total %d, want 1", l.Meta.Total)
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	tests := []struct {
		token, query string
		want         []string
	}{
		{"admin", "filter[service]=accounts", []string{"user-created", "login-failed"}},
		{"admin", "filter[name]=flowrepo.flow.created", []string{"flow-a1", "flow-a2", "flow-b1"}},
		{"admin", "filter[tenant]=tenant-b", []string{"flow-b1", "domain-b"}},
		{"admin", "filter[user]=nora", []string{"secret-nora"}},
		{"admin", "filter[username]=bob%40b.example", []string{"user-created"}},
		{"admin", "filter[id]=flow-2", []string{"flow-a2"}},
		{"admin", "filter[name]=flowrepo.flow.created&filter[tenant]=tenant-a", []string{"flow-a1", "flow-a2"}},
		// An attribute no payload has: nothing.
		{"admin", "filter[doesNotExist]=x", nil},
		// Another tenant, for a non-admin: nothing.
		{"alice", "filter[tenant]=tenant-b", nil},
		{"alice", "filter[service]=flow-repository", []string{"flow-a1", "flow-a2"}},
		{"alice", "filter[service]=accounts", nil},
		// An operator written as a value is a plain string.
		{"admin", "filter[user]=%7B%22%24ne%22%3Anull%7D", nil},
		{"admin", "from=2024-05-01T08:02:00Z&to=2024-05-01T08:05:00Z", []string{"login-failed", "flow-a1", "secret-nora"}},
		{"admin", fmt.Sprintf("from=%d", base.Add(5*time.Minute).UnixMilli()), []string{"flow-a2", "domain-b"}},
	}
	for _, tt := range tests {
		l := e.list(tt.token, tt.query+"&page[size]=100")
		got := labels(ids, l.ids())
		if !sameSet(got, tt.want) {
			t.Errorf("%s as %s: %v, want %v", tt.query, tt.token, got, tt.want)
		}
		if l.Meta.Total != int64(len(tt.want)) {
			t.Errorf("%s as %s: total %d, want %d", tt.query, tt.token, l.Meta.Total, len(tt.want))
		}
	}
}

// OIH's total was estimatedDocumentCount(): the size of the whole
// collection, whatever the filters and the caller.
func TestTotalCountsTheFilteredSet(t *testing.T) {
	e := newEnv(t)
	e.seed()
	l := e.list("admin", "filter[name]=flowrepo.flow.created&page[size]=2")
	if len(l.Data) != 2 || l.Meta.Total != 3 || l.Meta.TotalPages != 2 || l.Meta.PerPage != 2 || l.Meta.Page != 1 {
		t.Errorf("meta %+v with %d entries, want total 3, totalPages 2, perPage 2, page 1, 2 entries", l.Meta, len(l.Data))
	}
	if l := e.list("alice", ""); l.Meta.Total != 2 {
		t.Errorf("alice's total %d, want 2 (not the collection's 7)", l.Meta.Total)
	}
}

// OIH sorted on a top-level createdAt that does not exist: insertion
// order. Entries are seeded out of createdAt order.
func TestNewestFirstReally(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	want := []string{"domain-b", "flow-a2", "secret-nora", "flow-a1", "login-failed", "flow-b1", "user-created"}
	if got := labels(ids, e.list("admin", "page[size]=100").ids()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("default order %v, want newest first %v", got, want)
	}
	if got := labels(ids, e.list("admin", "page[size]=100&sort=-createdAt").ids()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("sort=-createdAt %v, want %v", got, want)
	}
	var asc []string
	for i := len(want) - 1; i >= 0; i-- {
		asc = append(asc, want[i])
	}
	if got := labels(ids, e.list("admin", "page[size]=100&sort=createdAt").ids()); strings.Join(got, " ") != strings.Join(asc, " ") {
		t.Errorf("sort=createdAt %v, want %v", got, asc)
	}
	// Pages follow the same order.
	l := e.list("admin", "page[size]=3&page[number]=2")
	if got := labels(ids, l.ids()); strings.Join(got, " ") != strings.Join(want[3:6], " ") || l.Meta.Page != 2 {
		t.Errorf("page 2 of 3: %v (page %d), want %v", got, l.Meta.Page, want[3:6])
	}
}

// OIH accepted any page size (0, negative, NaN, a million).
func TestPageSizeIsBounded(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"page[size]=0", "page[size]=-1", "page[size]=abc", "page[size]=5000", "page[number]=0", "page[number]=-3"} {
		r := e.do(http.MethodGet, "/logs?"+q, "admin", nil)
		param := q[:strings.IndexByte(q, '=')]
		if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), param) {
			t.Errorf("%s: %d %s, want 400 naming %s", q, r.status, r.body, param)
		}
	}
	if l := e.list("admin", "page[size]=1000"); l.Meta.PerPage != 1000 {
		t.Errorf("page[size]=1000: perPage %d", l.Meta.PerPage)
	}
	if l := e.list("admin", ""); l.Meta.PerPage != 10 || l.Meta.Page != 1 {
		t.Errorf("defaults: %+v", l.Meta)
	}
}

// qs turned filter[user][$ne]=x into {$ne:"x"} in OIH's MongoDB query.
func TestOperatorInjectionIsRefused(t *testing.T) {
	e := newEnv(t)
	e.seed()
	for _, q := range []string{
		"filter[user][$ne]=x",
		"filter[tenant][$exists]=false",
		"filter[$where]=1",
		"filter[$or][0][user]=x",
		"filter[payload.user]=x",
	} {
		r := e.do(http.MethodGet, "/logs?"+q, "alice", nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, r.status, r.body)
		}
	}
}

func TestCursorPagingWalksTheWholeQuery(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	for _, sort := range []string{"-createdAt", "createdAt"} {
		all := e.list("admin", "page[size]=100&sort="+sort).ids()
		var walked []string
		l := e.list("admin", "page[size]=2&sort="+sort)
		pages := 1
		for {
			if l.Meta.Page != pages || l.Meta.Total != int64(len(ids)) || l.Meta.TotalPages != 4 {
				t.Errorf("sort %s, page %d: meta %+v", sort, pages, l.Meta)
			}
			walked = append(walked, l.ids()...)
			if l.NextCursor == "" {
				break
			}
			pages++
			if pages > 10 {
				t.Fatal("cursor paging does not end")
			}
			l = e.list("admin", "page[size]=2&cursor="+url.QueryEscape(l.NextCursor))
		}
		if strings.Join(walked, ",") != strings.Join(all, ",") {
			t.Errorf("sort %s: cursor walk %v, want %v", sort, labels(ids, walked), labels(ids, all))
		}
	}

	// Scoped: the walk shows only what the caller may see.
	l := e.list("alice", "page[size]=1")
	walked := l.ids()
	for l.NextCursor != "" {
		l = e.list("alice", "page[size]=1&cursor="+url.QueryEscape(l.NextCursor))
		walked = append(walked, l.ids()...)
	}
	if got := labels(ids, walked); !sameSet(got, []string{"flow-a1", "flow-a2"}) {
		t.Errorf("alice's walk %v", got)
	}

	first := e.list("admin", "page[size]=2&filter[name]=flowrepo.flow.created")
	for _, q := range []string{
		"cursor=" + first.NextCursor[:len(first.NextCursor)-2] + "xx",
		"cursor=" + first.NextCursor, // other filters
		"filter[name]=flowrepo.flow.created&page[number]=2&cursor=" + first.NextCursor,
		"filter[name]=flowrepo.flow.created&sort=createdAt&cursor=" + first.NextCursor,
	} {
		if r := e.do(http.MethodGet, "/logs?"+q, "admin", nil); r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), "cursor") {
			t.Errorf("%s: %d %s, want 400 about the cursor", q, r.status, r.body)
		}
	}
}

func TestItemsKeepOIHShape(t *testing.T) {
	e := newEnv(t)
	ids := e.seed()
	l := e.list("admin", "filter[id]=flow-1")
	if len(l.Data) != 1 {
		t.Fatalf("%d entries", len(l.Data))
	}
	d := l.Data[0]
	if d.MongoID != ids["flow-a1"] || d.ID != ids["flow-a1"] || d.Seq < 1 || d.Headers.Name != "flowrepo.flow.created" ||
		d.Headers.ServiceName != "flow-repository" || d.Headers.CreatedAt == nil || *d.Headers.CreatedAt != "2024-05-01T08:03:00.000Z" ||
		d.ReceivedAt != "2024-05-01T09:00:00.000Z" || d.Payload["user"] != "alice" {
		t.Errorf("item %+v", d)
	}
}

func newEvent(name string, createdAt any, payload map[string]any, extra ...any) map[string]any {
	h := map[string]any{"name": name, "serviceName": "flow-repository"}
	if createdAt != nil {
		h["createdAt"] = createdAt
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i].(string)] = extra[i+1]
	}
	return map[string]any{"headers": h, "payload": payload}
}

func TestPostByAdminStoresTheEvent(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/logs", "admin", newEvent("flowrepo.flow.created", 1700000000123,
		map[string]any{"id": "flow-9", "user": "alice", "tenant": "tenant-a"}, "traceId", "t-1"))
	if r.status != http.StatusCreated {
		t.Fatalf("POST: %d %s, want 201", r.status, r.body)
	}
	got := r.json(t)
	h := got["headers"].(map[string]any)
	// The publisher's createdAt is kept; the receive time is beside it.
	if h["createdAt"] != "2023-11-14T22:13:20.123Z" || got["receivedAt"] != "2024-06-01T12:00:00.000Z" {
		t.Errorf("createdAt %v receivedAt %v", h["createdAt"], got["receivedAt"])
	}
	if h["serviceName"] != "flow-repository" || h["traceId"] != "t-1" || got["unknown"] != false || got["seq"] == nil {
		t.Errorf("stored %s", r.body)
	}
	// It is what GET shows, and alice (tenant-a) sees it.
	l := e.list("alice", "")
	if len(l.Data) != 1 || l.Data[0].ID != got["id"] || *l.Data[0].Headers.CreatedAt != "2023-11-14T22:13:20.123Z" {
		t.Errorf("GET after POST: %+v", l.Data)
	}

	r = e.do(http.MethodPost, "/logs", "admin", newEvent("acme.widget.frobbed", "2024-01-02T03:04:05Z", nil))
	if r.status != http.StatusCreated || r.json(t)["unknown"] != true {
		t.Errorf("unknown name: %d %s, want 201 marked unknown", r.status, r.body)
	}
}

func TestPostByNonAdminWritesAsTheCaller(t *testing.T) {
	e := newEnv(t)
	ev := newEvent("iam.user.created", 1700000000000, map[string]any{"id": "u9"})
	ev["headers"].(map[string]any)["serviceName"] = "accounts" // forged
	r := e.do(http.MethodPost, "/logs", "flowrepo", ev)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if sn := r.json(t)["headers"].(map[string]any)["serviceName"]; sn != "flow-repository" {
		t.Errorf("serviceName %v, want the caller's username flow-repository", sn)
	}
	if l := e.list("admin", "filter[service]=accounts"); len(l.Data) != 0 {
		t.Errorf("a forged serviceName was stored: %+v", l.Data)
	}
}

func TestPostWithoutCreatedAtTakesTheReceiveTime(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodPost, "/logs", "admin", newEvent("flowrepo.flow.deleted", nil, map[string]any{"id": "f"}))
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if c := r.json(t)["headers"].(map[string]any)["createdAt"]; c != "2024-06-01T12:00:00.000Z" {
		t.Errorf("createdAt %v, want the receive time", c)
	}
}

func TestPostIsIdempotent(t *testing.T) {
	e := newEnv(t)
	ev := newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"id": "f1", "user": "alice", "tenant": "tenant-a"}, "id", "retry-1")
	first := e.do(http.MethodPost, "/logs", "alice", ev)
	if first.status != http.StatusCreated {
		t.Fatalf("%d %s", first.status, first.body)
	}
	e.clock.advance(time.Minute)
	again := e.do(http.MethodPost, "/logs", "alice", ev)
	if again.status != http.StatusOK || !bytes.Equal(again.body, first.body) {
		t.Errorf("repeat: %d %s, want 200 with %s", again.status, again.body, first.body)
	}

	// Without an id, two POSTs are two events, however alike.
	noID := newEvent("flowrepo.flow.deleted", nil, map[string]any{"id": "f1", "user": "alice"})
	first = e.do(http.MethodPost, "/logs", "alice", noID)
	again = e.do(http.MethodPost, "/logs", "alice", noID)
	if first.status != http.StatusCreated || again.status != http.StatusCreated {
		t.Errorf("no id: %d then %d %s, want 201 twice", first.status, again.status, again.body)
	}

	// The same id with another createdAt is a conflict.
	withID := newEvent("flowrepo.flow.created", 1700000000000, map[string]any{}, "id", "0190f0e4-0000-7000-8000-00000000abcd")
	if r := e.do(http.MethodPost, "/logs", "admin", withID); r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	withID["headers"].(map[string]any)["createdAt"] = 1800000000000
	if r := e.do(http.MethodPost, "/logs", "admin", withID); r.status != http.StatusConflict {
		t.Errorf("same id, other createdAt: %d %s, want 409", r.status, r.body)
	}
	// The same id with another payload is a conflict too; the same payload
	// written otherwise (key order, spacing) is the same event.
	withID["headers"].(map[string]any)["createdAt"] = 1700000000000
	withID["payload"] = map[string]any{"flowId": "f9"}
	if r := e.do(http.MethodPost, "/logs", "admin", withID); r.status != http.StatusConflict {
		t.Errorf("same id, other payload: %d %s, want 409", r.status, r.body)
	}
	samePayload := newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"id": "f2", "user": "alice"}, "id", "0190f0e4-0000-7000-8000-00000000abce")
	if r := e.do(http.MethodPost, "/logs", "admin", samePayload); r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	reordered := `{"headers":{"name":"flowrepo.flow.created","createdAt":1700000000000,"id":"0190f0e4-0000-7000-8000-00000000abce"},"payload":{ "user":"alice", "id":"f2" }}`
	if r := e.do(http.MethodPost, "/logs", "admin", reordered); r.status != http.StatusOK {
		t.Errorf("same id, same payload in another key order: %d %s, want 200", r.status, r.body)
	}
	if l := e.list("admin", "page[size]=100"); l.Meta.Total != 5 {
		t.Errorf("%d entries stored, want 5", l.Meta.Total)
	}
}

func TestPostRefusesInvalidEvents(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxEventSize = 2048 })
	tests := []struct {
		name    string
		body    string
		status  int
		mention string
	}{
		{"not JSON", `{"headers":`, 400, "malformed"},
		{"empty", ``, 400, "empty"},
		{"no headers", `{"payload":{}}`, 400, "headers"},
		{"name not a string", `{"headers":{"name":7}}`, 400, "headers.name"},
		{"no name", `{"headers":{"serviceName":"x"}}`, 400, "name"},
		{"bad name", `{"headers":{"name":"flow..created"}}`, 400, "name"},
		{"payload an array", `{"headers":{"name":"a.b"},"payload":[1]}`, 400, "payload"},
		{"bad createdAt", `{"headers":{"name":"a.b","createdAt":"yesterday"}}`, 400, "createdAt"},
		{"too large", `{"headers":{"name":"a.b"},"payload":{"x":"` + strings.Repeat("x", 4000) + `"}}`, 400, "large"},
		{"far too large", `{"headers":{"name":"a.b"},"payload":{"x":"` + strings.Repeat("x", 20000) + `"}}`, 413, "larger"},
	}
	for _, tt := range tests {
		r := e.do(http.MethodPost, "/logs", "admin", tt.body)
		if r.status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.status)
			continue
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, tt.mention) {
			t.Errorf("%s: message %q does not mention %q", tt.name, msg, tt.mention)
		}
	}
	if l := e.list("admin", ""); l.Meta.Total != 0 {
		t.Errorf("invalid events stored: %d", l.Meta.Total)
	}
}

func TestStaticTokenAuthenticatesTheEmbeddedAdmin(t *testing.T) {
	tok := iam.GenerateToken()
	st, err := iam.NewStaticToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Auth = st })
	ids := e.seed()
	if l := e.list(tok, "page[size]=100"); len(l.Data) != len(ids) {
		t.Errorf("static admin sees %d of %d", len(l.Data), len(ids))
	}
	r := e.do(http.MethodGet, "/logs", "not-"+tok, nil)
	if r.status != http.StatusUnauthorized || r.errorMessage(t) != iam.ErrTokenNotFound.Message {
		t.Errorf("wrong token: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodPost, "/logs", tok, newEvent("flowrepo.flow.created", nil, nil)); r.status != http.StatusCreated {
		t.Errorf("static admin POST: %d %s", r.status, r.body)
	}
}

// failingStore is the real store with Ping failing, as when its database
// is gone.
type failingStore struct{ auditlog.Store }

func (failingStore) Ping(context.Context) error { return errors.New("database is gone") }

func TestHealthcheck(t *testing.T) {
	queue := Check{Status: StatusPass, Info: map[string]any{"transport": "nats"}}
	var mu sync.Mutex
	e := newEnv(t, func(c *Config) {
		c.Health = func(context.Context) map[string]Check {
			mu.Lock()
			defer mu.Unlock()
			return map[string]Check{"queue": queue}
		}
	})
	r := e.do(http.MethodGet, "/healthcheck", "", nil)
	got := r.json(t)
	details := got["details"].(map[string]any)
	if r.status != 200 || got["status"] != "pass" || got["version"] != "test" ||
		details["store"].(map[string]any)["status"] != "pass" || details["queue"].(map[string]any)["status"] != "pass" ||
		details["queue"].(map[string]any)["transport"] != "nats" {
		t.Errorf("healthy: %d %s", r.status, r.body)
	}

	mu.Lock()
	queue = Check{Status: StatusFail, Message: "disconnected"}
	mu.Unlock()
	r = e.do(http.MethodGet, "/healthcheck", "", nil)
	if got := r.json(t); r.status != 500 || got["status"] != "fail" {
		t.Errorf("queue down: %d %s", r.status, r.body)
	}

	down := newEnv(t, func(c *Config) { c.Store = failingStore{c.Store} })
	r = down.do(http.MethodGet, "/healthcheck", "", nil)
	got = r.json(t)
	if st := got["details"].(map[string]any)["store"].(map[string]any); r.status != 500 || got["status"] != "fail" || st["status"] != "fail" {
		t.Errorf("store down: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "database is gone") {
		t.Errorf("store error shown to an anonymous caller: %s", r.body)
	}
}

func TestMetricsCountRequestsByRouteAndStatus(t *testing.T) {
	e := newEnv(t)
	ingest := auditlog.NewMetrics(e.reg) // the ingester's, on the same registry
	ingest.Anonymised.Add(3)
	e.list("admin", "")
	e.do(http.MethodGet, "/logs", "", nil)
	r := e.do(http.MethodGet, "/metrics", "", nil)
	if r.status != 200 {
		t.Fatalf("%d", r.status)
	}
	for _, want := range []string{
		`herald_http_requests_total{code="200",route="GET /logs"} 1`,
		`herald_http_requests_total{code="401",route="GET /logs"} 1`,
		`herald_http_request_duration_seconds_count{route="GET /logs"} 2`,
		`herald_auditlog_entries_anonymised_total 3`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A second API on the same registry shares the metrics.
	New(Config{Store: e.store, Auth: &iam.StaticToken{}, Registerer: e.reg})
}

func TestCORSAsOIH(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest(http.MethodOptions, e.url+"/logs", nil)
	req.Header.Set("Origin", "https://ui.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization,x-auth-type")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		resp.Header.Get("Access-Control-Allow-Headers") != "authorization,x-auth-type" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if r := e.do(http.MethodGet, "/logs", "", nil); r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header on an answer")
	}
}

func TestUnknownPathsAndMethodsAnswerInTheErrorShape(t *testing.T) {
	e := newEnv(t)
	cases := []errorCase{
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodGet, "/no/such/thing", http.StatusNotFound, ""},
		{http.MethodPost, "/", http.StatusNotFound, ""},
		{http.MethodDelete, "/logs", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{http.MethodPost, "/healthcheck", http.StatusMethodNotAllowed, "GET, HEAD"},
	}
	checkErrorAnswers(t, e, cases)
	// A route still answers as before.
	if r := e.do(http.MethodGet, "/healthcheck", "", nil); r.status != http.StatusOK {
		t.Errorf("GET /healthcheck: %d %s", r.status, r.body)
	}
}

// errorCase is a request no route answers: the status it gets, and for a
// 405 the Allow header.
type errorCase struct {
	method, path string
	status       int
	allow        string
}

// checkErrorAnswers sends each case's request and checks its answer is
// the API's JSON error naming the path, with the status and Allow header
// wanted.
func checkErrorAnswers(t *testing.T, e *env, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
		r := e.do(c.method, c.path, "", nil)
		if r.status != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.status, r.body, c.status)
			continue
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q, want JSON", c.method, c.path, ct)
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, c.path) {
			t.Errorf("%s %s: message %q does not name the path", c.method, c.path, msg)
		}
		if c.allow != "" && r.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, r.header.Get("Allow"), c.allow)
		}
	}
}

// TestBesideTheConsoleUnknownPathsStillAnswerInTheErrorShape: the
// console takes every GET path the API does not, yet a path it does not
// know either, and a method no route answers, are the API's JSON errors;
// the console's page and the API's routes answer as before.
func TestBesideTheConsoleUnknownPathsStillAnswerInTheErrorShape(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Console = console.New(console.Config{}) })
	cases := []errorCase{
		{http.MethodGet, "/no/such/thing", http.StatusNotFound, ""},
		{http.MethodGet, "/console/nope.js", http.StatusNotFound, ""},
		{http.MethodGet, "/logs/some-id/nothing", http.StatusNotFound, ""},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, "/logs", http.StatusMethodNotAllowed, "GET, HEAD, POST"},
		{http.MethodPost, "/checkpoint", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodPut, "/logs/stream", http.StatusMethodNotAllowed, "GET, HEAD"},
	}
	checkErrorAnswers(t, e, cases)
	for path, contentType := range map[string]string{"/": "text/html", "/console/app.js": "text/javascript", "/healthcheck": "application/json"} {
		r := e.do(http.MethodGet, path, "", nil)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), contentType) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, r.status, r.header.Get("Content-Type"), contentType)
		}
	}
}

func TestARetryOfAPostWhoseUserWasAnonymisedIsTheSameEvent(t *testing.T) {
	e := newEnv(t)
	ev := newEvent("iam.user.loginFailed", 1700000000000, map[string]any{"user": "jane@example.com"}, "id", "0190f0e4-0000-7000-8000-00000000abcf")
	if r := e.do(http.MethodPost, "/logs", "admin", ev); r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	erase := func(en *auditlog.Entry) (bool, error) {
		return true, auditlog.Erase(en, []string{auditlog.PayloadPointer("user")}, auditlog.Redacted)
	}
	if _, err := e.store.Rewrite(context.Background(), auditlog.Selection{Terms: []auditlog.Term{{Key: "user", Value: "jane@example.com"}}}, erase); err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodPost, "/logs", "admin", ev); r.status != http.StatusOK || strings.Contains(string(r.body), "jane@example.com") {
		t.Errorf("the retry after anonymisation: %d %s, want 200 with the anonymised entry", r.status, r.body)
	}
}

// TestARetryOfAPostErasedAtDepthOrPrunedIsTheSameEvent: a value erased
// inside a nested object, or the whole content pruned, still lets a
// retry of the POST be answered with the stored entry; another value
// at depth is a conflict.
func TestARetryOfAPostErasedAtDepthOrPrunedIsTheSameEvent(t *testing.T) {
	e := newEnv(t)
	payload := map[string]any{"user": "u1", "actor": map[string]any{"email": "jane@example.com", "roles": []any{"a", "b"}}}
	nested := newEvent("flowrepo.flow.created", 1700000000000, payload, "id", "0190f0e4-0000-7000-8000-00000000ab01")
	pruned := newEvent("flowrepo.flow.deleted", 1700000000000, map[string]any{"user": "u1", "flowId": "f1"}, "id", "0190f0e4-0000-7000-8000-00000000ab02")
	for _, ev := range []map[string]any{nested, pruned} {
		if r := e.do(http.MethodPost, "/logs", "admin", ev); r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	erase := func(en *auditlog.Entry) (bool, error) {
		return true, auditlog.Erase(en, []string{auditlog.PayloadPointer("actor") + "/email"}, auditlog.Redacted)
	}
	if n, err := e.store.Rewrite(context.Background(), auditlog.Selection{IDs: []string{"0190f0e4-0000-7000-8000-00000000ab01"}}, erase); err != nil || n != 1 {
		t.Fatalf("erase at depth: %d, %v", n, err)
	}
	if r := e.do(http.MethodPost, "/logs", "admin", nested); r.status != http.StatusOK || strings.Contains(string(r.body), "jane@example.com") {
		t.Errorf("the retry after an erasure at depth: %d %s, want 200 with the erased entry", r.status, r.body)
	}
	other := newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"user": "u1", "actor": map[string]any{"email": "jane@example.com", "roles": []any{"a", "c"}}}, "id", "0190f0e4-0000-7000-8000-00000000ab01")
	if r := e.do(http.MethodPost, "/logs", "admin", other); r.status != http.StatusConflict {
		t.Errorf("another value at depth: %d %s, want 409", r.status, r.body)
	}

	if _, err := auditlog.IntegrateAll(context.Background(), e.store, newSigner(t, "retry")); err != nil {
		t.Fatal(err)
	}
	if n, err := e.store.Prune(context.Background(), e.clock.now().Add(time.Hour), 1000); err != nil || n != 2 {
		t.Fatalf("prune: %d, %v; want 2", n, err)
	}
	if r := e.do(http.MethodPost, "/logs", "admin", pruned); r.status != http.StatusOK {
		t.Errorf("the retry of a pruned entry: %d %s, want 200", r.status, r.body)
	}
}
