package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// ErasureKey is the erasure key of the conformance tests.
var ErasureKey = []byte("storetest-erasure-key-0123456789")

// testErasureState checks a store's record of erased identifiers
// (auditlog.ErasureState): nothing before the first record, exactly what
// was recorded after, the first replacement kept, and recording twice, or
// from two callers at once, is no error.
func testErasureState(t *testing.T, s auditlog.Store) {
	st, ok := s.(auditlog.ErasureState)
	if !ok {
		t.Skipf("%T keeps no erasure state (auditlog.ErasureState)", s)
	}
	d := func(s string) []byte { sum := sha256.Sum256([]byte(s)); return sum[:] }
	a, b, c := d("a"), d("b"), d("c")
	if got, err := st.Erased(ctx(t), [][]byte{a, b}); err != nil || len(got) != 0 {
		t.Fatalf("Erased before any record: %v, %v; want none", got, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			errs <- st.RecordErased(ctx(t), []auditlog.ErasedValue{{Digest: a, Replacement: "ra"}, {Digest: b, Replacement: "rb"}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("RecordErased: %v", err)
		}
	}
	if err := st.RecordErased(ctx(t), []auditlog.ErasedValue{{Digest: b, Replacement: "other"}}); err != nil {
		t.Fatalf("RecordErased of a recorded digest: %v", err)
	}
	got, err := st.Erased(ctx(t), [][]byte{a, c, b})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[string(a)] != "ra" || got[string(b)] != "rb" {
		t.Errorf("Erased(a, c, b) = %q, want a: ra and b: rb", got)
	}
	// A batch's lookup asks for many digests at once (a store may ask for
	// them in parts): b is found after a thousand unrecorded ones.
	many := [][]byte{a}
	for i := range 1000 {
		many = append(many, d(fmt.Sprint("unrecorded-", i)))
	}
	many = append(many, b)
	got, err = st.Erased(ctx(t), many)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[string(a)] != "ra" || got[string(b)] != "rb" {
		t.Errorf("Erased of %d digests = %q, want a: ra and b: rb", len(many), got)
	}
}

// victim and bystander are the users of the erasure tests.
const (
	victimID    = "u-victim-5f1c"
	victimMail  = "victim@example.com"
	bystanderID = "u-bystander-77"
	byMail      = "bystander@example.com"
)

// personalPayload is the catalogue's example of e with every personal
// field set to the user's value of its kind (arrays get an item when they
// have none), made unique by tag.
func personalPayload(t testing.TB, e catalog.Entry, id, mail, tag string) json.RawMessage {
	var doc map[string]any
	if err := json.Unmarshal(e.Example, &doc); err != nil {
		t.Fatal(err)
	}
	for _, f := range e.Personal {
		v := id
		switch f.Kind {
		case catalog.PersonalUsername, catalog.PersonalEmail:
			v = mail
		case catalog.PersonalName:
			v = "Name of " + id
		}
		setPath(doc, f.Tokens(), v)
	}
	doc["storetestTag"] = tag
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setPath sets the value at tokens in doc, creating objects and a first
// array item on the way; "*" sets every item.
func setPath(doc any, tokens []string, v string) any {
	if len(tokens) == 0 {
		return v
	}
	tok := tokens[0]
	if tok == "*" {
		arr, _ := doc.([]any)
		if len(arr) == 0 {
			arr = []any{map[string]any{}}
		}
		for i := range arr {
			if len(tokens) > 1 {
				if _, ok := arr[i].(map[string]any); !ok {
					arr[i] = map[string]any{}
				}
			}
			arr[i] = setPath(arr[i], tokens[1:], v)
		}
		return arr
	}
	m, ok := doc.(map[string]any)
	if !ok {
		m = map[string]any{}
	}
	next := m[tok]
	if len(tokens) > 1 && next == nil {
		if tokens[1] == "*" {
			next = []any{}
		} else {
			next = map[string]any{}
		}
	}
	m[tok] = setPath(next, tokens[1:], v)
	return m
}

// personalEvents are the audited catalogue events that carry personal
// data, but the deletion itself.
func personalEvents() []catalog.Entry {
	var out []catalog.Entry
	for _, e := range catalog.Default().Entries() {
		if e.Audited && len(e.Personal) > 0 && !e.IsFamily() && e.Name != auditlog.UserDeleted {
			out = append(out, e)
		}
	}
	return out
}

func serviceNameOf(e catalog.Entry) string {
	if len(e.ServiceNames) > 0 {
		return e.ServiceNames[0]
	}
	return e.Service
}

// newEraserIngester is an ingester on s that erases, with the
// conformance key.
func newEraserIngester(t testing.TB, s auditlog.Store, mode auditlog.ErasureMode, batch int, flush time.Duration) *auditlog.Ingester {
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: s, Key: ErasureKey, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: s, Catalog: catalog.Default(), Eraser: x, BatchSize: batch, FlushInterval: flush})
	t.Cleanup(in.Close)
	return in
}

// handler returns a function that has in store one event, named name and
// sent by service, and fails the test when it cannot.
func handler(t testing.TB, in *auditlog.Ingester) func(name, service, payload string) {
	return func(name, service, payload string) {
		t.Helper()
		if err := in.Handle(ctx(t), newEvent(t, name, service, json.RawMessage(payload))); err != nil {
			t.Fatal(err)
		}
	}
}

func newEvent(t testing.TB, name, serviceName string, payload json.RawMessage) *event.Event {
	ev, err := event.New(name, payload)
	if err != nil {
		t.Fatal(err)
	}
	ev.Headers.ServiceName = serviceName
	return ev
}

// testErasureOrder: for each audited OIH event carrying personal data, an
// entry of the deleted user stored before the deletion, one in the same
// batch as it, and one after it (through another ingester, as another
// replica); after the erasure no entry holds any identifier of the user
// at any depth, the other user's entries are byte-identical, and the log
// verifies before and after. In both modes.
func testErasureOrder(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "erasure")
	for _, mode := range []auditlog.ErasureMode{auditlog.ErasureAnonymise, auditlog.ErasurePseudonymise} {
		// One store for both: the users' ids and addresses differ by mode.
		t.Run(string(mode), func(t *testing.T) { erasureOrder(t, s, mode, signer, v) })
	}
}

