package auditlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/sqlite"
	"github.com/heraldhq/herald/event"
)

// openSQLite opens a store in the test's temporary folder, closed when
// the test ends.
func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// feedEntries are n entries from number from on, alternating between
// tenants t0 and t1.
func feedEntries(from, n int) []auditlog.Entry {
	out := make([]auditlog.Entry, n)
	for i := range out {
		k := from + i
		tenant := fmt.Sprintf("t%d", k%2)
		out[i] = auditlog.Entry{
			ID: fmt.Sprintf("e%06d", k), Name: "flowrepo.flow.created", ServiceName: "flow-repository",
			CreatedAt: time.UnixMilli(1_700_000_000_000 + int64(k)), ReceivedAt: time.UnixMilli(1_700_000_000_000 + int64(k)),
			Tenant: tenant, Payload: json.RawMessage(fmt.Sprintf(`{"tenant":%q,"n":"%d"}`, tenant, k)),
		}
	}
	return out
}

// collect reads f until it has n entries or the deadline passes.
func collect(t *testing.T, f *auditlog.Follower, n int, timeout time.Duration) ([]auditlog.Entry, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []auditlog.Entry
	for len(got) < n {
		es, err := f.Next(ctx)
		if err != nil {
			return got, err
		}
		if len(es) > 0 {
			got = append(got, es...)
			continue
		}
		select {
		case <-f.Ready():
		case <-ctx.Done():
			return got, fmt.Errorf("%d of %d entries within %v", len(got), n, timeout)
		}
	}
	return got, nil
}

func TestFollowerGetsStoredThenNewEntriesOnceInOrder(t *testing.T) {
	store := openSQLite(t)
	ctx := context.Background()
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, PageSize: 100, Poll: time.Hour})
	defer feed.Close()
	if _, err := store.Append(ctx, feedEntries(0, 1000)); err != nil {
		t.Fatal(err)
	}
	f, err := feed.Follow(auditlog.Query{Tenant: "t1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Entries keep being stored while the follower catches up and joins,
	// in batches, each announced as the ingester announces its commits.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range 40 {
			if _, err := store.Append(ctx, feedEntries(1000+b*50, 50)); err != nil {
				t.Error(err)
				return
			}
			feed.Notify()
		}
	}()
	got, err := collect(t, f, 1500, 30*time.Second)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range got {
		if want := fmt.Sprintf("e%06d", 2*i+1); e.ID != want {
			t.Fatalf("entry %d is %s, want %s (the tenant's entries, in order, each once)", i, e.ID, want)
		}
	}
	if f.Position() != got[len(got)-1].Seq {
		t.Errorf("position %d, want the last entry's %d", f.Position(), got[len(got)-1].Seq)
	}
}

func TestFollowingFromTheHeadGetsOnlyNewEntries(t *testing.T) {
	store := openSQLite(t)
	ctx := context.Background()
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Poll: time.Hour})
	defer feed.Close()
	if _, err := store.Append(ctx, feedEntries(0, 10)); err != nil {
		t.Fatal(err)
	}
	head, err := feed.Head(ctx)
	if err != nil || head == 0 {
		t.Fatalf("head %d, %v", head, err)
	}
	f, _ := feed.Follow(auditlog.Query{}, head)
	defer f.Close()
	if es, err := f.Next(ctx); err != nil || len(es) != 0 {
		t.Fatalf("before anything new: %d entries, %v", len(es), err)
	}
	if _, err := store.Append(ctx, feedEntries(10, 3)); err != nil {
		t.Fatal(err)
	}
	feed.Notify()
	got, err := collect(t, f, 3, 10*time.Second)
	if err != nil || got[0].ID != "e000010" || got[2].ID != "e000012" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestFeedFindsEntriesAnotherProcessStored(t *testing.T) {
	store := openSQLite(t)
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Poll: 20 * time.Millisecond})
	defer feed.Close()
	f, _ := feed.Follow(auditlog.Query{}, 0)
	defer f.Close()
	if _, err := collect(t, f, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	// No Notify: as when another replica stored them.
	if _, err := store.Append(context.Background(), feedEntries(0, 5)); err != nil {
		t.Fatal(err)
	}
	if got, err := collect(t, f, 5, 10*time.Second); err != nil {
		t.Fatalf("%v (%d entries)", err, len(got))
	}
}

