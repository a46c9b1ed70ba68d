// Package oih has one Go type per event of herald's catalogue, generated
// from catalog/events.yaml: the payload's fields, typed and documented
// from the event's JSON Schema. With bus.PublishTyped and bus.On a service
// publishes and handles events by type, so a misspelt field or a field of
// the wrong type fails to compile instead of failing the catalogue's check
// at run time:
//
//	err := bus.PublishTyped(ctx, b, oih.IAMUserCreated{ID: id, Username: email})
//	err = bus.On(ctx, b, func(ctx context.Context, e oih.FlowStarted) error { … })
//
// A type's name is its event name in Go's manner (iam.user.created is
// IAMUserCreated, flowrepo.flow.created FlowrepoFlowCreated). Fields the
// schema does not type are json.RawMessage; fields the catalogue does not
// declare are not kept (Bus.Subscribe hands over the whole payload).
//
// Do not edit events.go: change the catalogue, then run go generate ./oih.
package oih

import "strings"

//go:generate go run ./internal/gen -o events.go

// Event is a catalogue event's payload as a Go type.
type Event interface {
	// EventName is the name the event is published under.
	EventName() string
}

// orStar returns w, or "*" when it is empty: the zero value of a family's
// type names the pattern of the whole family.
func orStar(w string) string {
	if w == "" {
		return "*"
	}
	return w
}

// splitName returns the n words of name, or n empty words when it has
// another number.
func splitName(name string, n int) []string {
	words := strings.Split(name, ".")
	if len(words) != n {
		return make([]string, n)
	}
	return words
}

// New returns a pointer to a new value of the type of the catalogue
// event name (a family's pattern, such as dispatch.*, for a family), or
// false when the catalogue has no such name.
func New(name string) (Event, bool) {
	f, ok := byName[name]
	if !ok {
		return nil, false
	}
	return f(), true
}
