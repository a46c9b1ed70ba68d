package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestMatchFollowsAMQPTopicRules(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		// Literal patterns match only themselves.
		{"iam.user.created", "iam.user.created", true},
		{"iam.user.created", "iam.user.deleted", false},
		{"iam.user.created", "iam.user", false},
		{"iam.user", "iam.user.created", false},
		{"iam.user.created", "IAM.user.created", false},
		{"provenance", "provenance", true},
		// '*' is exactly one word.
		{"*", "provenance", true},
		{"*", "iam.user", false},
		{"*", "", false},
		{"iam.*", "iam.user", true},
		{"iam.*", "iam.user.created", false},
		{"iam.*", "iam", false},
		{"iam.*.created", "iam.user.created", true},
		{"iam.*.created", "iam.tenant.created", true},
		{"iam.*.created", "iam.user.deleted", false},
		{"iam.*.created", "iam.created", false},
		{"iam.*.created", "iam.user.x.created", false},
		{"*.*.*", "flowrepo.flow.created", true},
		{"*.*.*", "flow.started", false},
		{"*.user.*", "iam.user.loginFailed", true},
		// '#' is zero or more words, in any position.
		{"#", "", true},
		{"#", "provenance", true},
		{"#", "iam.user.created", true},
		{"iam.#", "iam", true},
		{"iam.#", "iam.user", true},
		{"iam.#", "iam.user.created", true},
		{"iam.#", "iamx.user", false},
		{"iam.#", "secrets.secret.created", false},
		{"#.deleted", "iam.user.deleted", true},
		{"#.deleted", "deleted", true},
		{"#.deleted", "iam.user.deleted.not", false},
		{"#.deleted", "iam.user.created", false},
		{"a.#.b", "a.b", true},
		{"a.#.b", "a.x.b", true},
		{"a.#.b", "a.x.y.z.b", true},
		{"a.#.b", "a.x.y.z", false},
		{"a.#.b", "a.b.c", false},
		{"a.#.b", "a.b.b", true},
		{"a.*.#", "a", false},
		{"a.*.#", "a.b", true},
		{"a.*.#", "a.b.c.d", true},
		{"#.#", "", true},
		{"#.#", "a.b.c", true},
		{"#.*", "", false},
		{"#.*", "a", true},
		{"#.*.#", "a.b.c", true},
		{"#.a.#", "x.y.a.z", true},
		{"#.a.#", "x.y.z", false},
		{"#.b.#.b", "a.b.c.b", true},
		{"#.b.#.b", "a.b.c", false},
		{"*.#.*", "a", false},
		{"*.#.*", "a.b", true},
		// Empty words: "" is zero words, "a..b" has an empty middle word.
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"*", ".", false},
		{"*.*", ".", true},
		{"a.*.b", "a..b", true},
		{"a.#", "a.", true},
		{"a.*", "a.", true},
		{"a..b", "a..b", true},
		{"a..b", "a.b", false},
		// Wildcards in a name are literal words.
		{"a.*", "a.*", true},
		{"a.b", "a.*", false},
	}
	for _, tc := range tests {
		if got := Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

func TestMatchIsPolynomialForManyHashes(t *testing.T) {
	// A naive backtracking matcher takes exponential time here.
	pattern := strings.Repeat("#.", 40) + "z"
	name := strings.Repeat("a.", 120) + "b"
	if Match(pattern, name) {
		t.Fatalf("Match(%q, %q) = true, want false", pattern, name)
	}
	if !Match(pattern, name+".z") {
		t.Fatalf("Match(%q, %q.z) = false, want true", pattern, name)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		Match("#.user.*.#", "iam.user.removedFromTenant.x.y")
	})
	if allocs != 0 {
		t.Fatalf("Match allocated %v times per call, want 0", allocs)
	}
}

func TestValidatePatternAcceptsWordsAndWildcards(t *testing.T) {
	for _, p := range []string{
		"#", "*", "iam.#", "iam.*.created", "#.deleted", "a.#.b", "a.*.#", "#.#",
		"iam.user.removedFormTenant", "data-hub.record.created", "raw-record.created", "snake_case.x",
		strings.Repeat("a", MaxLength),
	} {
		if err := ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v, want nil", p, err)
		}
	}
}

