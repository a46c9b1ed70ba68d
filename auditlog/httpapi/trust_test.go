package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
)

// Hostile input is refused at the door with the same 400 on both stores,
// never a 500 from one of them, and nothing of it is stored.
func TestBadInputIsThe400OnEveryStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		posts := map[string]string{
			"NUL escape in payload":      `{"headers":{"name":"a.b"},"payload":{"x":"a\u0000b"}}`,
			"invalid UTF-8 in payload":   "{\"headers\":{\"name\":\"a.b\"},\"payload\":{\"x\":\"a\xffb\"}}",
			"invalid UTF-8 in key":       "{\"headers\":{\"name\":\"a.b\"},\"payload\":{\"x\xff\":\"a\"}}",
			"invalid UTF-8 in header":    "{\"headers\":{\"name\":\"a.b\",\"trace\":\"\xff\"},\"payload\":{}}",
			"NUL in header":              `{"headers":{"name":"a.b","trace":"\u0000"},"payload":{}}`,
			"lone surrogate":             `{"headers":{"name":"a.b"},"payload":{"x":"\ud800"}}`,
			"huge number":                `{"headers":{"name":"a.b"},"payload":{"x":1e999999}}`,
			"createdAt 1e300":            `{"headers":{"name":"a.b","createdAt":1e300},"payload":{}}`,
			"createdAt 1e19":             `{"headers":{"name":"a.b","createdAt":1e19},"payload":{}}`,
			"createdAt NaN":              `{"headers":{"name":"a.b","createdAt":"NaN"},"payload":{}}`,
			"createdAt -1e16":            `{"headers":{"name":"a.b","createdAt":-9999999999999999},"payload":{}}`,
			"createdAt year 10000":       `{"headers":{"name":"a.b","createdAt":"10000-01-01T00:00:00Z"},"payload":{}}`,
			"NUL in serviceName (admin)": `{"headers":{"name":"a.b","serviceName":"s\u0000"},"payload":{}}`,
		}
		for name, body := range posts {
			r := e.do(http.MethodPost, "/logs", "admin", body)
			if r.status != http.StatusBadRequest {
				t.Errorf("POST %s: %d %s, want 400", name, r.status, r.body)
			}
		}
		gets := []string{
			"filter[tenant]=a%00", "filter[name]=%00", "filter[tenant]=%FF", "filter[user]=%C3",
			"filter[flowId]=%00", "filter[flowId]=%FF",
			"to=9999999999999999", "from=-9999999999999999", "from=1e300", "to=NaN", "from=1e19",
			"to=10000-01-01T00:00:00Z",
		}
		for _, q := range gets {
			for _, token := range []string{"admin", "alice"} {
				r := e.do(http.MethodGet, "/logs?"+q, token, nil)
				if r.status != http.StatusBadRequest {
					t.Errorf("GET /logs?%s as %s: %d %s, want 400", q, token, r.status, r.body)
				}
			}
		}
		// Read routes answer an id or filter no entry can hold as they
		// answer one that matches nothing.
		for path, want := range map[string]int{
			"/logs/a%00b/proof":               http.StatusNotFound,
			"/logs/%FF/proof":                 http.StatusNotFound,
			"/logs/stream?filter[user]=%00":   http.StatusBadRequest,
			"/logs/stream?filter[tenant]=%FF": http.StatusBadRequest,
		} {
			for _, token := range []string{"admin", "alice"} {
				if r := e.do(http.MethodGet, path, token, nil); r.status != want {
					t.Errorf("GET %s as %s: %d %s, want %d", path, token, r.status, r.body, want)
				}
			}
		}
		if l := e.list("admin", ""); l.Meta.Total != 0 {
			t.Errorf("%d hostile entries stored", l.Meta.Total)
		}
	})
}

