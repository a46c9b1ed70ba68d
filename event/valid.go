package event

// maxDepth is how deeply encoding/json lets arrays and objects nest.
const maxDepth = 10000

// validJSON reports whether b is exactly one JSON value, possibly with
// space around it, as json.Valid does (the same grammar, bytes of 0x80
// and up taken as they are, nesting up to maxDepth). It is a plain loop
// where json.Valid steps a state machine through a function per byte,
// and decodePlain runs it on every delivery.
func validJSON(b []byte) bool {
	const (
		wantValue = iota
		wantKey   // a member's key, or the end of an empty object
		wantMore  // a ',' or the end of the enclosing array or object
	)
	var stackBuf [16]byte
	stack := stackBuf[:0] // '{' or '[' of each open container
	state := wantValue
	i, n := 0, len(b)
	emptyOK := false // the container just opened may close at once
	for {
		i = skipSpace(b, i)
		switch state {
		case wantValue:
			if i >= n {
				return false
			}
			switch c := b[i]; {
			case c == '{' || c == '[':
				if len(stack) >= maxDepth {
					return false
				}
				stack = append(stack, c)
				i++
				if c == '{' {
					state, emptyOK = wantKey, true
					continue
				}
				i = skipSpace(b, i)
				if i < n && b[i] == ']' {
					stack = stack[:len(stack)-1]
					i++
					state = wantMore
					continue
				}
				continue // an array's first value
			case c == '"':
				var ok bool
				if i, ok = validString(b, i); !ok {
					return false
				}
			case c == '-' || c >= '0' && c <= '9':
				var ok bool
				if i, ok = validNumber(b, i); !ok {
					return false
				}
			case c == 't':
				if !hasWord(b, i, "true") {
					return false
				}
				i += 4
			case c == 'f':
				if !hasWord(b, i, "false") {
					return false
				}
				i += 5
			case c == 'n':
				if !hasWord(b, i, "null") {
					return false
				}
				i += 4
			default:
				return false
			}
			state = wantMore
		case wantKey:
			if i >= n {
				return false
			}
			if emptyOK && b[i] == '}' {
				stack = stack[:len(stack)-1]
				i++
				state, emptyOK = wantMore, false
				continue
			}
			emptyOK = false
			if b[i] != '"' {
				return false
			}
			var ok bool
			if i, ok = validString(b, i); !ok {
				return false
			}
			i = skipSpace(b, i)
			if i >= n || b[i] != ':' {
				return false
			}
			i++
			state = wantValue
		case wantMore:
			if len(stack) == 0 {
				return i == n
			}
			if i >= n {
				return false
			}
			top := stack[len(stack)-1]
			switch b[i] {
			case ',':
				i++
				if top == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
			case '}', ']':
				if b[i] == '}' && top != '{' || b[i] == ']' && top != '[' {
					return false
				}
				stack = stack[:len(stack)-1]
				i++
			default:
				return false
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasWord(b []byte, i int, w string) bool {
	return len(b)-i >= len(w) && string(b[i:i+len(w)]) == w
}

// validString checks the string starting at b[i] (a quote) and returns the
// index after its closing quote.
func validString(b []byte, i int) (int, bool) {
	for i++; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default:
			i++
		}
	}
	return i, false
}

// validNumber checks the number starting at b[i] and returns the index
// after it.
func validNumber(b []byte, i int) (int, bool) {
	digits := func() bool {
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > start
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}
