package testkit

import (
	"strings"
	"testing"
)

func TestJSONEqual(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{`{"a":1,"b":[1,2]}`, `{ "b":[1,2], "a":1 }`, true},
		{`{"n":100}`, `{"n":1e2}`, true},
		{`{"n":9007199254740993}`, `{"n":9007199254740992}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`{"a":1}`, `{"a":1,"b":null}`, false},
		{`"x"`, `"y"`, false},
		{``, ``, true},
		{``, `{}`, false},
		{`{`, `{`, false},
		{`{} {}`, `{}`, false},
	}
	for _, c := range cases {
		if got := JSONEqual([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("JSONEqual(%s, %s) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestSummaryNamesTheVariableAndTheTests(t *testing.T) {
	skips.Lock()
	saved := skips.byVar
	skips.byVar = map[string][]string{"HERALD_TEST_X_URL": {"TestA", "TestB", "TestC", "TestD"}}
	skips.Unlock()
	t.Cleanup(func() { skips.Lock(); skips.byVar = saved; skips.Unlock() })
	lines := summary("./pkg")
	if len(lines) != 1 || !strings.Contains(lines[0], "./pkg: 4 test(s) skipped for want of HERALD_TEST_X_URL") || !strings.Contains(lines[0], "TestA, TestB, TestC, …") {
		t.Errorf("summary = %q", lines)
	}
}

func TestBufferWhenFiresOnceWhenTheTextArrives(t *testing.T) {
	var b Buffer
	fired := 0
	b.When(Contains("ready\n"), func() { fired++ })
	b.Write([]byte("not yet "))
	if fired != 0 {
		t.Fatalf("fired before the text arrived")
	}
	b.Write([]byte("ready\n"))
	b.Write([]byte("ready\n"))
	if fired != 1 || b.String() != "not yet ready\nready\n" {
		t.Errorf("fired %d times, text %q", fired, b.String())
	}
}
