package simulate

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

var fixedNow = func() time.Time { return time.Date(2025, 3, 31, 9, 0, 0, 0, time.UTC) }

func story(seed int64, opts Options, n int) []*event.Event {
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	s := New(seed, opts)
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = s.Next()
	}
	return evs
}

func payload(t *testing.T, ev *event.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Payload, &m); err != nil {
		t.Fatalf("%s: payload: %v", ev.Headers.Name, err)
	}
	return m
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

var variants = []struct {
	name string
	opts Options
}{
	{"default", Options{}},
	{"OIH only", Options{OIHOnly: true}},
	{"tiny platform", Options{Tenants: 1, Users: 2}},
	{"large platform", Options{Tenants: 30, Users: 500}},
}

func TestEveryEventIsInTheCatalogueAndValid(t *testing.T) {
	cat := catalog.Default()
	for _, v := range variants {
		for _, seed := range []int64{1, 99} {
			t.Run(fmt.Sprintf("%s/seed %d", v.name, seed), func(t *testing.T) {
				t.Parallel()
				for i, ev := range story(seed, v.opts, 5000) {
					if err := cat.Validate(ev); err != nil {
						t.Fatalf("event %d: %v\npayload %s", i+1, err, ev.Payload)
					}
					e, ok := cat.Lookup(ev.Headers.Name)
					if !ok {
						t.Fatalf("event %d: %s not in the catalogue", i+1, ev.Headers.Name)
					}
					if !slices.Contains(e.ServiceNames, ev.Headers.ServiceName) {
						t.Fatalf("event %d: %s published as %q, its publisher writes %q", i+1, ev.Headers.Name, ev.Headers.ServiceName, e.ServiceNames)
					}
					if err := ev.Validate(0); err != nil {
						t.Fatalf("event %d: %v", i+1, err)
					}
					if ev.Headers.ID != "" || !ev.Headers.CreatedAt.IsZero() {
						t.Fatalf("event %d: id and createdAt are the publisher's to set, got %q %v", i+1, ev.Headers.ID, ev.Headers.CreatedAt)
					}
				}
			})
		}
	}
}

func TestStoryTellsEveryPart(t *testing.T) {
	names := map[string]int{}
	for _, ev := range story(7, Options{}, 20000) {
		names[ev.Headers.Name]++
	}
	for _, want := range []string{
		"iam.tenant.created", "iam.user.created", "iam.user.assignedToTenant", "iam.user.modified",
		"iam.user.loginFailed", "iam.user.deleted", "iam.token.created", "iam.token.modified", "iam.token.deleted",
		"secret-service.secret.created", "secrets.secret.created",
		"secret-service.token.get", "secrets.token.get",
		"secret-service.secret.deleted", "secrets.secret.deleted",
		"metadata.domain.created", "metadata.schema.created", "metadata.schema.modified", "metadata.schema.deleted",
		"flowrepo.flow.created", "flowrepo.flow.modified", "flowrepo.flow.deleted",
		"flowrepo.flow.starting", "flow.starting", "flow.started",
		"flowrepo.flow.stopping", "flow.stopping", "flow.stopped",
		"component.failed", "flow.failed",
	} {
		if names[want] == 0 {
			t.Errorf("20,000 events and not one %s", want)
		}
	}
	if t.Failed() {
		t.Logf("mix: %v", names)
	}
}

func TestOIHOnlySendsOnlyWhatOIHSends(t *testing.T) {
	never := []string{
		"secret-service.secret.created", "secret-service.token.get", "secret-service.secret.deleted",
		"metadata.domain.created", "flowrepo.flow.starting", "flowrepo.flow.stopping", "iam.user.assignedToTenant",
	}
	for i, ev := range story(3, Options{OIHOnly: true}, 20000) {
		if slices.Contains(never, ev.Headers.Name) {
			t.Fatalf("event %d: OIH never publishes %s", i+1, ev.Headers.Name)
		}
		p := payload(t, ev)
		switch ev.Headers.Name {
		case "iam.user.created", "iam.user.deleted", "iam.token.created", "iam.token.modified", "flow.started", "flow.stopped", "metadata.schema.created":
			if _, ok := p["tenant"]; ok {
				t.Fatalf("event %d: %s with a tenant OIH does not send: %s", i+1, ev.Headers.Name, ev.Payload)
			}
			if _, ok := p["user"]; ok {
				t.Fatalf("event %d: %s with a user OIH does not send: %s", i+1, ev.Headers.Name, ev.Payload)
			}
		}
	}
}

func TestSameSeedSameStory(t *testing.T) {
	a, b := story(42, Options{}, 5000), story(42, Options{}, 5000)
	for i := range a {
		ea, _ := a[i].Encode()
		eb, _ := b[i].Encode()
		if string(ea) != string(eb) {
			t.Fatalf("event %d differs:\n%s\n%s", i+1, ea, eb)
		}
	}
	c := story(43, Options{}, 50)
	same := 0
	for i := range c {
		ea, _ := a[i].Encode()
		ec, _ := c[i].Encode()
		if string(ea) == string(ec) {
			same++
		}
	}
	if same == len(c) {
		t.Fatal("seeds 42 and 43 tell the same story")
	}
}

// TestStoryIsCausallyOrdered replays the story and checks that nothing
// happens to a tenant, user, token, schema or flow before it exists or
// after it is gone, and that each flow goes through OIH's lifecycle in
// order (oih-events §5).
func TestStoryIsCausallyOrdered(t *testing.T) {
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) { checkCausality(t, story(11, v.opts, 30000)) })
	}
}

