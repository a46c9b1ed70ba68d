// Package catalog is the catalogue of Open Integration Hub service events:
// every event name each service emits, with its publisher, its audit and
// consumer flags, and a JSON Schema for its payload.
//
// The names of the "Service Events" document are canonical. The names OIH's
// services really publish where they differ are catalogued beside them,
// either as an alias of a canonical name (secrets.secret.created for
// secret-service.secret.created) or as an operational event the document
// never listed (flow.starting, component.started, …), so that what an OIH
// deployment really sends is known, validated and audited.
//
// The data lives in events.yaml, embedded in the binary; Default returns it
// parsed. docs/events.md, the JSON export and the AsyncAPI document are all
// generated from it by package catalog/export.
package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/topic"
)

//go:generate go run ./internal/gen -o ../docs/events.md

//go:embed events.yaml
var embedded []byte

// Kind says where an event name comes from.
type Kind string

// The kinds of event.
const (
	// KindCanonical is a name from the "Service Events" document.
	KindCanonical Kind = "canonical"
	// KindAlias is a name OIH really publishes in place of a canonical one;
	// Entry.AliasOf names the canonical entry.
	KindAlias Kind = "alias"
	// KindOperational is an event OIH publishes that the document omits.
	KindOperational Kind = "operational"
)

func (k Kind) valid() bool {
	return k == KindCanonical || k == KindAlias || k == KindOperational
}

// Entry describes one event name.
type Entry struct {
	// Name is the event name, which is also its routing key. A name with a
	// '*' word (dispatch.*) stands for a family of names; see Wildcards.
	Name string `json:"name"`
	// Wildcards gives the meaning of each '*' word of a family's Name, in
	// order; it is empty for an ordinary name.
	Wildcards []string `json:"wildcards,omitempty"`
	// Service is the id of the publishing service the entry is grouped by
	// (iam, secret-service, flow-repository, …).
	Service string `json:"service"`
	// ServiceNames are the headers.serviceName values its publisher really
	// writes (IAM writes "accounts"). Empty when the publisher writes none,
	// as components publishing through ferryman do.
	ServiceNames []string `json:"serviceNames"`
	// Description is one line saying what happened.
	Description string `json:"description"`
	// Kind says whether the name is canonical, an alias or operational.
	Kind Kind `json:"kind"`
	// AliasOf is the canonical name an alias stands for.
	AliasOf string `json:"aliasOf,omitempty"`
	// Aliases are the names OIH publishes in place of this canonical one.
	Aliases []string `json:"aliases,omitempty"`
	// Audited says the audit log subscribes to it.
	Audited bool `json:"audited"`
	// Consumed says a service other than the audit log acts on it.
	Consumed bool `json:"consumed"`
	// Consumers are the serviceNames known to subscribe to it.
	Consumers []string `json:"consumers,omitempty"`
	// Schema is the JSON Schema (draft 7) of the payload.
	Schema json.RawMessage `json:"schema"`
	// Example is a payload that validates against Schema.
	Example json.RawMessage `json:"example"`
	// Personal are the payload fields that hold personal data, from the
	// schema's x-personal annotations (PersonalField), sorted by path.
	Personal []PersonalField `json:"personal,omitempty"`
}

// IsFamily reports whether the entry stands for a family of names (its
// Name has a '*' word) rather than one name.
func (e Entry) IsFamily() bool { return len(e.Wildcards) > 0 }

func (e Entry) clone() Entry {
	e.Wildcards = slices.Clone(e.Wildcards)
	e.ServiceNames = slices.Clone(e.ServiceNames)
	e.Aliases = slices.Clone(e.Aliases)
	e.Consumers = slices.Clone(e.Consumers)
	e.Schema = slices.Clone(e.Schema)
	e.Example = slices.Clone(e.Example)
	e.Personal = slices.Clone(e.Personal)
	return e
}

// Service is a publishing service the entries are grouped by.
type Service struct {
	// ID is what Entry.Service holds (iam, secret-service, …).
	ID string `json:"id"`
	// Title is the service's name for people (Identity and Access
	// Management).
	Title string `json:"title"`
	// About is a paragraph on what the service does, or "".
	About string `json:"about"`
}

type entry struct {
	Entry
	schema *jsonschema.Schema // Schema plus the reserved-field rule
}

