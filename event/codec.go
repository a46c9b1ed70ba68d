package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Known header keys; every other key lands in Headers.Extra.
const (
	headerName        = "name"
	headerServiceName = "serviceName"
	headerCreatedAt   = "createdAt"
	headerID          = "id"
)

// ErrMalformed is wrapped by every decoding error: the bytes are not an
// event envelope.
var ErrMalformed = errors.New("malformed event")

// Decode parses an event from its wire JSON. An event without an id gets
// DerivedID(body). The payload is normalised: absent or null becomes {}.
// Decode does not validate the name or size; call Validate for that.
func Decode(body []byte) (*Event, error) {
	var e Event
	if err := e.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	return &e, nil
}

// Encode returns the wire JSON of e: headers name, serviceName, createdAt
// (milliseconds since the epoch, omitted when zero), id, then any extra
// headers in key order; then the payload.
func (e *Event) Encode() ([]byte, error) { return e.MarshalJSON() }

// MarshalJSON implements json.Marshaler with the wire form.
func (e *Event) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(96 + len(e.Headers.Name) + len(e.Headers.ServiceName) + len(e.Headers.ID) + len(e.Payload))
	b.WriteString(`{"headers":{"name":`)
	writeString(&b, e.Headers.Name)
	if e.Headers.ServiceName != "" {
		b.WriteString(`,"serviceName":`)
		writeString(&b, e.Headers.ServiceName)
	}
	if !e.Headers.CreatedAt.IsZero() {
		b.WriteString(`,"createdAt":`)
		b.Write(strconv.AppendInt(b.AvailableBuffer(), e.Headers.CreatedAt.UnixMilli(), 10))
	}
	if e.Headers.ID != "" {
		b.WriteString(`,"id":`)
		writeString(&b, e.Headers.ID)
	}
	if len(e.Headers.Extra) > 0 {
		keys := make([]string, 0, len(e.Headers.Extra))
		for k := range e.Headers.Extra {
			if k == headerName || k == headerServiceName || k == headerCreatedAt || k == headerID {
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b.WriteByte(',')
			writeString(&b, k)
			b.WriteByte(':')
			if err := json.Compact(&b, e.Headers.Extra[k]); err != nil {
				return nil, fmt.Errorf("encode header %q: %w", k, err)
			}
		}
	}
	b.WriteString(`},"payload":`)
	p := bytes.TrimSpace(e.Payload)
	if len(p) == 0 || string(p) == "null" {
		b.WriteString("{}")
	} else {
		if p[0] != '{' {
			return nil, &ValidationError{Field: "payload", Err: ErrPayloadNotObject}
		}
		// Compact checks the syntax as it copies.
		if err := json.Compact(&b, p); err != nil {
			return nil, &ValidationError{Field: "payload", Err: fmt.Errorf("%w: %v", ErrPayloadNotObject, err)}
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// writeString writes s as a JSON string, exactly as encoding/json writes
// it: the common case, printable ASCII that needs no escape, directly.
func writeString(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			b.Write(q)
			return
		}
	}
	b.WriteByte('"')
	b.WriteString(s)
	b.WriteByte('"')
}

// UnmarshalJSON implements json.Unmarshaler for the wire form; see Decode.
func (e *Event) UnmarshalJSON(body []byte) error {
	if e.decodePlain(body) {
		return nil
	}
	return e.decodeAny(body)
}

// decodeAny decodes any envelope encoding/json accepts, and says what is
// wrong with any other input. decodePlain takes the common case faster and
// leaves everything else to it.
func (e *Event) decodeAny(body []byte) error {
	var env struct {
		Headers map[string]json.RawMessage `json:"headers"`
		Payload json.RawMessage            `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if env.Headers == nil {
		return fmt.Errorf("%w: no headers object", ErrMalformed)
	}
	var h Headers
	for k, v := range env.Headers {
		switch k {
		case headerName:
			if err := json.Unmarshal(v, &h.Name); err != nil {
				return fmt.Errorf("%w: headers.name is not a string", ErrMalformed)
			}
		case headerServiceName:
			if string(v) == "null" {
				continue
			}
			if err := json.Unmarshal(v, &h.ServiceName); err != nil {
				return fmt.Errorf("%w: headers.serviceName is not a string", ErrMalformed)
			}
		case headerID:
			if string(v) == "null" {
				continue
			}
			if err := json.Unmarshal(v, &h.ID); err != nil {
				return fmt.Errorf("%w: headers.id is not a string", ErrMalformed)
			}
		case headerCreatedAt:
			t, err := decodeTime(v)
			if err != nil {
				return fmt.Errorf("%w: headers.createdAt: %v", ErrMalformed, err)
			}
			h.CreatedAt = t
		default:
			if h.Extra == nil {
				h.Extra = make(map[string]json.RawMessage)
			}
			h.Extra[k] = append(json.RawMessage(nil), v...)
		}
	}
	// json.Unmarshal has checked the payload's syntax and copied it: only
	// its kind is left to check.
	p := bytes.TrimSpace(env.Payload)
	switch {
	case len(p) == 0 || string(p) == "null":
		p = json.RawMessage("{}")
	case p[0] != '{':
		return fmt.Errorf("%w: %v", ErrMalformed, &ValidationError{Field: "payload", Err: fmt.Errorf("%w: got %s", ErrPayloadNotObject, jsonKind(p[0]))})
	}
	if h.ID == "" {
		h.ID = DerivedID(body)
	}
	e.Headers = h
	e.Payload = p
	return nil
}

func decodeTime(v json.RawMessage) (time.Time, error) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || string(v) == "null" {
		return time.Time{}, nil
	}
	if v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, err
		}
		return ParseTime(s)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return time.Time{}, errors.New("neither a number nor a string")
	}
	return floatMillisToTime(f)
}
