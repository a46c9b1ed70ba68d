package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadOrdersByVersion(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("B")},
		"m/0002_first.sql": {Data: []byte("A")},
		"m/README":         {Data: []byte("not a migration")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Version != 2 || ms[0].SQL != "A" || ms[1].Version != 10 || ms[1].Name != "0010_later.sql" {
		t.Fatalf("got %+v", ms)
	}
}

func TestLoadRefusesBadNamesAndSharedVersions(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"version number": {"m/first.sql": {}},
		"share a version": {
			"m/0001_a.sql": {}, "m/01_b.sql": {},
		},
		"version number ": {"m/0000_zero.sql": {}},
	} {
		_, err := Load(fsys, "m")
		if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(name)) {
			t.Errorf("%v: got %v, want an error about %q", fsys, err, name)
		}
	}
}

func TestPendingIsWhatComesAfterTheDatabaseVersion(t *testing.T) {
	ms := []Migration{{Version: 1}, {Version: 2}, {Version: 5}}
	for current, want := range map[int]int{0: 3, 1: 2, 2: 1, 3: 1, 5: 0} {
		got, err := Pending(ms, current)
		if err != nil || len(got) != want {
			t.Errorf("at version %d: %d pending (%v), want %d", current, len(got), err, want)
		}
	}
	if _, err := Pending(ms, 6); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("a database newer than herald: got %v, want a refusal", err)
	}
}
