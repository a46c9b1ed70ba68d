// Package topic matches event names against AMQP topic patterns.
//
// It is the one topic matcher of herald: the bus, every transport and the
// catalogue call it, so a pattern means the same thing everywhere.
//
// A name is a list of words separated by '.'. In a pattern, the word '*'
// matches exactly one word and '#' matches zero or more words, in any
// position (RabbitMQ's topic exchange rules; OIH's Node library only
// honoured them at the second level). As in RabbitMQ, the empty string is
// a list of zero words, and "a..b" has an empty middle word.
package topic

import (
	"errors"
	"fmt"
)

// MaxLength is the longest pattern accepted, in bytes: the longest binding
// key RabbitMQ accepts.
const MaxLength = 255

// ErrInvalidPattern is wrapped by every error ValidatePattern returns.
var ErrInvalidPattern = errors.New("invalid topic pattern")

// Match reports whether name matches pattern under AMQP topic rules.
// It never fails: a pattern ValidatePattern refuses simply matches what its
// words literally say. It runs in O(len(pattern)·len(name)) time at worst
// and does not allocate.
func Match(pattern, name string) bool {
	// This is glob matching over words, with '#' as the glob star and '*' as
	// the glob '?'. The greedy scan remembers only the last '#' seen: when a
	// later word fails, that '#' swallows one more name word and the scan
	// resumes after it. Backtracking to an earlier '#' is never needed,
	// because the last one can absorb anything an earlier one could.
	p, n := start(pattern), start(name)
	hashP, hashN := -1, -1 // resume positions after the last '#'
	for n <= len(name) {
		if p <= len(pattern) {
			pw, pnext := word(pattern, p)
			if pw == "#" {
				hashP, hashN = pnext, n
				p = pnext
				continue
			}
			nw, nnext := word(name, n)
			if pw == "*" || pw == nw {
				p, n = pnext, nnext
				continue
			}
		}
		if hashP < 0 {
			return false
		}
		_, hashN = word(name, hashN)
		p, n = hashP, hashN
	}
	// The name is used up: what is left of the pattern must match zero words.
	for p <= len(pattern) {
		pw, pnext := word(pattern, p)
		if pw != "#" {
			return false
		}
		p = pnext
	}
	return true
}

// start returns the offset of the first word of s. A position past len(s)
// means no words are left, so the empty string starts there: it has none.
func start(s string) int {
	if s == "" {
		return 1
	}
	return 0
}

// word returns the word of s beginning at offset i and the offset of the
// next word (past len(s) when it was the last).
func word(s string, i int) (string, int) {
	for j := i; j < len(s); j++ {
		if s[j] == '.' {
			return s[i:j], j + 1
		}
	}
	return s[i:], len(s) + 1
}

// ValidatePattern checks that pattern is a usable subscription pattern:
// non-empty, at most MaxLength bytes, made of non-empty '.'-separated words,
// each either '*', '#', or letters, digits, '_' and '-' (the characters of
// an event name). RabbitMQ would accept a word such as "user*", but it
// matches only a literal "user*", which no valid event name contains, so it
// is refused here as the mistake it almost certainly is.
func ValidatePattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: empty", ErrInvalidPattern)
	}
	if len(pattern) > MaxLength {
		return fmt.Errorf("%w: %d bytes, longer than %d", ErrInvalidPattern, len(pattern), MaxLength)
	}
	for i, n := 0, 0; i <= len(pattern); n++ {
		w, next := word(pattern, i)
		if err := validateWord(w); err != nil {
			return fmt.Errorf("%w %q: word %d %v", ErrInvalidPattern, pattern, n+1, err)
		}
		i = next
	}
	return nil
}

func validateWord(w string) error {
	switch w {
	case "":
		return errors.New("is empty")
	case "*", "#":
		return nil
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '*' || c == '#':
			return fmt.Errorf("%q mixes a wildcard with other characters; a wildcard must be a whole word", w)
		default:
			return fmt.Errorf("%q has the character %q; words are letters, digits, '_' and '-'", w, c)
		}
	}
	return nil
}

// HasWildcard reports whether pattern has a '*' or '#' word, that is,
// whether it can match more than one name.
func HasWildcard(pattern string) bool {
	for i := start(pattern); i <= len(pattern); {
		w, next := word(pattern, i)
		if w == "*" || w == "#" {
			return true
		}
		i = next
	}
	return false
}
