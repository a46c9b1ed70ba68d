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
		{`[1]`, `[1,2]`, false},
		{`[1,2]`, `[1]`, false},
		{`{"a":1}`, `{"b":1}`, false},
		{`{"a":[1]}`, `{"a":{"0":1}}`, false},
		{`[]`, `{}`, false},
		{`{}`, `[]`, false},
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
	skips.byVar = map[string][]string{
		"HERALD_TEST_Y_URL": {"TestY"},
		"HERALD_TEST_X_URL": {"TestA", "TestB", "TestC", "TestD", "TestE"},
	}
	skips.Unlock()
	t.Cleanup(func() { skips.Lock(); skips.byVar = saved; skips.Unlock() })
	lines := summary("./pkg")
	want := []string{
		"./pkg: 5 test(s) skipped for want of HERALD_TEST_X_URL (TestA, TestB, TestC, …)",
		"./pkg: 1 test(s) skipped for want of HERALD_TEST_Y_URL (TestY)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("summary = %q, want %q", lines, want)
	}
	// Shortening the list for the line leaves the record whole.
	if got := strings.Join(skips.byVar["HERALD_TEST_X_URL"], ", "); got != "TestA, TestB, TestC, TestD, TestE" {
		t.Errorf("the skips recorded became %s", got)
	}
}

func TestBufferWhenFiresOnceWhenTheTextArrives(t *testing.T) {
	var b Buffer
	fired := 0
	var seen string
	// f may read the buffer: it runs once the text is written.
	b.When(Contains("ready\n"), func() { fired++; seen = b.String() })
	b.Write([]byte("not yet "))
	b.Write([]byte("rea"))
	if fired != 0 {
		t.Fatalf("fired before the text arrived")
	}
	// The text arrives across two writes: the condition is of all that
	// was written, not of one write.
	b.Write([]byte("dy\n"))
	if fired != 1 || seen != "not yet ready\n" {
		t.Fatalf("after the text arrived: fired %d times, seeing %q", fired, seen)
	}
	b.Write([]byte("ready\n"))
	if fired != 1 || b.String() != "not yet ready\nready\n" {
		t.Errorf("fired %d times, text %q", fired, b.String())
	}
}
