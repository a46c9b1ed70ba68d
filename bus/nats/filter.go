package nats

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Topic patterns become consumer filter subjects here. A NATS subject
// filter has '*' (one token) and a trailing '>' (one or more tokens); AMQP's
// '#' (zero or more words, anywhere) has no exact equivalent, so a pattern
// maps to subjects that cover at least what it matches, and the consumer
// checks every delivery against the patterns themselves (topic.Match)
// before handing it out. The filter only narrows what the server sends;
// the in-process matcher decides.

// patternSubjects returns the filter subjects, under prefix, that together
// match every event name pattern matches: '*' stays '*', a trailing '#'
// becomes '>' (plus the subject without it, since '#' also matches zero
// words), and any other '#' widens the subject to '>' from that word on.
func patternSubjects(prefix, pattern string) []string {
	words := strings.Split(pattern, ".")
	var head []string
	for i, w := range words {
		if w == "#" || !subjectToken(w) {
			// From here on, anything may follow. The pattern can still match
			// the head alone when every remaining word is '#'.
			zero := true
			for _, r := range words[i:] {
				if r != "#" {
					zero = false
					break
				}
			}
			if len(head) == 0 {
				// Every event name has at least one word, so '>' is enough.
				return []string{prefix + ".>"}
			}
			base := prefix + "." + strings.Join(head, ".")
			if zero {
				return []string{base, base + ".>"}
			}
			return []string{base + ".>"}
		}
		head = append(head, w)
	}
	return []string{prefix + "." + strings.Join(head, ".")}
}

// subjectToken reports whether a pattern word can be used as it is in a
// subject filter: '*', or a non-empty literal with no wildcard, separator
// or whitespace.
func subjectToken(w string) bool {
	if w == "*" {
		return true
	}
	if w == "" {
		return false
	}
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case c == '*' || c == '>' || c == '.' || c <= ' ' || c == 0x7f:
			return false
		}
	}
	return true
}

// filterSet reduces subjects to a set the server accepts as one
// consumer's filters: sorted, none covering another, no two matching a
// common subject (servers 2.10 and later refuse overlapping filters).
// Overlapping subjects are replaced by one that covers both. With single
// true the result is one subject covering all of them, for servers before
// 2.10, which have a single filter per consumer.
func filterSet(subjects []string, single bool) []string {
	set := slices.Clone(subjects)
	slices.Sort(set)
	set = slices.Compact(set)
	if single {
		if len(set) == 0 {
			return nil
		}
		c := set[0]
		for _, s := range set[1:] {
			c = coverSubject(c, s)
		}
		// nats-server 2.9 stops delivering to a consumer whose literal
		// filter is updated to a wildcard one (no error; pending drops to
		// 0), while wildcard to wildcard works. Widening is how Bind adds
		// a pattern, so a single filter is never literal: the last token
		// becomes '*', and the in-process matcher drops the siblings.
		if !strings.ContainsAny(c, "*>") {
			if i := strings.LastIndexByte(c, '.'); i >= 0 {
				c = c[:i+1] + "*"
			}
		}
		return []string{c}
	}
	for changed := true; changed; {
		changed = false
	scan:
		for i := 0; i < len(set); i++ {
			for j := 0; j < len(set); j++ {
				if i == j {
					continue
				}
				a, b := set[i], set[j]
				switch {
				case subjectSubset(a, b):
					set = slices.Delete(set, i, i+1)
				case subjectsCollide(a, b):
					c := coverSubject(a, b)
					set = slices.DeleteFunc(set, func(s string) bool { return s == a || s == b })
					set = append(set, c)
				default:
					continue
				}
				changed = true
				break scan
			}
		}
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// subjectSubset reports whether every subject filter a matches is also
// matched by b.
func subjectSubset(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, btok := range bt {
		if btok == ">" {
			return i < len(at) // '>' needs at least one token
		}
		if i >= len(at) {
			return false
		}
		atok := at[i]
		switch {
		case atok == ">":
			return false
		case btok == "*":
		case atok != btok:
			return false
		}
	}
	return len(at) == len(bt)
}

// subjectsCollide reports whether some subject matches both filters.
func subjectsCollide(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			// One ended and the other needs more tokens ('>' needs one).
			return false
		}
		x, y := at[i], bt[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
}

// coverSubject returns a filter matching everything a and b match: the
// tokens they share, then '>'.
func coverSubject(a, b string) string {
	switch {
	case subjectSubset(a, b):
		return b
	case subjectSubset(b, a):
		return a
	}
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	// The shared head must leave at least one token of each for '>'.
	n := min(len(at), len(bt)) - 1
	i := 0
	for i < n && at[i] == bt[i] && at[i] != ">" {
		i++
	}
	return strings.Join(append(at[:i:i], ">"), ".")
}

// safeToken turns a queue name into something usable as a subject token
// and a consumer name: letters, digits, '_' and '-' are kept, anything else
// becomes '_', and a name that needed changing gets a short hash of the
// original so that two names never share a token.
func safeToken(name string) string {
	var b strings.Builder
	changed := name == ""
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	if changed {
		sum := sha256.Sum256([]byte(name))
		b.WriteString("_" + hex.EncodeToString(sum[:4]))
	}
	return b.String()
}
