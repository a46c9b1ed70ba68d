package export

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/internal/testkit"
)

func TestDocsEventsMdIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatalf("read docs/events.md: %v", err)
	}
	if !bytes.Equal(got, Markdown(catalog.Default())) {
		t.Fatal("docs/events.md is stale: run `go generate ./catalog`")
	}
}

func TestMarkdownHasATablePerServiceWithEveryEvent(t *testing.T) {
	c := catalog.Default()
	md := string(Markdown(c))
	if !strings.HasPrefix(md, "# ") || !strings.Contains(md, "go generate ./catalog") {
		t.Fatal("Markdown lacks a title or the command that regenerates it")
	}
	for _, id := range c.Services() {
		if !strings.Contains(md, "\n## "+c.Service(id).Title+"\n") {
			t.Errorf("no section for service %s", id)
		}
	}
	if n := strings.Count(md, "| name | kind | serviceName | audited | consumed | description | payload |"); n != len(c.Services()) {
		t.Errorf("%d tables, want one per service (%d)", n, len(c.Services()))
	}
	for _, e := range c.Entries() {
		if !strings.Contains(md, "| `"+e.Name+"`") {
			t.Errorf("no row for %s", e.Name)
		}
	}
	if !strings.Contains(md, "| `iam.token.deleted` | canonical | `accounts` | yes | no |") {
		t.Error("the iam.token.deleted row does not show kind, serviceName, audited and consumed")
	}
	if !strings.Contains(md, "at least one of `id` or `account`") {
		t.Error("the iam.token.deleted row does not explain its anyOf")
	}
}

