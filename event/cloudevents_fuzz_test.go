package event_test

import (
	"testing"

	"github.com/heraldhq/herald/event"
)

// FuzzDecodeCloudEvent feeds arbitrary bytes to DecodeCloudEvent, what
// POST /events reads from any caller: it must never panic, and an event
// it accepts must be a valid envelope that survives the bus's own
// encoding and, as a CloudEvent again, decodes to the same event.
func FuzzDecodeCloudEvent(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/flow-repository","type":"flowrepo.flow.created","time":"2024-05-01T08:00:00Z","data":{"id":"f1"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"a.b","datacontenttype":"application/json","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{}}`))
	f.Add([]byte(`{"specversion":"0.3","id":"1","source":"s","type":"a"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"a","data_base64":"AAAA"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"a","time":"not a time","data":[1]}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"a","Type":"b","data":{"\u0000":"\ud800"}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"a","data":{"user":"\u0007\u007f","tenant":"t\u2028"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := event.DecodeCloudEvent(body)
		if err != nil {
			return
		}
		if err := ev.Validate(0); err != nil {
			t.Fatalf("accepted %q as an event that does not validate: %v", body, err)
		}
		wire, err := ev.Encode()
		if err != nil {
			t.Fatalf("accepted %q but cannot encode it: %v", body, err)
		}
		back, err := event.Decode(wire)
		if err != nil {
			t.Fatalf("accepted %q; its envelope %s does not decode: %v", body, wire, err)
		}
		ce, err := back.EncodeCloudEvent()
		if err != nil {
			t.Fatalf("accepted %q; cannot write it back as a CloudEvent: %v", body, err)
		}
		again, err := event.DecodeCloudEvent(ce)
		if err != nil {
			t.Fatalf("accepted %q; its CloudEvent %s does not decode: %v", body, ce, err)
		}
		if again.Headers.Name != ev.Headers.Name || again.Headers.ID != ev.Headers.ID || !jsonEq(again.Payload, ev.Payload) {
			t.Fatalf("round trip changed the event:\n in  %s\n out %s", body, ce)
		}
	})
}