func erasureOrder(t *testing.T, s auditlog.Store, mode auditlog.ErasureMode, signer *auditlog.Signer, v note.Verifier) {
	victim, vmail := victimID+"-"+string(mode), string(mode)+"."+victimMail
	other, omail := bystanderID+"-"+string(mode), string(mode)+"."+byMail
	events := personalEvents()
	if len(events) < 15 {
		t.Fatalf("only %d audited events carry personal data", len(events))
	}
	evs := func(id, mail, phase string) []*event.Event {
		var out []*event.Event
		for _, e := range events {
			out = append(out, newEvent(t, e.Name, serviceNameOf(e), personalPayload(t, e, id, mail, phase+"-"+string(mode))))
		}
		return out
	}
	before, same, after := evs(victim, vmail, "before"), evs(victim, vmail, "same"), evs(victim, vmail, "after")
	bystander := evs(other, omail, "bystander")
	deletion := newEvent(t, auditlog.UserDeleted, "accounts", json.RawMessage(`{"id":"`+victim+`"}`))

	a := newEraserIngester(t, s, mode, len(same)+1, time.Hour) // batches fill exactly
	b := newEraserIngester(t, s, mode, 1, time.Millisecond)    // another replica
	handle := func(in *auditlog.Ingester, evs ...*event.Event) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]error, len(evs))
		for i, ev := range evs {
			wg.Go(func() { errs[i] = in.Handle(ctx(t), ev) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", evs[i].Headers.Name, err)
			}
		}
	}
	for _, ev := range append(before, bystander...) {
		handle(b, ev)
	}
	mustIntegrate(t, s, signer)
	if r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{}); err != nil || r.Failure != nil {
		t.Fatalf("verify before the erasure: %v, %v", err, r.Failure)
	}
	kept := map[string]string{}
	for _, e := range allLeaves(t, s) {
		if strings.Contains(string(e.Payload), other) || strings.Contains(string(e.Payload), omail) {
			kept[e.ID] = string(e.Payload) + string(e.Headers) + e.User
		}
	}
	// One batch of exactly the same-batch entries and the deletion.
	handle(a, append(same, deletion)...)
	for _, ev := range after {
		handle(b, ev)
	}
	mustIntegrate(t, s, signer)

	ids := map[string]bool{}
	for _, list := range [][]*event.Event{before, same, after} {
		for _, ev := range list {
			ids[ev.Headers.ID] = true
		}
	}
	erasedSeen := 0
	for _, e := range allLeaves(t, s) {
		all := string(e.Payload) + string(e.Headers) + e.User
		if strings.Contains(all, victim) || strings.Contains(all, vmail) {
			t.Errorf("%s %s still holds the deleted user: %s (user %q)", e.Name, e.ID, e.Payload, e.User)
		}
		if k, ok := kept[e.ID]; ok && k != all {
			t.Errorf("%s %s of another user changed:\n%s\nwant\n%s", e.Name, e.ID, all, k)
		}
		if ids[e.ID] {
			erasedSeen++
			if len(e.Erased) == 0 {
				t.Errorf("%s %s of the deleted user has no erased field: %s", e.Name, e.ID, e.Payload)
			}
			if mode == auditlog.ErasurePseudonymise && !strings.Contains(string(e.Payload), auditlog.PseudonymPrefix) {
				t.Errorf("%s %s holds no pseudonym: %s", e.Name, e.ID, e.Payload)
			}
		}
	}
	if erasedSeen != len(ids) {
		t.Errorf("found %d of the deleted user's %d entries", erasedSeen, len(ids))
	}
	if len(kept) != len(bystander) {
		t.Errorf("%d of the other user's %d entries found before the erasure", len(kept), len(bystander))
	}
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure != nil {
		t.Fatalf("verify after the erasure: %v, %v", err, r.Failure)
	}
	withErased := int64(0)
	for _, e := range allLeaves(t, s) {
		if len(e.Erased) > 0 {
			withErased++
		}
	}
	if r.Erased != withErased {
		t.Errorf("verify reports %d entries erased, the log holds %d", r.Erased, withErased)
	}
	if len(r.ErasedFields) < 100 { // it lists the first 100
		for id := range ids {
			if len(r.ErasedFields[id]) == 0 {
				t.Errorf("verify does not report entry %s as erased", id)
			}
		}
	}
	// The erasure is in the log, naming the user not in clear.
	p := mustQuery(t, s, auditlog.Query{Name: auditlog.SubjectErased})
	found := false
	for _, e := range p.Entries {
		var rec auditlog.ErasureRecord
		if err := json.Unmarshal(e.Payload, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Trigger == deletion.Headers.ID {
			found = true
			if rec.Entries == 0 || rec.Mode != mode || !strings.HasPrefix(rec.Subject, "subject-") {
				t.Errorf("erasure record %+v", rec)
			}
		}
		if bytes.Contains(e.Payload, []byte(victim)) || bytes.Contains(e.Payload, []byte(vmail)) {
			t.Errorf("the erasure record names the user in clear: %s", e.Payload)
		}
	}
	if !found {
		t.Errorf("no %s entry for the deletion %s", auditlog.SubjectErased, deletion.Headers.ID)
	}
}

