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
