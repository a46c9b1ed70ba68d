package auditlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestEntriesOfADeletedUserStoredLaterAreAnonymised: an event of a user
// that reaches the store after the user's deletion was handled (a
// redelivery after a crash; another replica's batch committing a moment
// later) is anonymised too, whether it names the user by id or by e-mail.
func TestEntriesOfADeletedUserStoredLaterAreAnonymised(t *testing.T) {
	f := newFixture(t)
	f.publish(t, "iam.user.created", `{"id":"u1","username":"jane@example.com"}`)
	f.publish(t, "iam.user.created", `{"id":"u2","username":"joe@example.com"}`)
	f.waitTotal(t, auditlog.Query{}, 2)
	f.publish(t, "iam.user.deleted", `{"id":"u1"}`)
	withUser := func(e auditlog.Entry) string { return string(e.Payload) + " user=" + e.User }
	waitNoLeak := func(what string) string {
		t.Helper()
		return f.waitAbsent(t, what, withUser, `"u1"`, "jane@example.com", "user=u1")
	}
	waitNoLeak("after the deletion")

	// Published before the deletion, stored after it.
	f.publish(t, "iam.user.loginFailed", `{"user":"jane@example.com"}`)
	f.publish(t, "flowrepo.flow.created", `{"user":"u1","tenant":"t1","flowId":"f1"}`)
	f.publish(t, "iam.token.deleted", `{"account":"u1"}`)
	f.publish(t, "iam.user.loginFailed", `{"user":"joe@example.com"}`)
	f.waitTotal(t, auditlog.Query{}, 8) // with the erasure's record
	all := waitNoLeak("entries stored after the deletion")
	if !strings.Contains(all, "joe@example.com") || !strings.Contains(all, `"u2"`) {
		t.Errorf("another user's entries were anonymised:\n%s", all)
	}
}

// TestAUsernameLearnedAfterTheDeletionIsErasedToo: when the user's
// own iam.user.created is stored after their deletion was handled, its
// username is anonymised with it, and so is every entry naming the user by
// that username, before or after.
func TestAUsernameLearnedAfterTheDeletionIsErasedToo(t *testing.T) {
	f := newFixture(t)
	f.publish(t, "iam.user.loginFailed", `{"user":"kim@example.com"}`)
	f.publish(t, "iam.user.deleted", `{"id":"u7"}`)
	f.waitTotal(t, auditlog.Query{}, 3) // with the erasure's record
	f.publish(t, "iam.user.created", `{"id":"u7","username":"kim@example.com"}`)
	f.waitTotal(t, auditlog.Query{}, 4)
	f.publish(t, "iam.user.loginFailed", `{"user":"kim@example.com"}`)
	f.waitTotal(t, auditlog.Query{}, 5)
	f.waitAbsent(t, "after the user's own creation", func(e auditlog.Entry) string { return string(e.Payload) }, "kim@example.com", `"u7"`)
}