// Times are accepted over the documented range, the same on both stores,
// and read back as they were posted; a millisecond outside it is refused.
func TestTimesAtTheEdgesOfTheRange(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		posted := map[string]string{} // id: createdAt as posted
		post := func(c string) {
			t.Helper()
			r := e.do(http.MethodPost, "/logs", "admin", `{"headers":{"name":"a.b","createdAt":`+c+`},"payload":{"c":`+c+`}}`)
			if r.status != http.StatusCreated {
				t.Errorf("createdAt %s: %d %s, want 201", c, r.status, r.body)
				return
			}
			id, _ := r.json(t)["id"].(string)
			posted[id] = c
		}
		for _, c := range []string{`"0001-01-01T00:00:00Z"`, `"9999-12-31T23:59:59.999Z"`, `-62135596800000`, `253402300799999`} {
			post(c)
		}
		if l := e.list("admin", "from=-62135596800000&page[size]=10"); l.Meta.Total != 4 {
			t.Errorf("%d entries from the first millisecond, want 4", l.Meta.Total)
		}
		// to is exclusive: the last millisecond is after it.
		if l := e.list("admin", "from=0001-01-01T00:00:00Z&to=253402300799999"); l.Meta.Total != 2 {
			t.Errorf("%d entries before the last millisecond, want 2", l.Meta.Total)
		}

		// Read back unchanged. The first millisecond, 0001-01-01T00:00:00Z,
		// is also Go's zero time, which POST /logs takes for a createdAt
		// not given: those entries get their time of receipt instead, so
		// the second millisecond stands for the lower edge here.
		post(`"0001-01-01T00:00:00.001Z"`)
		post(`-62135596799999`)
		l := e.list("admin", "page[size]=10")
		if len(l.Data) != len(posted) {
			t.Errorf("%d entries listed, want the %d posted", len(l.Data), len(posted))
		}
		for _, d := range l.Data {
			c, ok := posted[d.ID]
			if !ok {
				t.Errorf("entry %s was not posted", d.ID)
				continue
			}
			if got, err := json.Marshal(d.Payload["c"]); err != nil || string(got) != c {
				t.Errorf("payload %s read back as %s", c, got)
			}
			want, err := event.ParseTime(strings.Trim(c, `"`))
			if err != nil {
				t.Fatal(err)
			}
			if want.Equal(event.MinTime) {
				continue
			}
			if d.Headers.CreatedAt == nil {
				t.Errorf("createdAt %s read back without a createdAt", c)
			} else if got, err := event.ParseTime(*d.Headers.CreatedAt); err != nil || !got.Equal(want) {
				t.Errorf("createdAt %s read back as %s (%v), want %s", c, *d.Headers.CreatedAt, err, want.Format(time.RFC3339Nano))
			}
		}

		// A millisecond (or less) outside the range is refused, posted or
		// asked for, and nothing of it is stored.
		for _, c := range []string{`"0000-12-31T23:59:59.999Z"`, `"9999-12-31T23:59:59.9991Z"`, `-62135596800001`, `253402300800000`} {
			r := e.do(http.MethodPost, "/logs", "admin", `{"headers":{"name":"a.b","createdAt":`+c+`},"payload":{}}`)
			if r.status != http.StatusBadRequest {
				t.Errorf("createdAt %s: %d %s, want 400", c, r.status, r.body)
			}
		}
		for _, q := range []string{"from=-62135596800001", "to=253402300800000", "from=0000-12-31T23:59:59.999Z", "to=9999-12-31T23:59:59.9991Z"} {
			if r := e.do(http.MethodGet, "/logs?"+q, "admin", nil); r.status != http.StatusBadRequest {
				t.Errorf("GET /logs?%s: %d %s, want 400", q, r.status, r.body)
			}
		}
		if l := e.list("admin", ""); l.Meta.Total != int64(len(posted)) {
			t.Errorf("%d entries stored, want the %d inside the range", l.Meta.Total, len(posted))
		}
	})
}

// The reserved payload keys user and tenant are the exact keys: an
// upper-case USER or TENANT is an ordinary key and changes nobody's view.
func TestReservedKeysAreMatchedExactly(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		r := e.do(http.MethodPost, "/logs", "admin",
			`{"headers":{"name":"a.b"},"payload":{"user":"alice","USER":"carol","tenant":"tenant-a","TENANT":"tenant-b","Tenant":"tenant-b"}}`)
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if l := e.list("alice", ""); len(l.Data) != 1 {
			t.Errorf("alice sees %d entries, want her own 1", len(l.Data))
		}
		if l := e.list("carol", ""); len(l.Data) != 0 {
			t.Errorf("carol (tenant-b) sees an entry whose user is alice and tenant tenant-a: %+v", l.Data)
		}
		if l := e.list("admin", "filter[tenant]=tenant-b"); len(l.Data) != 0 {
			t.Errorf("filter[tenant]=tenant-b matches an entry of tenant-a")
		}
	})
}

