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
// (as JSON values, whatever their spacing and key order). A value an
// erasure replaced (Redacted, a pseudonym), at any depth, in either copy,
// matches any value, and a pruned entry (its content gone) any content:
// a redelivery of an event whose user was deleted since, or whose
// content was pruned, is still that event.
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

// SamePayload reports whether payload is the stored entry's payload, by
// SameEvent's rules: equal JSON values at any depth, a value an erasure
// replaced in either copy matching any value, and a pruned entry any
// payload.
func SamePayload(stored Entry, payload json.RawMessage) bool {
	return len(stored.ContentHash) > 0 || sameObject(stored.Payload, payload)
}

// sameObject compares two JSON objects member by member, at any depth;
// absent is {}. A stored value an erasure replaced (Redacted, or a
// pseudonym: PseudonymPrefix) matches any value, so that a redelivery of
// an event erased since is the event stored, in either erasure mode.
func sameObject(stored, e json.RawMessage) bool {
	var s, p map[string]any
	if len(bytes.TrimSpace(stored)) > 0 && json.Unmarshal(stored, &s) != nil {
		return false
	}
	if len(bytes.TrimSpace(e)) > 0 && json.Unmarshal(e, &p) != nil {
		return false
	}
	if s == nil {
		s = map[string]any{}
	}
	if p == nil {
		p = map[string]any{}
	}
	return sameValue(s, p)
}

// sameValue compares a stored JSON value with a delivered one, erased
// values matching anything: erased in the stored copy by an erasure
// since, or in the delivered one by Eraser.Prepare, before its append,
// when the stored copy was appended in clear by a replica that stopped
// before its Check.
func sameValue(stored, e any) bool {
	if erasedValue(stored) || erasedValue(e) {
		return true
	}
	switch s := stored.(type) {
	case map[string]any:
		p, ok := e.(map[string]any)
		if !ok || len(s) != len(p) {
			return false
		}
		for k, sv := range s {
			pv, ok := p[k]
			if !ok || !sameValue(sv, pv) {
				return false
			}
		}
		return true
	case []any:
		p, ok := e.([]any)
		if !ok || len(s) != len(p) {
			return false
		}
		for i := range s {
			if !sameValue(s[i], p[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(stored, e)
}

// erasedValue reports whether v is a value an erasure put in place.
func erasedValue(v any) bool {
	s, ok := v.(string)
	return ok && erasedText(s)
}
