package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// FeedConfig configures a Feed. Store is required.
type FeedConfig struct {
	Store Store
	// Poll is how often the feed reads the store for entries another
	// process stored (another replica on one PostgreSQL) while anyone
	// follows (default 1s). Entries this process stores are read at once:
	// Notify says when.
	Poll time.Duration
	// Buffer is the most entries waiting for one follower (default 1000).
	// A follower that falls further behind is dropped with
	// ErrFollowerTooSlow, so a slow reader never holds the others or the
	// ingest back; it may follow again from its position.
	Buffer int
	// BufferBytes bounds the same by the entries' headers and payloads
	// (default 16 MiB): a follower whose waiting entries hold more is
	// dropped the same way, so that followers hold at most Buffer
	// entries and BufferBytes bytes each, whatever the entries' sizes.
	BufferBytes int
	// PageSize is the most entries one store read takes (default 500),
	// PageBytes the most bytes of headers and payloads (default 4 MiB;
	// Query.MaxBytes).
	PageSize  int
	PageBytes int
	Logger    *slog.Logger
}

// Feed hands stored entries to followers as they are stored, in seq
// order. One reader reads each new entry once, after the last position it
// has handed on, and gives it to every follower whose query Matches it: a
// hundred followers cost one store read per commit, not a hundred. It
// reads when Notify says that this process committed entries, and every
// Poll while anyone follows. It runs only while it has followers.
type Feed struct {
	cfg  FeedConfig
	wake chan struct{} // Notify's signal, coalesced
	stop chan struct{} // closed by Close

	mu   sync.Mutex
	subs map[*Follower]struct{}
	// The followers by what their scope admits, so that an entry is
	// matched against the followers who may see it, not against all:
	// admins (no scope), and the others by user and by tenant.
	admins   map[*Follower]struct{}
	byUser   map[string]map[*Follower]struct{}
	byTenant map[string]map[*Follower]struct{}
	head     int64 // the last seq handed on, while running
	running  bool
	closed   bool
}

// ErrFollowerTooSlow ends a follower that fell more than FeedConfig.Buffer
// entries behind.
var ErrFollowerTooSlow = errors.New("follower fell too far behind")

// ErrFeedClosed ends every follower when the feed closes, and refuses new
// ones.
var ErrFeedClosed = errors.New("feed closed")

// NewFeed returns a feed of cfg.Store's entries. It panics when Store is
// nil, a wiring mistake.
func NewFeed(cfg FeedConfig) *Feed {
	if cfg.Store == nil {
		panic("auditlog: FeedConfig.Store is nil")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1000
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.BufferBytes <= 0 {
		cfg.BufferBytes = 16 << 20
	}
	if cfg.PageBytes <= 0 {
		cfg.PageBytes = 4 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Feed{
		cfg:      cfg,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		subs:     make(map[*Follower]struct{}),
		admins:   make(map[*Follower]struct{}),
		byUser:   make(map[string]map[*Follower]struct{}),
		byTenant: make(map[string]map[*Follower]struct{}),
	}
}

// Notify tells the feed that entries were committed. It never blocks: an
// ingester calls it after each batch.
func (f *Feed) Notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Committed hands on entries this process has just committed, as
// IngestConfig.OnCommitted gives them: when they are as stored (Seq set,
// AppendedAsStored) and follow on from the last entry handed on, the
// followers get them without a store read; otherwise (nil, a gap: entries
// another process stored between) it reads the store as Notify does. It
// never blocks on a follower.
func (f *Feed) Committed(entries []Entry) {
	if !AppendedAsStored(entries) || !f.handOn(entries) {
		f.Notify()
	}
}

// AppendedAsStored reports whether Store.Append set entries as stored:
// each with its seq, one after another.
func AppendedAsStored(entries []Entry) bool {
	if len(entries) == 0 || entries[0].Seq <= 0 {
		return false
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].Seq != entries[i-1].Seq+1 {
			return false
		}
	}
	return true
}

// handOn dispatches entries when they follow on from the last entry
// handed on (or repeat some of it), and reports whether it did; with
// nobody following there is nothing to do.
func (f *Feed) handOn(entries []Entry) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running || f.closed {
		return true
	}
	if entries[0].Seq > f.head+1 {
		return false
	}
	f.dispatchLocked(entries)
	return true
}

// Head returns the position of the last stored entry (0 when the store is
// empty): following from it hands on only what is stored from now on.
func (f *Feed) Head(ctx context.Context) (int64, error) {
	p, err := f.cfg.Store.Query(ctx, Query{Order: BySeqDesc, Limit: 1, SkipTotal: true})
	if err != nil {
		return 0, fmt.Errorf("read the last stored position: %w", err)
	}
	if len(p.Entries) == 0 {
		return 0, nil
	}
	return p.Entries[0].Seq, nil
}

