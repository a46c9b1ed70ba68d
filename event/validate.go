package event

import (
	"errors"
	"fmt"
)

// Validation failures. A *ValidationError wraps one of them, so callers
// test with errors.Is.
var (
	ErrNameEmpty        = errors.New("event name is empty")
	ErrNameTooLong      = fmt.Errorf("event name is longer than %d bytes", MaxNameLength)
	ErrNameInvalid      = errors.New("event name must be dot-separated words of letters, digits, '_' and '-'")
	ErrPayloadNotObject = errors.New("payload must be a JSON object")
	ErrTooLarge         = errors.New("encoded event is too large")
)

// ValidationError says which part of an event is invalid and why.
type ValidationError struct {
	Field string // "name", "payload" or "size"
	Err   error
}

func (e *ValidationError) Error() string { return fmt.Sprintf("invalid event %s: %v", e.Field, e.Err) }
func (e *ValidationError) Unwrap() error { return e.Err }

// ValidateName checks an event name: non-empty, at most MaxNameLength
// bytes, dot-separated non-empty words of ASCII letters, digits, '_' and
// '-' (OIH uses camelCase words such as loginFailed).
func ValidateName(name string) error {
	if name == "" {
		return &ValidationError{Field: "name", Err: ErrNameEmpty}
	}
	if len(name) > MaxNameLength {
		return &ValidationError{Field: "name", Err: ErrNameTooLong}
	}
	word := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			if word == 0 {
				return &ValidationError{Field: "name", Err: fmt.Errorf("%w: empty word at byte %d of %q", ErrNameInvalid, i, name)}
			}
			word = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			word++
		default:
			return &ValidationError{Field: "name", Err: fmt.Errorf("%w: %q at byte %d of %q", ErrNameInvalid, c, i, name)}
		}
	}
	if word == 0 {
		return &ValidationError{Field: "name", Err: fmt.Errorf("%w: %q ends with '.'", ErrNameInvalid, name)}
	}
	return nil
}

// Validate checks the name, that the payload is a JSON object, and that the
// encoded event is at most maxSize bytes (DefaultMaxSize when maxSize <= 0).
func (e *Event) Validate(maxSize int) error {
	if err := ValidateName(e.Headers.Name); err != nil {
		return err
	}
	if _, err := normalizePayload(e.Payload); err != nil {
		return err
	}
	b, err := e.Encode()
	if err != nil {
		return err
	}
	return CheckSize(len(b), maxSize)
}

// CheckSize reports ErrTooLarge when n exceeds maxSize (DefaultMaxSize when
// maxSize <= 0).
func CheckSize(n, maxSize int) error {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if n > maxSize {
		return &ValidationError{Field: "size", Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, maxSize)}
	}
	return nil
}
