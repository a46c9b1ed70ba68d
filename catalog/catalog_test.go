package catalog

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/topic"
)

func seedNames(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/seed-names.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			names = append(names, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("testdata/seed-names.txt lists no names")
	}
	return names
}

func TestEmbeddedCatalogueParses(t *testing.T) {
	if _, err := Parse(embedded); err != nil {
		t.Fatalf("events.yaml: %v", err)
	}
	if Default() != Default() {
		t.Fatal("Default parsed the embedded file more than once")
	}
}

func TestEverySeedNameIsCanonicalAndAudited(t *testing.T) {
	c := Default()
	for _, name := range seedNames(t) {
		e, ok := c.Lookup(name)
		if !ok {
			t.Errorf("seed name %s is not in the catalogue", name)
			continue
		}
		if e.Kind != KindCanonical || !e.Audited {
			t.Errorf("seed name %s: kind %s, audited %v; want canonical and audited", name, e.Kind, e.Audited)
		}
	}
	for _, e := range c.Entries() {
		if e.Kind == KindCanonical && !slices.Contains(seedNames(t), e.Name) {
			t.Errorf("%s is canonical but not a name of the seed document", e.Name)
		}
	}
}

// oihPublished is every name oih-events.md §1 shows OIH really publishing,
// with what the catalogue must say it is.
var oihPublished = []struct {
	name, kind, aliasOf string
}{
	{"iam.user.created", "canonical", ""},
	{"iam.user.modified", "canonical", ""},
	{"iam.user.deleted", "canonical", ""},
	{"iam.user.assignedToTenant", "canonical", ""},
	{"iam.user.removedFormTenant", "alias", "iam.user.removedFromTenant"},
	{"iam.user.loginFailed", "canonical", ""},
	{"iam.tenant.created", "canonical", ""},
	{"iam.tenant.modified", "canonical", ""},
	{"iam.tenant.deleted", "canonical", ""},
	{"iam.role.created", "canonical", ""},
	{"iam.role.modified", "canonical", ""},
	{"iam.role.deleted", "canonical", ""},
	{"iam.permission.created", "canonical", ""},
	{"iam.permission.modified", "canonical", ""},
	{"iam.permission.deleted", "canonical", ""},
	{"iam.token.created", "canonical", ""},
	{"iam.token.modified", "canonical", ""},
	{"iam.token.deleted", "canonical", ""},
	{"secrets.authclient.created", "alias", "secret-service.auth-client.created"},
	{"secrets.authclient.deleted", "alias", "secret-service.auth-client.deleted"},
	{"secrets.secret.created", "alias", "secret-service.secret.created"},
	{"secrets.secret.deleted", "alias", "secret-service.secret.deleted"},
	{"secrets.token.get", "alias", "secret-service.token.get"},
	{"secrets.secret.ownerAdded", "operational", ""},
	{"secrets.secret.ownerRemoved", "operational", ""},
	{"metadata.domain.deleted", "canonical", ""},
	{"metadata.schema.created", "canonical", ""},
	{"metadata.schema.modified", "canonical", ""},
	{"metadata.schema.deleted", "canonical", ""},
	{"flowrepo.flow.created", "canonical", ""},
	{"flowrepo.flow.modified", "canonical", ""},
	{"flowrepo.flow.deleted", "canonical", ""},
	{"flow.starting", "operational", ""},
	{"flow.stopping", "operational", ""},
	{"templaterepo.template.created", "operational", ""},
	{"templaterepo.template.modified", "operational", ""},
	{"templaterepo.template.deleted", "operational", ""},
	{"flow.started", "canonical", ""},
	{"flow.stopped", "canonical", ""},
	{"flow.failed", "operational", ""},
	{"component.started", "operational", ""},
	{"component.stopped", "operational", ""},
	{"component.failed", "operational", ""},
	{"component.starting", "operational", ""},
	{"component.stopping", "operational", ""},
	{"flow.execute", "operational", ""},
	{"data-hub.record.created", "operational", ""},
	{"data-hub.record.updated", "operational", ""},
	{"dispatch.5f1c0c6e2a9b4c0033333333", "operational", ""},
	{"provenance", "operational", ""},
	{"raw-record.created", "operational", ""},
}