// Follow returns a follower of the entries q selects (its filters and
// scope; its order and paging are ignored) stored after position after: it
// first reads those already stored from the store, then hands on new ones
// as they are stored, each once, in seq order, with no gap between the
// two. Close it when done.
func (f *Feed) Follow(q Query, after int64) (*Follower, error) {
	q.Order, q.Limit, q.Offset, q.After, q.AfterSeq, q.SkipTotal = BySeq, f.cfg.PageSize, 0, nil, 0, true
	q.MaxBytes = f.cfg.PageBytes
	if err := q.Validate(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return nil, ErrFeedClosed
	}
	return &Follower{
		feed:   f,
		q:      q,
		last:   max(after, 0),
		nobody: q.Scope != nil && q.Scope.User == "" && q.Scope.Tenant == "",
		ready:  make(chan struct{}, 1),
	}, nil
}

// Close ends every follower with ErrFeedClosed and stops the feed.
func (f *Feed) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	close(f.stop)
	for s := range f.subs {
		s.end(ErrFeedClosed)
		f.remove(s)
	}
}

// join registers s for new entries, starting the reader at the store's
// last position when nobody followed. The follower reads the store once
// more after joining, so an entry committed between its last read and the
// reader's start is not missed.
func (f *Feed) join(ctx context.Context, s *Follower) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrFeedClosed
	}
	if !f.running {
		// The one read done under the lock, when the reader starts: a
		// follower joining meanwhile must not be handed on entries from
		// an unknown position.
		head, err := f.Head(ctx)
		if err != nil {
			return err
		}
		f.head, f.running = head, true
		go f.run()
	}
	f.subs[s] = struct{}{}
	switch sc := s.q.Scope; {
	case sc == nil:
		f.admins[s] = struct{}{}
	default:
		if sc.User != "" {
			addTo(f.byUser, sc.User, s)
		}
		if sc.Tenant != "" {
			addTo(f.byTenant, sc.Tenant, s)
		}
	}
	return nil
}

func addTo(m map[string]map[*Follower]struct{}, k string, s *Follower) {
	if m[k] == nil {
		m[k] = make(map[*Follower]struct{})
	}
	m[k][s] = struct{}{}
}

func removeFrom(m map[string]map[*Follower]struct{}, k string, s *Follower) {
	delete(m[k], s)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

func (f *Feed) leave(s *Follower) {
	f.mu.Lock()
	f.remove(s)
	f.mu.Unlock()
}

// remove forgets s; f.mu is held.
func (f *Feed) remove(s *Follower) {
	delete(f.subs, s)
	delete(f.admins, s)
	if sc := s.q.Scope; sc != nil {
		removeFrom(f.byUser, sc.User, s)
		removeFrom(f.byTenant, sc.Tenant, s)
	}
}

// run reads new entries until nobody follows or the feed closes.
func (f *Feed) run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-f.wake:
		case <-t.C:
		}
		f.mu.Lock()
		if len(f.subs) == 0 || f.closed {
			f.running = false
			f.mu.Unlock()
			return
		}
		from := f.head
		f.mu.Unlock()
		if err := f.readFrom(ctx, from); err != nil && ctx.Err() == nil {
			f.cfg.Logger.Warn("live feed: reading new entries failed; trying again", "error", err)
		}
	}
}

// readFrom hands on every entry stored after position from.
func (f *Feed) readFrom(ctx context.Context, from int64) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		p, err := f.cfg.Store.Query(ctx, Query{Order: BySeq, AfterSeq: from, Limit: f.cfg.PageSize, MaxBytes: f.cfg.PageBytes, SkipTotal: true})
		if err != nil {
			return err
		}
		if len(p.Entries) == 0 {
			return nil
		}
		f.dispatch(p.Entries)
		from = p.Entries[len(p.Entries)-1].Seq
		if p.Next == nil {
			return nil
		}
	}
}

func (f *Feed) dispatch(entries []Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dispatchLocked(entries)
}

// dispatchLocked hands on the entries after the last handed on, each
// follower's in one push (one lock and one wake-up per follower, not per
// entry); f.mu is held.
func (f *Feed) dispatchLocked(entries []Entry) {
	var touched []*Follower
	for _, e := range entries {
		if e.Seq <= f.head {
			continue
		}
		f.head = e.Seq
		touched = f.offer(f.admins, e, touched)
		if e.User != "" {
			touched = f.offer(f.byUser[e.User], e, touched)
		}
		if e.Tenant != "" {
			touched = f.offer(f.byTenant[e.Tenant], e, touched)
		}
	}
	for _, s := range touched {
		if !s.push(s.pending, f.cfg.Buffer, f.cfg.BufferBytes) {
			f.remove(s)
		}
		clear(s.pending)
		s.pending = s.pending[:0]
	}
}

