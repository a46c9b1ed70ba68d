package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/heraldhq/herald/event"
)

// Validation failures. Validate's errors wrap one of them, so callers test
// with errors.Is.
var (
	// ErrUnknownEvent: the name is not in the catalogue. The message names
	// the closest known name when there is one (see Suggest).
	ErrUnknownEvent = errors.New("unknown event")
	// ErrSchema: the payload breaks the event's schema. The error is a
	// *SchemaError.
	ErrSchema = errors.New("payload does not match the event's schema")
)

// printer renders the schema library's messages in English.
var printer = message.NewPrinter(language.English)

// SchemaError says where and how a payload breaks its event's schema. It
// wraps ErrSchema.
type SchemaError struct {
	// Event is the event name.
	Event string
	// Pointer is the JSON Pointer (RFC 6901) of the offending value in the
	// payload; "" is the payload itself. For a missing required field it
	// points at the field that is missing.
	Pointer string
	// Rule is the JSON Schema keyword that failed: type, required, anyOf,
	// const, …
	Rule string
	// Message says what is wrong, such as "got number, want string".
	Message string
	// More counts the further violations found and not described.
	More int
}

func (e *SchemaError) Error() string {
	where := "payload"
	if e.Pointer != "" {
		where = "payload field " + e.Pointer
	}
	msg := fmt.Sprintf("event %s: %s breaks rule %q of its schema: %s", e.Event, where, e.Rule, e.Message)
	if e.More > 0 {
		msg += fmt.Sprintf(" (and %d more)", e.More)
	}
	return msg
}

// Unwrap returns ErrSchema.
func (e *SchemaError) Unwrap() error { return ErrSchema }

// Validate checks an event against the catalogue: its name must be known
// (an error wrapping ErrUnknownEvent otherwise, suggesting the closest
// name) and its payload must satisfy the name's schema (a *SchemaError
// otherwise). A syntactically invalid name returns event.ValidateName's
// error.
func (c *Catalog) Validate(ev *event.Event) error {
	if ev == nil {
		return errors.New("validate event: nil event")
	}
	return c.ValidatePayload(ev.Headers.Name, ev.Payload)
}

// ValidatePayload is Validate for a name and a payload given apart. An
// empty payload counts as {}, as on the wire.
func (c *Catalog) ValidatePayload(name string, payload json.RawMessage) error {
	e, err := c.find(name)
	if err != nil {
		return err
	}
	if err := e.validatePayload(payload); err != nil {
		var se *SchemaError
		if errors.As(err, &se) {
			se.Event = name
			return se
		}
		return fmt.Errorf("validate event %s: %w", name, err)
	}
	return nil
}

// Find is Lookup for a name about to be used: it returns the entry, or
// the error Validate would give for the name (event.ValidateName's error,
// or one wrapping ErrUnknownEvent that suggests the closest name).
func (c *Catalog) Find(name string) (Entry, error) {
	e, err := c.find(name)
	if err != nil {
		return Entry{}, err
	}
	return e.clone(), nil
}

func (c *Catalog) find(name string) (*entry, error) {
	if err := event.ValidateName(name); err != nil {
		return nil, fmt.Errorf("check event name: %w", err)
	}
	if e := c.lookup(name); e != nil {
		return e, nil
	}
	return nil, c.unknown(name)
}

func (c *Catalog) unknown(name string) error {
	if s, ok := c.Suggest(name); ok {
		return fmt.Errorf("%w %q: did you mean %s?", ErrUnknownEvent, name, s)
	}
	return fmt.Errorf("%w %q: no catalogued name is close to it", ErrUnknownEvent, name)
}

func (e *entry) validatePayload(payload json.RawMessage) error {
	if len(strings.TrimSpace(string(payload))) == 0 {
		payload = json.RawMessage("{}")
	}
	doc, err := decodeJSON(payload)
	if err != nil {
		return fmt.Errorf("%w: %v", event.ErrPayloadNotObject, err)
	}
	err = e.schema.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate payload: %w", err)
	}
	problems := leaves(ve)
	found := make([]*SchemaError, len(problems))
	for i, p := range problems {
		found[i] = &SchemaError{
			Event:   e.Name,
			Pointer: pointer(p.InstanceLocation),
			Rule:    rule(p.ErrorKind),
			Message: describe(p),
		}
		if req, ok := p.ErrorKind.(*kind.Required); ok && len(req.Missing) > 0 {
			found[i].Pointer = pointer(append(slices.Clone(p.InstanceLocation), req.Missing[0]))
		}
	}
	// The validator visits properties in map order; sorting makes the
	// violation reported the same on every run.
	slices.SortStableFunc(found, func(a, b *SchemaError) int { return strings.Compare(a.Pointer, b.Pointer) })
	found[0].More = len(found) - 1
	return found[0]
}

// leaves flattens the error tree down to the rules that failed, skipping
// the nodes that only group others (the schema itself, allOf, $ref).
func leaves(ve *jsonschema.ValidationError) []*jsonschema.ValidationError {
	switch ve.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		if len(ve.Causes) > 0 {
			var out []*jsonschema.ValidationError
			for _, c := range ve.Causes {
				out = append(out, leaves(c)...)
			}
			return out
		}
	}
	return []*jsonschema.ValidationError{ve}
}

func rule(k jsonschema.ErrorKind) string {
	path := k.KeywordPath()
	if len(path) == 0 {
		return "schema"
	}
	// dependentRequired and the like name the keyword first.
	return path[0]
}

// describe says what failed; for anyOf and oneOf, which alternative failed
// how.
func describe(ve *jsonschema.ValidationError) string {
	msg := ve.ErrorKind.LocalizedString(printer)
	switch ve.ErrorKind.(type) {
	case *kind.AnyOf, *kind.OneOf:
		var alts []string
		for _, c := range ve.Causes {
			var parts []string
			for _, l := range leaves(c) {
				p := l.ErrorKind.LocalizedString(printer)
				if loc := pointer(l.InstanceLocation); loc != pointer(ve.InstanceLocation) {
					p = loc + ": " + p
				}
				parts = append(parts, p)
			}
			alts = append(alts, strings.Join(parts, ", "))
		}
		if len(alts) > 0 {
			msg = "matches none of the alternatives: " + strings.Join(alts, "; ")
		}
	}
	return msg
}

// pointer renders an instance location as a JSON Pointer.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// Suggest returns the catalogued name closest to name by Levenshtein edit
// distance, when it is close enough to be a likely misspelling: at most a
// third of the name's length, and at least two edits allowed, letter case
// not counted. Ties go to
// canonical names, then to the first in alphabetical order. Families of
// names are never suggested.
func (c *Catalog) Suggest(name string) (string, bool) {
	limit := max(2, len(name)/3)
	lower := strings.ToLower(name)
	best, bestDist, bestKind := "", limit+1, Kind("")
	for _, e := range c.entries {
		if e.IsFamily() {
			continue
		}
		d := levenshtein(lower, strings.ToLower(e.Name))
		better := d < bestDist ||
			d == bestDist && e.Kind == KindCanonical && bestKind != KindCanonical ||
			d == bestDist && (e.Kind == KindCanonical) == (bestKind == KindCanonical) && e.Name < best
		if better {
			best, bestDist, bestKind = e.Name, d, e.Kind
		}
	}
	return best, best != ""
}

// levenshtein returns the number of single-byte insertions, deletions and
// substitutions that turn a into b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