// Too many query parameters or payload filters are a 400 naming the
// limit, never filters silently dropped.
func TestTooManyParametersAreRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		var q []string
		for i := range 10001 {
			q = append(q, "x"+strings.Repeat("0", i%3)+url.QueryEscape(string(rune('a'+i%26)))+"="+"1")
		}
		q = append(q, "filter[user]=nobody")
		r := e.do(http.MethodGet, "/logs?"+strings.Join(q, "&"), "admin", nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), "100") {
			t.Errorf("10,002 parameters: %d %s, want 400 naming the limit", r.status, r.body)
		}
		var f []string
		for i := range MaxPayloadFilters + 1 {
			f = append(f, "filter[k"+strings.Repeat("x", i)+"]=v")
		}
		r = e.do(http.MethodGet, "/logs?"+strings.Join(f, "&"), "admin", nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), "16") {
			t.Errorf("%d payload filters: %d %s, want 400 naming the limit", len(f), r.status, r.body)
		}
	})
}

// A non-admin's POST is attributed from the token: their IAM id and
// tenant are filled in, and naming anyone else is a 403, never stored
// rewritten. logs.push.any lets a service account post for others.
func TestPostIsAttributedFromTheToken(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		r := e.do(http.MethodPost, "/logs", "alice", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"flowId": "f1"}))
		if r.status != http.StatusCreated {
			t.Fatalf("own event: %d %s", r.status, r.body)
		}
		if p := r.json(t)["payload"].(map[string]any); p["user"] != "alice" || p["tenant"] != "tenant-a" {
			t.Errorf("payload %v, want user alice and tenant tenant-a from the token", p)
		}
		forged := []map[string]any{
			{"user": "carol"},
			{"tenant": "tenant-b"},
			{"user": "alice", "tenant": "tenant-b"},
			{"user": map[string]any{"_id": "carol"}},
			{"user": 7},
			{"user": ""},
			{"tenant": nil},
		}
		for _, p := range forged {
			r := e.do(http.MethodPost, "/logs", "alice", newEvent("flowrepo.flow.created", 1700000000000, p))
			if r.status != http.StatusForbidden || !strings.Contains(r.errorMessage(t), "logs.push.any") {
				t.Errorf("alice posting %v: %d %s, want 403 naming logs.push.any", p, r.status, r.body)
			}
		}
		// A user without a tenant can name none.
		if r := e.do(http.MethodPost, "/logs", "nora", newEvent("a.b", nil, map[string]any{"tenant": "tenant-a"})); r.status != http.StatusForbidden {
			t.Errorf("nora naming a tenant: %d %s, want 403", r.status, r.body)
		}
		// Matching values are accepted as they are.
		if r := e.do(http.MethodPost, "/logs", "alice", newEvent("a.b", nil, map[string]any{"user": "alice", "tenant": "tenant-a"})); r.status != http.StatusCreated {
			t.Errorf("alice naming herself: %d %s", r.status, r.body)
		}
		// The service account with logs.push.any posts for others.
		r = e.do(http.MethodPost, "/logs", "flowrepo-any", newEvent("flowrepo.flow.created", nil, map[string]any{"user": "carol", "tenant": "tenant-b"}))
		if r.status != http.StatusCreated {
			t.Fatalf("logs.push.any: %d %s", r.status, r.body)
		}
		if sn := r.json(t)["headers"].(map[string]any)["serviceName"]; sn != "flow-repository-any" {
			t.Errorf("serviceName %v under logs.push.any, want the caller's username", sn)
		}
		if l := e.list("carol", ""); len(l.Data) != 1 {
			t.Errorf("carol sees %d entries, want the one posted for her", len(l.Data))
		}
		// Nothing forged reached tenant-b; alice's two are hers.
		if l := e.list("admin", "filter[tenant]=tenant-b"); l.Meta.Total != 1 {
			t.Errorf("tenant-b holds %d entries, want 1", l.Meta.Total)
		}
		if l := e.list("admin", "filter[user]=alice"); l.Meta.Total != 2 {
			t.Errorf("alice holds %d entries, want 2", l.Meta.Total)
		}
	})
}