func TestSlowFollowerIsDroppedAndTheOthersGoOn(t *testing.T) {
	store := openSQLite(t)
	ctx := context.Background()
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Buffer: 10, PageSize: 5, Poll: time.Hour})
	defer feed.Close()
	slow, _ := feed.Follow(auditlog.Query{}, 0)
	defer slow.Close()
	fast, _ := feed.Follow(auditlog.Query{}, 0)
	defer fast.Close()
	for _, f := range []*auditlog.Follower{slow, fast} {
		for range 2 { // joins, then reads the store once more: live
			if _, err := f.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []auditlog.Entry
	for b := range 10 {
		// Append returns whatever the slow follower does: it holds
		// nobody up.
		if _, err := store.Append(ctx, feedEntries(b*5, 5)); err != nil {
			t.Fatal(err)
		}
		feed.Notify()
		es, err := collect(t, fast, 5, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, es...)
	}
	if len(got) != 50 {
		t.Errorf("the fast follower got %d entries, want 50", len(got))
	}
	_, err := collect(t, slow, 50, 10*time.Second)
	if !errors.Is(err, auditlog.ErrFollowerTooSlow) {
		t.Fatalf("slow follower: %v, want ErrFollowerTooSlow", err)
	}
	// From its position, it can follow again and miss nothing.
	again, _ := feed.Follow(auditlog.Query{}, slow.Position())
	defer again.Close()
	rest, err := collect(t, again, 50-int(slow.Position()), 10*time.Second)
	if err != nil || rest[len(rest)-1].ID != "e000049" {
		t.Fatalf("following again from %d: %v", slow.Position(), err)
	}
}

func TestClosingTheFeedEndsItsFollowers(t *testing.T) {
	store := openSQLite(t)
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store})
	f, _ := feed.Follow(auditlog.Query{}, 0)
	defer f.Close()
	if _, err := f.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	feed.Close()
	if _, err := collect(t, f, 1, 10*time.Second); !errors.Is(err, auditlog.ErrFeedClosed) {
		t.Fatalf("after Close: %v, want ErrFeedClosed", err)
	}
	if _, err := feed.Follow(auditlog.Query{}, 0); !errors.Is(err, auditlog.ErrFeedClosed) {
		t.Fatalf("Follow after Close: %v", err)
	}
}

