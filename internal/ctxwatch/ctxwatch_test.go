package ctxwatch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu   sync.Mutex
	got  map[int]error
	each chan int
}

func newRecorder() *recorder { return &recorder{got: map[int]error{}, each: make(chan int, 100)} }

func (r *recorder) ended(item int, err error) {
	r.mu.Lock()
	r.got[item] = err
	r.mu.Unlock()
	r.each <- item
}

func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	for range n {
		select {
		case <-r.each:
		case <-timer.C:
			t.Fatalf("fewer than %d items answered", n)
		}
	}
}

func TestItemsOfAnEndedContextAreAnsweredWithItsError(t *testing.T) {
	r := newRecorder()
	s := New(r.ended)
	ctx, cancel := context.WithCancel(context.Background())
	other, cancelOther := context.WithCancel(context.Background())
	defer cancelOther()
	child := context.WithValue(ctx, struct{}{}, "v") // shares ctx's Done channel
	s.Add(ctx, 1)
	s.Add(ctx, 2)
	s.Add(child, 3)
	s.Add(other, 4)
	s.Remove(ctx, 2)
	if len(s.groups) != 2 {
		t.Errorf("%d registrations for two contexts' Done channels, want 2", len(s.groups))
	}
	cancel()
	r.wait(t, 2)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, item := range []int{1, 3} {
		if err := r.got[item]; !errors.Is(err, context.Canceled) {
			t.Errorf("item %d answered with %v, want context.Canceled", item, err)
		}
	}
	for _, item := range []int{2, 4} {
		if _, ok := r.got[item]; ok {
			t.Errorf("item %d answered, but it was removed or its context lives", item)
		}
	}
}

func TestTheLastRemovalDropsTheRegistration(t *testing.T) {
	s := New(func(int, error) { t.Error("an item was answered") })
	ctx, cancel := context.WithCancel(context.Background())
	s.Add(ctx, 1)
	s.Add(ctx, 2)
	s.Remove(ctx, 1)
	s.Remove(ctx, 2)
	s.Remove(ctx, 3) // never added: nothing happens
	if len(s.groups) != 0 {
		t.Errorf("%d registrations left after every item was removed", len(s.groups))
	}
	cancel()
	s.Add(context.Background(), 5) // a context that never ends is not watched
	if len(s.groups) != 0 {
		t.Errorf("a context that never ends was registered")
	}
}