func TestEveryNameOIHPublishesIsCatalogued(t *testing.T) {
	c := Default()
	for _, want := range oihPublished {
		e, ok := c.Lookup(want.name)
		if !ok {
			t.Errorf("%s is published by OIH but not catalogued", want.name)
			continue
		}
		if string(e.Kind) != want.kind || e.AliasOf != want.aliasOf {
			t.Errorf("%s: kind %s aliasOf %q, want %s aliasOf %q", want.name, e.Kind, e.AliasOf, want.kind, want.aliasOf)
		}
	}
}

func TestPublishersServiceNamesAreTheOnesOIHWrites(t *testing.T) {
	c := Default()
	want := map[string][]string{
		"iam.user.created":              {"accounts"},
		"secrets.secret.created":        {"secret-service"},
		"metadata.schema.created":       {"meta-data-repository"},
		"flowrepo.flow.created":         {"flow-repository"},
		"flow.started":                  {"component-orchestrator"},
		"templaterepo.template.created": {"template-repository"},
		"component.starting":            {"component-repository"},
		"flow.execute":                  {"scheduler", "webhooks"},
		"data-hub.record.created":       {"data-hub"},
		"dispatch.x":                    {"dispatcher-service"},
		"provenance":                    {},
		"raw-record.created":            {},
	}
	for name, names := range want {
		e, ok := c.Lookup(name)
		if !ok {
			t.Errorf("%s is not catalogued", name)
			continue
		}
		if !slices.Equal(e.ServiceNames, names) {
			t.Errorf("%s: serviceNames %q, want %q", name, e.ServiceNames, names)
		}
	}
}

