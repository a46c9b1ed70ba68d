package amqp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/bus/driver"
	"github.com/heraldhq/herald/event"
)

// What herald's operators reach through the transport: dead letters to
// replay or purge, the bindings record, a queue's state. RabbitMQ's
// management plugin is not needed: everything goes through AMQP itself.

// deadID names a dead letter: the id herald gave it when it was
// dead-lettered; for one dead-lettered before herald gave ids, its
// message-id (the event id), else a digest of its body.
func deadID(d amqp091.Delivery) string {
	if id, ok := d.Headers[HeaderDeadID].(string); ok && id != "" {
		return id
	}
	if d.MessageId != "" {
		return d.MessageId
	}
	sum := sha256.Sum256(d.Body)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// channel opens a channel on the current connection, waiting for one
// bounded by ctx.
func (t *Transport) channel(ctx context.Context) (*amqp091.Connection, *amqp091.Channel, error) {
	conn, err := t.waitConn(ctx)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("amqp: open channel: %w", err)
	}
	return conn, ch, nil
}

func notFound(err error) bool {
	var ae *amqp091.Error
	return errors.As(err, &ae) && ae.Code == amqp091.NotFound
}

// ReplayDeadLetters publishes the dead letters of queue named by ids (all
// when ids is empty) to queue, through the default exchange so that no
// other service's queue gets them, without herald's attempt and failure
// headers (the next delivery is attempt 1) and with the time of the
// replay; each dead letter is removed once the broker confirmed its copy.
func (t *Transport) ReplayDeadLetters(ctx context.Context, queue string, ids []string) ([]driver.DeadLetter, error) {
	return t.takeDeadLetters(ctx, queue, ids, func(ctx context.Context, d amqp091.Delivery) error {
		h := amqp091.Table{}
		for k, v := range d.Headers {
			switch k {
			case HeaderAttempt, HeaderError, HeaderFirstFailure, HeaderDeadAt, HeaderDeadID:
			default:
				h[k] = v
			}
		}
		if _, ok := h[HeaderRoutingKey]; !ok {
			h[HeaderRoutingKey] = d.RoutingKey
		}
		h[HeaderReplayedAt] = formatTime(time.Now())
		return t.publishWait(ctx, &outgoing{
			key:       queue,
			mandatory: true,
			msg: amqp091.Publishing{
				Headers:         h,
				ContentType:     d.ContentType,
				ContentEncoding: d.ContentEncoding,
				DeliveryMode:    amqp091.Persistent,
				MessageId:       d.MessageId,
				Timestamp:       d.Timestamp,
				Type:            d.Type,
				AppId:           d.AppId,
				Body:            d.Body,
			},
		})
	})
}

// PurgeDeadLetters deletes the dead letters of queue named by ids, or
// every one (queue.purge) when ids is empty.
func (t *Transport) PurgeDeadLetters(ctx context.Context, queue string, ids []string) (int, error) {
	if len(ids) == 0 {
		_, ch, err := t.channel(ctx)
		if err != nil {
			return 0, err
		}
		defer ch.Close()
		n, err := ch.QueuePurge(queue+".dead", false)
		if notFound(err) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("amqp: purge dead letters of %q: %w", queue, err)
		}
		return n, nil
	}
	dls, err := t.takeDeadLetters(ctx, queue, ids, nil)
	return len(dls), err
}

// takeDeadLetters reads the dead letters of queue and removes those named
// by ids (all when ids is empty), after do succeeded for each when do is
// not nil. The others go back, in their order.
func (t *Transport) takeDeadLetters(ctx context.Context, queue string, ids []string, do func(context.Context, amqp091.Delivery) error) ([]driver.DeadLetter, error) {
	_, ch, err := t.channel(ctx)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	dq := queue + ".dead"
	info, err := ch.QueueDeclarePassive(dq, true, false, false, false, nil)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
	}
	var out []driver.DeadLetter
	var last uint64
	defer func() {
		if last > 0 {
			// Every one not taken goes back; an ack already sent stands.
			_ = ch.Nack(last, true, true)
		}
	}()
	for i := 0; i < info.Messages; i++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		d, ok, err := ch.Get(dq, false)
		if err != nil {
			return out, fmt.Errorf("amqp: dead letters of %q: %w", queue, err)
		}
		if !ok {
			break
		}
		last = d.DeliveryTag
		dl := deadLetterOf(d)
		if len(ids) > 0 && !slices.Contains(ids, dl.ID) {
			continue
		}
		if do != nil {
			if err := do(ctx, d); err != nil {
				return out, fmt.Errorf("amqp: dead letter %s of %q: %w", dl.ID, queue, err)
			}
		}
		if err := d.Ack(false); err != nil {
			return out, fmt.Errorf("amqp: dead letter %s of %q: remove: %w", dl.ID, queue, err)
		}
		out = append(out, dl)
	}
	return out, nil
}

// bindingsQueue holds the record of the patterns herald bound for queue:
// one message, the newest. Unacknowledged messages do not count towards
// its length, so the record being replaced stays until the new one is
// confirmed.
func bindingsQueue(queue string) string { return queue + ".bindings" }

var bindingsQueueArgs = amqp091.Table{"x-max-length": int64(1)}

// bindingsRecord is the body of the record.
type bindingsRecord struct {
	Patterns []string  `json:"patterns"`
	At       time.Time `json:"at"`
	By       string    `json:"by"`
}

