package auditlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/heraldhq/herald/catalog"
)

// Kind is the kind of a JSON value in an entry's content, as the content
// hash commits to it (docs/integrity.md).
type Kind byte

// Kinds. A boolean is one kind whose value is "true" or "false", so that
// the kind kept beside an erased boolean's commitment does not give its
// value away.
const (
	KindObject Kind = 'o'
	KindArray  Kind = 'a'
	KindString Kind = 's'
	KindNumber Kind = 'n'
	KindBool   Kind = 'b'
	KindNull   Kind = 'z'
)

func (k Kind) scalar() bool { return k != KindObject && k != KindArray }

func (k Kind) valid() bool {
	switch k {
	case KindObject, KindArray, KindString, KindNumber, KindBool, KindNull:
		return true
	}
	return false
}

// ErrContent is wrapped (with ErrInvalidEntry) by the errors for content
// the audit log refuses because the two stores would not keep it alike:
// duplicate object keys, invalid UTF-8, NUL in a string or key, a lone
// UTF-16 surrogate, a number PostgreSQL cannot hold.
var ErrContent = errors.New("content the audit log cannot commit to")

// node is a parsed JSON value. Objects keep their members in the order
// written (Erase rewrites a document without reordering it); numbers keep
// the text they were written with.
type node struct {
	kind    Kind
	keys    []string // object
	kids    []*node  // object members, array elements
	value   []byte   // scalar: the bytes committed to
	numText []byte   // number: as written
}

// parseDocument parses one JSON value, refusing what ErrContent names.
func parseDocument(b []byte) (*node, error) {
	var p parser
	return p.parse(b)
}

// parse parses one JSON value, as parseDocument; a parser parses one
// document after another, reusing its space.
func (p *parser) parse(b []byte) (*node, error) {
	p.b, p.i = b, 0
	p.space()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i != len(p.b) {
		return nil, p.fail("text after the value")
	}
	return n, nil
}

// maxDepth bounds nesting, as encoding/json does, so that a hostile
// payload cannot exhaust the stack.
const maxDepth = 10000

type parser struct {
	b []byte
	i int
	// slab hands out nodes, many per allocation; keys and kids hold the
	// members of the objects and arrays being read, copied out to each
	// node at its end (one allocation each, not one per doubling).
	slab []node
	keys []string
	kids []*node
}

// node returns a new node of kind k.
func (p *parser) node(k Kind) *node {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]node, 0, min(max(2*cap(p.slab), 8), 64))
	}
	p.slab = p.slab[:len(p.slab)+1]
	n := &p.slab[len(p.slab)-1]
	n.kind = k
	return n
}

// smallObject is the most members an object's duplicate keys are found
// among by comparing with each, without a map.
const smallObject = 16

func (p *parser) fail(what string) error {
	return fmt.Errorf("%w: %w: %s at byte %d", ErrInvalidEntry, ErrContent, what, p.i)
}

func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.fail("nesting too deep")
	}
	if p.i >= len(p.b) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		n := p.node(KindString)
		n.value = s
		return n, nil
	case c == 't':
		return p.word("true", KindBool)
	case c == 'f':
		return p.word("false", KindBool)
	case c == 'n':
		return p.word("null", KindNull)
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, p.fail("unexpected character")
}

func (p *parser) word(w string, k Kind) (*node, error) {
	if !bytes.HasPrefix(p.b[p.i:], []byte(w)) {
		return nil, p.fail("invalid literal")
	}
	p.i += len(w)
	n := p.node(k)
	if k == KindBool {
		n.value = []byte(w)
	}
	return n, nil
}

func (p *parser) object(depth int) (*node, error) {
	p.i++ // {
	n := p.node(KindObject)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return n, nil
	}
	base, kbase := len(p.keys), len(p.kids)
	defer func() { p.keys, p.kids = p.keys[:base], p.kids[:kbase] }()
	var seen map[string]struct{}
	for {
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, p.fail("want an object key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		keys := p.keys[base:]
		dup := false
		if seen == nil && len(keys) < smallObject {
			for _, x := range keys {
				if x == string(k) {
					dup = true
					break
				}
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*smallObject)
				for _, k := range keys {
					seen[k] = struct{}{}
				}
			}
			_, dup = seen[string(k)]
		}
		if dup {
			return nil, p.fail(fmt.Sprintf("duplicate key %q", k))
		}
		key := string(k)
		if seen != nil {
			seen[key] = struct{}{}
		}
		p.space()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, p.fail("want ':'")
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.keys = append(p.keys, key)
		p.kids = append(p.kids, v)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == '}' {
			p.i++
			n.keys = slices.Clone(p.keys[base:])
			n.kids = slices.Clone(p.kids[kbase:])
			return n, nil
		}
		return nil, p.fail("want ',' or '}'")
	}
}

func (p *parser) array(depth int) (*node, error) {
	p.i++ // [
	n := p.node(KindArray)
	p.space()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return n, nil
	}
	base := len(p.kids)
	defer func() { p.kids = p.kids[:base] }()
	for {
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		p.kids = append(p.kids, v)
		p.space()
		if p.i < len(p.b) && p.b[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			n.kids = slices.Clone(p.kids[base:])
			return n, nil
		}
		return nil, p.fail("want ',' or ']'")
	}
}