func TestNamesAreUniqueAndValid(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Default().Entries() {
		if seen[e.Name] {
			t.Errorf("%s is listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.IsFamily() {
			if err := topic.ValidatePattern(e.Name); err != nil {
				t.Errorf("family %s: %v", e.Name, err)
			}
			continue
		}
		if err := event.ValidateName(e.Name); err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
	}
}

func TestEveryAliasPointsAtACanonicalEntryThatListsIt(t *testing.T) {
	c := Default()
	for _, e := range c.Entries() {
		if e.Kind != KindAlias {
			if e.AliasOf != "" {
				t.Errorf("%s is %s but has aliasOf %s", e.Name, e.Kind, e.AliasOf)
			}
			continue
		}
		target, ok := c.Lookup(e.AliasOf)
		if !ok {
			t.Errorf("alias %s points at %s, which is not catalogued", e.Name, e.AliasOf)
			continue
		}
		if target.Kind != KindCanonical || !slices.Contains(target.Aliases, e.Name) {
			t.Errorf("alias %s: target %s is %s with aliases %q", e.Name, target.Name, target.Kind, target.Aliases)
		}
		if e.Audited != target.Audited {
			t.Errorf("alias %s is audited=%v but %s is audited=%v", e.Name, e.Audited, target.Name, target.Audited)
		}
	}
}

func TestEveryExampleValidatesAgainstItsSchema(t *testing.T) {
	c := Default()
	for _, e := range c.Entries() {
		name := e.Name
		if e.IsFamily() {
			name = strings.ReplaceAll(name, "*", "example")
		}
		if err := c.ValidatePayload(name, e.Example); err != nil {
			t.Errorf("%s: example does not validate: %v", e.Name, err)
		}
	}
}

func TestSchemasAllowUnknownFields(t *testing.T) {
	c := Default()
	for _, e := range c.Entries() {
		var p map[string]any
		if err := json.Unmarshal(e.Example, &p); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		p["someFieldNoPublisherSends"] = map[string]any{"nested": []any{1, "two"}}
		b, _ := json.Marshal(p)
		name := strings.ReplaceAll(e.Name, "*", "example")
		if err := c.ValidatePayload(name, b); err != nil {
			t.Errorf("%s refuses an unknown field: %v", e.Name, err)
		}
	}
}

func TestReservedUserAndTenantMustBeStrings(t *testing.T) {
	c := Default()
	for _, e := range c.Entries() {
		name := strings.ReplaceAll(e.Name, "*", "example")
		for _, field := range []string{event.PayloadUser, event.PayloadTenant} {
			var p map[string]any
			_ = json.Unmarshal(e.Example, &p)
			p[field] = 42
			b, _ := json.Marshal(p)
			err := c.ValidatePayload(name, b)
			var se *SchemaError
			if !asSchemaError(err, &se) || se.Pointer != "/"+field {
				t.Errorf("%s with %s 42: err = %v, want a schema error at /%s", e.Name, field, err, field)
			}
		}
		// Where a schema declares them, it declares strings, except for
		// the tenant document of iam.tenant.created.
		var s struct {
			Properties map[string]struct {
				Type any `json:"type"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(e.Schema, &s); err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		for _, field := range []string{event.PayloadUser, event.PayloadTenant} {
			p, ok := s.Properties[field]
			if !ok || (e.Name == "iam.tenant.created" && field == event.PayloadTenant) {
				continue
			}
			if p.Type != "string" {
				t.Errorf("%s declares %s as %v, want string", e.Name, field, p.Type)
			}
		}
	}
}

func TestEveryEntryIsDescribedOnOneLine(t *testing.T) {
	for _, e := range Default().Entries() {
		if e.Description == "" || strings.ContainsAny(e.Description, "\n\r") {
			t.Errorf("%s: description %q", e.Name, e.Description)
		}
		if e.Service == "" {
			t.Errorf("%s: no service", e.Name)
		}
	}
}

func TestEntriesAreSortedByServiceThenName(t *testing.T) {
	entries := Default().Entries()
	sorted := slices.IsSortedFunc(entries, func(a, b Entry) int {
		if d := strings.Compare(a.Service, b.Service); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	if !sorted {
		t.Fatal("Entries is not sorted by service, then name")
	}
}

func TestServicesListsEveryPublishingServiceOnce(t *testing.T) {
	c := Default()
	services := c.Services()
	if !slices.IsSorted(services) || len(slices.Compact(slices.Clone(services))) != len(services) {
		t.Fatalf("Services() = %q, want sorted and unique", services)
	}
	for _, e := range c.Entries() {
		if !slices.Contains(services, e.Service) {
			t.Errorf("%s: service %s is missing from Services()", e.Name, e.Service)
		}
	}
	for _, want := range []string{"iam", "secret-service", "metadata", "flow-repository", "component-orchestrator",
		"template-repository", "component-repository", "scheduler", "data-hub", "dispatcher-service", "ferryman"} {
		if !slices.Contains(services, want) {
			t.Errorf("Services() lacks %s", want)
		}
	}
}

// The audit log records the seed's names, the names OIH really sends for
// them, the template events OIH's audit log subscribes, and flow-repo's
// flow.starting/flow.stopping: the only events OIH really publishes when a
// user starts or stops a flow (they carry startedBy).
func TestAuditedIsTheSeedNamesTheirAliasesTemplateAndFlowStartStop(t *testing.T) {
	want := append(seedNames(t),
		"flow.starting", "flow.stopping",
		"iam.user.removedFormTenant",
		"secrets.secret.created", "secrets.secret.deleted", "secrets.token.get",
		"secrets.authclient.created", "secrets.authclient.deleted",
		"templaterepo.template.created", "templaterepo.template.modified", "templaterepo.template.deleted",
	)
	slices.Sort(want)
	if got := Default().Audited(); !slices.Equal(got, want) {
		t.Fatalf("Audited() =\n%q\nwant\n%q", got, want)
	}
}

func TestConsumedMatchesTheSubscriptionsOIHHas(t *testing.T) {
	c := Default()
	consumed := map[string]bool{
		// The seed's "General Events".
		"iam.user.created": true, "iam.user.deleted": true, "iam.tenant.created": true, "iam.tenant.deleted": true,
		// oih-events §2.
		"flow.started": true, "flow.stopped": true, "flow.failed": true, "flow.starting": true, "flow.stopping": true,
		"flow.execute": true, "component.starting": true, "component.stopping": true, "provenance": true,
		"raw-record.created": true, "data-hub.record.created": true, "data-hub.record.updated": true, "dispatch.*": true,
	}
	for _, e := range c.Entries() {
		if e.Consumed != consumed[e.Name] {
			t.Errorf("%s: consumed = %v, want %v", e.Name, e.Consumed, consumed[e.Name])
		}
	}
}

func TestMatchUsesAMQPTopicRules(t *testing.T) {
	c := Default()
	tests := []struct {
		pattern string
		want    []string
	}{
		{"iam.*.created", []string{"iam.permission.created", "iam.role.created", "iam.tenant.created", "iam.token.created", "iam.user.created"}},
		{"secrets.#", []string{"secrets.authclient.created", "secrets.authclient.deleted", "secrets.secret.created",
			"secrets.secret.deleted", "secrets.secret.ownerAdded", "secrets.secret.ownerRemoved", "secrets.token.get"}},
		{"#.token.*", []string{"iam.token.created", "iam.token.deleted", "iam.token.modified", "secret-service.token.get", "secrets.token.get"}},
		{"flow.*", []string{"flow.execute", "flow.failed", "flow.started", "flow.starting", "flow.stopped", "flow.stopping"}},
		{"*", []string{"provenance"}},
		{"dispatch.#", []string{"dispatch.*"}},
		{"nothing.matches", nil},
	}
	for _, tc := range tests {
		var got []string
		for _, e := range c.Match(tc.pattern) {
			got = append(got, e.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Match(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
	if n := len(c.Match("#")); n != len(c.Entries()) {
		t.Errorf("Match(\"#\") returned %d entries, want all %d", n, len(c.Entries()))
	}
}

func TestLookupFindsAFamilyByAnyOfItsNames(t *testing.T) {
	c := Default()
	for _, name := range []string{"dispatch.5f1c0c6e2a9b4c0033333333", "dispatch.*"} {
		e, ok := c.Lookup(name)
		if !ok || e.Name != "dispatch.*" || !slices.Equal(e.Wildcards, []string{"targetFlowId"}) {
			t.Errorf("Lookup(%q) = %+v, %v; want the dispatch.* family", name, e.Name, ok)
		}
	}
	for _, name := range []string{"dispatch", "dispatch.a.b", "dispatch.", "dispatch.#"} {
		if e, ok := c.Lookup(name); ok {
			t.Errorf("Lookup(%q) = %s, want nothing", name, e.Name)
		}
	}
}

func TestLookupReturnsACopy(t *testing.T) {
	c := Default()
	e, _ := c.Lookup("flow.execute")
	e.ServiceNames[0] = "changed"
	e.Schema[0] = ' '
	again, _ := c.Lookup("flow.execute")
	if again.ServiceNames[0] != "scheduler" || again.Schema[0] != '{' {
		t.Fatal("changing a looked-up entry changed the catalogue")
	}
}

func TestFilterKeepsOnlyMatchingEntriesAndTheirServices(t *testing.T) {
	sub := Default().Filter("iam.user.#")
	if got := sub.Services(); !slices.Equal(got, []string{"iam"}) {
		t.Fatalf("Services() = %q, want [iam]", got)
	}
	for _, e := range sub.Entries() {
		if !strings.HasPrefix(e.Name, "iam.user.") {
			t.Errorf("Filter kept %s", e.Name)
		}
	}
	if n := len(sub.Entries()); n != 7 {
		t.Errorf("Filter kept %d entries, want 7", n)
	}
}

func TestParseRefusesABrokenCatalogue(t *testing.T) {
	const services = "services:\n  - {id: s, title: S}\n"
	valid := `  - name: a.b
    service: s
    serviceNames: [s]
    kind: canonical
    description: d
    audited: true
    consumed: false
    schema: {type: object, required: [id], properties: {id: {type: string}}}
    example: {id: x}
`
	tests := map[string]string{
		"duplicate name":          services + "events:\n" + valid + valid,
		"invalid name":            services + "events:\n" + strings.Replace(valid, "a.b", "a..b", 1),
		"family with #":           services + "events:\n" + strings.Replace(strings.Replace(valid, "a.b", "a.#", 1), "kind: canonical", "kind: operational\n    wildcards: [x]", 1),
		"family without meaning":  services + "events:\n" + strings.Replace(strings.Replace(valid, "a.b", "a.*", 1), "kind: canonical", "kind: operational", 1),
		"canonical family":        services + "events:\n" + strings.Replace(valid, "a.b", "a.*\n    wildcards: [x]", 1),
		"alias of a missing name": services + "events:\n" + strings.Replace(valid, "kind: canonical", "kind: alias\n    aliasOf: a.c", 1),
		"alias of an alias": services + "events:\n" + valid +
			strings.Replace(strings.Replace(valid, "a.b", "a.c", 1), "kind: canonical", "kind: alias\n    aliasOf: a.b", 1) +
			strings.Replace(strings.Replace(valid, "a.b", "a.d", 1), "kind: canonical", "kind: alias\n    aliasOf: a.c", 1),
		"aliasOf on a canonical":   services + "events:\n" + strings.Replace(valid, "kind: canonical", "kind: canonical\n    aliasOf: a.c", 1),
		"unknown kind":             services + "events:\n" + strings.Replace(valid, "kind: canonical", "kind: derived", 1),
		"schema does not compile":  services + "events:\n" + strings.Replace(valid, "{id: {type: string}}", "{id: {type: 5}}", 1),
		"schema not an object":     services + "events:\n" + strings.Replace(valid, "schema: {type: object,", "schema: {type: array,", 1),
		"example breaks schema":    services + "events:\n" + strings.Replace(valid, "example: {id: x}", "example: {id: 5}", 1),
		"missing example":          services + "events:\n" + strings.Replace(valid, "    example: {id: x}\n", "", 1),
		"missing audited":          services + "events:\n" + strings.Replace(valid, "    audited: true\n", "", 1),
		"missing serviceNames":     services + "events:\n" + strings.Replace(valid, "    serviceNames: [s]\n", "", 1),
		"consumers but unconsumed": services + "events:\n" + strings.Replace(valid, "consumed: false", "consumed: false\n    consumers: [x]", 1),
		"two-line description":     services + "events:\n" + strings.Replace(valid, "description: d", "description: \"d\\ne\"", 1),
		"undeclared service":       services + "events:\n" + strings.Replace(valid, "service: s", "service: t", 1),
		"service without events":   services + "  - {id: t, title: T}\nevents:\n" + valid,
		"unknown field":            services + "events:\n" + strings.Replace(valid, "audited: true", "audited: true\n    audit: true", 1),
		"not YAML":                 "events: [",
	}
	for name, data := range tests {
		if _, err := Parse([]byte(data)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
	if _, err := Parse([]byte(services + "events:\n" + valid)); err != nil {
		t.Fatalf("the valid base case: %v", err)
	}
	_, err := Parse([]byte(tests["example breaks schema"]))
	if err == nil || !strings.Contains(err.Error(), "event a.b: example") || !strings.Contains(err.Error(), "/id") {
		t.Fatalf("err = %v, want it to name the event, the example and the field", err)
	}
}

func TestParseLetsAnAliasInheritSchemaAndExample(t *testing.T) {
	data := `services:
  - {id: s, title: S}
events:
  - name: a.b
    service: s
    serviceNames: [s]
    kind: canonical
    description: d
    audited: true
    consumed: false
    schema: {type: object, required: [id], properties: {id: {type: string}}}
    example: {id: x}
  - name: a.bb
    service: s
    serviceNames: [s]
    kind: alias
    aliasOf: a.b
    description: d
    audited: true
    consumed: false
`
	c, err := Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	alias, _ := c.Lookup("a.bb")
	canon, _ := c.Lookup("a.b")
	if string(alias.Schema) != string(canon.Schema) || string(alias.Example) != string(canon.Example) {
		t.Fatalf("alias schema %s example %s, want the canonical ones", alias.Schema, alias.Example)
	}
	if !slices.Equal(canon.Aliases, []string{"a.bb"}) {
		t.Fatalf("canonical Aliases = %q", canon.Aliases)
	}
	if err := c.ValidatePayload("a.bb", json.RawMessage(`{}`)); err == nil {
		t.Fatal("the alias does not apply the inherited schema")
	}
}