// offer adds e to the pending entries of those of subs whose query
// matches it, once each (a follower can be both the entry's user and of
// its tenant), and returns touched with the followers it added a first
// entry to; f.mu is held.
func (f *Feed) offer(subs map[*Follower]struct{}, e Entry, touched []*Follower) []*Follower {
	for s := range subs {
		if s.offered == e.Seq {
			continue
		}
		s.offered = e.Seq
		if s.q.Matches(e) {
			if len(s.pending) == 0 {
				touched = append(touched, s)
			}
			s.pending = append(s.pending, e)
		}
	}
	return touched
}

// Follower is one reader of a Feed: Next returns its entries, Ready says
// when new ones wait. It is for one goroutine at a time.
type Follower struct {
	feed   *Feed
	q      Query
	last   int64 // the last position handed out
	nobody bool  // a scope that selects nothing
	joined bool  // registered at the feed
	live   bool  // caught up after joining: reading the queue only
	ready  chan struct{}
	// offered is the seq of the last entry the feed considered for this
	// follower, pending those it is about to push, under the feed's lock.
	offered int64
	pending []Entry

	spare []Entry // the queue Next handed out last, reused next
	mu    sync.Mutex
	queue []Entry
	bytes int // of the headers and payloads in queue
	err   error
}

// maxSpare is the longest queue a follower keeps to reuse.
const maxSpare = 256

// Next returns the next entries, in seq order: a page read from the store
// while catching up, else those handed on since the last call, or none
// when nothing waits (wait on Ready). The entries are valid until the
// next call: their slice is then reused. An error ends the follower:
// ErrFollowerTooSlow, ErrFeedClosed, or a store's.
func (s *Follower) Next(ctx context.Context) ([]Entry, error) {
	if !s.live {
		es, err := s.catchUp(ctx)
		if err != nil || len(es) > 0 {
			return es, err
		}
	}
	// The queue handed out last time is done with: it takes the next
	// entries, so that a busy follower's queue does not grow anew each
	// time.
	clear(s.spare)
	s.mu.Lock()
	queue, err := s.queue, s.err
	s.queue, s.bytes = s.spare[:0], 0
	if err != nil {
		s.queue = nil
	}
	s.mu.Unlock()
	s.spare = nil
	if cap(queue) <= maxSpare { // no burst's queue is kept for ever
		s.spare = queue
	}
	out := queue[:0]
	for _, e := range queue {
		if e.Seq > s.last { // read from the store already while joining
			out = append(out, e)
			s.last = e.Seq
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, err
}

// catchUp reads the store after the last position; once a read comes back
// short it joins the feed, and once a read after joining comes back short
// the follower is live.
func (s *Follower) catchUp(ctx context.Context) ([]Entry, error) {
	var es []Entry
	if !s.nobody {
		q := s.q
		q.AfterSeq = s.last
		p, err := s.feed.cfg.Store.Query(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("read stored entries after %d: %w", s.last, err)
		}
		es = p.Entries
		if len(es) > 0 {
			s.last = es[len(es)-1].Seq
		}
		if p.Next != nil { // a full page, or one cut at its byte budget
			return es, nil
		}
	}
	if s.joined {
		s.live = true
		return es, nil
	}
	if err := s.feed.join(ctx, s); err != nil {
		return nil, err
	}
	s.joined = true
	s.signal() // read once more, now that new entries are handed on
	return es, nil
}

// Ready is signalled when entries may wait for Next, or the follower
// ended.
func (s *Follower) Ready() <-chan struct{} { return s.ready }

// Position is the position of the last entry Next returned, or where the
// follower started: following again from it misses nothing.
func (s *Follower) Position() int64 { return s.last }

// Close stops following.
func (s *Follower) Close() {
	if s.joined {
		s.feed.leave(s)
	}
}

// push queues es, or ends the follower when its queue is full; it
// reports whether the follower is still on.
func (s *Follower) push(es []Entry, limit, limitBytes int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range es {
		size := len(e.Headers) + len(e.Payload)
		if len(s.queue) >= limit || (len(s.queue) > 0 && s.bytes+size > limitBytes) {
			s.err = ErrFollowerTooSlow
			s.queue, s.bytes = nil, 0
			s.signal()
			return false
		}
		s.bytes += size
		s.queue = append(s.queue, e)
	}
	s.signal()
	return true
}

func (s *Follower) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	s.signal()
}

func (s *Follower) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
