package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/iam"
)

// The isolation test: an attacker's view of the read routes. Users of
// several tenants, users without a tenant, a tenant admin and admins send
// randomised queries — every filter, sort, paging, cursors of their own,
// cursors taken from another user's answers and forged ones, parameters
// given twice or in another case, operator- and SQL-shaped values — and
// every answer is checked against what the caller may see: no entry of
// another user or tenant, and meta.total never counting one. The same for
// GET /logs/{id}/proof, GET /logs/stream and GET /export, on both stores.
const (
	isolationQueries = 5500 // per store: 11,000 in all
	isolationEntries = 600
	isolationSeed    = 14
)

func TestIsolationUnderRandomisedQueriesOnSQLite(t *testing.T) {
	runIsolation(t, newStore(t))
}

func TestIsolationUnderRandomisedQueriesOnPostgreSQL(t *testing.T) {
	runIsolation(t, newPostgresStore(t))
}

// tokenAuth authenticates a bearer token as one of a fixed set of users.
type tokenAuth map[string]*iam.User

func (a tokenAuth) Authenticate(_ context.Context, r *http.Request) (*iam.User, error) {
	tok, err := iam.BearerToken(r)
	if err != nil {
		return nil, err
	}
	if u, ok := a[tok]; ok {
		return u, nil
	}
	return nil, iam.ErrInvalidAuthorization
}

type isolationWorld struct {
	t       *testing.T
	url     string
	store   auditlog.Store
	feed    *auditlog.Feed
	users   map[string]*iam.User // by token
	tokens  []string
	entries map[string]auditlog.Entry // by id
	seqs    map[int64]auditlog.Entry
	mu      sync.Mutex
	// values seen in the log, to build filters from
	names, services, userIDs, tenantIDs, keys []string
	cursors                                   []ownedCursor
}

type ownedCursor struct{ token, query, cursor string }

// hostileValues are what an attacker puts in a filter or a parameter.
var hostileValues = []string{
	`' OR '1'='1`, `' OR 1=1 --`, `"; DROP TABLE entries; --`, `%`, `_`, `*`, `.*`, `\`, `\\`,
	`{"$ne":null}`, `{"$gt":""}`, `$ne`, `null`, `NULL`, `true`, `[]`, `{}`, ` `, "\t",
	`tenant-1' UNION SELECT * FROM entries --`, `%' OR tenant LIKE '%`, "a\u200bb", "é", `1e308`, `-1`,
}