// waitAbsent waits until none of absent is in the stored entries, each
// written as line writes it, and returns them as written.
func (f *fixture) waitAbsent(t *testing.T, what string, line func(auditlog.Entry) string, absent ...string) string {
	t.Helper()
	var all string
	testkit.Eventually(t, 10*time.Second, func() error {
		p, err := f.store.Query(context.Background(), auditlog.Query{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, e := range p.Entries {
			b.WriteString(line(e) + "\n")
		}
		all = b.String()
		for _, a := range absent {
			if strings.Contains(all, a) {
				return fmt.Errorf("%s: the deleted user is still in the log:\n%s", what, all)
			}
		}
		return nil
	})
	return all
}

// TestCommitsAreAnnouncedAfterTheLateErasure: OnCommit, which wakes
// the live stream's readers, comes once the entries of a deleted user
// stored after the deletion are anonymised, so that a reader it wakes
// never reads them as they came; OnCommitted never hands them on as they
// came.
func TestCommitsAreAnnouncedAfterTheLateErasure(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	var announced []string // the newest entry, as each announcement finds it
	var handed []string    // the entries handed to OnCommitted
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: []byte("announce-test-erasure-key")})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, Eraser: x, FlushInterval: time.Millisecond, OnCommit: func() {
		p, err := store.Query(ctx, auditlog.Query{Order: auditlog.BySeqDesc, Limit: 1})
		if err != nil || len(p.Entries) == 0 {
			t.Errorf("the announced commit cannot be read: %v", err)
			return
		}
		announced = append(announced, string(p.Entries[0].Payload)+" user="+p.Entries[0].User)
	}, OnCommitted: func(es []auditlog.Entry) {
		// What the live feed hands on without reading the store.
		for _, e := range es {
			handed = append(handed, string(e.Payload)+" user="+e.User)
		}
	}})
	defer in.Close()
	// Each returns after the commit, its announcement included.
	handle := handleWith(t, in)
	handle("iam.user.created", `{"id":"u9","username":"nine@example.com"}`)
	handle("iam.user.deleted", `{"id":"u9"}`)
	before, handedBefore := len(announced), len(handed)
	if handedBefore == 0 {
		t.Error("no commit handed its entries on as stored")
	}
	handle("iam.user.loginFailed", `{"user":"nine@example.com"}`)
	handle("flowrepo.flow.created", `{"user":"u9","tenant":"t1","flowId":"f9"}`)
	for _, h := range handed[handedBefore:] {
		if strings.Contains(h, "nine@example.com") || strings.Contains(h, "u9") {
			t.Errorf("handed on as it came, before its anonymisation: %s", h)
		}
	}
	late := announced[before:]
	if len(late) != 2 {
		t.Fatalf("%d announcements of the 2 late entries: %q", len(late), late)
	}
	for _, a := range late {
		if strings.Contains(a, "nine@example.com") || strings.Contains(a, "u9") {
			t.Errorf("announced before its anonymisation: %s", a)
		}
	}
}

// hookStore runs before once before the next Append reaches the store.
type hookStore struct {
	*sqlite.Store
	before *func()
}

func (h hookStore) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	if f := *h.before; f != nil {
		*h.before = nil
		f()
	}
	return h.Store.Append(ctx, entries)
}

// TestAnErasureBetweenTheCheckAndTheCommitIsCaughtAfter: a batch looked
// up before a user's erasure was recorded, and committed after the
// erasure's rewrite had read the log, is erased by the check after its
// commit.
func TestAnErasureBetweenTheCheckAndTheCommitIsCaughtAfter(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	var before func()
	hooked := hookStore{store, &before}
	key := []byte("between-test-erasure-key")
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: hooked, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: hooked, Eraser: x, FlushInterval: time.Millisecond})
	defer in.Close()
	handle := handleWith(t, in)
	handle("iam.user.created", `{"id":"u5","username":"five@example.com"}`)
	// Another replica erases u5 after this batch was looked up, and
	// before it commits.
	other, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	before = func() {
		if _, err := other.EraseUser(ctx, "u5", auditlog.Entry{ID: "deletion"}); err != nil {
			t.Error(err)
		}
	}
	handle("iam.user.loginFailed", `{"user":"five@example.com"}`)
	p, err := store.Query(ctx, auditlog.Query{Name: "iam.user.loginFailed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || strings.Contains(string(p.Entries[0].Payload), "five@example.com") {
		t.Errorf("the entry committed after the erasure: %v", p.Entries)
	}
}

// rewriteHookStore runs hook at the start of every Rewrite.
type rewriteHookStore struct {
	*sqlite.Store
	hook func()
}

func (h rewriteHookStore) Rewrite(ctx context.Context, sel auditlog.Selection, edit auditlog.Edit) (int64, error) {
	h.hook()
	return h.Store.Rewrite(ctx, sel, edit)
}

