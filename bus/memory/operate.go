package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/topic"
)

var (
	_ driver.DeadLetterReplayer = (*conn)(nil)
	_ driver.DeadLetterPurger   = (*conn)(nil)
	_ driver.BindingSetter      = (*conn)(nil)
	_ driver.QueueInspector     = (*conn)(nil)
)

// ReplayDeadLetters puts the dead letters of queue named by ids (all when
// ids is empty) back at the end of queue, as first deliveries, and
// returns them. A queue that no longer exists keeps its dead letters.
func (c *conn) ReplayDeadLetters(ctx context.Context, queue string, ids []string) ([]driver.DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return nil, fmt.Errorf("memory: replay dead letters of %q: %w", queue, driver.ErrNoQueue)
	}
	var out []driver.DeadLetter
	b.dead[queue] = slices.DeleteFunc(b.dead[queue], func(d deadLetter) bool {
		if len(ids) > 0 && !slices.Contains(ids, d.dl.ID) {
			return false
		}
		b.publishes++ // a replay is delivered as a new publish
		q.ready = append(q.ready, &message{m: d.m, attempt: 1, publish: b.publishes})
		dl := d.dl
		dl.Body = bytes.Clone(dl.Body)
		out = append(out, dl)
		return true
	})
	b.dispatch(q)
	return out, nil
}

// PurgeDeadLetters deletes the dead letters of queue named by ids (all
// when ids is empty).
func (c *conn) PurgeDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	before := len(b.dead[queue])
	b.dead[queue] = slices.DeleteFunc(b.dead[queue], func(d deadLetter) bool {
		return len(ids) == 0 || slices.Contains(ids, d.dl.ID)
	})
	return before - len(b.dead[queue]), nil
}

// SetBindings makes queue's bindings patterns, removing those an earlier
// SetBindings recorded and patterns lacks; bindings consumers added
// without it stay.
func (c *conn) SetBindings(ctx context.Context, name string, patterns []string) (driver.BindingChanges, error) {
	if err := ctx.Err(); err != nil {
		return driver.BindingChanges{}, err
	}
	for _, p := range patterns {
		if err := topic.ValidatePattern(p); err != nil {
			return driver.BindingChanges{}, fmt.Errorf("memory: bind %q: %w", p, err)
		}
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.closed {
		return driver.BindingChanges{}, driver.ErrClosed
	}
	q := b.queues[name]
	if q == nil {
		q = &queue{name: name}
		b.queues[name] = q
	}
	var ch driver.BindingChanges
	old := b.recorded[name]
	for _, p := range old {
		if !slices.Contains(patterns, p) {
			q.bindings = slices.DeleteFunc(q.bindings, func(b string) bool { return b == p })
			ch.Removed = append(ch.Removed, p)
		}
	}
	for _, p := range patterns {
		q.bind(p)
		if !slices.Contains(old, p) {
			ch.Added = append(ch.Added, p)
		}
	}
	rec := slices.Clone(patterns)
	slices.Sort(rec)
	b.recorded[name] = slices.Compact(rec)
	return ch, nil
}

// InspectQueue reports queue's messages, consumers, retries, dead letters
// and recorded bindings.
func (c *conn) InspectQueue(ctx context.Context, queue string) (driver.QueueInfo, error) {
	if err := ctx.Err(); err != nil {
		return driver.QueueInfo{}, err
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return driver.QueueInfo{}, fmt.Errorf("memory: queue %q: %w", queue, driver.ErrNoQueue)
	}
	info := driver.QueueInfo{
		Depth:       len(q.ready),
		Consumers:   len(q.consumers),
		Retrying:    q.retrying,
		DeadLetters: len(b.dead[queue]),
		Bindings:    slices.Clone(b.recorded[queue]),
	}
	for _, cons := range q.consumers {
		// Given to the consumer counts as handed out, as a broker's
		// prefetch does.
		info.Unacked += len(cons.buf) + len(cons.unacked)
	}
	return info, nil
}
