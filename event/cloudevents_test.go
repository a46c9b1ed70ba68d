package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// cloudEventsSchema is the CloudEvents 1.0 JSON schema the specification
// publishes, with format assertions on (time is date-time, source a
// URI reference, dataschema a URI).
func cloudEventsSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/cloudevents-1.0.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("cloudevents.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("cloudevents.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateCloudEvent(t *testing.T, s *jsonschema.Schema, b []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s breaks the CloudEvents schema: %v", b, err)
	}
}

func jsonEq(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameEvent fails unless got carries everything want does.
func sameEvent(t *testing.T, got, want *event.Event) {
	t.Helper()
	g, w := got.Headers, want.Headers
	if g.Name != w.Name || g.ServiceName != w.ServiceName || g.ID != w.ID || !g.CreatedAt.Equal(w.CreatedAt) {
		t.Errorf("headers %q %q %q %v, want %q %q %q %v", g.Name, g.ServiceName, g.ID, g.CreatedAt, w.Name, w.ServiceName, w.ID, w.CreatedAt)
	}
	if len(g.Extra) != len(w.Extra) {
		t.Errorf("extra headers %v, want %v", g.Extra, w.Extra)
	}
	for k, v := range w.Extra {
		if !jsonEq(g.Extra[k], v) {
			t.Errorf("header %s = %s, want %s", k, g.Extra[k], v)
		}
	}
	if !jsonEq(got.Payload, want.Payload) {
		t.Errorf("payload %s, want %s", got.Payload, want.Payload)
	}
}

func TestCloudEventsRoundTripEveryCatalogueEvent(t *testing.T) {
	schema := cloudEventsSchema(t)
	cat := catalog.Default()
	extras := map[string]json.RawMessage{
		"traceparent": json.RawMessage(`"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`),
		"tracestate":  json.RawMessage(`"oih=1"`),
		"type":        json.RawMessage(`"scheduler"`), // flow.execute's, a context attribute's name
		"hops":        json.RawMessage(`3`),
		"final":       json.RawMessage(`true`),
		"ratio":       json.RawMessage(`1.5`),
		"flowId":      json.RawMessage(`"5f1c0c6e2a9b4c0033333333"`),
		"meta":        json.RawMessage(`{"origin":["node",1],"none":null}`),
		"subject":     json.RawMessage(`"5f1c0c6e2a9b4c0033333333"`),
		"dataschema":  json.RawMessage(`"https://metadata.example.com/schemas/flow"`),
	}
	n := 0
	for _, e := range cat.Entries() {
		name := strings.ReplaceAll(e.Name, "*", "5f1c0c6e2a9b4c0033333333")
		service := ""
		if len(e.ServiceNames) > 0 {
			service = e.ServiceNames[0]
		}
		variants := map[string]string{
			// As herald and OIH's Node library publish it, and with
			// headers of every kind.
			"plain": `{"headers":{"name":"` + name + `","serviceName":"` + service + `","createdAt":1714642200123,"id":"018f3a4e-1c00-7000-8000-00000000e0e0"},"payload":` + string(e.Example) + `}`,
			"extra": "",
			// As ferryman publishes: no serviceName, no createdAt, no id.
			"bare": `{"headers":{"name":"` + name + `"},"payload":` + string(e.Example) + `}`,
		}
		for variant, body := range variants {
			t.Run(e.Name+"/"+variant, func(t *testing.T) {
				var ev *event.Event
				var err error
				if variant == "extra" {
					ev, err = event.Decode([]byte(variants["plain"]))
					ev.Headers.Extra = extras
				} else {
					ev, err = event.Decode([]byte(body))
				}
				if err != nil {
					t.Fatal(err)
				}
				ce, err := ev.EncodeCloudEvent()
				if err != nil {
					t.Fatal(err)
				}
				validateCloudEvent(t, schema, ce)
				back, err := event.DecodeCloudEvent(ce)
				if err != nil {
					t.Fatalf("decode %s: %v", ce, err)
				}
				sameEvent(t, back, ev)
				again, err := back.EncodeCloudEvent()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, ce) {
					t.Errorf("CloudEvent → event → CloudEvent changed it:\n%s\n%s", ce, again)
				}
				// What the audit log and the bus see is the same too.
				wire, _ := ev.Encode()
				wireBack, _ := back.Encode()
				if !jsonEq(wire, wireBack) {
					t.Errorf("wire form changed:\n%s\n%s", wire, wireBack)
				}
			})
			n++
		}
	}
	if n < 3*50 {
		t.Fatalf("only %d cases: the catalogue lost its entries?", n)
	}
}

