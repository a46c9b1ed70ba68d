package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/bus/driver"
)

// HeaderReplayQueue marks a replayed dead letter with the queue it is for:
// the consumers of every other queue acknowledge it unseen.
const HeaderReplayQueue = "Herald-Replay-Queue"

// ReplayDeadLetters publishes the dead letters of queue named by ids (all
// when ids is empty) to the events stream again, under their event's
// subject and for queue only (HeaderReplayQueue), as new messages (the
// next delivery is attempt 1), and deletes each from the dead-letter
// stream once the server stored its copy.
func (t *Transport) ReplayDeadLetters(ctx context.Context, queue string, ids []string) ([]driver.DeadLetter, error) {
	return t.takeDeadLetters(ctx, queue, ids, func(ctx context.Context, raw *jetstream.RawStreamMsg) error {
		h := natsgo.Header{}
		for k, v := range raw.Header {
			if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Herald-") {
				continue
			}
			h[k] = slices.Clone(v)
		}
		// A replay sent again (a lost PubAck) is stored once.
		h.Set(jetstream.MsgIDHeader, "herald-replay:"+safeToken(queue)+":"+strconv.FormatUint(raw.Sequence, 10))
		h.Set(HeaderReplayQueue, queue)
		subject := raw.Header.Get(HeaderOriginalSubject)
		if subject == "" {
			subject = t.o.prefix + "." + raw.Header.Get(HeaderEvent)
		}
		return t.publishWait(ctx, &natsgo.Msg{Subject: subject, Data: raw.Data, Header: h})
	})
}

// PurgeDeadLetters deletes the dead letters of queue named by ids (all
// when ids is empty).
func (t *Transport) PurgeDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	dls, err := t.takeDeadLetters(ctx, queue, ids, nil)
	return len(dls), err
}

// takeDeadLetters deletes the dead letters of queue named by ids (all when
// ids is empty) from the dead-letter stream, after do succeeded for each
// when do is not nil.
func (t *Transport) takeDeadLetters(ctx context.Context, queue string, ids []string, do func(context.Context, *jetstream.RawStreamMsg) error) ([]driver.DeadLetter, error) {
	dls, err := t.DeadLetters(ctx, queue)
	if err != nil {
		return nil, err
	}
	stream, err := t.js.Stream(ctx, t.o.deadStream)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %q: %w", queue, err)
	}
	var out []driver.DeadLetter
	for _, dl := range dls {
		if len(ids) > 0 && !slices.Contains(ids, dl.ID) {
			continue
		}
		seq, err := strconv.ParseUint(dl.ID, 10, 64)
		if err != nil {
			return out, fmt.Errorf("dead letter %q of %q: not a stream sequence", dl.ID, queue)
		}
		if do != nil {
			raw, err := stream.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // taken meanwhile
			}
			if err != nil {
				return out, fmt.Errorf("dead letter %s of %q: %w", dl.ID, queue, err)
			}
			if err := do(ctx, raw); err != nil {
				return out, fmt.Errorf("dead letter %s of %q: %w", dl.ID, queue, err)
			}
		}
		if err := stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, fmt.Errorf("dead letter %s of %q: remove: %w", dl.ID, queue, err)
		}
		out = append(out, dl)
	}
	return out, nil
}

// SetBindings makes the durable consumer of queue filter exactly the
// subjects of patterns and record exactly patterns as its bindings,
// whatever replicas bound before: on NATS every binding is herald's. A
// consumer that does not exist yet is left for the first Consume to
// create, with these patterns.
func (t *Transport) SetBindings(ctx context.Context, queue string, patterns []string) (driver.BindingChanges, error) {
	var changes driver.BindingChanges
	name := safeToken(queue)
	for range 10 {
		single := t.single.Load()
		cons, err := t.js.Consumer(ctx, t.o.stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			changes.Added = slices.Compact(slices.Sorted(slices.Values(patterns)))
			return changes, nil
		}
		if err != nil {
			return changes, fmt.Errorf("nats set bindings of %q: %w", queue, err)
		}
		cfg := cons.CachedInfo().Config
		old, _ := bindingsOf(cfg)
		var want []string
		for _, p := range patterns {
			want = append(want, patternSubjects(t.o.prefix, p)...)
		}
		setFilters(&cfg, filterSet(want, single))
		setBindings(&cfg, queue, patterns, single)
		err = t.updateConsumer(ctx, cfg)
		if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) && !single {
			t.single.Store(true)
			continue
		}
		if err != nil {
			return changes, fmt.Errorf("nats set bindings of %q to %s: %w", queue, strings.Join(patterns, " "), err)
		}
		for _, p := range old {
			if !slices.Contains(patterns, p) {
				changes.Removed = append(changes.Removed, p)
			}
		}
		for _, p := range patterns {
			if !slices.Contains(old, p) && !slices.Contains(changes.Added, p) {
				changes.Added = append(changes.Added, p)
			}
		}
		return changes, nil
	}
	return changes, fmt.Errorf("nats set bindings of %q: the server kept refusing the consumer's filter", queue)
}

// updateConsumer updates a consumer's configuration. nats.go takes an
// answer without the filter subjects it asked for as a server that has only
// one; nats-server 2.15 gives such an answer for a consumer it recovered
// from disk although it applied them, so the consumer is read back before
// believing it.
func (t *Transport) updateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) error {
	_, err := t.js.UpdateConsumer(ctx, t.o.stream, cfg)
	if !errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		return err
	}
	name := cfg.Durable
	if name == "" {
		name = cfg.Name
	}
	cons, rerr := t.js.Consumer(ctx, t.o.stream, name)
	if rerr == nil {
		have := slices.Sorted(slices.Values(cons.CachedInfo().Config.FilterSubjects))
		if slices.Equal(have, slices.Sorted(slices.Values(cfg.FilterSubjects))) {
			return nil
		}
	}
	return err
}

// InspectQueue reads the durable consumer of queue: its pending,
// unacknowledged and redelivered messages, its waiting pull requests (one
// per reading replica) and its recorded bindings; and the count of its
// dead letters in the dead-letter stream.
func (t *Transport) InspectQueue(ctx context.Context, queue string) (driver.QueueInfo, error) {
	var info driver.QueueInfo
	cons, err := t.js.Consumer(ctx, t.o.stream, safeToken(queue))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return info, fmt.Errorf("nats queue %q: %w", queue, driver.ErrNoQueue)
	}
	if err != nil {
		return info, fmt.Errorf("nats queue %q: %w", queue, err)
	}
	ci := cons.CachedInfo()
	info.Depth = int(ci.NumPending)
	info.Unacked = ci.NumAckPending
	info.Consumers = ci.NumWaiting
	info.Retrying = ci.NumRedelivered
	if bindings, _ := bindingsOf(ci.Config); len(bindings) > 0 {
		info.Bindings = slices.Compact(slices.Sorted(slices.Values(bindings)))
	}
	stream, err := t.js.Stream(ctx, t.o.deadStream)
	if err != nil {
		return info, fmt.Errorf("nats dead letters of %q: %w", queue, err)
	}
	si, err := stream.Info(ctx, jetstream.WithSubjectFilter(t.o.deadPrefix+"."+safeToken(queue)+".>"))
	if err != nil {
		return info, fmt.Errorf("nats dead letters of %q: %w", queue, err)
	}
	for _, n := range si.State.Subjects {
		info.DeadLetters += int(n)
	}
	return info, nil
}
