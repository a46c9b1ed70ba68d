package export

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

func TestAsyncAPICarriesTheCloudEventsMapping(t *testing.T) {
	c := catalog.Default()
	b, err := AsyncAPI(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Messages map[string]struct {
				Name     string `json:"name"`
				Examples []struct {
					Payload json.RawMessage `json:"payload"`
				} `json:"examples"`
				CloudEvents struct {
					Type    string          `json:"type"`
					Source  []string        `json:"source"`
					Example json.RawMessage `json:"example"`
				} `json:"x-cloudevents"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Components.Messages) != len(c.Entries()) {
		t.Fatalf("%d messages, want %d", len(doc.Components.Messages), len(c.Entries()))
	}
	for id, m := range doc.Components.Messages {
		e, ok := c.Lookup(m.Name)
		if !ok {
			t.Fatalf("message %s names %q, not in the catalogue", id, m.Name)
		}
		ce := m.CloudEvents
		wantSources := e.ServiceNames
		if len(wantSources) == 0 {
			wantSources = []string{event.CloudEventsNoService}
		}
		if ce.Type != e.Name || !reflect.DeepEqual(ce.Source, wantSources) {
			t.Errorf("%s: x-cloudevents type %q source %v, want %q %v", id, ce.Type, ce.Source, e.Name, wantSources)
		}
		// The CloudEvent example is the envelope example, mapped.
		got, err := event.DecodeCloudEvent(ce.Example)
		if err != nil {
			t.Fatalf("%s: CloudEvent example %s: %v", id, ce.Example, err)
		}
		wire, _ := got.Encode()
		want, err := event.Decode(m.Examples[0].Payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.ServiceNames) == 0 && want.Headers.ID != got.Headers.ID {
			// An example without an id (ferryman's): the id derived from
			// the body depends on its bytes, which differ between the
			// document and the export's own encoding.
			want.Headers.ID = got.Headers.ID
		}
		wantWire, _ := want.Encode()
		var x, y any
		json.Unmarshal(wire, &x)
		json.Unmarshal(wantWire, &y)
		if !reflect.DeepEqual(x, y) {
			t.Errorf("%s: CloudEvent example maps to\n%s\nwant the envelope example\n%s", id, wire, wantWire)
		}
	}
}