// str reads a JSON string and returns its UTF-8 bytes.
func (p *parser) str() ([]byte, error) {
	p.i++ // "
	start := p.i
	// The common case: no escapes.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return nil, p.fail("invalid UTF-8")
			}
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			if c == 0 {
				return nil, p.fail("NUL in a string")
			}
			return nil, p.fail("control character in a string")
		}
		p.i++
	}
	out := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return nil, p.fail("invalid UTF-8")
			}
			return out, nil
		case c < 0x20:
			if c == 0 {
				return nil, p.fail("NUL in a string")
			}
			return nil, p.fail("control character in a string")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		e := p.b[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.fail("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair, high then low; anything else is a lone
				// surrogate, which PostgreSQL refuses.
				if r >= 0xdc00 || p.i+1 >= len(p.b) || p.b[p.i] != '\\' || p.b[p.i+1] != 'u' {
					return nil, p.fail("lone UTF-16 surrogate")
				}
				p.i += 2
				r2, ok := p.hex4()
				if !ok || r2 < 0xdc00 || r2 > 0xdfff {
					return nil, p.fail("lone UTF-16 surrogate")
				}
				r = utf16.DecodeRune(r, r2)
			}
			if r == 0 {
				return nil, p.fail("NUL in a string")
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, p.fail("invalid escape")
		}
	}
	return nil, p.fail("unterminated string")
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// The range of a number PostgreSQL's numeric (and so JSONB) holds: up to
// 131,072 digits before the decimal point and 16,383 after. A number
// outside it is refused, so both stores take the same entries.
const (
	maxIntDigits  = 131072
	maxFracDigits = 16383
)

// number reads a JSON number and commits to its value's canonical form
// (canonicalNumber).
func (p *parser) number() (*node, error) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		s := p.i
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
		}
		return p.i - s
	}
	intStart := p.i
	if n := digits(); n == 0 || n > 1 && p.b[intStart] == '0' {
		return nil, p.fail("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.fail("invalid number")
		}
	}
	text := p.b[start:p.i]
	v, ok := canonicalNumber(text)
	if !ok {
		return nil, p.fail("number out of the range both stores hold")
	}
	n := p.node(KindNumber)
	n.value, n.numText = v, text
	return n, nil
}

// canonicalNumber is the canonical decimal form of a valid JSON number:
// "0" for zero (of any sign); otherwise an optional "-", the significant
// digits without leading or trailing zeros, and, when the exponent is not
// zero, "e" and the exponent in decimal ("-" when negative). 100, 1e2 and
// 100.0 are all "1e2"; 1.50 is "15e-1". No float rounding takes place:
// the digits are the digits written.
func canonicalNumber(text []byte) ([]byte, bool) {
	neg := false
	if text[0] == '-' {
		neg = true
		text = text[1:]
	}
	mant, expText, _ := bytes.Cut(bytes.ToLower(text), []byte("e"))
	intPart, frac, _ := bytes.Cut(mant, []byte("."))
	digits := append(append([]byte(nil), intPart...), frac...)
	exp := int64(-len(frac))
	if len(expText) > 0 {
		// An exponent beyond any range held is refused below; parse it
		// without overflowing.
		e := string(expText)
		sign := int64(1)
		switch e[0] {
		case '-':
			sign, e = -1, e[1:]
		case '+':
			e = e[1:]
		}
		e = strings.TrimLeft(e, "0")
		if len(e) > 12 {
			if allZero(digits) {
				return []byte("0"), true
			}
			return nil, false
		}
		v, _ := strconv.ParseInt("0"+e, 10, 64)
		exp += sign * v
	}
	lead := 0
	for lead < len(digits) && digits[lead] == '0' {
		lead++
	}
	digits = digits[lead:]
	if len(digits) == 0 {
		return []byte("0"), true
	}
	for digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	// The value is digits × 10^exp: it has len(digits)+exp digits before
	// the point and -exp after.
	if int64(len(digits))+exp > maxIntDigits || -exp > maxFracDigits {
		return nil, false
	}
	out := make([]byte, 0, len(digits)+8)
	if neg {
		out = append(out, '-')
	}
	out = append(out, digits...)
	if exp != 0 {
		out = append(out, 'e')
		out = strconv.AppendInt(out, exp, 10)
	}
	return out, true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// encode writes n as compact JSON, members in their order.
func (n *node) encode(b *bytes.Buffer) {
	switch n.kind {
	case KindObject:
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			n.kids[i].encode(b)
		}
		b.WriteByte('}')
	case KindArray:
		b.WriteByte('[')
		for i, k := range n.kids {
			if i > 0 {
				b.WriteByte(',')
			}
			k.encode(b)
		}
		b.WriteByte(']')
	case KindString:
		writeJSONString(b, string(n.value))
	case KindNumber:
		b.Write(n.numText)
	case KindBool:
		b.Write(n.value)
	case KindNull:
		b.WriteString("null")
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always encodes
	b.Write(q)
}

// walk calls f for every node of n, the root first, with its pointer.
func (n *node) walk(pointer string, f func(pointer string, n *node) error) error {
	if err := f(pointer, n); err != nil {
		return err
	}
	switch n.kind {
	case KindObject:
		for i, k := range n.keys {
			if err := n.kids[i].walk(pointer+"/"+catalog.EscapeToken(k), f); err != nil {
				return err
			}
		}
	case KindArray:
		for i, k := range n.kids {
			if err := k.walk(pointer+"/"+strconv.Itoa(i), f); err != nil {
				return err
			}
		}
	}
	return nil
}

// find returns the node at pointer, or nil.
func (n *node) find(pointer string) *node {
	if pointer == "" {
		return n
	}
	if pointer[0] != '/' {
		return nil
	}
	cur := n
	for _, tok := range strings.Split(pointer[1:], "/") {
		tok = catalog.UnescapeToken(tok)
		switch cur.kind {
		case KindObject:
			i := -1
			for j, k := range cur.keys {
				if k == tok {
					i = j
					break
				}
			}
			if i < 0 {
				return nil
			}
			cur = cur.kids[i]
		case KindArray:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(cur.kids) || strconv.Itoa(i) != tok {
				return nil
			}
			cur = cur.kids[i]
		default:
			return nil
		}
	}
	return cur
}
