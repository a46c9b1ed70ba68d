package sqlite

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/heraldhq/herald/auditlog"
)

func TestFieldsSplitsTheTopLevelInOrder(t *testing.T) {
	payload := " {\"b\" : \"x\\\"}{[\" ,\n\"a\":{\"n\":[1,\"]}\",{\"z\":\"{\"}]},\"c\":-1.5e3,\"d\":true,\"e\":null,\"f\":[],\"\\u0067\":\"\\u00e9\\n\"} "
	fs, err := fields([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.key)
		var v any
		if err := json.Unmarshal(f.raw, &v); err != nil {
			t.Errorf("%s: raw %q is not a JSON value: %v", f.key, f.raw, err)
		}
	}
	if want := []string{"b", "a", "c", "d", "e", "f", "g"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if v, ok := stringValue(fs[0].raw); !ok || v != "x\"}{[" {
		t.Errorf("b = %q, %v", v, ok)
	}
	if v, ok := stringValue(fs[6].raw); !ok || v != "é\n" {
		t.Errorf("g = %q, %v", v, ok)
	}
	if string(fs[1].raw) != `{"n":[1,"]}",{"z":"{"}]}` {
		t.Errorf("a = %s", fs[1].raw)
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{`, `{"a":}`, `{"a":1}x`, `null`} {
		if _, err := fields([]byte(bad)); err == nil {
			t.Errorf("fields(%q) succeeded, want an error", bad)
		}
	}
	if fs, err := fields([]byte(`{ }`)); err != nil || len(fs) != 0 {
		t.Errorf("empty object: %v, %v", fs, err)
	}
}

func TestRedactKeepsOrderAndOtherValues(t *testing.T) {
	fs, err := fields([]byte(`{"z":"u1","a":{"user":"u1"},"username":"m@x","n":1,"owner":"u1","mail":"m@x","other":"u2"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, changed := redact(fs, auditlog.Anonymisation{UserID: "u1", Usernames: []string{"m@x"}})
	want := `{"z":"XXXXXXXXXX","a":{"user":"u1"},"username":"XXXXXXXXXX","n":1,"owner":"XXXXXXXXXX","mail":"XXXXXXXXXX","other":"u2"}`
	if !changed || string(got) != want {
		t.Errorf("redact = %s, %v; want %s", got, changed, want)
	}
	fs, _ = fields(got)
	if _, changed := redact(fs, auditlog.Anonymisation{UserID: "u1", Usernames: []string{"m@x"}}); changed {
		t.Error("a second redaction changed the payload again")
	}
}
