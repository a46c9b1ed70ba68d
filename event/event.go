// Package event defines the Open Integration Hub event envelope and its one
// JSON codec.
//
// On the wire an event is
//
//	{"headers":{"name":…,"serviceName":…,"createdAt":<ms epoch>,"id":…},"payload":{…}}
//
// exactly as OIH's Node event-bus library writes it, plus the id herald
// adds. Headers herald does not know are kept through decode and encode.
package event

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// DefaultMaxSize is the default limit on the size of an encoded event.
const DefaultMaxSize = 1 << 20

// MaxNameLength is the longest event name accepted, in bytes. It is also
// the longest routing key RabbitMQ accepts.
const MaxNameLength = 255

// Reserved payload fields, used by the audit log for access control.
const (
	PayloadUser   = "user"
	PayloadTenant = "tenant"
)

// Headers is the metadata of an event.
type Headers struct {
	// Name is the event name; it doubles as the routing key.
	Name string
	// ServiceName is the name of the publishing service.
	ServiceName string
	// CreatedAt is when the publisher created the event. The zero time
	// means the publisher did not say (components publishing through
	// ferryman send no createdAt).
	CreatedAt time.Time
	// ID identifies the event across redeliveries.
	ID string
	// Extra holds every other header, verbatim, so that nothing a
	// publisher sent is dropped.
	Extra map[string]json.RawMessage
}

// Event is one service event: headers and a JSON object payload.
type Event struct {
	Headers Headers
	// Payload is a JSON object. Decode and New guarantee it; a nil Payload
	// encodes as {}.
	Payload json.RawMessage
}

// New returns an event with the given name and payload, a fresh id and the
// current time. payload may be a json.RawMessage, []byte holding JSON, nil,
// or any value encoding/json turns into an object.
func New(name string, payload any) (*Event, error) {
	p, err := marshalPayload(payload)
	if err != nil {
		return nil, err
	}
	return &Event{
		Headers: Headers{Name: name, CreatedAt: time.Now(), ID: NewID()},
		Payload: p,
	}, nil
}

// NewID returns a new time-ordered event id (a UUIDv7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 only fails when the system's random source fails.
		return uuid.NewString()
	}
	return id.String()
}

func marshalPayload(payload any) (json.RawMessage, error) {
	var raw []byte
	switch p := payload.(type) {
	case nil:
		return json.RawMessage("{}"), nil
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		b, err := json.Marshal(p)
		if err != nil {
			return nil, &ValidationError{Field: "payload", Err: fmt.Errorf("%w: %v", ErrPayloadNotObject, err)}
		}
		raw = b
	}
	return normalizePayload(raw)
}

// normalizePayload turns an absent or null payload into {} and refuses
// anything that is not a JSON object.
func normalizePayload(raw []byte) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return json.RawMessage("{}"), nil
	}
	if t[0] != '{' {
		return nil, &ValidationError{Field: "payload", Err: fmt.Errorf("%w: got %s", ErrPayloadNotObject, jsonKind(t[0]))}
	}
	if !json.Valid(t) {
		return nil, &ValidationError{Field: "payload", Err: fmt.Errorf("%w: invalid JSON", ErrPayloadNotObject)}
	}
	return json.RawMessage(t), nil
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// User returns the reserved payload field user: the IAM id of the user who
// caused the event, or "" when absent or not a string.
func (e *Event) User() string { u, _ := e.Reserved(); return u }

// Tenant returns the reserved payload field tenant: the IAM id of the
// tenant the event happened in, or "". IAM's iam.tenant.created carries the
// whole tenant document there; for an object the tenant's "_id" (or "id")
// is returned.
func (e *Event) Tenant() string { _, t := e.Reserved(); return t }

// Reserved returns User and Tenant with one reading of the payload. The
// keys are matched exactly: "USER" or "Tenant" are ordinary keys (a
// struct would match them case-insensitively, and the last one written
// would decide who sees the entry).
func (e *Event) Reserved() (user, tenant string) {
	if len(e.Payload) == 0 {
		return "", ""
	}
	if user, tenant, ok := reservedPlain(e.Payload); ok {
		return user, tenant
	}
	return reservedAny(e.Payload)
}

// reservedPlain reads the reserved fields as reservedAny does, in one pass
// over a payload validJSON has checked, without encoding/json's
// reflection and without decoding the other fields: every event the audit
// log stores is read so. It gives up on anything it would have to read
// differently to get the same result: invalid JSON, a payload that is
// not an object, a key with an escape or invalid UTF-8. A field's value that is not a string without
// escapes is read by reservedValue, as reservedAny reads it
// (TestReservedPlainAgreesWithEncodingJSON, FuzzReservedPlainAgreesWithEncodingJSON).
func reservedPlain(payload []byte) (user, tenant string, ok bool) {
	if !validJSON(payload) {
		return "", "", false
	}
	s := scanner{b: payload}
	s.space()
	if s.b[s.i] != '{' {
		return "", "", false
	}
	var u, t []byte
	ok = s.object(func(key []byte, escaped bool, val []byte) bool {
		switch {
		case escaped || !utf8.Valid(key):
			return false
		case string(key) == "user":
			u = val // the last one, as encoding/json keeps
		case string(key) == "tenant":
			t = val
		}
		return true
	})
	if !ok {
		return "", "", false
	}
	return plainReserved(u), plainReserved(t), true
}

