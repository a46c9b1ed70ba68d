package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// QueueName is the audit log's service name and queue, as OIH's audit log
// names it, so herald and an OIH audit log share deliveries.
const QueueName = "audit-log"

// UserDeleted is the event that erases a user's entries (GDPR), when it
// comes from IAM (TrustedIdentitySource).
const UserDeleted = "iam.user.deleted"

// EntryFromEvent turns an event into the sealed entry the audit log
// stores (Seal). Unknown marks names the catalogue does not know (cat may
// be nil). Content the stores would not keep alike fails with an error
// wrapping ErrInvalidEntry.
func EntryFromEvent(ev *event.Event, receivedAt time.Time, cat *catalog.Catalog) (Entry, error) {
	for _, f := range []struct{ name, v string }{{"headers.id", ev.Headers.ID}, {"headers.serviceName", ev.Headers.ServiceName}} {
		if !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
			return Entry{}, fmt.Errorf("%w: %w: %s holds NUL or invalid UTF-8", ErrInvalidEntry, ErrContent, f.name)
		}
	}
	e := Entry{
		ID:          ev.Headers.ID,
		Name:        ev.Headers.Name,
		ServiceName: ev.Headers.ServiceName,
		CreatedAt:   ev.Headers.CreatedAt,
		ReceivedAt:  receivedAt,
		Payload:     ev.Payload,
	}
	e.User, e.Tenant = ev.Reserved()
	if len(e.Payload) == 0 {
		e.Payload = json.RawMessage("{}")
	}
	if len(ev.Headers.Extra) > 0 {
		h, err := json.Marshal(ev.Headers.Extra)
		if err != nil {
			return Entry{}, fmt.Errorf("encode headers of %s: %w", ev, err)
		}
		e.Headers = h
	}
	if cat != nil {
		_, known := cat.Lookup(ev.Headers.Name)
		e.Unknown = !known
	}
	// Sealed here, so that content the stores would not keep alike is
	// refused before it joins a batch.
	if err := Seal(&e); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// IngestConfig configures an Ingester.
type IngestConfig struct {
	Store Store
	// Catalog marks unknown names; nil marks none.
	Catalog *catalog.Catalog
	// BatchSize is the most entries written in one transaction (default
	// 500); FlushInterval the longest an entry waits for its batch to fill
	// (default 20ms).
	BatchSize     int
	FlushInterval time.Duration
	Metrics       *Metrics
	Logger        *slog.Logger
	// Now returns the receive time (default time.Now).
	Now func() time.Time
	// Eraser, when set, erases the users an iam.user.deleted from IAM
	// deletes, and the values of erased users in entries stored later
	// (Eraser.Check, after each commit). Without one, a deletion
	// anonymises the entries stored so far (Anonymise) and nothing
	// more.
	Eraser *Eraser
	// OnCommit, when set, is called after each transaction that stored
	// new entries has committed (and the entries of users deleted
	// meanwhile are anonymised), also when a failed batch is written one
	// entry at a time: what a live feed (Feed.Notify) and the integrator
	// (Integration.Kick) wait for. It must not block.
	OnCommit func()
	// OnCommitted, when set, is called just before OnCommit with what the
	// commit stored: the entries as stored when the store gave them so
	// (Store.Append, AppendedAsStored) and none was anonymised after,
	// else nil (read the store). Feed.Committed. It must not block or
	// keep the entries' bytes to change them.
	OnCommitted func([]Entry)
}

// Ingester writes events from the bus to the store in batches: one
// transaction per batch, and each delivery is acknowledged only after the
// transaction that holds it has committed. Use Handle as the bus handler,
// with a bus concurrency of at least BatchSize so that batches fill, best
// twice that, so that the next batch is decoded and sealed while one
// commits (herald serve: concurrency and prefetch 2 × BatchSize).
type Ingester struct {
	cfg     IngestConfig
	reqs    chan ingestReq
	stop    chan struct{}
	done    chan struct{}
	closing sync.Once
}