func TestIngesterAnnouncesItsCommits(t *testing.T) {
	store := openSQLite(t)
	commits := make(chan struct{}, 10)
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, OnCommit: func() { commits <- struct{}{} }})
	defer in.Close()
	ev, err := event.New("flowrepo.flow.created", json.RawMessage(`{"flowId":"f1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-commits:
	default:
		t.Fatal("Handle returned before OnCommit was called")
	}
	// The same event again stores nothing new: nothing to announce.
	if err := in.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if len(commits) != 0 {
		t.Error("a batch that stored nothing new was announced")
	}
}

// racingStore stores an entry right after a follower's read comes back
// short: the entry lands between that read and the feed's start.
type racingStore struct {
	auditlog.Store
	once sync.Once
	race func()
}

func (s *racingStore) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	p, err := s.Store.Query(ctx, q)
	if q.Order == auditlog.BySeq && q.Tenant == "t1" && err == nil && len(p.Entries) < q.Limit {
		s.once.Do(s.race)
	}
	return p, err
}

func TestAnEntryStoredWhileAFollowerJoinsIsNotMissed(t *testing.T) {
	base := openSQLite(t)
	ctx := context.Background()
	if _, err := base.Append(ctx, feedEntries(0, 4)); err != nil {
		t.Fatal(err)
	}
	store := &racingStore{Store: base}
	store.race = func() {
		if _, err := base.Append(ctx, feedEntries(4, 2)); err != nil {
			t.Error(err)
		}
	}
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: store, Poll: time.Hour})
	defer feed.Close()
	f, _ := feed.Follow(auditlog.Query{Tenant: "t1"}, 0)
	defer f.Close()
	got, err := collect(t, f, 3, 5*time.Second)
	if err != nil {
		t.Fatalf("%v: got %d entries; the one stored while joining is missing", err, len(got))
	}
	if got[2].ID != "e000005" {
		t.Errorf("third entry %s, want e000005", got[2].ID)
	}
}

// A follower's waiting entries are bounded in bytes too: one that lets
// large entries pile up is dropped, however few they are; and reading
// the store in pages cut at their byte budget, a follower catching up
// and the feed's reader both still get every entry, once.
func TestFollowersAreBoundedInBytes(t *testing.T) {
	store := openSQLite(t)
	ctx := context.Background()
	big := func(from, n int) []auditlog.Entry {
		es := feedEntries(from, n)
		for i := range es {
			es[i].Payload = json.RawMessage(fmt.Sprintf(`{"tenant":%q,"blob":%q}`, es[i].Tenant, strings.Repeat("x", 1<<10)))
		}
		return es
	}
	if _, err := store.Append(ctx, big(0, 20)); err != nil {
		t.Fatal(err)
	}
	// Pages of about 3 entries: catching up, then live.
	paged := auditlog.NewFeed(auditlog.FeedConfig{Store: store, PageBytes: 3 << 10, Poll: time.Hour})
	defer paged.Close()
	f, _ := paged.Follow(auditlog.Query{}, 0)
	defer f.Close()
	got, err := collect(t, f, 20, 10*time.Second)
	if err != nil || len(got) != 20 || got[19].ID != "e000019" {
		t.Fatalf("catching up: %d entries, %v", len(got), err)
	}
	if _, err := store.Append(ctx, big(20, 12)); err != nil {
		t.Fatal(err)
	}
	paged.Notify()
	live, err := collect(t, f, 12, 10*time.Second)
	if err != nil || live[0].ID != "e000020" || live[11].ID != "e000031" {
		t.Fatalf("live: %d entries, %v", len(live), err)
	}

	// 12 KiB handed on at once to a follower allowed 10 KiB.
	small := auditlog.NewFeed(auditlog.FeedConfig{Store: store, BufferBytes: 10 << 10, Poll: time.Hour})
	defer small.Close()
	slow, _ := small.Follow(auditlog.Query{}, 32) // from the head
	defer slow.Close()
	for range 2 { // joins, then reads the store once more: live
		if _, err := slow.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Append(ctx, big(32, 12)); err != nil {
		t.Fatal(err)
	}
	small.Notify()
	if _, err := collect(t, slow, 12, 10*time.Second); !errors.Is(err, auditlog.ErrFollowerTooSlow) {
		t.Fatalf("a follower holding 12 KiB: %v, want ErrFollowerTooSlow", err)
	}
}

// countingStore counts the reads of the store it wraps.
type countingStore struct {
	auditlog.Store
	reads atomic.Int64
}

func (s *countingStore) Query(ctx context.Context, q auditlog.Query) (auditlog.Page, error) {
	s.reads.Add(1)
	return s.Store.Query(ctx, q)
}

// TestCommittedEntriesAreHandedOnAsStored: the entries the ingester
// commits reach a live follower without the feed reading them back,
// exactly as a read returns them; entries stored meanwhile by another
// process (a gap before the commit's) are read from the store, in order.
func TestCommittedEntriesAreHandedOnAsStored(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	counted := &countingStore{Store: store}
	feed := auditlog.NewFeed(auditlog.FeedConfig{Store: counted, Poll: time.Hour})
	defer feed.Close()
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: store, FlushInterval: time.Millisecond, OnCommitted: feed.Committed})
	defer in.Close()
	handle := func(payload string) {
		t.Helper()
		ev, err := event.New("flowrepo.flow.created", json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	f, err := feed.Follow(auditlog.Query{Scope: &auditlog.Scope{Tenant: "t1"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Catch up (nothing stored) and go live: two short reads.
	for range 2 {
		if es, err := f.Next(ctx); err != nil || len(es) != 0 {
			t.Fatalf("catching up: %v, %v", es, err)
		}
	}
	reads := counted.reads.Load()
	for i := range 4 {
		handle(fmt.Sprintf(`{"tenant":"t%d","n":%d}`, i%2+1, i))
	}
	got, err := collect(t, f, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := counted.reads.Load() - reads; n != 0 {
		t.Errorf("the feed read the store %d times for entries handed on", n)
	}
	all, err := store.Query(ctx, auditlog.Query{Order: auditlog.BySeq, Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, all.Entries) {
		t.Errorf("handed on:\n%+v\nstored:\n%+v", got, all.Entries)
	}

	// Another process stores an entry; the next commit follows a gap.
	if _, err := store.Append(ctx, feedEntries(100, 2)[1:]); err != nil { // t1
		t.Fatal(err)
	}
	handle(`{"tenant":"t1","n":5}`)
	got, err = collect(t, f, 2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ID != "e000101" || !strings.Contains(string(got[1].Payload), `"n":5`) {
		t.Errorf("after the gap: %+v", got)
	}
}
