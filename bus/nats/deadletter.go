package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldhq/herald/bus/driver"
)

// Headers of a dead letter, beside the original message's own.
const (
	HeaderQueue           = "Herald-Queue"
	HeaderEvent           = "Herald-Event"
	HeaderError           = "Herald-Error"
	HeaderAttempts        = "Herald-Attempts"
	HeaderFirstFailure    = "Herald-First-Failure"
	HeaderDeadAt          = "Herald-Dead-At"
	HeaderOriginalSubject = "Herald-Original-Subject"
	HeaderOriginalSeq     = "Herald-Original-Sequence"
)

// maxErrorHeader bounds the error text kept in a dead letter's header.
const maxErrorHeader = 4096

// DeadLetter copies the delivery to the dead-letter stream, with cause and
// the attempt count in its headers, waits for the server to store it, and
// then terminates the delivery so it is never delivered again.
func (d *delivery) DeadLetter(ctx context.Context, cause error) error {
	t := d.c.t
	now := time.Now().UTC()
	first := t.takeFailure(d.key())
	if first.IsZero() {
		// Retried by another replica, or this is the first failure.
		first = now
	}
	orig := d.msg.Subject()
	name := strings.TrimPrefix(orig, t.o.prefix+".")
	errText := "unknown error"
	if cause != nil {
		errText = cause.Error()
	}
	h := natsgo.Header{}
	for k, v := range d.msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = append([]string(nil), v...)
		}
	}
	if id := d.msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		h.Set("Herald-Event-Id", id)
	}
	// The same delivery dead-lettered twice (a retried DeadLetter after a
	// lost PubAck) is stored once.
	h.Set(jetstream.MsgIDHeader, d.c.label+":"+strconv.FormatUint(d.seq, 10))
	h.Set(HeaderQueue, d.c.q.Name)
	h.Set(HeaderEvent, name)
	h.Set(HeaderError, headerValue(errText))
	h.Set(HeaderAttempts, strconv.Itoa(d.attempt))
	h.Set(HeaderFirstFailure, first.Format(time.RFC3339Nano))
	h.Set(HeaderDeadAt, now.Format(time.RFC3339Nano))
	h.Set(HeaderOriginalSubject, orig)
	h.Set(HeaderOriginalSeq, strconv.FormatUint(d.seq, 10))
	dead := &natsgo.Msg{
		Subject: t.o.deadPrefix + "." + d.c.label + "." + deadName(name),
		Data:    d.msg.Data(),
		Header:  h,
	}
	if err := t.publishWait(ctx, dead); err != nil {
		// Not stored: leave the delivery to come back after AckWait
		// rather than lose it.
		return fmt.Errorf("dead-letter to %s: %w", t.o.deadStream, err)
	}
	if err := d.msg.Term(); err != nil {
		return fmt.Errorf("dead-lettered, but terminating the delivery failed: %w", err)
	}
	return nil
}

// deadName is an event name as the tail of a dead letter's subject; a
// message that arrived under a name that is not a valid subject tail (it
// cannot, through herald) is kept under "_".
func deadName(name string) string {
	if name == "" || strings.ContainsAny(name, "*> \t\r\n") || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return "_"
	}
	return name
}

// headerValue makes text safe for a NATS header: one line, bounded.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxErrorHeader {
		s = s[:maxErrorHeader] + "…"
	}
	return s
}

// DeadLetters returns the dead letters of queue, oldest first.
func (t *Transport) DeadLetters(ctx context.Context, queue string) ([]driver.DeadLetter, error) {
	cfg := jetstream.ConsumerConfig{
		Name:              "herald_deadletters_" + nuid.Next(),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     t.o.deadPrefix + "." + safeToken(queue) + ".>",
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	}
	cons, err := t.js.CreateConsumer(ctx, t.o.deadStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("read dead letters of %q: %w", queue, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = t.js.DeleteConsumer(dctx, t.o.deadStream, cfg.Name)
	}()
	pending := cons.CachedInfo().NumPending
	var out []driver.DeadLetter
	for got := uint64(0); got < pending; {
		wait := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = max(min(wait, time.Until(dl)), time.Millisecond)
		}
		// A batch is bounded in bytes too: 256 dead letters of several MiB
		// each would overrun the subscription's pending limit, and the rest
		// of the batch would never arrive.
		batch, err := cons.Fetch(int(min(pending-got, deadLetterBatch(t.nc.MaxPayload()))), jetstream.FetchMaxWait(wait))
		if err != nil {
			return nil, fmt.Errorf("read dead letters of %q: %w", queue, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			got++
			if msg.Headers().Get(HeaderQueue) != queue {
				continue // another queue with the same subject token
			}
			out = append(out, parseDeadLetter(msg))
		}
		if err := batch.Error(); err != nil && !errors.Is(err, natsgo.ErrTimeout) {
			return nil, fmt.Errorf("read dead letters of %q: %w", queue, err)
		}
		if n == 0 {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("read dead letters of %q: %w", queue, ctx.Err())
			}
			return nil, fmt.Errorf("read dead letters of %q: %d of %d arrived", queue, got, pending)
		}
	}
	return out, nil
}

// deadLetterBatch is how many dead letters one fetch of DeadLetters asks
// for: 256, or as many of the largest messages the server takes as fit in
// 32 MiB (at least one).
func deadLetterBatch(maxPayload int64) uint64 {
	return uint64(min(256, max(1, (32<<20)/max(maxPayload, 1))))
}

func parseDeadLetter(msg jetstream.Msg) driver.DeadLetter {
	h := msg.Headers()
	dl := driver.DeadLetter{
		Body:  append([]byte(nil), msg.Data()...),
		Name:  h.Get(HeaderEvent),
		Error: h.Get(HeaderError),
	}
	// Its sequence in the dead-letter stream names it: what replay and
	// purge delete by.
	if md, err := msg.Metadata(); err == nil {
		dl.ID = strconv.FormatUint(md.Sequence.Stream, 10)
	}
	dl.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	dl.FirstFailure, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderFirstFailure))
	dl.DeadAt, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderDeadAt))
	return dl
}

// noteFailure remembers when a delivery first failed, for its dead letter.
// The record is this process's: a delivery retried by another replica
// reports its last failure instead.
func (t *Transport) noteFailure(key string) {
	t.failMu.Lock()
	defer t.failMu.Unlock()
	if _, ok := t.failures[key]; ok {
		return
	}
	if len(t.failures) >= 100_000 {
		// Deliveries another replica settled leave records behind; drop
		// the old ones rather than grow without bound.
		cutoff := time.Now().Add(-time.Hour)
		for k, at := range t.failures {
			if at.Before(cutoff) {
				delete(t.failures, k)
			}
		}
	}
	t.failures[key] = time.Now().UTC()
}

// takeFailure returns and forgets when a delivery first failed (zero if
// not known).
func (t *Transport) takeFailure(key string) time.Time {
	t.failMu.Lock()
	defer t.failMu.Unlock()
	at := t.failures[key]
	delete(t.failures, key)
	return at
}
