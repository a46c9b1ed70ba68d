package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodePlain decodes body into e when body is an envelope in the plain
// form herald and OIH write, and reports whether it did. It reads the
// bytes once after validJSON has checked them, where encoding/json would
// check them, decode them into maps by reflection, and decode each header
// again: on a ~280-byte event that is most of a consumer's own cost.
//
// It gives up, leaving e untouched, on anything it would have to decode
// differently from decodeAny to get the same event: invalid JSON, a
// missing or null headers object, a key or a string header with an escape
// or invalid UTF-8, a key that only matches "headers" or "payload" when
// case is ignored, either of them twice, a header of another type than
// expected, a createdAt or payload decodeAny would refuse. decodeAny then
// decides, so both give the same result for every input
// (TestDecodePlainAgreesWithDecodeAny, FuzzDecodePlainAgreesWithDecodeAny).
func (e *Event) decodePlain(body []byte) bool {
	if !validJSON(body) {
		return false
	}
	// One copy of the body holds the payload and the extra headers, and
	// one string of the headers object holds every header string: each
	// is a slice of them, capped so that an append copies.
	own := bytes.Clone(body)
	s := scanner{b: own}
	s.space()
	if s.b[s.i] != '{' {
		return false
	}
	var headers, payload []byte
	ok := s.object(func(key []byte, escaped bool, val []byte) bool {
		switch {
		case escaped || !utf8.Valid(key):
			return false
		case string(key) == "headers":
			// A second headers object would be merged into the first.
			if headers != nil {
				return false
			}
			headers = val
		case string(key) == "payload":
			if payload != nil {
				return false
			}
			payload = val
		case bytes.EqualFold(key, []byte("headers")) || bytes.EqualFold(key, []byte("payload")):
			// encoding/json would take it for the field, ignoring case.
			return false
		}
		return true
	})
	if !ok || len(headers) == 0 || headers[0] != '{' {
		return false
	}

	text := string(headers)
	// str returns b, a slice of headers, as a slice of text.
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		off := cap(headers) - cap(b)
		return text[off : off+len(b)]
	}
	var name, service, created, id []byte
	var extra map[string]json.RawMessage
	hs := scanner{b: headers}
	ok = hs.object(func(key []byte, escaped bool, val []byte) bool {
		if escaped || !utf8.Valid(key) {
			return false
		}
		switch string(key) {
		case headerName:
			name = val
		case headerServiceName:
			service = val
		case headerCreatedAt:
			created = val
		case headerID:
			id = val
		default:
			if extra == nil {
				extra = make(map[string]json.RawMessage)
			}
			extra[str(key)] = json.RawMessage(val[:len(val):len(val)])
		}
		return true
	})
	if !ok {
		return false
	}
	var h Headers
	h.Extra = extra
	var v []byte
	if v, ok = plainString(name, false); !ok {
		return false
	}
	h.Name = str(v)
	if v, ok = plainString(service, true); !ok {
		return false
	}
	h.ServiceName = str(v)
	if v, ok = plainString(id, true); !ok {
		return false
	}
	h.ID = str(v)
	if h.CreatedAt, ok = plainTime(created); !ok {
		return false
	}
	switch {
	case len(payload) == 0 || string(payload) == "null":
		payload = json.RawMessage("{}")
	case payload[0] != '{':
		return false
	default:
		payload = payload[:len(payload):len(payload)]
	}
	if h.ID == "" {
		h.ID = DerivedID(body)
	}
	e.Headers = h
	e.Payload = payload
	return true
}

// plainString returns what is between the quotes of a string header
// without escapes, and whether it is one; an absent header is empty, and
// so is null where nullable.
func plainString(v []byte, nullable bool) ([]byte, bool) {
	switch {
	case v == nil:
		return v, true
	case nullable && string(v) == "null":
		return v[:0], true
	case v[0] != '"':
		return nil, false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(inner) {
		return nil, false
	}
	return inner, true
}

// plainTime reads createdAt as decodeTime does, when it is absent, null, a
// number or a string without escapes that ParseTime accepts.
func plainTime(v []byte) (time.Time, bool) {
	switch {
	case v == nil || string(v) == "null":
		return time.Time{}, true
	case v[0] == '"':
		s, ok := plainString(v, false)
		if !ok {
			return time.Time{}, false
		}
		t, err := ParseTime(string(s))
		return t, err == nil
	case v[0] == '-' || v[0] >= '0' && v[0] <= '9':
		// The JSON number grammar is a subset of ParseFloat's, and
		// encoding/json reads a float64 with ParseFloat too.
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return time.Time{}, false
		}
		t, err := floatMillisToTime(f)
		return t, err == nil
	}
	return time.Time{}, false
}

// scanner walks JSON that validJSON has accepted, so it checks nothing.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// str moves past the string at s.i and returns what is between its
// quotes, and whether that holds an escape.
func (s *scanner) str() (inner []byte, escaped bool) {
	s.i++
	start := s.i
	for {
		switch s.b[s.i] {
		case '"':
			inner = s.b[start:s.i]
			s.i++
			return inner, escaped
		case '\\':
			escaped = true
			s.i += 2
		default:
			s.i++
		}
	}
}

// value moves past the value at s.i and returns its bytes.
func (s *scanner) value() []byte {
	start := s.i
	switch s.b[s.i] {
	case '"':
		s.str()
	case '{', '[':
		depth := 0
		for {
			switch s.b[s.i] {
			case '"':
				s.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				break
			}
		}
	default: // a number, true, false or null
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.b[start:s.i]
			}
			s.i++
		}
	}
	return s.b[start:s.i]
}

// object calls member for each member of the object at s.i, in order,
// and moves past it; it stops, returning false, when member does.
func (s *scanner) object(member func(key []byte, escaped bool, val []byte) bool) bool {
	s.i++
	s.space()
	if s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.space()
		key, escaped := s.str()
		s.space()
		s.i++ // ':'
		s.space()
		val := s.value()
		if !member(key, escaped, val) {
			return false
		}
		s.space()
		if s.b[s.i] == '}' {
			s.i++
			return true
		}
		s.i++ // ','
	}
}