func checkCausality(t *testing.T, evs []*event.Event) {
	t.Helper()
	tenants := map[string]bool{}
	users := map[string]string{}      // live user id → username
	usernames := map[string]string{}  // username of a user ever created → id
	deletedUsers := map[string]bool{} // ids
	tokens := map[string]bool{}       // live token ids
	schemas := map[string]bool{}      // live schema ids
	flows := map[string]string{}      // flow id → status: created, starting, started, failed, stopping, stopped, deleted
	failed := 0
	for i, ev := range evs {
		p := payload(t, ev)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("event %d %s %s: %s", i+1, ev.Headers.Name, ev.Payload, fmt.Sprintf(format, args...))
		}
		liveUser := func(id string) {
			t.Helper()
			if _, ok := users[id]; !ok {
				fail("user %s is not alive (deleted: %v)", id, deletedUsers[id])
			}
		}
		knownTenant := func(id string) {
			t.Helper()
			if id != "" && !tenants[id] {
				fail("tenant %s does not exist", id)
			}
		}
		if ten, ok := p["tenant"].(string); ok {
			knownTenant(ten)
		}
		switch ev.Headers.Name {
		case "iam.tenant.created":
			id := str(p, "id")
			doc, _ := p["tenant"].(map[string]any)
			if doc == nil || str(doc, "_id") != id {
				fail("the tenant document's _id is not the id")
			}
			tenants[id] = true
		case "iam.user.created":
			id, name := str(p, "id"), str(p, "username")
			if _, ok := usernames[name]; ok {
				fail("username %s taken twice", name)
			}
			users[id], usernames[name] = name, id
		case "iam.user.assignedToTenant", "iam.user.modified":
			liveUser(str(p, "user") + str(p, "id"))
		case "iam.user.loginFailed":
			if id, ok := usernames[str(p, "user")]; ok {
				liveUser(id)
			}
		case "iam.user.deleted":
			id := str(p, "id")
			liveUser(id)
			delete(users, id)
			deletedUsers[id] = true
		case "iam.token.created":
			tokens[str(p, "id")] = true
			if u := str(p, "user"); u != "" {
				liveUser(u)
			}
		case "iam.token.modified":
			if !tokens[str(p, "id")] {
				fail("token was never created or is deleted")
			}
			if u := str(p, "user"); u != "" {
				liveUser(u)
			}
		case "iam.token.deleted":
			if id := str(p, "id"); id != "" {
				if !tokens[id] {
					fail("token was never created or is already deleted")
				}
				delete(tokens, id)
			}
			if acc := str(p, "account"); acc != "" && !deletedUsers[acc] {
				liveUser(acc)
			}
		case "metadata.schema.created":
			schemas[str(p, "id")] = true
		case "metadata.schema.modified":
			if !schemas[str(p, "id")] {
				fail("schema does not exist")
			}
		case "flowrepo.flow.created":
			liveUser(str(p, "user"))
			flows[str(p, "flowId")] = "created"
		case "flowrepo.flow.modified", "flowrepo.flow.deleted":
			id := str(p, "flowId")
			if st := flows[id]; st != "created" && st != "stopped" {
				fail("flow is %q, want created or stopped", st)
			}
			liveUser(str(p, "user"))
			if ev.Headers.Name == "flowrepo.flow.deleted" {
				flows[id] = "deleted"
			}
		case "flowrepo.flow.starting":
			if st := flows[str(p, "flowId")]; st != "created" && st != "stopped" {
				fail("flow is %q, want created or stopped", st)
			}
			liveUser(str(p, "user"))
		case "flow.starting":
			id := str(p, "id")
			if st := flows[id]; st != "created" && st != "stopped" {
				fail("flow is %q, want created or stopped", st)
			}
			liveUser(str(p, "startedBy"))
			flows[id] = "starting"
		case "flow.started":
			id := str(p, "id")
			if flows[id] != "starting" {
				fail("flow.started for a flow that is %q, not starting", flows[id])
			}
			flows[id] = "started"
		case "flow.failed":
			id := str(p, "id")
			if flows[id] != "starting" {
				fail("flow.failed for a flow that is %q, not starting", flows[id])
			}
			flows[id] = "failed"
			failed++
		case "flowrepo.flow.stopping":
			if st := flows[str(p, "flowId")]; st != "started" {
				fail("a user stops a flow that is %q, not started", st)
			}
			liveUser(str(p, "user"))
		case "flow.stopping":
			id := str(p, "id")
			if st := flows[id]; st != "started" && st != "failed" {
				fail("flow.stopping for a flow that is %q", st)
			}
			flows[id] = "stopping"
		case "flow.stopped":
			id := str(p, "id")
			if flows[id] != "stopping" {
				fail("flow.stopped for a flow that is %q, not stopping", flows[id])
			}
			flows[id] = "stopped"
		}
		if u := str(p, "user"); u != "" && ev.Headers.Name != "iam.user.loginFailed" {
			if deletedUsers[u] && ev.Headers.Name != "iam.user.deleted" {
				fail("payload user %s was deleted", u)
			}
		}
	}
	if len(users) == 0 || len(flows) == 0 {
		t.Fatalf("a story with %d live users and %d flows", len(users), len(flows))
	}
}

func BenchmarkNext(b *testing.B) {
	s := New(1, Options{})
	b.ReportAllocs()
	for b.Loop() {
		s.Next()
	}
}