func runIsolation(t *testing.T, store auditlog.Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(isolationSeed, uint64(time.Now().UnixNano())))
	w := &isolationWorld{t: t, store: store, users: map[string]*iam.User{}, entries: map[string]auditlog.Entry{}, seqs: map[int64]auditlog.Entry{}}

	// The platform: 4 tenants with 3 users each and a tenant admin, 4
	// users without a tenant, 2 admins, and users that only appear in
	// the log (someone who left, a service account).
	tenants := []string{"tenant-1", "tenant-2", "Tenant-1", "t3"} // Tenant-1 is another tenant than tenant-1
	for _, tn := range tenants {
		for i := range 3 {
			id := fmt.Sprintf("%s-u%d", tn, i)
			w.addUser("tok-"+id, &iam.User{Sub: id, Tenant: tn, Permissions: []string{"logs.read"}})
		}
		w.addUser("tok-"+tn+"-tad", &iam.User{Sub: tn + "-tad", Tenant: tn, Permissions: []string{"logs.read", "tenant.all"}, IsTenantAdmin: true})
	}
	for i := range 4 {
		id := fmt.Sprintf("loner-%d", i)
		w.addUser("tok-"+id, &iam.User{Sub: id, Permissions: []string{"logs.read"}})
	}
	// A user whose id is another's tenant: a collision the scope must not
	// confuse.
	w.addUser("tok-collide", &iam.User{Sub: "tenant-2", Permissions: []string{"logs.read"}})
	w.addUser("tok-admin", &iam.User{Sub: "admin-1", Permissions: []string{"all"}, IsAdmin: true})
	w.addUser("tok-role-admin", &iam.User{Sub: "admin-2", Role: "ADMIN", Permissions: []string{"logs.read"}})
	for _, u := range w.users {
		w.userIDs = append(w.userIDs, u.Sub)
	}
	w.userIDs = append(w.userIDs, "gone-user", "svc-flowrepo", "TENANT-1-U0", "")
	w.tenantIDs = append(tenants, "tenant-9", "TENANT-1", "tenant-1 ", "")
	w.names = []string{"flowrepo.flow.created", "flowrepo.flow.deleted", "iam.user.created", "iam.user.loginFailed", "secret-service.secret.created", "custom.thing"}
	w.services = []string{"flow-repository", "accounts", "secret-service", "custom", ""}
	w.keys = []string{"id", "flowId", "status", "user", "tenant", "email", "n"}

	// The log: entries attributed every which way, payloads that name
	// other users and tenants under other keys, upper-case reserved keys.
	var batch []auditlog.Entry
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	for i := range isolationEntries {
		e := auditlog.Entry{
			ID:          fmt.Sprintf("iso-%04d-%08x", i, r.Uint32()),
			Name:        pick(r, w.names),
			ServiceName: pick(r, w.services),
			User:        pick(r, w.userIDs),
			Tenant:      pick(r, w.tenantIDs),
			ReceivedAt:  base.Add(time.Duration(i) * time.Minute),
		}
		if r.IntN(10) != 0 {
			// Many share a createdAt, so that pages split ties.
			e.CreatedAt = base.Add(time.Duration(r.IntN(120)) * time.Minute)
		}
		p := map[string]any{}
		if e.User != "" {
			p["user"] = e.User
		}
		if e.Tenant != "" {
			p["tenant"] = e.Tenant
		}
		for range r.IntN(4) {
			k := pick(r, w.keys[:4])
			p[k] = pick(r, append(append([]string{}, w.userIDs...), w.tenantIDs...))
		}
		if r.IntN(8) == 0 {
			p["USER"] = pick(r, w.userIDs)
			p["Tenant"] = pick(r, w.tenantIDs)
		}
		if r.IntN(6) == 0 {
			p["status"] = pick(r, hostileValues)
		}
		e.Payload, _ = json.Marshal(p)
		if err := auditlog.Seal(&e); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, e)
	}
	if _, err := store.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.IntegrateAll(ctx, store, newSigner(t, "isolation.example")); err != nil {
		t.Fatal(err)
	}
	w.reload()

	w.feed = auditlog.NewFeed(auditlog.FeedConfig{Store: store})
	srv := httptest.NewServer(New(Config{Store: store, Auth: tokenAuth(w.users), Feed: w.feed, StreamHeartbeat: time.Second}))
	t.Cleanup(func() {
		w.feed.Close()
		srv.Close()
	})
	w.url = srv.URL

	var tried, leaks, refused, walked int
	for i := 0; i < isolationQueries; i++ {
		tok := pick(r, w.tokens)
		q := w.randomQuery(r, tok)
		n, walk, answered := w.checkList(r, tok, q)
		tried++
		leaks += n
		if !answered {
			refused++
		}
		if walk {
			walked++
		}
		if t.Failed() && leaks > 0 {
			break
		}
	}
	proofs := w.checkProofs(r)
	streams := w.checkStreams(r)
	exports := w.checkExports()
	t.Logf("RESULT isolation on %T: %d GET /logs queries (%d refused with 400, %d walked to the end), %d proofs, %d streams, %d exports; %d entries of %d users; %d leaks",
		store, tried, refused, walked, proofs, streams, exports, len(w.entries), len(w.users), leaks)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func (w *isolationWorld) addUser(token string, u *iam.User) {
	w.users[token] = u
	w.tokens = append(w.tokens, token)
}

// reload reads every stored entry (as an admin would), the truth the
// answers are checked against.
func (w *isolationWorld) reload() {
	w.t.Helper()
	page, err := w.store.Query(context.Background(), auditlog.Query{Limit: 100_000, Order: auditlog.OldestFirst})
	if err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range page.Entries {
		w.entries[e.ID] = e
		w.seqs[e.Seq] = e
	}
}