func TestCloudEventAttributesFollowTheMapping(t *testing.T) {
	ev, err := event.Decode([]byte(`{"headers":{"name":"flow.execute","serviceName":"scheduler","createdAt":1714642200123,"id":"e-1",` +
		`"type":"scheduler","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","hops":3},` +
		`"payload":{"flow":{"_id":"f"},"msg":{},"user":"u-1","tenant":{"_id":"t-1","name":"T"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ev.CloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"oihuser": `"u-1"`, "oihtenant": `"t-1"`, "traceparent": `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"`, "hops": `3`, "oihheaders": `"{\"type\":\"scheduler\"}"`}
	if len(c.Extensions) != len(want) {
		t.Errorf("extensions %v, want %v", c.Extensions, want)
	}
	for k, v := range want {
		if string(c.Extensions[k]) != v {
			t.Errorf("extension %s = %s, want %s", k, c.Extensions[k], v)
		}
	}
	if c.ID != "e-1" || c.Source != "scheduler" || c.Type != "flow.execute" || c.DataContentType != "application/json" ||
		!c.Time.Equal(time.UnixMilli(1714642200123)) || !jsonEq(c.Data, ev.Payload) {
		t.Errorf("context %+v, want id, source, type, time and data from the envelope", c)
	}

	bare, err := event.Decode([]byte(`{"headers":{"name":"provenance"},"payload":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := bare.EncodeCloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"specversion":"1.0","id":"` + bare.Headers.ID + `","source":"` + event.CloudEventsNoService + `","type":"provenance","datacontenttype":"application/json","data":{}}`; string(b) != want {
		t.Errorf("an event without serviceName and createdAt:\n%s\nwant\n%s", b, want)
	}
}

func TestForeignCloudEventsRoundTrip(t *testing.T) {
	schema := cloudEventsSchema(t)
	for name, ce := range map[string]string{
		"knative": `{"specversion":"1.0","id":"a-1","source":"https://knative.example.com/ping","type":"flow.started","datacontenttype":"application/json","time":"2024-05-02T09:30:00.123456789Z","knativearrivaltime":"2024-05-02T09:30:00Z","sequence":7,"replay":false,"data":{"id":"f-1"}}`,
		"subject": `{"specversion":"1.0","id":"a-2","source":"/sensors/tn-1","type":"flow.started","subject":"f-1","dataschema":"https://example.com/flow.json","datacontenttype":"application/json","data":{"id":"f-1"}}`,
		"minimal": `{"specversion":"1.0","id":"a-3","source":"accounts","type":"iam.user.deleted","data":{"id":"u-1"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			validateCloudEvent(t, schema, []byte(ce))
			ev, err := event.DecodeCloudEvent([]byte(ce))
			if err != nil {
				t.Fatal(err)
			}
			// Through the wire form, as the bus carries it.
			wire, err := ev.Encode()
			if err != nil {
				t.Fatal(err)
			}
			onWire, err := event.Decode(wire)
			if err != nil {
				t.Fatal(err)
			}
			back, err := ev.EncodeCloudEvent()
			if err != nil {
				t.Fatal(err)
			}
			want := ce
			if name == "minimal" {
				// herald says what the data is.
				want = strings.Replace(ce, `,"data"`, `,"datacontenttype":"application/json","data"`, 1)
			}
			if !jsonEq(back, []byte(want)) {
				t.Errorf("round trip:\n%s\nwant\n%s", back, want)
			}
			if onWire.Headers.CreatedAt.UnixMilli() != ev.Headers.CreatedAt.UnixMilli() {
				t.Errorf("createdAt on the wire %v, want %v to the millisecond", onWire.Headers.CreatedAt, ev.Headers.CreatedAt)
			}
		})
	}
}

func TestCloudEventsHeraldCannotMapAreRefused(t *testing.T) {
	cases := map[string]string{
		"no id":                         `{"specversion":"1.0","source":"s","type":"a.b"}`,
		"no source":                     `{"specversion":"1.0","id":"1","type":"a.b"}`,
		"no type":                       `{"specversion":"1.0","id":"1","source":"s"}`,
		"a type that is no event name":  `{"specversion":"1.0","id":"1","source":"s","type":"a b"}`,
		"another specversion":           `{"specversion":"0.3","id":"1","source":"s","type":"a.b"}`,
		"no specversion":                `{"id":"1","source":"s","type":"a.b"}`,
		"data that is no object":        `{"specversion":"1.0","id":"1","source":"s","type":"a.b","data":[1]}`,
		"binary data":                   `{"specversion":"1.0","id":"1","source":"s","type":"a.b","data_base64":"e30="}`,
		"data that is not JSON":         `{"specversion":"1.0","id":"1","source":"s","type":"a.b","datacontenttype":"text/plain","data":"hi"}`,
		"oihuser against the data":      `{"specversion":"1.0","id":"1","source":"s","type":"a.b","oihuser":"u-2","data":{"user":"u-1"}}`,
		"oihtenant without it in data":  `{"specversion":"1.0","id":"1","source":"s","type":"a.b","oihtenant":"t-1","data":{}}`,
		"an object extension":           `{"specversion":"1.0","id":"1","source":"s","type":"a.b","ext":{"a":1}}`,
		"oihheaders that is no object":  `{"specversion":"1.0","id":"1","source":"s","type":"a.b","oihheaders":"[1]"}`,
		"a header given twice":          `{"specversion":"1.0","id":"1","source":"s","type":"a.b","hops":1,"oihheaders":"{\"hops\":2}"}`,
		"an envelope field as a header": `{"specversion":"1.0","id":"1","source":"s","type":"a.b","oihheaders":"{\"serviceName\":\"x\"}"}`,
		"a time that is no time":        `{"specversion":"1.0","id":"1","source":"s","type":"a.b","time":"yesterday"}`,
		"not an object":                 `[1]`,
	}
	for name, ce := range cases {
		t.Run(name, func(t *testing.T) {
			if ev, err := event.DecodeCloudEvent([]byte(ce)); !errors.Is(err, event.ErrCloudEvent) {
				t.Errorf("DecodeCloudEvent = %v, %v; want ErrCloudEvent", ev, err)
			}
		})
	}
}