// A non-admin's POSTed ids live in a space of their own: an id the bus
// will deliver, or another caller's, cannot be taken, and a 409 says
// nothing of entries the caller cannot see.
func TestPostedIDsCannotTakeAnotherEntrysID(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		const busID = "0190f0e4-0000-7000-8000-0000000000b5"
		r := e.do(http.MethodPost, "/logs", "alice", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{}, "id", busID))
		if r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if id := r.json(t)["id"]; id == busID {
			t.Fatalf("a non-admin's POST took the id %s", busID)
		}
		// The real event under that id, delivered by the bus, is stored.
		in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, FlushInterval: time.Millisecond})
		defer in.Close()
		real, err := event.Decode([]byte(`{"headers":{"name":"flowrepo.flow.created","serviceName":"flow-repository","createdAt":1700000000000,"id":"` + busID + `"},"payload":{"user":"amos","tenant":"tenant-c"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Handle(context.Background(), real); err != nil {
			t.Fatal(err)
		}
		if l := e.list("admin", "filter[user]=amos"); len(l.Data) != 1 || l.Data[0].ID != busID {
			t.Fatalf("the bus's event under %s: %+v, want it stored", busID, l.Data)
		}
		// Another caller's same id is another entry.
		if r := e.do(http.MethodPost, "/logs", "nora", newEvent("flowrepo.flow.created", 1700000000000, map[string]any{}, "id", busID)); r.status != http.StatusCreated {
			t.Errorf("nora under alice's id: %d %s, want 201", r.status, r.body)
		}
		// Conflicts answer one text.
		other := newEvent("flowrepo.flow.created", 1800000000000, map[string]any{}, "id", busID)
		r1 := e.do(http.MethodPost, "/logs", "alice", other)
		other["payload"] = map[string]any{"x": "y"}
		r2 := e.do(http.MethodPost, "/logs", "alice", other)
		if r1.status != http.StatusConflict || r2.status != http.StatusConflict {
			t.Fatalf("conflicts: %d %s, %d %s", r1.status, r1.body, r2.status, r2.body)
		}
		m1, m2 := r1.errorMessage(t), r2.errorMessage(t)
		if m1 != m2 {
			t.Errorf("two 409 texts: %q and %q", m1, m2)
		}
		if l := e.list("admin", ""); l.Meta.Total != 3 {
			t.Errorf("%d entries, want 3", l.Meta.Total)
		}
	})
}

// A bus event under an id already stored for another event is a
// conflict: not stored, counted in events_conflict_total (and logged);
// a redelivery of the stored event is a silent duplicate.
func TestAnotherEventUnderAKnownIDIsACountedConflict(t *testing.T) {
	forEachStore(t, func(t *testing.T, store auditlog.Store) {
		e := newEnvOn(t, store)
		const id = "0190f0e4-0000-7000-8000-0000000000c1"
		posted := newEvent("flowrepo.flow.created", 1700000000000, map[string]any{"flowId": "f1"}, "id", id)
		if r := e.do(http.MethodPost, "/logs", "admin", posted); r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
		reg := prometheus.NewRegistry()
		m := auditlog.NewMetrics(reg)
		in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, Metrics: m, FlushInterval: time.Millisecond})
		defer in.Close()
		handle := func(body string) {
			ev, err := event.Decode([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		// The same event again (as the admin posted it): a duplicate.
		handle(`{"headers":{"name":"flowrepo.flow.created","serviceName":"flow-repository","createdAt":1700000000000,"id":"` + id + `"},"payload":{ "flowId" : "f1" }}`)
		if got := testutil.ToFloat64(m.Conflicts); got != 0 {
			t.Errorf("a redelivery counted as %v conflicts", got)
		}
		// Another event under that id.
		handle(`{"headers":{"name":"flowrepo.flow.deleted","serviceName":"flow-repository","createdAt":1700000000001,"id":"` + id + `"},"payload":{"flowId":"f1"}}`)
		if got := testutil.ToFloat64(m.Conflicts); got != 1 {
			t.Errorf("conflicts %v, want 1", got)
		}
		l := e.list("admin", "")
		if l.Meta.Total != 1 || l.Data[0].Headers.Name != "flowrepo.flow.created" {
			t.Errorf("stored %+v, want the first event only", l.Data)
		}
	})
}