// visibleCount is how many stored entries u may see.
func (w *isolationWorld) visibleCount(u *iam.User) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, e := range w.entries {
		if visible(u, e) {
			n++
		}
	}
	return n
}

// randomQuery builds a GET /logs query string.
func (w *isolationWorld) randomQuery(r *rand.Rand, tok string) string {
	var parts []string
	add := func(k, v string) { parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(v)) }
	value := func(pool []string) string {
		switch r.IntN(10) {
		case 0:
			return pick(r, hostileValues)
		case 1:
			return strings.ToUpper(pick(r, pool))
		case 2:
			return pick(r, w.tenantIDs) // another tenant's id, anywhere
		default:
			return pick(r, pool)
		}
	}
	for range r.IntN(4) {
		k := r.IntN(12)
		if k >= 9 {
			k = r.IntN(5) // the plain filters, more often
		}
		switch k {
		case 0:
			add("filter[tenant]", value(w.tenantIDs))
		case 1:
			add("filter[user]", value(w.userIDs))
		case 2:
			add("filter[name]", value(w.names))
		case 3:
			add("filter[service]", value(w.services))
		case 4:
			add("filter["+pick(r, w.keys)+"]", value(w.userIDs))
		case 5:
			// Case variants and operator shapes of the parameter itself.
			add(pick(r, []string{"FILTER[tenant]", "filter[Tenant]", "filter[TENANT]", "Filter[user]", "filter[tenant][$ne]", "filter[user][$exists]",
				"filter[tenant]]", "filter[[tenant]", "filter", "filter[]", "filter[payload.user]", "filter[$where]", "scope", "tenant", "user"}), value(w.tenantIDs))
		case 6:
			add("from", pick(r, []string{"2024-05-01T00:30:00Z", "0", "1714522000000", "-1", "9999999999999", "yesterday", ""}))
		case 7:
			add("to", pick(r, []string{"2024-05-01T01:30:00Z", "1714530000000", "0", ""}))
		case 8:
			// The same filter twice (refused), or a tenant twice under two
			// spellings.
			k := pick(r, []string{"filter[tenant]", "filter[user]", "sort"})
			add(k, value(w.tenantIDs))
			add(k, value(w.tenantIDs))
		}
	}
	if r.IntN(3) == 0 {
		add("sort", pick(r, []string{"createdAt", "-createdAt", "", "seq", "-createdAt,user", "createdAt; DROP TABLE entries"}))
	}
	if r.IntN(2) == 0 {
		add("page[size]", pick(r, []string{"1", "2", "3", "7", "50", "200", "1000", "0", "1001", "1e3"}))
	}
	switch r.IntN(6) {
	case 0:
		add("page[number]", pick(r, []string{"1", "2", "3", "40", "0", "99999999"}))
	case 1, 2:
		if c, ok := w.someCursor(r); ok {
			// Another user's cursor (or one's own), with the query it came
			// from or with this one.
			if r.IntN(2) == 0 {
				return c.query + "&cursor=" + url.QueryEscape(c.cursor)
			}
			add("cursor", c.cursor)
		}
	case 3:
		add("cursor", w.forgedCursor(r, parts))
	}
	return strings.Join(parts, "&")
}

func (w *isolationWorld) someCursor(r *rand.Rand) (ownedCursor, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.cursors) == 0 {
		return ownedCursor{}, false
	}
	return pick(r, w.cursors), true
}

// forgedCursor is a well-formed cursor no answer gave: any position, page
// and order, tied to the query's filters (the digest is no secret), or
// damaged.
func (w *isolationWorld) forgedCursor(r *rand.Rand, parts []string) string {
	var filters uint64
	if v, err := url.ParseQuery(strings.Join(parts, "&")); err == nil {
		if req, err := parseList(v); err == nil {
			filters = filtersDigest(req.filters)
		}
	}
	seq := int64(r.IntN(isolationEntries + 10))
	at := time.Date(2024, 5, 1, 0, r.IntN(180), 0, 0, time.UTC)
	if r.IntN(4) == 0 {
		at = time.Time{}
	}
	order := auditlog.NewestFirst
	if r.IntN(2) == 0 {
		order = auditlog.OldestFirst
	}
	c := cursor{order: order, seq: seq, filters: filters, page: 1 + r.IntN(50), createdAt: at}
	s := c.encode()
	switch r.IntN(5) {
	case 0:
		return s[:len(s)-2] + "AA" // damaged checksum
	case 1:
		return strings.Repeat("A", r.IntN(90))
	}
	return s
}