// testErasureTrust: usernames and deletions count only from IAM: an
// iam.user.created pushed by someone else (its serviceName theirs, as
// POST /logs sets for a non-admin) teaches no username, and an
// iam.user.deleted from someone else erases nothing.
func testErasureTrust(t *testing.T, s auditlog.Store) {
	h := handler(t, newEraserIngester(t, s, auditlog.ErasureAnonymise, 1, time.Millisecond))
	h("iam.user.created", "accounts", `{"id":"u-real","username":"real@example.com"}`)
	h("iam.user.loginFailed", "accounts", `{"user":"target@example.com"}`)
	h("iam.user.loginFailed", "accounts", `{"user":"real@example.com"}`)
	// Pushed: claims that u-real's username is target's.
	h("iam.user.created", "mallory@example.com", `{"id":"u-real","username":"target@example.com"}`)
	h("iam.user.deleted", "mallory@example.com", `{"id":"u-target"}`)
	h("flowrepo.flow.created", "flow-repository", `{"user":"u-target","tenant":"t","flowId":"f"}`)
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": "u-target"}}); p.Total != 1 {
		t.Errorf("a pushed iam.user.deleted erased its user: %d entries left, want 1", p.Total)
	}
	h("iam.user.deleted", "accounts", `{"id":"u-real"}`)
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": "target@example.com"}}); p.Total != 1 {
		t.Errorf("a pushed iam.user.created had another user's entries erased: %d left, want 1", p.Total)
	}
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"user": "real@example.com"}}); p.Total != 0 {
		t.Errorf("the deleted user's entries: %d left, want 0", p.Total)
	}
}