type ingestReq struct {
	entry Entry
	res   chan error
	// now: someone waits for this entry before answering (Record), so
	// it is written as soon as the store is free, with whatever else is
	// waiting, rather than when the batch fills.
	now bool
}

// permanentError is a refusal no retry changes; the bus (bus.IsPermanent)
// dead-letters it at once.
type permanentError struct{ error }

func (e permanentError) Unwrap() error   { return e.error }
func (e permanentError) Permanent() bool { return true }

// ErrIngesterClosed is returned by Handle after Close.
var ErrIngesterClosed = errors.New("auditlog: ingester closed")

// NewIngester starts an ingester; Close stops it.
func NewIngester(cfg IngestConfig) *Ingester {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	in := &Ingester{
		cfg:  cfg,
		reqs: make(chan ingestReq),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	go in.loop()
	return in
}

// Handle stores one event and returns once it is committed; a
// iam.user.deleted event then anonymises that user's entries. An error
// has the bus retry the delivery; storing is idempotent by event id.
// Content the store refuses whatever the attempt (ErrInvalidEntry: a
// duplicate key, a NUL, a number no store holds) fails with an error whose
// Permanent method returns true, which the bus dead-letters at once.
func (in *Ingester) Handle(ctx context.Context, ev *event.Event) error {
	entry, err := EntryFromEvent(ev, in.cfg.Now(), in.cfg.Catalog)
	if err != nil {
		if errors.Is(err, ErrInvalidEntry) {
			return permanentError{err}
		}
		return err
	}
	if err := in.store(ctx, entry, false); err != nil {
		return err
	}
	if entry.Name == UserDeleted {
		return in.erase(ctx, entry)
	}
	return nil
}

// Record stores one event the audit log itself emits (a read of the log,
// a pruning) and returns once it is committed: it joins the batch being
// collected, so that concurrent records share a transaction.
func (in *Ingester) Record(ctx context.Context, ev *event.Event) error {
	entry, err := EntryFromEvent(ev, in.cfg.Now(), in.cfg.Catalog)
	if err != nil {
		return err
	}
	return in.store(ctx, entry, true)
}

func (in *Ingester) store(ctx context.Context, e Entry, now bool) error {
	req := ingestReq{entry: e, res: make(chan error, 1), now: now}
	select {
	case in.reqs <- req:
	case <-in.stop:
		return ErrIngesterClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the entry is in a batch that will commit or fail: wait
	// for the answer even if ctx ends, so an ack never precedes a commit.
	return <-req.res
}

// erase erases the user an iam.user.deleted names, when it comes from
// IAM: a deletion published by anyone else is stored, and erases nothing.
func (in *Ingester) erase(ctx context.Context, e Entry) error {
	if !TrustedIdentitySource(e, in.cfg.Catalog) {
		in.cfg.Logger.Warn("iam.user.deleted not from IAM; stored, nothing erased", "id", e.ID, "serviceName", e.ServiceName)
		return nil
	}
	id := payloadID(e)
	if id == "" {
		in.cfg.Logger.Warn("iam.user.deleted without a user id; nothing to erase", "id", e.ID)
		return nil
	}
	if in.cfg.Eraser != nil {
		_, err := in.cfg.Eraser.EraseUser(ctx, id, e)
		return err
	}
	n, err := Anonymise(ctx, in.cfg.Store, id)
	if err != nil {
		return err
	}
	if in.cfg.Metrics != nil {
		in.cfg.Metrics.Anonymised.Add(float64(n))
	}
	in.cfg.Logger.Info("anonymised deleted user's entries", "entries", n)
	return nil
}

func (in *Ingester) loop() {
	defer close(in.done)
	batch := make([]ingestReq, 0, in.cfg.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case r := <-in.reqs:
			if len(batch) == 0 {
				timer.Reset(in.cfg.FlushInterval)
			}
			batch = append(batch, r)
			if r.now {
				// Group commit: take what else is waiting, and write.
				for len(batch) < in.cfg.BatchSize {
					select {
					case r := <-in.reqs:
						batch = append(batch, r)
						continue
					default:
					}
					break
				}
			}
			if len(batch) >= in.cfg.BatchSize || r.now {
				timer.Stop()
				in.flush(batch)
				batch = batch[:0]
			}
		case <-timer.C:
			in.flush(batch)
			batch = batch[:0]
		case <-in.stop:
			timer.Stop()
			in.flush(batch)
			return
		}
	}
}

func (in *Ingester) flush(batch []ingestReq) {
	if len(batch) == 0 {
		return
	}
	entries := make([]Entry, len(batch))
	for i, r := range batch {
		entries[i] = r.entry
	}
	err := in.commit(entries)
	if err != nil && len(batch) > 1 {
		// One entry a store refuses (PostgreSQL takes no NUL in JSON, say)
		// fails its whole transaction. Write the batch one entry at a
		// time, so that only that entry's delivery is retried and, in the
		// end, dead-lettered, and the others are acknowledged.
		in.cfg.Logger.Warn("audit batch failed; writing its entries one by one", "entries", len(batch), "error", err)
		for i, r := range batch {
			r.res <- in.commit(entries[i : i+1])
		}
		return
	}
	for _, r := range batch {
		r.res <- err
	}
}

// commit erases in entries the values of users erased before
// (Eraser.Prepare), writes them, then erases what an erasure that
// committed meanwhile calls for (Eraser.Check), then announces the commit (OnCommit): a live
// reader woken by it finds the entries already anonymised. A failure of
// either step has the deliveries retried; entries a failed anonymisation
// left stored are announced all the same, as they can be read.
func (in *Ingester) commit(entries []Entry) error {
	var seen *looked
	if in.cfg.Eraser != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		seen, err = in.cfg.Eraser.prepare(ctx, entries)
		cancel()
		if err != nil {
			in.cfg.Logger.Error("audit store: erasing values of erased users in new entries failed; deliveries will be retried", "error", err)
			return err
		}
	}
	n, err := in.append(entries)
	if err != nil {
		return err
	}
	if n < len(entries) {
		in.checkConflicts(entries)
		if seen != nil {
			// Some ids were stored already, maybe in clear: by a replica
			// that stopped between its append and its Check, after an
			// erasure committed between its Prepare and its append. The
			// values Prepare found erased were erased only in this
			// batch's copies, so Check looks them all up again and
			// rewrites the stored copies that still hold them.
			seen.found = nil
		}
	}
	var late int64
	if in.cfg.Eraser != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		late, err = in.cfg.Eraser.check(ctx, entries, seen)
		cancel()
		if err != nil {
			in.cfg.Logger.Error("audit store: erasing values of erased users in new entries failed; deliveries will be retried", "error", err)
		}
	}
	if n > 0 && in.cfg.OnCommitted != nil {
		if late > 0 || err != nil || !AppendedAsStored(entries) {
			entries = nil
		}
		in.cfg.OnCommitted(entries)
	}
	if n > 0 && in.cfg.OnCommit != nil {
		in.cfg.OnCommit()
	}
	return err
}

// append writes entries in one transaction and returns how many were
// new. It runs whatever happens to the callers' contexts: they are
// waiting for its outcome.
func (in *Ingester) append(entries []Entry) (int, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	n, err := in.cfg.Store.Append(ctx, entries)
	cancel()
	if m := in.cfg.Metrics; m != nil {
		m.observeBatch(entries, n, time.Since(start), err, in.cfg.Now())
	}
	if err != nil {
		err = fmt.Errorf("store %d entries: %w", len(entries), err)
		in.cfg.Logger.Error("audit store failed; deliveries will be retried", "error", err)
		return 0, err
	}
	return n, nil
}

// Close writes the batch being collected and stops the ingester. Call it
// after the bus has stopped delivering (bus.Close), so no handler is left
// waiting.
func (in *Ingester) Close() {
	in.closing.Do(func() { close(in.stop) })
	<-in.done
}