func TestJSONExportRoundTrips(t *testing.T) {
	c := catalog.Default()
	b, err := JSON(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services []struct{ ID, Title string }
		Events   []catalog.Entry
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != len(c.Entries()) || len(doc.Services) != len(c.Services()) {
		t.Fatalf("JSON has %d events and %d services, want %d and %d",
			len(doc.Events), len(doc.Services), len(c.Entries()), len(c.Services()))
	}
	for i, e := range c.Entries() {
		got := doc.Events[i]
		if got.Name != e.Name || got.Kind != e.Kind || got.Audited != e.Audited || !testkit.JSONEqual(got.Schema, e.Schema) {
			t.Errorf("event %d: %s round-tripped as %+v", i, e.Name, got)
		}
	}
}

// asyncDoc is the part of an AsyncAPI 3 document the tests read.
type asyncDoc struct {
	AsyncAPI string `json:"asyncapi"`
	Servers  map[string]struct {
		Host     string `json:"host"`
		Protocol string `json:"protocol"`
	} `json:"servers"`
	Channels map[string]struct {
		Address    string                       `json:"address"`
		Messages   map[string]map[string]string `json:"messages"`
		Parameters map[string]any               `json:"parameters"`
		Bindings   struct {
			AMQP struct {
				Is       string `json:"is"`
				Exchange struct {
					Name    string `json:"name"`
					Type    string `json:"type"`
					Durable bool   `json:"durable"`
				} `json:"exchange"`
			} `json:"amqp"`
		} `json:"bindings"`
	} `json:"channels"`
	Operations map[string]struct {
		Action   string              `json:"action"`
		Channel  map[string]string   `json:"channel"`
		Messages []map[string]string `json:"messages"`
	} `json:"operations"`
	Components struct {
		Messages map[string]struct {
			Name     string `json:"name"`
			Payload  any    `json:"payload"`
			Examples []struct {
				Payload json.RawMessage `json:"payload"`
			} `json:"examples"`
		} `json:"messages"`
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

func TestAsyncAPIDescribesEveryEventOnTheTopicExchange(t *testing.T) {
	c := catalog.Default()
	b, err := AsyncAPI(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.AsyncAPI != "3.0.0" {
		t.Fatalf("asyncapi = %q, want 3.0.0", doc.AsyncAPI)
	}
	if s, ok := doc.Servers["amqp"]; !ok || s.Protocol != "amqp" || s.Host == "" {
		t.Fatalf("servers = %+v, want an amqp server", doc.Servers)
	}
	if len(doc.Channels) != len(c.Entries()) || len(doc.Operations) != len(c.Entries()) {
		t.Fatalf("%d channels and %d operations, want one each per event (%d)",
			len(doc.Channels), len(doc.Operations), len(c.Entries()))
	}
	addresses := map[string]string{}
	for id, ch := range doc.Channels {
		addresses[ch.Address] = id
		amqp := ch.Bindings.AMQP
		if amqp.Is != "routingKey" || amqp.Exchange.Name != "event-bus" || amqp.Exchange.Type != "topic" || !amqp.Exchange.Durable {
			t.Errorf("channel %s: amqp binding %+v, want routingKey on the durable topic exchange event-bus", id, amqp)
		}
		if len(ch.Messages) != 1 {
			t.Errorf("channel %s has %d messages, want 1", id, len(ch.Messages))
		}
		for _, m := range ch.Messages {
			msgID, ok := strings.CutPrefix(m["$ref"], "#/components/messages/")
			if _, found := doc.Components.Messages[msgID]; !ok || !found {
				t.Errorf("channel %s: message reference %q does not resolve", id, m["$ref"])
			}
		}
	}
	for _, e := range c.Entries() {
		addr := e.Name
		if e.IsFamily() {
			addr = "dispatch.{targetFlowId}"
		}
		if _, ok := addresses[addr]; !ok {
			t.Errorf("no channel has the address %s", addr)
		}
	}
	if p := doc.Channels["dispatch.targetFlowId"].Parameters; p["targetFlowId"] == nil {
		t.Errorf("the dispatch channel does not declare its parameter: %v", p)
	}
	for id, op := range doc.Operations {
		chID, ok := strings.CutPrefix(op.Channel["$ref"], "#/channels/")
		ch, found := doc.Channels[chID]
		if op.Action != "send" || !ok || !found {
			t.Errorf("operation %s: action %q channel %q, want send on a channel of the document", id, op.Action, op.Channel["$ref"])
			continue
		}
		for _, m := range op.Messages {
			rest, ok := strings.CutPrefix(m["$ref"], "#/channels/"+chID+"/messages/")
			if _, found := ch.Messages[rest]; !ok || !found {
				t.Errorf("operation %s: message %q is not a message of its channel", id, m["$ref"])
			}
		}
	}
}

func TestAsyncAPIMessageExamplesMatchTheirPayloadSchemas(t *testing.T) {
	b, err := AsyncAPI(catalog.Default())
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	root, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft7)
	const url = "urn:herald:asyncapi"
	if err := comp.AddResource(url, root); err != nil {
		t.Fatal(err)
	}
	for id, m := range doc.Components.Messages {
		sch, err := comp.Compile(url + "#/components/messages/" + id + "/payload")
		if err != nil {
			t.Fatalf("message %s: payload schema: %v", id, err)
		}
		if len(m.Examples) == 0 {
			t.Errorf("message %s has no example", id)
		}
		for _, ex := range m.Examples {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(ex.Payload))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("message %s: example does not match its payload schema: %v", id, err)
			}
		}
		// The envelope's name must be the message's own.
		wrong := []byte(`{"headers":{"name":"some.other.event"},"payload":{}}`)
		v, _ := jsonschema.UnmarshalJSON(bytes.NewReader(wrong))
		if sch.Validate(v) == nil {
			t.Errorf("message %s accepts an envelope of another event", id)
		}
	}
}

func TestExportsAreDeterministic(t *testing.T) {
	c := catalog.Default()
	a1, _ := AsyncAPI(c)
	a2, _ := AsyncAPI(c)
	j1, _ := JSON(c)
	j2, _ := JSON(c)
	if !bytes.Equal(a1, a2) || !bytes.Equal(j1, j2) || !bytes.Equal(Markdown(c), Markdown(c)) {
		t.Fatal("two exports of the same catalogue differ")
	}
}

// TestExportsKeepThePersonalDataAnnotations: the AsyncAPI message payloads
// carry x-personal where the catalogue's schemas have it, and the JSON
// export lists each event's personal fields.
func TestExportsKeepThePersonalDataAnnotations(t *testing.T) {
	cat := catalog.Default().Filter("flow.starting")
	b, err := AsyncAPI(cat)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"x-personal"`); n != 2 {
		t.Errorf("AsyncAPI of flow.starting holds %d x-personal annotations, want 2 (owners[].id, startedBy)", n)
	}
	j, err := JSON(cat)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(j), `"path":"/owners/*/id"`) && !strings.Contains(string(j), `"path": "/owners/*/id"`) {
		t.Errorf("the JSON export does not list flow.starting's personal fields:\n%.2000s", j)
	}
}
