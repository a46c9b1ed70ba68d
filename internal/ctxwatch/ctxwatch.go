// Package ctxwatch answers the items registered under a context when the
// context ends, with one context.AfterFunc per context rather than one per
// item. A transport registers every publish waiting for its confirm under
// the publish's context; a publisher that sends thousands of events with
// one context then pays for one registration, not thousands (an AfterFunc
// on a context with a deadline costs about as much as the publish).
package ctxwatch

import (
	"context"
	"sync"
)

// Set holds items by the context they were added with. Its zero value is
// not usable; call New.
type Set[T comparable] struct {
	ended func(item T, err error)

	mu sync.Mutex
	// Contexts that end together share their Done channel (a context
	// with a value and its parent): one group for them.
	groups map[<-chan struct{}]*group[T]
}

type group[T comparable] struct {
	items map[T]struct{}
	stop  func() bool
}

// New returns a Set that calls ended, outside any lock, for each item
// still in it when its context ends, with the context's error.
func New[T comparable](ended func(item T, err error)) *Set[T] {
	return &Set[T]{ended: ended, groups: make(map[<-chan struct{}]*group[T])}
}

// Add registers item under ctx; it does nothing for a context that never
// ends.
func (s *Set[T]) Add(ctx context.Context, item T) {
	done := ctx.Done()
	if done == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[done]
	if g == nil {
		g = &group[T]{items: make(map[T]struct{})}
		s.groups[done] = g
		g.stop = context.AfterFunc(ctx, func() { s.end(ctx, done) })
	}
	g.items[item] = struct{}{}
}

// Remove forgets item, added under ctx; the last item of a context takes
// its registration with it.
func (s *Set[T]) Remove(ctx context.Context, item T) {
	done := ctx.Done()
	if done == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[done]
	if g == nil {
		return
	}
	delete(g.items, item)
	if len(g.items) == 0 {
		g.stop()
		delete(s.groups, done)
	}
}

func (s *Set[T]) end(ctx context.Context, done <-chan struct{}) {
	s.mu.Lock()
	g := s.groups[done]
	delete(s.groups, done)
	s.mu.Unlock()
	if g == nil {
		return
	}
	err := ctx.Err()
	for item := range g.items {
		s.ended(item, err)
	}
}
