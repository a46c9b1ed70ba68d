package sqlite

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/auditlog"
)

// term is the token entry_terms holds for a top-level payload key and
// string value: 32 hex digits of SHA-256(key NUL value). Keys hold no NUL,
// so different pairs hash different input; finding two inputs with one
// 128-bit digest takes about 2^64 work, so a matching token is an exact
// match and the query need not read the payload to check it.
func term(key, value string) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(value))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// matchAll and matchAny build an FTS5 query for tokens (which are plain
// hex, so quoting them is enough).
func matchAll(tokens []string) string { return `"` + strings.Join(tokens, `" AND "`) + `"` }
func matchAny(tokens []string) string { return `"` + strings.Join(tokens, `" OR "`) + `"` }

// field is one top-level member of a payload, in its order.
type field struct {
	key string
	raw json.RawMessage
}

var errNotObject = errors.New("payload is not a JSON object")

// fields splits a JSON object into its members, keeping their order and
// their values' bytes. It runs on every appended entry, so it validates
// with json.Valid and then walks the top level by hand, skipping nested
// values, rather than decoding tokens.
func fields(payload []byte) ([]field, error) {
	p := bytes.TrimSpace(payload)
	if len(p) == 0 || p[0] != '{' {
		return nil, errNotObject
	}
	if !json.Valid(p) {
		return nil, fmt.Errorf("%w: invalid JSON", errNotObject)
	}
	out := make([]field, 0, 8)
	i := skipSpace(p, 1)
	for i < len(p) && p[i] != '}' {
		kEnd := skipValue(p, i) // the key, a string
		key, ok := stringValue(p[i:kEnd])
		if !ok {
			return nil, errNotObject
		}
		i = skipSpace(p, kEnd)
		i = skipSpace(p, i+1) // ':'
		vEnd := skipValue(p, i)
		out = append(out, field{key, json.RawMessage(p[i:vEnd])})
		i = skipSpace(p, vEnd)
		if i < len(p) && p[i] == ',' {
			i = skipSpace(p, i+1)
		}
	}
	return out, nil
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

// stringValue returns raw as a Go string when it is a JSON string.
func stringValue(raw json.RawMessage) (string, bool) {
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

// terms returns the entry_terms text of a payload: the tokens of its
// top-level string values under filterable keys.
func terms(fs []field) string {
	var b strings.Builder
	for _, f := range fs {
		if !auditlog.ValidPayloadKey(f.key) {
			continue
		}
		v, ok := stringValue(f.raw)
		if !ok {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(term(f.key, v))
	}
	return b.String()
}

// anonymiseTokens are the tokens of the entries an anonymisation selects:
// payload user, id or account equal to the user id, or user or username
// equal to one of the usernames.
func anonymiseTokens(a auditlog.Anonymisation) []string {
	var out []string
	if a.UserID != "" {
		for _, k := range []string{"user", "id", "account"} {
			out = append(out, term(k, a.UserID))
		}
	}
	for _, u := range a.Usernames {
		if u != "" {
			out = append(out, term("user", u), term("username", u))
		}
	}
	return out
}

// redact applies an anonymisation to a payload, as OIH does and where OIH
// misses it: every top-level string value equal to the user id or one of
// the usernames, and any username that is set, become auditlog.Redacted.
// Nested values are left alone. It reports whether anything changed.
func redact(fs []field, a auditlog.Anonymisation) ([]byte, bool) {
	redacted, _ := json.Marshal(auditlog.Redacted)
	changed := false
	for i, f := range fs {
		v, isString := stringValue(f.raw)
		hit := isString && v != auditlog.Redacted && v != "" && (v == a.UserID || slices.Contains(a.Usernames, v))
		if f.key == "username" && isSet(f.raw) && !(isString && v == auditlog.Redacted) {
			hit = true
		}
		if hit {
			fs[i].raw = redacted
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(f.raw)
	}
	b.WriteByte('}')
	return b.Bytes(), true
}

// isSet reports whether a JSON value is truthy in JavaScript's sense (OIH
// redacts a username "if truthy"): not null, false, "" or zero.
func isSet(raw json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(raw)); {
	case s == "null" || s == "false" || s == `""`:
		return false
	case len(s) > 0 && (s[0] == '-' || s[0] >= '0' && s[0] <= '9'):
		f, err := strconv.ParseFloat(s, 64)
		return err != nil || f != 0
	}
	return true
}