// Catalog is a parsed catalogue. It is immutable and safe for concurrent
// use.
type Catalog struct {
	entries  []*entry // by service, then name
	byName   map[string]*entry
	families []*entry
	services []Service // by id, only those with entries
}

// Default returns the catalogue embedded in herald (events.yaml), parsed
// once. It panics if the embedded file is invalid, which the package's
// tests rule out.
func Default() *Catalog { return defaultCatalog() }

var defaultCatalog = sync.OnceValue(func() *Catalog {
	c, err := Parse(embedded)
	if err != nil {
		panic(fmt.Sprintf("catalog: embedded events.yaml: %v", err))
	}
	return c
})

// file is the layout of events.yaml.
type file struct {
	Services []Service    `json:"services"`
	Events   []fileRecord `json:"events"`
}

type fileRecord struct {
	Name         string          `json:"name"`
	Wildcards    []string        `json:"wildcards"`
	Service      string          `json:"service"`
	ServiceNames []string        `json:"serviceNames"`
	Kind         Kind            `json:"kind"`
	AliasOf      string          `json:"aliasOf"`
	Description  string          `json:"description"`
	Audited      *bool           `json:"audited"`
	Consumed     *bool           `json:"consumed"`
	Consumers    []string        `json:"consumers"`
	Schema       json.RawMessage `json:"schema"`
	Example      json.RawMessage `json:"example"`
}

