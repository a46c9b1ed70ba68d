package auditlog_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// A redelivery of an event whose stored copy an erasure rewrote since, at
// any depth and in either mode, is the same event; a change of any other
// value is not.
func TestSameEventAfterErasure(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entry := func(payload string) auditlog.Entry {
		return auditlog.Entry{ID: "e-1", Name: "flow.starting", ServiceName: "flow", CreatedAt: at, Payload: json.RawMessage(payload)}
	}
	sent := entry(`{"flowId":"f-1","user":"u-1","startedBy":"u-1","owners":[{"id":"u-1","type":"user"}],"n":3}`)
	for _, c := range []struct {
		stored string
		same   bool
	}{
		{`{"flowId":"f-1","user":"XXXXXXXXXX","startedBy":"XXXXXXXXXX","owners":[{"id":"XXXXXXXXXX","type":"user"}],"n":3}`, true},
		{`{"flowId":"f-1","user":"pseudonym-0123456789abcdef0123","startedBy":"pseudonym-0123456789abcdef0123","owners":[{"id":"pseudonym-0123456789abcdef0123","type":"user"}],"n":3}`, true},
		{`{"flowId":"f-1","user":"XXXXXXXXXX","startedBy":"XXXXXXXXXX","owners":[{"id":"XXXXXXXXXX","type":"group"}],"n":3}`, false},
		{`{"flowId":"f-1","user":"XXXXXXXXXX","startedBy":"XXXXXXXXXX","owners":[{"id":"XXXXXXXXXX","type":"user"}],"n":4}`, false},
		{`{"flowId":"f-1","user":"XXXXXXXXXX","startedBy":"XXXXXXXXXX","owners":[],"n":3}`, false},
	} {
		if got := auditlog.SameEvent(entry(c.stored), sent); got != c.same {
			t.Errorf("stored %s: SameEvent = %v, want %v", c.stored, got, c.same)
		}
		// Erased in the delivery (before its append), in clear in the
		// stored copy: as much the same event.
		if got := auditlog.SameEvent(sent, entry(c.stored)); got != c.same {
			t.Errorf("delivered %s: SameEvent = %v, want %v", c.stored, got, c.same)
		}
	}
}
