package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"time"
)

// checkConflicts looks, after a batch in which some ids were already
// stored, for deliveries that are another event than the one stored
// under their id: a redelivery is the same event and is skipped in
// silence, anything else is logged and counted (Metrics.Conflicts). The
// stored entry stays: an id is never rewritten.
func (in *Ingester) checkConflicts(entries []Entry) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, e := range entries {
		page, err := in.cfg.Store.Query(ctx, Query{ID: e.ID, Limit: 1, SkipTotal: true})
		if err != nil {
			in.cfg.Logger.Warn("audit store: could not compare a redelivered event with the stored one", "id", e.ID, "error", err)
			return
		}
		if len(page.Entries) == 0 || SameEvent(page.Entries[0], e) {
			continue
		}
		in.cfg.Logger.Warn("a different event under an id already stored: not stored",
			"id", e.ID, "name", e.Name, "serviceName", e.ServiceName, "stored name", page.Entries[0].Name, "stored serviceName", page.Entries[0].ServiceName)
		if in.cfg.Metrics != nil {
			in.cfg.Metrics.Conflicts.Inc()
		}
	}
}

// SameEvent reports whether e is the event stored: the same name,
// serviceName, createdAt (to the millisecond), extra headers and payload
// (as JSON values, whatever their spacing and key order). A stored
// value anonymisation replaced with Redacted matches any value, and a
// pruned entry (its content gone) any content: a redelivery of an event
// whose user was deleted since, or whose content was pruned, is still
// that event.
func SameEvent(stored, e Entry) bool {
	if stored.Name != e.Name || stored.ServiceName != e.ServiceName || stored.CreatedAt.UnixMilli() != e.CreatedAt.UnixMilli() ||
		stored.CreatedAt.IsZero() != e.CreatedAt.IsZero() {
		return false
	}
	if len(stored.ContentHash) > 0 {
		return true // pruned: nothing left to compare
	}
	return sameObject(stored.Headers, e.Headers) && sameObject(stored.Payload, e.Payload)
}

// sameObject compares two JSON objects member by member; absent is {}.
func sameObject(stored, e json.RawMessage) bool {
	var s, p map[string]json.RawMessage
	if len(bytes.TrimSpace(stored)) > 0 && json.Unmarshal(stored, &s) != nil {
		return false
	}
	if len(bytes.TrimSpace(e)) > 0 && json.Unmarshal(e, &p) != nil {
		return false
	}
	if len(s) != len(p) {
		return false
	}
	redacted, _ := json.Marshal(Redacted)
	for k, sv := range s {
		pv, ok := p[k]
		if !ok {
			return false
		}
		if bytes.Equal(bytes.TrimSpace(sv), redacted) {
			continue
		}
		var a, b any
		if json.Unmarshal(sv, &a) != nil || json.Unmarshal(pv, &b) != nil || !reflect.DeepEqual(a, b) {
			return false
		}
	}
	return true
}