// Parse reads a catalogue in the layout of events.yaml and checks it: every
// name valid (event.ValidateName, or a '*' family) and unique, every field
// present, every alias pointing at a canonical entry, every schema
// compiling, and every example valid against its schema. The first problem
// found is returned.
func Parse(data []byte) (*Catalog, error) {
	var f file
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	c := &Catalog{byName: make(map[string]*entry, len(f.Events))}

	titles := make(map[string]Service, len(f.Services))
	for i, s := range f.Services {
		if s.ID == "" || s.Title == "" {
			return nil, fmt.Errorf("parse catalogue: service %d: id and title are required", i+1)
		}
		if _, dup := titles[s.ID]; dup {
			return nil, fmt.Errorf("parse catalogue: service %q is declared twice", s.ID)
		}
		titles[s.ID] = s
	}

	for i, r := range f.Events {
		e, err := newEntry(r)
		if err != nil {
			if r.Name == "" {
				return nil, fmt.Errorf("parse catalogue: event %d: %w", i+1, err)
			}
			return nil, fmt.Errorf("parse catalogue: event %s: %w", r.Name, err)
		}
		if _, ok := titles[e.Service]; !ok {
			return nil, fmt.Errorf("parse catalogue: event %s: service %q is not declared under services", e.Name, e.Service)
		}
		if _, dup := c.byName[e.Name]; dup {
			return nil, fmt.Errorf("parse catalogue: event %s is listed twice", e.Name)
		}
		c.byName[e.Name] = e
		c.entries = append(c.entries, e)
	}

	// Aliases need their canonical entry: it gives them a schema and
	// example when they have none, and learns their names.
	for _, e := range c.entries {
		if e.Kind != KindAlias {
			continue
		}
		target, ok := c.byName[e.AliasOf]
		if !ok {
			return nil, fmt.Errorf("parse catalogue: event %s: aliasOf %q is not in the catalogue", e.Name, e.AliasOf)
		}
		if target.Kind != KindCanonical {
			return nil, fmt.Errorf("parse catalogue: event %s: aliasOf %q is %s, not canonical", e.Name, e.AliasOf, target.Kind)
		}
		if e.Schema == nil {
			e.Schema = target.Schema
		}
		if e.Example == nil {
			e.Example = target.Example
		}
		target.Aliases = append(target.Aliases, e.Name)
	}

	used := make(map[string]bool)
	for _, e := range c.entries {
		used[e.Service] = true
		slices.Sort(e.Aliases)
		personal, err := personalFields(e.Schema)
		if err != nil {
			return nil, fmt.Errorf("parse catalogue: event %s: %w", e.Name, err)
		}
		e.Personal = personal
		if err := e.compile(); err != nil {
			return nil, fmt.Errorf("parse catalogue: event %s: %w", e.Name, err)
		}
		if e.IsFamily() {
			c.families = append(c.families, e)
		}
	}
	for _, s := range f.Services {
		if !used[s.ID] {
			return nil, fmt.Errorf("parse catalogue: service %q has no events", s.ID)
		}
		c.services = append(c.services, s)
	}
	slices.SortFunc(c.services, func(a, b Service) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(c.entries, func(a, b *entry) int {
		if d := strings.Compare(a.Service, b.Service); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	return c, nil
}

// newEntry checks the fields of one record that need no other record.
func newEntry(r fileRecord) (*entry, error) {
	switch {
	case r.Name == "":
		return nil, errors.New("name is required")
	case r.Service == "":
		return nil, errors.New("service is required")
	case r.ServiceNames == nil:
		return nil, errors.New("serviceNames is required (write [] when the publisher sends none)")
	case r.Description == "":
		return nil, errors.New("description is required")
	case strings.ContainsAny(r.Description, "\n\r"):
		return nil, errors.New("description must be one line")
	case r.Audited == nil:
		return nil, errors.New("audited is required")
	case r.Consumed == nil:
		return nil, errors.New("consumed is required")
	case len(r.Consumers) > 0 && !*r.Consumed:
		return nil, errors.New("consumers are listed, so consumed must be true")
	case !r.Kind.valid():
		return nil, fmt.Errorf("kind %q is not one of %s, %s, %s", r.Kind, KindCanonical, KindAlias, KindOperational)
	case r.Kind == KindAlias && r.AliasOf == "":
		return nil, errors.New("an alias needs aliasOf")
	case r.Kind != KindAlias && r.AliasOf != "":
		return nil, fmt.Errorf("aliasOf is only for kind %s", KindAlias)
	case r.Kind != KindAlias && (r.Schema == nil || r.Example == nil):
		return nil, errors.New("schema and example are required (only an alias may inherit them)")
	}
	if err := checkName(r.Name, r.Wildcards); err != nil {
		return nil, err
	}
	if r.Kind != KindOperational && len(r.Wildcards) > 0 {
		return nil, errors.New("a family of names must be operational")
	}
	for _, list := range [][]string{r.ServiceNames, r.Consumers} {
		for i, s := range list {
			if s == "" || slices.Contains(list[:i], s) {
				return nil, fmt.Errorf("service name %q is empty or repeated", s)
			}
		}
	}
	return &entry{Entry: Entry{
		Name:         r.Name,
		Wildcards:    r.Wildcards,
		Service:      r.Service,
		ServiceNames: r.ServiceNames,
		Description:  r.Description,
		Kind:         r.Kind,
		AliasOf:      r.AliasOf,
		Audited:      *r.Audited,
		Consumed:     *r.Consumed,
		Consumers:    r.Consumers,
		Schema:       r.Schema,
		Example:      r.Example,
	}}, nil
}

// checkName accepts an event name, or a family: a name some of whose words
// are '*', each given a meaning by wildcards.
func checkName(name string, wildcards []string) error {
	stars := 0
	for w := range strings.SplitSeq(name, ".") {
		if w == "*" {
			stars++
		}
	}
	if stars == 0 {
		if len(wildcards) > 0 {
			return errors.New("wildcards are only for a name with '*' words")
		}
		return event.ValidateName(name)
	}
	if err := topic.ValidatePattern(name); err != nil {
		return err
	}
	if strings.Contains("."+name+".", ".#.") {
		return errors.New("a family of names may use '*' but not '#'")
	}
	if len(wildcards) != stars {
		return fmt.Errorf("has %d '*' words but %d wildcards", stars, len(wildcards))
	}
	for _, w := range wildcards {
		if event.ValidateName(w) != nil || strings.Contains(w, ".") {
			return fmt.Errorf("wildcard %q must be one word", w)
		}
	}
	return nil
}

// reservedRule returns the schema of the reserved payload fields user and
// tenant that the entry's own schema does not declare: each must be a string
// when present. Declaring one lets an entry say otherwise, as
// iam.tenant.created does for its tenant document.
func reservedRule(schema json.RawMessage) map[string]any {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(schema, &s)
	props := map[string]any{}
	for _, f := range []string{event.PayloadUser, event.PayloadTenant} {
		if _, ok := s.Properties[f]; !ok {
			props[f] = map[string]any{"type": "string"}
		}
	}
	return map[string]any{"properties": props}
}

// payloadSchema is the schema Validate applies: the entry's own, and the
// reserved-field rule.
func payloadSchema(e Entry) map[string]any {
	return map[string]any{"allOf": []any{json.RawMessage(e.Schema), reservedRule(e.Schema)}}
}

// PayloadSchema returns the JSON Schema Validate checks the entry's
// payloads against: Schema, and the rule that the reserved fields user and
// tenant are strings unless Schema says otherwise.
func (e Entry) PayloadSchema() json.RawMessage { return mustJSON(payloadSchema(e)) }

// compile checks the schema and the example and keeps the compiled schema.
func (e *entry) compile() error {
	var top struct {
		Type any `json:"type"`
	}
	if err := json.Unmarshal(e.Schema, &top); err != nil {
		return fmt.Errorf("schema is not a JSON object: %w", err)
	}
	if top.Type != "object" {
		return errors.New(`schema must have "type": "object" (a payload is an object)`)
	}
	doc, err := decodeJSON(mustJSON(payloadSchema(e.Entry)))
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	comp := jsonschema.NewCompiler()
	// Draft 7 is what AsyncAPI's schema format builds on, so the exported
	// document means the same thing as the validation here.
	comp.DefaultDraft(jsonschema.Draft7)
	url := "urn:herald:catalog:" + e.Name
	if err := comp.AddResource(url, doc); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	sch, err := comp.Compile(url)
	if err != nil {
		return fmt.Errorf("schema does not compile: %w", err)
	}
	e.schema = sch
	if err := e.validatePayload(e.Example); err != nil {
		return fmt.Errorf("example: %w", err)
	}
	return nil
}

func decodeJSON(b []byte) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// mustJSON marshals values built from maps, slices, strings and valid raw
// JSON, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("catalog: marshal %T: %v", v, err))
	}
	return b
}

// Lookup returns the entry of an event name, or of an entry's own name. A
// name of a family (dispatch.5f1c…) returns the family's entry
// (dispatch.*).
func (c *Catalog) Lookup(name string) (Entry, bool) {
	e := c.lookup(name)
	if e == nil {
		return Entry{}, false
	}
	return e.clone(), true
}

func (c *Catalog) lookup(name string) *entry {
	if e, ok := c.byName[name]; ok {
		return e
	}
	if event.ValidateName(name) != nil {
		return nil
	}
	for _, f := range c.families {
		if topic.Match(f.Name, name) {
			return f
		}
	}
	return nil
}

// Entries returns every entry, sorted by service, then name.
func (c *Catalog) Entries() []Entry {
	out := make([]Entry, len(c.entries))
	for i, e := range c.entries {
		out[i] = e.clone()
	}
	return out
}

// Services returns the ids of the publishing services, sorted.
func (c *Catalog) Services() []string {
	out := make([]string, len(c.services))
	for i, s := range c.services {
		out[i] = s.ID
	}
	return out
}

// Match returns the entries whose name the topic pattern matches (AMQP
// rules, see package topic), in the order of Entries. A family matches
// when the pattern matches its name with '*' taken as a word: "dispatch.#"
// lists dispatch.*.
func (c *Catalog) Match(pattern string) []Entry {
	var out []Entry
	for _, e := range c.entries {
		if topic.Match(pattern, e.Name) {
			out = append(out, e.clone())
		}
	}
	return out
}

// Filter returns a catalogue of the entries Match(pattern) returns, for
// exporting a part of the catalogue.
func (c *Catalog) Filter(pattern string) *Catalog {
	sub := &Catalog{byName: make(map[string]*entry)}
	keep := make(map[string]bool)
	for _, e := range c.entries {
		if !topic.Match(pattern, e.Name) {
			continue
		}
		sub.entries = append(sub.entries, e)
		sub.byName[e.Name] = e
		if e.IsFamily() {
			sub.families = append(sub.families, e)
		}
		keep[e.Service] = true
	}
	for _, s := range c.services {
		if keep[s.ID] {
			sub.services = append(sub.services, s)
		}
	}
	return sub
}

// Audited returns, sorted, the names the audit log subscribes to: the
// canonical names of the document, the aliases OIH really publishes for
// them, and every other entry flagged audited.
func (c *Catalog) Audited() []string {
	var out []string
	for _, e := range c.entries {
		if e.Audited {
			out = append(out, e.Name)
		}
	}
	slices.Sort(out)
	return out
}

// Service returns the publishing service with this id (one of Services);
// an id the catalogue does not declare gets the id as its title.
func (c *Catalog) Service(id string) Service {
	for _, s := range c.services {
		if s.ID == id {
			return s
		}
	}
	return Service{ID: id, Title: id}
}
