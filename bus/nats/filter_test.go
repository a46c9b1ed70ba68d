package nats

import (
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/topic"
)

func TestPatternSubjects(t *testing.T) {
	tests := []struct {
		pattern string
		want    []string
	}{
		{"iam.user.created", []string{"p.iam.user.created"}},
		{"iam.*.created", []string{"p.iam.*.created"}},
		{"*", []string{"p.*"}},
		{"#", []string{"p.>"}},
		{"iam.#", []string{"p.iam", "p.iam.>"}},
		{"iam.user.#", []string{"p.iam.user", "p.iam.user.>"}},
		{"iam.#.#", []string{"p.iam", "p.iam.>"}},
		{"iam.#.created", []string{"p.iam.>"}},
		{"iam.#.*", []string{"p.iam.>"}},
		{"#.created", []string{"p.>"}},
		{"*.#", []string{"p.*", "p.*.>"}},
	}
	for _, tt := range tests {
		if got := patternSubjects("p", tt.pattern); !slices.Equal(got, tt.want) {
			t.Errorf("patternSubjects(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

// TestPatternSubjectsCoverMatches checks the promise the in-process matcher
// relies on: every name a pattern matches is within its subjects.
func TestPatternSubjectsCoverMatches(t *testing.T) {
	patterns := []string{"#", "*", "a", "a.#", "a.*", "#.c", "a.#.c", "*.b.#", "a.b.c", "#.b.#", "a.#.#", "*.*"}
	names := []string{"a", "b", "a.b", "a.c", "b.c", "a.b.c", "a.x.y.c", "x.b", "x.b.y", "a.b.c.d"}
	for _, p := range patterns {
		subs := patternSubjects("p", p)
		for _, n := range names {
			if !topic.Match(p, n) {
				continue
			}
			ok := false
			for _, s := range subs {
				if subjectMatches(s, "p."+n) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("pattern %q matches %q, but its subjects %q do not", p, n, subs)
			}
		}
	}
}

// subjectMatches is NATS subject matching, for the test.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}

func TestFilterSet(t *testing.T) {
	tests := []struct {
		name   string
		in     []string
		multi  []string
		single []string
	}{
		{"one", []string{"p.a.b"}, []string{"p.a.b"}, []string{"p.a.*"}},
		{"duplicates", []string{"p.a", "p.a"}, []string{"p.a"}, []string{"p.*"}},
		{"one wildcard", []string{"p.a.*"}, []string{"p.a.*"}, []string{"p.a.*"}},
		{"disjoint", []string{"p.a.b", "p.c.d"}, []string{"p.a.b", "p.c.d"}, []string{"p.>"}},
		{"siblings", []string{"p.a.b", "p.a.c"}, []string{"p.a.b", "p.a.c"}, []string{"p.a.>"}},
		{"subset dropped", []string{"p.a.b", "p.a.*", "p.a.>"}, []string{"p.a.>"}, []string{"p.a.>"}},
		{"overlap merged", []string{"p.a.*.c", "p.a.b.*"}, []string{"p.a.>"}, []string{"p.a.>"}},
		{"head and tail", []string{"p.a", "p.a.>"}, []string{"p.a", "p.a.>"}, []string{"p.>"}},
		{"everything", []string{"p.>", "p.a"}, []string{"p.>"}, []string{"p.>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := filterSet(tt.in, false); !slices.Equal(got, tt.multi) {
				t.Errorf("filterSet(%q, multi) = %q, want %q", tt.in, got, tt.multi)
			}
			if got := filterSet(tt.in, true); !slices.Equal(got, tt.single) {
				t.Errorf("filterSet(%q, single) = %q, want %q", tt.in, got, tt.single)
			}
			// Whatever the reduction, nothing the input matched is lost.
			for _, s := range tt.in {
				if !covers(filterSet(tt.in, false), []string{s}) || !covers(filterSet(tt.in, true), []string{s}) {
					t.Errorf("reduction of %q lost %q", tt.in, s)
				}
			}
		})
	}
}

func TestSubjectRelations(t *testing.T) {
	tests := []struct {
		a, b            string
		subset, collide bool
	}{
		{"p.a", "p.a", true, true},
		{"p.a", "p.*", true, true},
		{"p.*", "p.a", false, true},
		{"p.a.b", "p.>", true, true},
		{"p.>", "p.a.b", false, true},
		{"p", "p.>", false, false},
		{"p.a", "p.b", false, false},
		{"p.a.*", "p.*.b", false, true},
		{"p.a", "p.a.b", false, false},
		{"p.*.>", "p.>", true, true},
		{"p.>", "p.*.>", false, true},
	}
	for _, tt := range tests {
		if got := subjectSubset(tt.a, tt.b); got != tt.subset {
			t.Errorf("subjectSubset(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := subjectsCollide(tt.a, tt.b); got != tt.collide {
			t.Errorf("subjectsCollide(%q, %q) = %v", tt.a, tt.b, got)
		}
	}
}

func TestSafeToken(t *testing.T) {
	if got := safeToken("audit-log"); got != "audit-log" {
		t.Errorf("safeToken(audit-log) = %q", got)
	}
	a, b := safeToken("a.b"), safeToken("a_b")
	if a == b || strings.ContainsAny(a, ".*> ") {
		t.Errorf("safeToken(a.b) = %q, safeToken(a_b) = %q: want distinct subject tokens", a, b)
	}
	if safeToken("") == "" {
		t.Error("safeToken of an empty name is empty")
	}
}

func TestServerAtLeast(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"2.9.10", false}, {"2.10.0", true}, {"2.15.2", true}, {"3.0.0", true}, {"1.4.1", false}, {"", true}, {"2.10.0-beta.1", true},
	}
	for _, tt := range tests {
		if got := serverAtLeast(tt.v, 2, 10); got != tt.want {
			t.Errorf("serverAtLeast(%q, 2, 10) = %v", tt.v, got)
		}
	}
}