// integratingStore integrates the log after each append, before the
// ingester goes on: what serve's integrator, running beside the
// ingester, may do between an append and the erasure that follows.
type integratingStore struct {
	beforeAppendStore
	t      testing.TB
	signer *auditlog.Signer
}

func (s integratingStore) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	n, err := s.beforeAppendStore.Append(ctx, entries)
	if err == nil {
		mustIntegrate(s.t, s.Store, s.signer)
	}
	return n, err
}

// testLateErasureKeepsProofs: the entries of a deleted user stored after
// the deletion (a redelivery, another replica's batch) are erased as
// those before it are, so that herald verify passes: the leaf of each is
// the one integrated before its values were replaced, and every
// checkpoint still verifies.
func testLateErasureKeepsProofs(t *testing.T, s auditlog.Store) {
	st, ok := s.(auditlog.ErasureState)
	if !ok {
		t.Skipf("%T keeps no erasure state (auditlog.ErasureState)", s)
	}
	signer, v := NewSigner(t, "late")
	var before func()
	in := newEraserIngester(t, integratingStore{beforeAppendStore{s, st, &before}, t, signer}, auditlog.ErasureAnonymise, 1, time.Millisecond)
	handle := func(name, payload string) string {
		t.Helper()
		ev := newEvent(t, name, "accounts", json.RawMessage(payload))
		if err := in.Handle(ctx(t), ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev.Headers.ID
	}
	handle("iam.user.created", `{"id":"u-late","username":"late@example.com"}`)
	handle("iam.user.loginFailed", `{"user":"late@example.com"}`)
	handle("iam.user.deleted", `{"id":"u-late"}`)
	late := []string{
		handle("flowrepo.flow.created", `{"user":"u-late","tenant":"t1","flowId":"f1"}`),
		handle("iam.user.loginFailed", `{"user":"late@example.com"}`),
		handle("iam.token.deleted", `{"account":"u-late"}`),
		// A username the deletion could not know, then an entry naming it.
		handle("iam.user.modified", `{"id":"u-late","username":"late.new@example.com"}`),
		handle("iam.user.loginFailed", `{"user":"late.new@example.com"}`),
	}
	// Another replica erases a user after this batch looked the erased
	// users up and before it commits: the entry is stored in clear and
	// integrated, and the check after the commit erases it.
	other, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: s, Key: ErasureKey, Mode: auditlog.ErasureAnonymise})
	if err != nil {
		t.Fatal(err)
	}
	before = func() {
		if _, err := other.EraseUser(ctx(t), "u-late-elsewhere", auditlog.Entry{ID: "deletion-elsewhere"}); err != nil {
			t.Errorf("erasure on another replica: %v", err)
		}
	}
	late = append(late, handle("flowrepo.flow.created", `{"user":"u-late-elsewhere","tenant":"t1","flowId":"f2"}`))
	if before != nil {
		t.Fatal("the erasure on another replica did not run before the append")
	}
	kept := handle("iam.user.loginFailed", `{"user":"someone@example.com"}`)
	mustIntegrate(t, s, signer)

	for _, e := range allLeaves(t, s) {
		if strings.Contains(string(e.Payload), "u-late") || strings.Contains(string(e.Payload), "late") || e.User == "u-late" {
			t.Errorf("entry %s (%s) still names the deleted user: %s, user %q", e.ID, e.Name, e.Payload, e.User)
		}
		if e.ID == kept && len(e.Erased) > 0 {
			t.Errorf("another user's entry %s was erased: %s", e.ID, e.Payload)
		}
	}
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure != nil {
		t.Fatalf("verify after a late erasure: %v, %v", err, r.Failure)
	}
	for _, id := range late {
		if _, ok := r.ErasedFields[id]; !ok {
			t.Errorf("entry %s, stored after the deletion, is not reported erased: %v", id, r.ErasedFields)
		}
	}
	if r.Pending != 0 || r.Integrated != r.Entries {
		t.Errorf("report %+v: want every entry integrated", r)
	}
}

