package client

import (
	"context"
	"errors"
	"iter"
	"slices"
	"time"
)

// followOverlap is how far before the newest entry seen each poll of
// Follow looks again, against a server without the live stream: an event
// created earlier can be stored later (another publisher, another batch),
// and the ids already returned weed out repeats. An entry stored more than
// this after its createdAt (a backlog caught up after a restart) is not
// returned by such polling; the stream has no such limit.
const followOverlap = 5 * time.Second

// Follow returns the newest q.Limit entries (every one when 0), oldest
// first, then the entries stored after, as they come, until ctx is done;
// it then ends without an error. Each value is a batch: the entries that
// arrived together. q.Order, q.Page and q.Cursor are ignored. An error
// ends it, after it is yielded.
//
// It reads herald's live stream, GET /logs/stream: new entries in the
// order they were stored, each once, however late after its createdAt;
// a stream that breaks (a server restart) is opened again where it
// stopped, for up to a minute of trying. Against a server without the
// stream (OIH's audit log) it polls GET /logs (WithPollInterval).
func (c *Client) Follow(ctx context.Context, q Query) iter.Seq2[[]Entry, error] {
	return func(yield func([]Entry, error) bool) {
		emit := func(es []Entry) bool { return yield(es, nil) }
		err := c.followStream(ctx, q, emit)
		if errors.Is(err, errNoStream) {
			err = c.poll(ctx, q, emit)
		}
		if err != nil && ctx.Err() == nil {
			yield(nil, err)
		}
	}
}

// poll is Follow by polling. The API has no "stored after" filter, so each
// poll asks for the entries created since followOverlap before the newest
// one seen, and hands on those not handed on before (by id) that were not
// already there at the start: an entry is new when its seq is above every
// seq of the first answer (or, from a server without seq, such as OIH's,
// when it was created after them). It returns nil when emit returns false
// or ctx is done.
func (c *Client) poll(ctx context.Context, q Query, emit func([]Entry) bool) error {
	q.Order, q.Page, q.Cursor = NewestFirst, 0, ""
	var backlog []Entry
	for e, err := range c.All(ctx, q) {
		if err != nil {
			return err
		}
		backlog = append(backlog, e)
	}
	slices.Reverse(backlog)
	s := newFollowState(backlog)
	if es := s.fresh(backlog, true); len(es) > 0 && !emit(es) {
		return nil
	}
	t := time.NewTicker(c.pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		next := q
		next.Order, next.Limit = OldestFirst, 0
		if !s.newest.IsZero() {
			if from := s.newest.Add(-followOverlap); from.After(q.From) {
				next.From = from
			}
		}
		for p, err := range c.Pages(ctx, next) {
			if err != nil {
				return err
			}
			if es := s.fresh(p.Entries, false); len(es) > 0 && !emit(es) {
				return nil
			}
		}
		s.forget()
	}
}

// followState is what poll remembers between polls.
type followState struct {
	startSeq int64     // the highest seq of the first answer
	startAt  time.Time // its latest createdAt
	newest   time.Time // the latest createdAt seen
	seen     map[string]time.Time
}

func newFollowState(first []Entry) *followState {
	s := &followState{seen: make(map[string]time.Time)}
	for _, e := range first {
		s.startSeq = max(s.startSeq, e.Seq)
		if e.CreatedAt.After(s.startAt) {
			s.startAt = e.CreatedAt
		}
	}
	s.newest = s.startAt
	return s
}

// existed reports whether e was there when following started.
func (s *followState) existed(e Entry) bool {
	if e.Seq != 0 {
		return e.Seq <= s.startSeq
	}
	return !e.CreatedAt.After(s.startAt)
}

// fresh returns the entries of es not returned before; from a poll (not
// the first answer) only those that were not there at the start.
func (s *followState) fresh(es []Entry, first bool) []Entry {
	out := es[:0:0]
	for _, e := range es {
		if _, dup := s.seen[e.ID]; dup && e.ID != "" {
			continue
		}
		s.seen[e.ID] = e.CreatedAt
		if e.CreatedAt.After(s.newest) {
			s.newest = e.CreatedAt
		}
		if first || !s.existed(e) {
			out = append(out, e)
		}
	}
	return out
}

// forget drops the ids too old to come back in a poll.
func (s *followState) forget() {
	for id, at := range s.seen {
		if at.Before(s.newest.Add(-2 * followOverlap)) {
			delete(s.seen, id)
		}
	}
}
