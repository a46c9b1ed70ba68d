package auditlog

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldhq/herald/event"
)

// Retain prunes the content of every entry received before before
// (Store.Prune), after recording the pruning in the log as an
// audit-log.entries.pruned entry {before, retention} through record (an
// Ingester's Record): recorded first, so that a pruning is never found
// without its record, only, after a crash, a record of a pruning that did
// not finish (the next run finishes it). It returns the entries pruned.
func Retain(ctx context.Context, s Store, before time.Time, retention time.Duration, record func(context.Context, *event.Event) error) (int64, error) {
	ev, err := event.New(PrunedEvent, map[string]any{"before": before.UTC().Format(time.RFC3339Nano), "retention": retention.String()})
	if err != nil {
		return 0, err
	}
	ev.Headers.ServiceName = QueueName
	if err := record(ctx, ev); err != nil {
		return 0, fmt.Errorf("record the pruning: %w", err)
	}
	var total int64
	for {
		n, err := s.Prune(ctx, before, retainChunk)
		total += n
		if err != nil {
			return total, err
		}
		if n < retainChunk {
			return total, nil
		}
	}
}

// retainChunk is how many entries one transaction of Retain prunes, so
// that appends wait for a short transaction at a time.
const retainChunk = 1000