// readBindings reads every record in the bindings queue of queue, leaving
// them unacknowledged on ch, and returns the patterns they hold and the
// delivery tag of the last (0 when there is none). Several records (a
// replacement interrupted before it removed the old one) are merged: each
// lists patterns herald bound.
func readBindings(ch *amqp091.Channel, queue string) ([]string, uint64, error) {
	var patterns []string
	var last uint64
	for {
		d, ok, err := ch.Get(bindingsQueue(queue), false)
		if err != nil {
			return nil, last, fmt.Errorf("read the bindings of %q: %w", queue, err)
		}
		if !ok {
			break
		}
		last = d.DeliveryTag
		var rec bindingsRecord
		if err := json.Unmarshal(d.Body, &rec); err != nil {
			continue // not herald's; replaced below
		}
		for _, p := range rec.Patterns {
			if !slices.Contains(patterns, p) {
				patterns = append(patterns, p)
			}
		}
	}
	slices.Sort(patterns)
	return patterns, last, nil
}

// SetBindings binds queue (declared as Consume declares it) to every
// pattern, unbinds the patterns the record says herald bound before and
// patterns lacks, and replaces the record. Bindings the record does not
// hold (an OIH Node service sharing the queue, made by hand, or by a
// herald from before the record) are left; a pattern bound both by herald
// and by another program is removed with herald's.
func (t *Transport) SetBindings(ctx context.Context, queue string, patterns []string) (driver.BindingChanges, error) {
	var changes driver.BindingChanges
	if queue == "" {
		return changes, errors.New("amqp: set bindings: a queue name is required")
	}
	_, ch, err := t.channel(ctx)
	if err != nil {
		return changes, err
	}
	defer ch.Close()
	fail := func(what string, err error) (driver.BindingChanges, error) {
		return changes, fmt.Errorf("amqp: set bindings of %q: %s: %w", queue, what, err)
	}
	if err := ch.ExchangeDeclare(Exchange, "topic", true, false, false, false, nil); err != nil {
		return fail("declare exchange", err)
	}
	// No arguments, as Consume and OIH declare it.
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		return fail("declare queue", err)
	}
	if _, err := ch.QueueDeclare(bindingsQueue(queue), true, false, false, false, bindingsQueueArgs); err != nil {
		return fail("declare "+bindingsQueue(queue), err)
	}
	old, last, err := readBindings(ch, queue)
	if err != nil {
		return changes, fmt.Errorf("amqp: %w", err)
	}
	for _, p := range old {
		if slices.Contains(patterns, p) {
			continue
		}
		if err := ch.QueueUnbind(queue, p, Exchange, nil); err != nil {
			return fail("unbind "+p, err)
		}
		changes.Removed = append(changes.Removed, p)
	}
	for _, p := range patterns {
		if err := ch.QueueBind(queue, p, Exchange, false, nil); err != nil {
			return fail("bind "+p, err)
		}
		if !slices.Contains(old, p) && !slices.Contains(changes.Added, p) {
			changes.Added = append(changes.Added, p)
		}
	}
	rec := bindingsRecord{Patterns: slices.Compact(slices.Sorted(slices.Values(patterns))), At: time.Now().UTC(), By: t.opts.name}
	body, err := json.Marshal(rec)
	if err != nil {
		return fail("record", err)
	}
	if err := t.publishWait(ctx, &outgoing{
		key:       bindingsQueue(queue),
		mandatory: true,
		msg: amqp091.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp091.Persistent,
			MessageId:    event.NewID(),
			Timestamp:    rec.At,
			Body:         body,
		},
	}); err != nil {
		return fail("record", err)
	}
	if last > 0 {
		// The new record is in place: the old ones go.
		if err := ch.Ack(last, true); err != nil {
			return fail("remove the old record", err)
		}
	}
	return changes, nil
}

// InspectQueue reads queue's state with passive declarations: its ready
// messages and consumers, the messages in its retry queues and its dead
// letters, and the bindings record. Unacked is -1: only the management
// plugin knows it.
func (t *Transport) InspectQueue(ctx context.Context, queue string) (driver.QueueInfo, error) {
	info := driver.QueueInfo{Unacked: -1}
	conn, ch, err := t.channel(ctx)
	if err != nil {
		return info, err
	}
	defer func() { ch.Close() }()
	// A passive declaration of a queue that does not exist closes the
	// channel it was asked on: count reopens it.
	count := func(name string) (amqp091.Queue, bool, error) {
		q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if notFound(err) {
			if ch, err = conn.Channel(); err != nil {
				return q, false, fmt.Errorf("amqp: open channel: %w", err)
			}
			return q, false, nil
		}
		if err != nil {
			return q, false, fmt.Errorf("amqp: queue %q: %w", name, err)
		}
		return q, true, nil
	}
	q, ok, err := count(queue)
	if err != nil {
		return info, err
	}
	if !ok {
		return info, fmt.Errorf("amqp: queue %q: %w", queue, driver.ErrNoQueue)
	}
	info.Depth, info.Consumers = q.Messages, q.Consumers
	if q, ok, err = count(queue + ".dead"); err != nil {
		return info, err
	} else if ok {
		info.DeadLetters = q.Messages
	}
	for step := MinRetryDelay; ; step *= 2 {
		step = min(step, t.opts.maxRetryDelay)
		if q, ok, err = count(retryQueueName(queue, step)); err != nil {
			return info, err
		} else if ok {
			info.Retrying += q.Messages
		}
		if step >= t.opts.maxRetryDelay {
			break
		}
	}
	if _, ok, err = count(bindingsQueue(queue)); err != nil {
		return info, err
	} else if ok {
		patterns, last, err := readBindings(ch, queue)
		if last > 0 {
			_ = ch.Nack(last, true, true)
		}
		if err != nil {
			return info, fmt.Errorf("amqp: %w", err)
		}
		info.Bindings = patterns
	}
	return info, nil
}
