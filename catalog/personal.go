package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The kinds of personal data a payload field may hold, the values of a
// schema's x-personal annotation.
const (
	// PersonalUserID is an IAM account id.
	PersonalUserID = "user-id"
	// PersonalUsername is an IAM username (an e-mail address in OIH).
	PersonalUsername = "username"
	// PersonalEmail is an e-mail address that is not a username.
	PersonalEmail = "email"
	// PersonalName is a person's name.
	PersonalName = "name"
)

// PersonalKinds are the values an x-personal annotation may take.
var PersonalKinds = []string{PersonalUserID, PersonalUsername, PersonalEmail, PersonalName}

// PersonalField is a payload field that holds personal data, found in the
// entry's schema by its x-personal annotation.
type PersonalField struct {
	// Path is the field's JSON pointer in the payload, where a "*" token
	// stands for every item of an array: /startedBy, /owners/*/id.
	Path string `json:"path"`
	// Kind is one of PersonalKinds.
	Kind string `json:"kind"`
}

// EscapeToken escapes a key for a JSON pointer (RFC 6901): "~" as "~0",
// "/" as "~1".
func EscapeToken(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

// UnescapeToken is the key a JSON pointer's token stands for: EscapeToken
// undone.
func UnescapeToken(tok string) string {
	if !strings.Contains(tok, "~") {
		return tok
	}
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
}

// Tokens splits Path into its unescaped tokens.
func (f PersonalField) Tokens() []string {
	if f.Path == "" {
		return nil
	}
	ts := strings.Split(strings.TrimPrefix(f.Path, "/"), "/")
	for i, t := range ts {
		ts[i] = UnescapeToken(t)
	}
	return ts
}

// Matches reports whether the payload pointer p (unescaped tokens) is
// this field: the same tokens, a "*" of the path matching any array index.
// It reads Path in place, without splitting it.
func (f PersonalField) Matches(p []string) bool {
	if f.Path == "" {
		return len(p) == 0
	}
	rest := strings.TrimPrefix(f.Path, "/")
	for i := 0; ; i++ {
		t, next, more := strings.Cut(rest, "/")
		if i == len(p) {
			return false
		}
		t = UnescapeToken(t)
		if t != p[i] && !(t == "*" && isIndex(p[i])) {
			return false
		}
		if !more {
			return i == len(p)-1
		}
		rest = next
	}
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// personalFields reads the x-personal annotations of a schema: on any
// subschema reached through properties, items, allOf, anyOf or oneOf.
// An annotation with an unknown kind is an error.
func personalFields(schema json.RawMessage) ([]PersonalField, error) {
	var out []PersonalField
	var walk func(path string, s any) error
	walk = func(path string, s any) error {
		m, ok := s.(map[string]any)
		if !ok {
			return nil
		}
		if k, ok := m["x-personal"]; ok {
			ks, _ := k.(string)
			if !slices.Contains(PersonalKinds, ks) {
				return fmt.Errorf("x-personal of %q is %v: want one of %s", path, k, strings.Join(PersonalKinds, ", "))
			}
			if path == "" {
				return fmt.Errorf("x-personal on the payload itself: annotate its fields")
			}
			out = append(out, PersonalField{Path: path, Kind: ks})
		}
		if props, ok := m["properties"].(map[string]any); ok {
			keys := make([]string, 0, len(props))
			for k := range props {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				esc := EscapeToken(k)
				if err := walk(path+"/"+esc, props[k]); err != nil {
					return err
				}
			}
		}
		if items, ok := m["items"]; ok {
			if err := walk(path+"/*", items); err != nil {
				return err
			}
		}
		for _, comb := range []string{"allOf", "anyOf", "oneOf"} {
			subs, _ := m[comb].([]any)
			for _, sub := range subs {
				if err := walk(path, sub); err != nil {
					return err
				}
			}
		}
		return nil
	}
	var doc any
	if len(schema) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(schema, &doc); err != nil {
		return nil, err
	}
	if err := walk("", doc); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b PersonalField) int { return strings.Compare(a.Path, b.Path) })
	return slices.Compact(out), nil
}

// PersonalKeys returns the distinct top-level payload keys of every
// entry's personal fields, for a caller that looks for personal data in
// events it cannot name.
func (c *Catalog) PersonalKeys() []string {
	var out []string
	for _, e := range c.entries {
		for _, f := range e.Personal {
			if ts := f.Tokens(); len(ts) == 1 {
				out = append(out, ts[0])
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// NestedPersonal returns the names of the entries with a personal field
// below the payload's top level, sorted.
func (c *Catalog) NestedPersonal() []string {
	var out []string
	for _, e := range c.entries {
		if e.IsFamily() {
			continue
		}
		for _, f := range e.Personal {
			if len(f.Tokens()) > 1 {
				out = append(out, e.Name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