// TestDeletionsArrivingTogetherAreErasedTogether: deletions that arrive
// while an erasure runs are erased in one rewrite once it is done, and
// each gets its own record counting its own user's entries.
func TestDeletionsArrivingTogetherAreErasedTogether(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	var entries []auditlog.Entry
	for i, u := range users {
		// User i has i+1 entries of their own, and one shared with u1.
		for j := range i + 1 {
			entries = append(entries, entryOf(t, "flowrepo.flow.created", `{"user":"`+u+`","flowId":"f`+u+string(rune('a'+j))+`"}`))
		}
		if u != "u1" {
			entries = append(entries, entryOf(t, "flowrepo.flow.modified", `{"user":"u1","ownerId":"`+u+`"}`))
		}
	}
	entries = append(entries, entryOf(t, "flowrepo.flow.created", `{"user":"u9","flowId":"kept"}`))
	if _, err := store.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	rewrites := 0
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: rewriteHookStore{store, func() {
		rewrites++
		if rewrites == 1 {
			close(started)
			<-release
		}
	}}, Key: []byte("together-test-erasure-key"), Mode: auditlog.ErasurePseudonymise})
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, len(users))
	errs := make(chan error, len(users))
	erase := func(i int) {
		n, err := x.EraseUser(ctx, users[i], auditlog.Entry{ID: "deletion-" + users[i]})
		counts[i] = n
		errs <- err
	}
	go erase(0)
	<-started
	for i := 1; i < len(users); i++ {
		go erase(i)
	}
	for x.Queued() < len(users)-1 {
		runtime.Gosched()
	}
	close(release)
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if rewrites != 2 {
		t.Errorf("%d rewrites for a deletion and four that arrived during it, want 2", rewrites)
	}
	// u1: own entry and the four shared; each other: own entries and the
	// shared one.
	want := []int64{5, 3, 4, 5, 6}
	for i := range users {
		if counts[i] != want[i] {
			t.Errorf("erasure of %s changed %d entries, want %d", users[i], counts[i], want[i])
		}
	}
	p, err := store.Query(ctx, auditlog.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	records, kept := 0, false
	for _, e := range p.Entries {
		kept = kept || strings.Contains(string(e.Payload), `"u9"`)
		if e.Name == auditlog.SubjectErased {
			records++
			continue
		}
		for _, u := range users {
			if strings.Contains(string(e.Payload), `"`+u+`"`) || e.User == u {
				t.Errorf("entry %s still names %s: %s", e.ID, u, e.Payload)
			}
		}
	}
	if records != len(users) {
		t.Errorf("%d erasure records, want %d", records, len(users))
	}
	if !kept {
		t.Error("another user's entry was erased")
	}
}

// handleWith returns a function that hands an event from IAM to in,
// returning once it is committed.
func handleWith(t *testing.T, in *auditlog.Ingester) func(name, payload string) {
	return func(name, payload string) {
		t.Helper()
		if err := in.Handle(context.Background(), eventFrom(t, "accounts", name, payload)); err != nil {
			t.Fatal(err)
		}
	}
}

// entryOf is a sealed entry of an event from IAM.
func entryOf(t *testing.T, name, payload string) auditlog.Entry {
	t.Helper()
	e, err := auditlog.EntryFromEvent(eventFrom(t, "accounts", name, payload), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := auditlog.Seal(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// eventFrom is an event called name, sent by service.
func eventFrom(t *testing.T, service, name, payload string) *event.Event {
	t.Helper()
	ev, err := event.New(name, json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	ev.Headers.ServiceName = service
	return ev
}

// TestARedeliveryErasesACopyStoredInClear: a replica that looked a batch
// up before a user's erasure was recorded, committed it after the
// erasure's rewrite had read the log, and stopped before its check, left
// an entry in clear. The redelivery, erased before its append and so not
// stored, has its check erase the stored copy; and it is not a conflict.
func TestARedeliveryErasesACopyStoredInClear(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	key := []byte("redelivery-test-erasure-key")
	other, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.EraseUser(ctx, "u7", auditlog.Entry{ID: "deletion"}); err != nil {
		t.Fatal(err)
	}
	ev := eventFrom(t, "flow-repository", "flowrepo.flow.created", `{"user":"u7","tenant":"t1","flowId":"f7","owners":[{"id":"u7","type":"user"}]}`)
	clear, err := auditlog.EntryFromEvent(ev, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, []auditlog.Entry{clear}); err != nil {
		t.Fatal(err)
	}

	metrics := auditlog.NewMetrics(prometheus.NewRegistry())
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: store, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, Eraser: x, Metrics: metrics, FlushInterval: time.Millisecond})
	defer in.Close()
	if err := in.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	p, err := store.Query(ctx, auditlog.Query{ID: ev.Headers.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || strings.Contains(string(p.Entries[0].Payload), "u7") || p.Entries[0].User == "u7" {
		for _, e := range p.Entries {
			t.Errorf("the copy stored in clear is still in clear after the redelivery: user %q, payload %s", e.User, e.Payload)
		}
	}
	if n := testutil.ToFloat64(metrics.Conflicts); n != 0 {
		t.Errorf("the redelivery of an erased event counted as %v conflicts", n)
	}
}