// plainReserved is reservedValue of a field's value, read directly when
// it is a string without escapes.
func plainReserved(v []byte) string {
	if len(v) > 0 && v[0] == '"' {
		if inner, ok := plainString(v, false); ok {
			return string(inner)
		}
	}
	return reservedValue(v)
}

// reservedAny reads the reserved fields with encoding/json.
func reservedAny(payload []byte) (user, tenant string) {
	var p map[string]json.RawMessage
	if json.Unmarshal(payload, &p) != nil {
		return "", ""
	}
	return reservedValue(p["user"]), reservedValue(p["tenant"])
}

// reservedValue reads a reserved field: a string, or the id of an object.
func reservedValue(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(v, &obj) == nil {
		var id string
		if json.Unmarshal(obj["_id"], &id) == nil && id != "" {
			return id
		}
		if json.Unmarshal(obj["id"], &id) == nil {
			return id
		}
	}
	return ""
}

// Clone returns a deep copy of e.
func (e *Event) Clone() *Event {
	c := &Event{Headers: e.Headers, Payload: append(json.RawMessage(nil), e.Payload...)}
	if e.Headers.Extra != nil {
		c.Headers.Extra = make(map[string]json.RawMessage, len(e.Headers.Extra))
		for k, v := range e.Headers.Extra {
			c.Headers.Extra[k] = append(json.RawMessage(nil), v...)
		}
	}
	return c
}

// String returns a short description for logs.
func (e *Event) String() string {
	return fmt.Sprintf("%s (id %s, from %s)", e.Headers.Name, e.Headers.ID, e.Headers.ServiceName)
}

// DerivedID returns the id an event without one receives: a UUID (version
// 8) built from the SHA-256 of its encoded body, so every redelivery of the
// same bytes gets the same id.
func DerivedID(body []byte) string {
	sum := sha256.Sum256(body)
	var u uuid.UUID
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x80 // version 8: custom
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u.String()
}

// KeyedID returns a UUID (version 8) built from the HMAC-SHA256 under key
// of parts (each length-prefixed, so no two lists of parts give the same
// input): an id nobody without key can compute in advance, the same for
// the same parts.
func KeyedID(key []byte, parts ...[]byte) string {
	mac := hmac.New(sha256.New, key)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		mac.Write(n[:])
		mac.Write(p)
	}
	var u uuid.UUID
	copy(u[:], mac.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x80 // version 8: custom
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u.String()
}

// MillisToTime converts milliseconds since the epoch to a UTC time.
func MillisToTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// The range of times an event may carry: years 1 to 9999, what RFC 3339
// can write and both audit stores hold alike. MinTimeMillis and
// MaxTimeMillis are its bounds in milliseconds since the epoch.
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC)
)

const (
	MinTimeMillis = -62135596800000
	MaxTimeMillis = 253402300799999
)

// ErrTimeRange is wrapped by the errors for a time outside MinTime to
// MaxTime, or a number that is no time (NaN, infinite).
var ErrTimeRange = errors.New("time outside years 1 to 9999")

// floatMillisToTime converts a number of milliseconds, as JSON carries
// it, checking the range.
func floatMillisToTime(f float64) (time.Time, error) {
	if math.IsNaN(f) || f < MinTimeMillis || f >= MaxTimeMillis+1 {
		return time.Time{}, fmt.Errorf("%w: %v milliseconds since the epoch (allowed: %d to %d)", ErrTimeRange, f, int64(MinTimeMillis), int64(MaxTimeMillis))
	}
	return MillisToTime(int64(f)), nil
}

// checkRange refuses a time outside MinTime to MaxTime.
func checkRange(t time.Time) (time.Time, error) {
	if t.Before(MinTime) || t.After(MaxTime) {
		return time.Time{}, fmt.Errorf("%w: %s", ErrTimeRange, t.UTC().Format(time.RFC3339Nano))
	}
	return t, nil
}

// ParseTime reads a timestamp as OIH services write it: milliseconds since
// the epoch (a number or a numeric string) or an RFC 3339 string, within
// years 1 to 9999 (MinTime to MaxTime; ErrTimeRange beyond, and for NaN
// or an infinity).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty timestamp")
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return floatMillisToTime(f)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is neither milliseconds since the epoch nor RFC 3339", s)
	}
	return checkRange(t)
}
