package jsonobj

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestFieldsSplitsTheTopLevelInOrder(t *testing.T) {
	payload := " {\"b\" : \"x\\\"}{[\" ,\n\"a\":{\"n\":[1,\"]}\",{\"z\":\"{\"}]},\"c\":-1.5e3,\"d\":true,\"e\":null,\"f\":[],\"\\u0067\":\"\\u00e9\\n\"} "
	fs, err := Fields([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.Key)
		var v any
		if err := json.Unmarshal(f.Raw, &v); err != nil {
			t.Errorf("%s: raw %q is not a JSON value: %v", f.Key, f.Raw, err)
		}
	}
	if want := []string{"b", "a", "c", "d", "e", "f", "g"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if v, ok := String(fs[0].Raw); !ok || v != "x\"}{[" {
		t.Errorf("b = %q, %v", v, ok)
	}
	if v, ok := String(fs[6].Raw); !ok || v != "é\n" {
		t.Errorf("g = %q, %v", v, ok)
	}
	if string(fs[1].Raw) != `{"n":[1,"]}",{"z":"{"}]}` {
		t.Errorf("a = %s", fs[1].Raw)
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{`, `{"a":}`, `{"a":1}x`, `null`} {
		if _, err := Fields([]byte(bad)); err == nil {
			t.Errorf("Fields(%q) succeeded, want an error", bad)
		}
		if IsObject([]byte(bad)) {
			t.Errorf("IsObject(%q) = true", bad)
		}
	}
	if fs, err := Fields([]byte(`{ }`)); err != nil || len(fs) != 0 {
		t.Errorf("empty object: %v, %v", fs, err)
	}
}

func TestEncodeWritesFieldsBackInOrder(t *testing.T) {
	in := `{"z":"é\"","a":{"n":[1,2]},"k":null,"z":1}`
	fs, err := Fields([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(Encode(fs)); got != in {
		t.Errorf("Encode(Fields(%s)) = %s", in, got)
	}
	if got := string(Encode(nil)); got != `{}` {
		t.Errorf("Encode(nil) = %s, want {}", got)
	}
}