func TestValidatePatternRefusesMalformedPatterns(t *testing.T) {
	for _, p := range []string{
		"", ".", "a.", ".a", "a..b", "iam.user*", "iam.*user", "a.#b", "a b", "iam/user", "é",
		strings.Repeat("a", MaxLength+1),
	} {
		err := ValidatePattern(p)
		if err == nil {
			t.Errorf("ValidatePattern(%q) = nil, want an error", p)
			continue
		}
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("ValidatePattern(%q) = %v, does not wrap ErrInvalidPattern", p, err)
		}
	}
}

func TestValidatePatternNamesTheBadWord(t *testing.T) {
	err := ValidatePattern("iam..created")
	if err == nil || !strings.Contains(err.Error(), "word 2 is empty") {
		t.Fatalf("ValidatePattern(\"iam..created\") = %v, want it to name word 2", err)
	}
}

func TestHasWildcard(t *testing.T) {
	tests := map[string]bool{
		"iam.user.created": false, "iam.*": true, "#": true, "a.#.b": true, "": false, "a*": false,
	}
	for p, want := range tests {
		if got := HasWildcard(p); got != want {
			t.Errorf("HasWildcard(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestMatchAgreesWithReferenceOnEveryShortInput(t *testing.T) {
	patterns := joins([]string{"a", "b", "*", "#", ""}, 4)
	names := joins([]string{"a", "b", ""}, 4)
	for _, p := range patterns {
		for _, n := range names {
			if got, want := Match(p, n), referenceMatch(p, n); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", p, n, got, want)
			}
		}
	}
}

// joins returns every '.'-join of up to max words from alphabet.
func joins(alphabet []string, max int) []string {
	out := []string{""}
	level := [][]string{nil}
	for range max {
		var next [][]string
		for _, ws := range level {
			for _, a := range alphabet {
				w := append(append([]string(nil), ws...), a)
				next = append(next, w)
				if len(w) == 1 && w[0] == "" {
					continue // the same string as zero words
				}
				out = append(out, strings.Join(w, "."))
			}
		}
		level = next
	}
	return out
}

// referenceMatch is the obviously correct definition: split both into
// words and recurse. It is exponential on some inputs, so the fuzz test
// keeps them short.
func referenceMatch(pattern, name string) bool {
	return refWords(split(pattern), split(name))
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

func refWords(p, n []string) bool {
	if len(p) == 0 {
		return len(n) == 0
	}
	switch p[0] {
	case "#":
		// '#' takes zero words, or one word and stays.
		return refWords(p[1:], n) || (len(n) > 0 && refWords(p, n[1:]))
	case "*":
		return len(n) > 0 && refWords(p[1:], n[1:])
	default:
		return len(n) > 0 && p[0] == n[0] && refWords(p[1:], n[1:])
	}
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"#", ""}, {"iam.#", "iam.user.created"}, {"iam.*.created", "iam.user.created"},
		{"#.deleted", "a.deleted"}, {"a.#.b", "a.x.b.b"}, {"a.*.#", "a"}, {"#.#", "a.b"},
		{"", ""}, {"*.*", "."}, {"a..b", "a..b"}, {"#.b.#.b", "a.b.c.b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if strings.Count(pattern, ".") > 12 || strings.Count(name, ".") > 12 {
			t.Skip("the reference is exponential on long inputs")
		}
		if got, want := Match(pattern, name), referenceMatch(pattern, name); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference says %v", pattern, name, got, want)
		}
	})
}

// FuzzValidatePattern feeds arbitrary patterns to ValidatePattern, which
// reads the patterns of configuration files and API callers: it must
// never panic, and a pattern it accepts matches names as the reference
// does and, without wildcards, matches itself.
func FuzzValidatePattern(f *testing.F) {
	for _, p := range []string{"#", "iam.#", "a.*.b", "a..b", "user*", "a.b.", ".a", "#.#.*", strings.Repeat("a.", 200) + "a", "é.a"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidatePattern(p) != nil {
			return
		}
		if !HasWildcard(p) && !Match(p, p) {
			t.Fatalf("valid pattern %q without wildcards does not match itself", p)
		}
		if strings.Count(p, ".") <= 12 {
			name := strings.NewReplacer("*", "x", "#", "y").Replace(p)
			if got, want := Match(p, name), referenceMatch(p, name); got != want {
				t.Fatalf("Match(%q, %q) = %v, reference says %v", p, name, got, want)
			}
		}
	})
}
