// Package jsonobj reads and rewrites the top level of a JSON object — an
// event payload — without decoding its nested values: the stores index
// payloads by their top-level string values, and anonymisation rewrites
// those values, on every entry that holds them.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Field is one top-level member of an object, in the object's order.
type Field struct {
	Key string
	// Raw is the member's value, as it is written in the object.
	Raw json.RawMessage
}

// ErrNotObject is returned for a text that is not a valid JSON object.
var ErrNotObject = errors.New("not a JSON object")

// IsObject reports whether b is a valid JSON object.
func IsObject(b []byte) bool {
	p := bytes.TrimLeft(b, " \t\r\n")
	return len(p) > 0 && p[0] == '{' && json.Valid(p)
}

// Fields splits a JSON object into its members, keeping their order and
// their values' bytes. It runs on every appended entry, so it validates
// with json.Valid and then walks the top level by hand, skipping nested
// values, rather than decoding tokens.
func Fields(object []byte) ([]Field, error) {
	p := bytes.TrimSpace(object)
	if len(p) == 0 || p[0] != '{' {
		return nil, ErrNotObject
	}
	if !json.Valid(p) {
		return nil, fmt.Errorf("%w: invalid JSON", ErrNotObject)
	}
	out := make([]Field, 0, 8)
	i := skipSpace(p, 1)
	for i < len(p) && p[i] != '}' {
		kEnd := skipValue(p, i) // the key, a string
		key, ok := String(p[i:kEnd])
		if !ok {
			return nil, ErrNotObject
		}
		i = skipSpace(p, kEnd)
		i = skipSpace(p, i+1) // ':'
		vEnd := skipValue(p, i)
		out = append(out, Field{key, json.RawMessage(p[i:vEnd])})
		i = skipSpace(p, vEnd)
		if i < len(p) && p[i] == ',' {
			i = skipSpace(p, i+1)
		}
	}
	return out, nil
}

// Encode writes fields as a JSON object, in their order.
func Encode(fields []Field) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.Key) // a string always encodes
		b.Write(k)
		b.WriteByte(':')
		b.Write(f.Raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// String returns raw as a Go string when it is a JSON string.
func String(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value that starts at i.
func skipValue(p []byte, i int) int {
	switch p[i] {
	case '"':
		for j := i + 1; j < len(p); j++ {
			switch p[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(p)
	case '{', '[':
		depth := 0
		for j := i; j < len(p); j++ {
			switch p[j] {
			case '"':
				j = skipValue(p, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(p)
	default: // number, true, false, null
		j := i
		for j < len(p) && p[j] != ',' && p[j] != '}' && p[j] != ']' && p[j] != ' ' && p[j] != '\t' && p[j] != '\n' && p[j] != '\r' {
			j++
		}
		return j
	}
}
