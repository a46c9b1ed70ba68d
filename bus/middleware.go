package bus

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/heraldhq/herald/event"
)

// PanicError is the error a handler's panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Recoverer is middleware that turns a handler's panic into a *PanicError,
// so the delivery is retried like any failure instead of crashing the
// consumer. Every bus applies it outside the configured middleware.
func Recoverer(next Handler) Handler {
	return func(ctx context.Context, ev *event.Event) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = &PanicError{Value: r, Stack: debug.Stack()}
			}
		}()
		return next(ctx, ev)
	}
}
