package catalog

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestPersonalFieldsAreFoundNestedToo: the annotations are read through
// properties and array items, with their kind.
func TestPersonalFieldsAreFoundNestedToo(t *testing.T) {
	e, ok := Default().Lookup("flow.starting")
	if !ok {
		t.Fatal("flow.starting is not catalogued")
	}
	want := []PersonalField{{"/owners/*/id", PersonalUserID}, {"/startedBy", PersonalUserID}}
	if !slices.Equal(e.Personal, want) {
		t.Errorf("flow.starting personal fields = %v, want %v", e.Personal, want)
	}
	if f := want[0]; !f.Matches([]string{"owners", "3", "id"}) || f.Matches([]string{"owners", "x", "id"}) || f.Matches([]string{"owners", "3"}) || f.Matches([]string{"owners", "3", "id", "x"}) {
		t.Errorf("%s matches the wrong pointers", f.Path)
	}
	if !slices.Contains(Default().NestedPersonal(), "flow.starting") || slices.Contains(Default().NestedPersonal(), "iam.user.created") {
		t.Errorf("NestedPersonal() = %v", Default().NestedPersonal())
	}
}

// personalKeys are the property names that hold a user in OIH's
// payloads: a schema that has one must say so.
var personalKeys = []string{"user", "username", "account", "startedBy", "stoppedBy", "ownerId", "userId", "owners", "actedOnBehalfOf"}

// TestEveryUserFieldIsMarkedPersonal goes through every schema: a property
// with a name that holds a user in OIH is annotated, or holds a personal
// field below it.
func TestEveryUserFieldIsMarkedPersonal(t *testing.T) {
	for _, e := range Default().Entries() {
		var doc any
		if err := json.Unmarshal(e.Schema, &doc); err != nil {
			t.Fatal(err)
		}
		var walk func(path string, s any)
		walk = func(path string, s any) {
			m, _ := s.(map[string]any)
			props, _ := m["properties"].(map[string]any)
			for k, v := range props {
				p := path + "/" + k
				if slices.Contains(personalKeys, k) && !slices.ContainsFunc(e.Personal, func(f PersonalField) bool {
					return f.Path == p || strings.HasPrefix(f.Path, p+"/")
				}) {
					t.Errorf("%s: %s holds a user but is not marked x-personal", e.Name, p)
				}
				walk(p, v)
			}
			if items, ok := m["items"]; ok {
				walk(path+"/*", items)
			}
		}
		walk("", doc)
	}
}

// TestAnUnknownPersonalKindIsRefused: a typo in an annotation fails the
// catalogue, rather than leaving the field unerased.
func TestAnUnknownPersonalKindIsRefused(t *testing.T) {
	const y = `services: [{id: s, title: S}]
events:
  - name: a.b
    service: s
    serviceNames: []
    kind: operational
    description: d
    audited: true
    consumed: false
    schema: {type: object, properties: {who: {type: string, x-personal: e-mail}}}
    example: {}
`
	if _, err := Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "x-personal") {
		t.Errorf("Parse with x-personal: e-mail = %v, want an error naming x-personal", err)
	}
}

// TestPersonalPathsEscapeSlashAndTilde: a property name with "/" or "~"
// is escaped in Path as a JSON pointer is (RFC 6901), and Tokens and
// Matches read it back.
func TestPersonalPathsEscapeSlashAndTilde(t *testing.T) {
	fs, err := personalFields(json.RawMessage(`{"properties":{"a/b":{"properties":{"c~d":{"type":"string","x-personal":"email"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []PersonalField{{"/a~1b/c~0d", PersonalEmail}}
	if !slices.Equal(fs, want) {
		t.Fatalf("personal fields = %v, want %v", fs, want)
	}
	if ts := fs[0].Tokens(); !slices.Equal(ts, []string{"a/b", "c~d"}) || !fs[0].Matches(ts) {
		t.Errorf("tokens of %s = %q, want [a/b c~d] and a match", fs[0].Path, ts)
	}
}
