package httpapi

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// FuzzDecodeCursor feeds arbitrary text to decodeCursor, which reads the
// cursor parameter of any caller: it must never panic, a cursor it accepts
// has a valid order, page and seq, and encoding it gives a cursor that
// decodes to the same position.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(cursor{order: auditlog.NewestFirst, page: 2, seq: 3, createdAt: time.Unix(5, 0)}.encode())
	f.Add(cursor{order: auditlog.OldestFirst, page: 1 << 30, seq: 1 << 62, filters: 7, createdAt: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}.encode())
	f.Add(cursor{order: auditlog.NewestFirst, page: 1}.encode())
	f.Add("AQ")
	f.Add("")
	f.Add("AQEAAAAAAAAAAwAAAAAAAAAAAAAAAg==")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}
		if c.order != auditlog.NewestFirst && c.order != auditlog.OldestFirst || c.page < 1 || c.seq < 0 {
			t.Fatalf("accepted %q as %+v", s, c)
		}
		back, err := decodeCursor(c.encode())
		if err != nil {
			t.Fatalf("accepted %q, but its re-encoding does not decode: %v", s, err)
		}
		if back.order != c.order || back.page != c.page || back.seq != c.seq || back.filters != c.filters || !back.createdAt.Equal(c.createdAt) {
			t.Fatalf("re-encoding %q moved the cursor: %+v, then %+v", s, c, back)
		}
	})
}
