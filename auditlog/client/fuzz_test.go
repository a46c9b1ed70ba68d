package client_test

import (
	"encoding/json"
	"testing"

	"github.com/heraldhq/herald/auditlog/client"
)

// FuzzPage decodes what a server answers: any bytes either fail to
// decode or give entries whose Raw decodes to the same entry again.
func FuzzPage(f *testing.F) {
	for _, seed := range []string{
		`{"data":[{"_id":"a","id":"a","seq":1,"headers":{"name":"x.y","serviceName":"s","createdAt":"2025-03-31T09:00:00.000Z","id":"a","trace":"t"},"payload":{"user":"u","tenant":"t"},"receivedAt":"2025-03-31T09:00:00.001Z","unknown":false}],"meta":{"page":1,"perPage":10,"total":1,"totalPages":1},"nextCursor":"abc"}`,
		`{"data":[{"_id":"b","headers":{"name":"x","createdAt":1743411600000},"payload":{}}],"meta":{"page":2}}`,
		`{"data":[{"headers":null,"payload":{"user":7,"tenant":null}}]}`,
		`{"data":[],"meta":{"total":-1}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p client.Page
		if json.Unmarshal(b, &p) != nil {
			return
		}
		for _, e := range p.Entries {
			var again client.Entry
			if err := json.Unmarshal(e.Raw, &again); err != nil {
				t.Fatalf("Raw %s of a decoded entry does not decode: %v", e.Raw, err)
			}
			if again.ID != e.ID || again.Seq != e.Seq || again.Name != e.Name || again.ServiceName != e.ServiceName ||
				!again.CreatedAt.Equal(e.CreatedAt) || !again.ReceivedAt.Equal(e.ReceivedAt) ||
				again.User != e.User || again.Tenant != e.Tenant || again.Unknown != e.Unknown {
				t.Fatalf("entry %+v decodes from its Raw as %+v", e, again)
			}
		}
	})
}