// failingRewriteStore fails every Rewrite by payload terms: a replica
// that records a username it learned, then stops before its rewrite of
// the entries stored before (killed, or the rewrite failed).
type failingRewriteStore struct{ beforeAppendStore }

var errRewriteStopped = errors.New("rewrite stopped")

func (s failingRewriteStore) Rewrite(ctx context.Context, sel auditlog.Selection, edit auditlog.Edit) (int64, error) {
	if len(sel.Terms) > 0 {
		return 0, errRewriteStopped
	}
	return s.Store.Rewrite(ctx, sel, edit)
}

// beforeAppendStore is a store whose before, when it holds a function,
// runs once before the next append: what another replica may do between
// a batch's lookup of the erased users and its commit.
type beforeAppendStore struct {
	auditlog.Store
	auditlog.ErasureState
	before *func()
}

func (s beforeAppendStore) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	if f := *s.before; f != nil {
		*s.before = nil
		f()
	}
	return s.Store.Append(ctx, entries)
}

// testInterruptedLearning: a user is deleted before IAM's
// iam.user.created that teaches their username is stored (in another
// replica's batch), so the erasure erases only entries naming their id.
// The replica storing the iam.user.created learns the username, before
// its commit (the deletion came first) or after it (the deletion came
// between its lookup and its commit), and records it, then stops before
// erasing the entries stored before that name it; the redelivered event
// has them erased all the same, though the username is recorded already.
func testInterruptedLearning(t *testing.T, s auditlog.Store) {
	st, ok := s.(auditlog.ErasureState)
	if !ok {
		t.Skipf("%T keeps no erasure state (auditlog.ErasureState)", s)
	}
	healthy := newEraserIngester(t, s, auditlog.ErasureAnonymise, 1, time.Millisecond)
	var before func()
	stopping := newEraserIngester(t, failingRewriteStore{beforeAppendStore{s, st, &before}}, auditlog.ErasureAnonymise, 1, time.Millisecond)
	for _, afterCommit := range []bool{false, true} {
		id, mail := "u-interrupted-before", "interrupted.before@example.com"
		if afterCommit {
			id, mail = "u-interrupted-after", "interrupted.after@example.com"
		}
		failed := newEvent(t, "iam.user.loginFailed", "accounts", json.RawMessage(`{"user":"`+mail+`"}`))
		if err := healthy.Handle(ctx(t), failed); err != nil {
			t.Fatal(err)
		}
		if p := mustQuery(t, s, auditlog.Query{ID: failed.Headers.ID}); len(p.Entries) != 1 || !strings.Contains(string(p.Entries[0].Payload), mail) {
			t.Fatalf("before the username is learned, the entry naming it: %+v, want it in clear", p.Entries)
		}
		deleted := newEvent(t, auditlog.UserDeleted, "accounts", json.RawMessage(`{"id":"`+id+`"}`))
		deletion := func() {
			if err := healthy.Handle(ctx(t), deleted); err != nil {
				t.Errorf("deletion: %v", err)
			}
		}
		if afterCommit {
			before = deletion
		} else {
			deletion()
		}
		created := newEvent(t, auditlog.UserCreated, "accounts", json.RawMessage(`{"id":"`+id+`","username":"`+mail+`"}`))
		if err := stopping.Handle(ctx(t), created); !errors.Is(err, errRewriteStopped) {
			t.Fatalf("storing %s on the replica that stops: %v, want its rewrite stopped", created.Headers.Name, err)
		}
		if before != nil {
			t.Fatal("the deletion did not run before the append")
		}
		// Redelivered, to a replica that does not stop.
		if err := healthy.Handle(ctx(t), created); err != nil {
			t.Fatalf("redelivered %s: %v", created.Headers.Name, err)
		}
		for _, e := range allLeaves(t, s) {
			if strings.Contains(string(e.Payload), mail) || strings.Contains(string(e.Payload), id) || e.User == mail || e.User == id {
				t.Errorf("learned after the commit %v: entry %s (%s) still names the deleted user: %s, user %q", afterCommit, e.ID, e.Name, e.Payload, e.User)
			}
		}
	}
}

