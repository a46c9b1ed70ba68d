package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/event"
)

// Typed is an event payload as a Go type that names its event: the types
// of package oih, generated from the catalogue.
type Typed interface {
	// EventName is the name the event is published under. For a type
	// that stands for a family of names (dispatch.*), its zero value
	// returns the family's pattern.
	EventName() string
}

// nameSetter is implemented by the pointer of a family's type, to learn
// its wildcard words from a received event's name.
type nameSetter interface{ SetEventName(name string) }

// PublishTyped publishes payload as the event it names, as Publish does
// (the catalogue checks it too). A misspelt field does not compile.
func PublishTyped[T Typed](ctx context.Context, b *Bus, payload T) error {
	name := payload.EventName()
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("publish %s: encode %T: %w", name, payload, err)
	}
	ev, err := event.New(name, json.RawMessage(raw))
	if err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	return b.Publish(ctx, ev)
}

// On has handler called with the payload of every event of T's name (every
// name of its family), decoded into T, as Subscribe does. A payload that
// does not decode into T fails the delivery like a handler's error. The
// envelope (id, serviceName, createdAt) is EventFrom(ctx).
func On[T Typed](ctx context.Context, b *Bus, handler func(context.Context, T) error) error {
	var zero T
	pattern := zero.EventName()
	return b.Subscribe(ctx, pattern, func(ctx context.Context, ev *event.Event) error {
		var v T
		if err := json.Unmarshal(ev.Payload, &v); err != nil {
			// The same bytes every time: no retry decodes them.
			return Permanent(fmt.Errorf("decode %s into %T: %w", ev.Headers.Name, v, err))
		}
		if s, ok := any(&v).(nameSetter); ok {
			s.SetEventName(ev.Headers.Name)
		}
		return handler(context.WithValue(ctx, eventKey{}, ev), v)
	})
}

type eventKey struct{}

// EventFrom returns the event a handler registered with On is running
// for, or nil outside one.
func EventFrom(ctx context.Context) *event.Event {
	ev, _ := ctx.Value(eventKey{}).(*event.Event)
	return ev
}