// listAnswer is what the isolation test reads of GET /logs.
type listAnswer struct {
	Data []struct {
		ID      string         `json:"id"`
		Payload map[string]any `json:"payload"`
	} `json:"data"`
	Meta struct {
		Total int64 `json:"total"`
	} `json:"meta"`
	NextCursor string `json:"nextCursor"`
}

func (w *isolationWorld) get(tok, path string, header ...string) (int, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(http.MethodGet, w.url+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// checkList sends one query, and sometimes follows its cursor to the end.
// It returns the entries that leaked, whether it walked, and whether the
// query was answered (not refused with 400).
func (w *isolationWorld) checkList(r *rand.Rand, tok, query string) (leaks int, walked, ok bool) {
	w.t.Helper()
	u := w.users[tok]
	limit := w.visibleCount(u)
	status, body := w.get(tok, "/logs?"+query)
	switch status {
	case http.StatusOK:
	case http.StatusBadRequest:
		return 0, false, false
	default:
		w.t.Errorf("GET /logs?%s as %s: %d %s", query, u.Sub, status, body)
		return 0, false, false
	}
	walk := r.IntN(20) == 0
	seen := map[string]bool{}
	total := int64(-1)
	complete := false
	for page := 0; ; page++ {
		var a listAnswer
		if err := json.Unmarshal(body, &a); err != nil {
			w.t.Errorf("GET /logs?%s as %s: %v: %s", query, u.Sub, err, body)
			return leaks, walk, true
		}
		leaks += w.checkEntries(u, "GET /logs?"+query, a.Data)
		if a.Meta.Total > limit {
			w.t.Errorf("GET /logs?%s as %s: meta.total %d, but the caller may see only %d entries in all", query, u.Sub, a.Meta.Total, limit)
		}
		if total < 0 {
			total = a.Meta.Total
		}
		for _, d := range a.Data {
			if seen[d.ID] {
				w.t.Errorf("GET /logs?%s as %s: entry %s twice while walking the cursor", query, u.Sub, d.ID)
			}
			seen[d.ID] = true
		}
		if a.NextCursor != "" {
			w.mu.Lock()
			if len(w.cursors) < 2000 {
				w.cursors = append(w.cursors, ownedCursor{tok, stripCursor(query), a.NextCursor})
			}
			w.mu.Unlock()
		}
		complete = a.NextCursor == ""
		if !walk || complete || page > 200 {
			break
		}
		next := stripCursor(query) + "&cursor=" + url.QueryEscape(a.NextCursor)
		if status, body = w.get(tok, "/logs?"+next); status != http.StatusOK {
			w.t.Errorf("GET /logs?%s as %s, following nextCursor: %d %s", next, u.Sub, status, body)
			return leaks, walk, true
		}
	}
	if walk && complete && !strings.Contains(query, "cursor=") && !strings.Contains(query, "page%5Bnumber%5D") && int64(len(seen)) != total {
		w.t.Errorf("GET /logs?%s as %s: meta.total %d, walking the cursor gave %d entries", query, u.Sub, total, len(seen))
	}
	return leaks, walk, true
}

// stripCursor removes the cursor and page[number] parameters of a query.
func stripCursor(q string) string {
	var keep []string
	for _, p := range strings.Split(q, "&") {
		if strings.HasPrefix(p, "cursor=") || strings.HasPrefix(p, "page%5Bnumber%5D=") || p == "" {
			continue
		}
		keep = append(keep, p)
	}
	return strings.Join(keep, "&")
}

// checkEntries reports the entries of an answer u may not see.
func (w *isolationWorld) checkEntries(u *iam.User, what string, data []struct {
	ID      string         `json:"id"`
	Payload map[string]any `json:"payload"`
}) int {
	w.t.Helper()
	leaks := 0
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range data {
		e, ok := w.entries[d.ID]
		if !ok {
			w.t.Errorf("%s as %s: entry %s is not one the test stored", what, u.Sub, d.ID)
			leaks++
			continue
		}
		if !visible(u, e) {
			w.t.Errorf("%s as %s (tenant %q): LEAK: entry %s of user %q, tenant %q", what, u.Sub, u.Tenant, e.ID, e.User, e.Tenant)
			leaks++
		}
	}
	return leaks
}

// checkProofs asks for the proof of entries the caller may and may not
// see: the first are proven, the second answer exactly as an id that does
// not exist.
func (w *isolationWorld) checkProofs(r *rand.Rand) int {
	w.t.Helper()
	w.mu.Lock()
	ids := make([]string, 0, len(w.entries))
	for id := range w.entries {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	n := 0
	for range 400 {
		tok := pick(r, w.tokens)
		u := w.users[tok]
		id := pick(r, ids)
		if r.IntN(10) == 0 {
			id = pick(r, []string{"no-such-id", "' OR 1=1 --", "iso-%", "*"})
		}
		status, body := w.get(tok, "/logs/"+url.PathEscape(id)+"/proof"+pick(r, []string{"", "?size=0", "?size=-1", "?size=1", "?size=99999"}))
		n++
		w.mu.Lock()
		e, exists := w.entries[id]
		w.mu.Unlock()
		switch {
		case status == http.StatusOK:
			var p struct{ ID string }
			json.Unmarshal(body, &p)
			if !exists || p.ID != id || !visible(u, e) {
				w.t.Errorf("GET /logs/%s/proof as %s: LEAK: proved entry %q of user %q, tenant %q", id, u.Sub, p.ID, e.User, e.Tenant)
			}
		case status == http.StatusNotFound || status == http.StatusBadRequest || status == http.StatusConflict:
			var b struct{ Errors []struct{ Message string } }
			json.Unmarshal(body, &b)
			if exists && !visible(u, e) && (len(b.Errors) != 1 || b.Errors[0].Message != "no entry with id "+strconv.QuoteToASCII(id)) && status != http.StatusBadRequest {
				w.t.Errorf("GET /logs/%s/proof as %s: another's entry answers %d %s, not as an unknown id", id, u.Sub, status, body)
			}
		default:
			w.t.Errorf("GET /logs/%s/proof as %s: %d %s", id, u.Sub, status, body)
		}
	}
	return n
}

// checkStreams opens GET /logs/stream from the start of the log with
// random filters, adds an entry the filters select and only its caller
// may see, and reads until it arrives: everything streamed before it must
// be the caller's to see. A query whose filters select nothing the caller
// may see (another tenant, another user) is tried for its answer only.
func (w *isolationWorld) checkStreams(r *rand.Rand) int {
	w.t.Helper()
	n := 0
	for i := 0; i < 400 && n < 30; i++ {
		tok := w.tokens[i%len(w.tokens)]
		u := w.users[tok]
		v, err := url.ParseQuery(w.randomQuery(r, tok))
		if err != nil {
			continue
		}
		v.Del("cursor")
		v.Del("page[number]")
		v.Del("page[size]")
		req, err := parseList(v)
		if err != nil {
			continue
		}
		// The sentinel: what the filters select, attributed to the caller
		// unless the filters name someone else.
		q := req.query
		sentinel := auditlog.Entry{ID: fmt.Sprintf("sentinel-%d-%08x", i, r.Uint32()), Name: "custom.thing", User: u.Sub, Tenant: u.Tenant,
			ReceivedAt: time.Now(), CreatedAt: time.Date(2024, 5, 1, 1, 0, 0, 0, time.UTC)}
		if q.Name != "" {
			sentinel.Name = q.Name
		}
		sentinel.ServiceName = q.Service
		if q.User != "" {
			sentinel.User = q.User
		}
		if q.Tenant != "" {
			sentinel.Tenant = q.Tenant
		}
		if !q.From.IsZero() {
			sentinel.CreatedAt = q.From
		} else if !q.To.IsZero() {
			sentinel.CreatedAt = q.To.Add(-time.Millisecond) // to is exclusive
		}
		if !q.To.IsZero() && !sentinel.CreatedAt.Before(q.To) {
			continue // an empty range
		}
		p := map[string]any{}
		for k, val := range q.Payload {
			p[k] = val
		}
		if sentinel.User != "" {
			p["user"] = sentinel.User
		}
		if sentinel.Tenant != "" {
			p["tenant"] = sentinel.Tenant
		}
		if q.Payload["user"] != "" && q.Payload["user"] != sentinel.User || q.Payload["tenant"] != "" && q.Payload["tenant"] != sentinel.Tenant {
			continue // filters that contradict each other select nothing
		}
		sentinel.Payload, _ = json.Marshal(p)
		if !visible(u, sentinel) {
			continue
		}
		v.Set("lastEventId", "0")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		hreq, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url+"/logs/stream?"+v.Encode(), nil)
		hreq.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			cancel()
			w.t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			w.t.Errorf("GET /logs/stream?%s as %s: %d %s", v.Encode(), u.Sub, resp.StatusCode, b)
			continue
		}
		n++
		if err := auditlog.Seal(&sentinel); err != nil {
			w.t.Fatal(err)
		}
		if _, err := w.store.Append(context.Background(), []auditlog.Entry{sentinel}); err != nil {
			w.t.Fatal(err)
		}
		w.reload()
		w.feed.Notify()
		if !w.readStream(resp.Body, u, v.Encode(), sentinel.ID) {
			w.t.Errorf("GET /logs/stream?%s as %s: ended before the entry it selects, %s", v.Encode(), u.Sub, sentinel.ID)
		}
		resp.Body.Close()
		cancel()
	}
	return n
}

// readStream reads entry events until the sentinel, the end of the stream
// or the deadline of its request, checking each; it reports whether the
// sentinel came.
func (w *isolationWorld) readStream(body io.Reader, u *iam.User, query, sentinel string) bool {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "entry":
			var d struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &d); err != nil {
				w.t.Errorf("stream %s: %v", query, err)
				return false
			}
			w.mu.Lock()
			e, ok := w.entries[d.ID]
			w.mu.Unlock()
			if !ok || !visible(u, e) {
				w.t.Errorf("GET /logs/stream?%s as %s: LEAK: entry %s of user %q, tenant %q", query, u.Sub, d.ID, e.User, e.Tenant)
			}
			if d.ID == sentinel {
				return true
			}
		case strings.HasPrefix(line, "data: ") && event == "close":
			return false
		}
	}
	return false
}

// checkExports: GET /export is every entry; only admins may.
func (w *isolationWorld) checkExports() int {
	w.t.Helper()
	n := 0
	for _, tok := range w.tokens {
		u := w.users[tok]
		for _, q := range []string{"", "?after=0&limit=5", "?after=-1", "?limit=1000000"} {
			status, body := w.get(tok, "/export"+q)
			n++
			if u.Admin() {
				if status != http.StatusOK && (q != "?after=-1" || status != http.StatusBadRequest) {
					w.t.Errorf("GET /export%s as admin %s: %d %s", q, u.Sub, status, body)
				}
				continue
			}
			if status != http.StatusForbidden || strings.Contains(string(body), `"leafHash"`) {
				w.t.Errorf("GET /export%s as %s (not an admin): %d %.200s", q, u.Sub, status, body)
			}
		}
		// The checkpoints are the log's, not its entries: whoever may
		// read sees the same notes, which name no entry.
		status, body := w.get(tok, "/checkpoints")
		n++
		if status != http.StatusOK || strings.Contains(string(body), "iso-") {
			w.t.Errorf("GET /checkpoints as %s: %d %.200s", u.Sub, status, body)
		}
	}
	return n
}