// testTenantErasure: OIH deletes a tenant after each of its accounts,
// each with its iam.user.deleted; every user of the tenant ends up erased,
// the tenant's entries that name no user are kept, and iam.tenant.deleted
// erases nothing by itself.
func testTenantErasure(t *testing.T, s auditlog.Store) {
	h := handler(t, newEraserIngester(t, s, auditlog.ErasureAnonymise, 1, time.Millisecond))
	h("iam.tenant.created", "accounts", `{"id":"t-gone","tenant":{"_id":"t-gone","name":"Gone Ltd"}}`)
	for _, u := range []string{"ta", "tb", "tc"} {
		h("iam.user.created", "accounts", `{"id":"u-`+u+`","username":"`+u+`@gone.example"}`)
		h("iam.user.assignedToTenant", "accounts", `{"user":"u-`+u+`","tenant":"t-gone"}`)
		h("flowrepo.flow.created", "flow-repository", `{"user":"u-`+u+`","tenant":"t-gone","flowId":"f-`+u+`"}`)
		h("iam.user.loginFailed", "accounts", `{"user":"`+u+`@gone.example"}`)
	}
	h("metadata.domain.created", "meta-data-repository", `{"id":"d1","tenant":"t-gone","name":"Contacts"}`)
	for _, u := range []string{"ta", "tb", "tc"} {
		h("iam.user.deleted", "accounts", `{"id":"u-`+u+`"}`)
	}
	h("iam.tenant.deleted", "accounts", `{"id":"t-gone"}`)
	for _, e := range allLeaves(t, s) {
		for _, u := range []string{"u-ta", "u-tb", "u-tc", "ta@gone", "tb@gone", "tc@gone"} {
			if strings.Contains(string(e.Payload), u) || e.User == u {
				t.Errorf("%s %s still names %s: %s", e.Name, e.ID, u, e.Payload)
			}
		}
	}
	p := mustQuery(t, s, auditlog.Query{Tenant: "t-gone"})
	if p.Total != 8 { // the tenant's creation, 3 assignments, 3 flows, the domain
		var names []string
		for _, e := range p.Entries {
			names = append(names, e.Name)
		}
		t.Errorf("%d entries of the tenant kept, want 8: %v", p.Total, names)
	}
	if p := mustQuery(t, s, auditlog.Query{Name: "metadata.domain.created"}); p.Total != 1 || !strings.Contains(string(p.Entries[0].Payload), "Contacts") {
		t.Errorf("the tenant's entry that names no user changed: %v", p.Entries)
	}
	if p := mustQuery(t, s, auditlog.Query{Name: "iam.tenant.created"}); p.Total != 1 || !strings.Contains(string(p.Entries[0].Payload), "Gone Ltd") {
		t.Errorf("iam.tenant.created changed: %v", p.Entries)
	}
}
