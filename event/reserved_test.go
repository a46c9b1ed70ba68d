package event

import (
	"encoding/json"
	"testing"
)

var reservedInputs = []string{
	`{"user":"u-1","tenant":"t-1","flowId":"f"}`,
	`{"tenant":{"_id":"t-2","name":"x"},"user":{"id":"u-2"}}`,
	`{"tenant":{"id":"t-3","_id":""}}`,
	`{"user":"a","user":"b"}`,
	`{"User":"caps"}`, `{"user":"lower","USER":"caps"}`, `{"TENANT":"t","tenant":"u"}`,
	"{\"u\u017fer\":\"long s\"}", // ſ folds to s, as encoding/json matches keys
	`{"us\u0065r":"escaped key"}`,
	`{"user":"caf\u00e9","tenant":"a\"b"}`,
	"{\"user\":\"\xff\"}",
	`{"user":null,"tenant":42}`, `{"user":true,"tenant":[1,2]}`,
	`{"user":{"_id":7}}`, `{"user":{"_id":"x","_id":"y"}}`,
	`{"a":{"user":"nested"},"b":[{"tenant":"nested"}]}`,
	` { "user" : "spaced" , "tenant" : "t" } `,
	`{}`, `[]`, `null`, `"user"`, `7`, `{"user":"x"`, `{"user":"x"} {}`, ``, ` `,
	`{"user":"x",}`, "{\"user\":\"x\u0000\"}",
}

func TestReservedPlainAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range reservedInputs {
		checkReservedAgree(t, []byte(in))
	}
}

func FuzzReservedPlainAgreesWithEncodingJSON(f *testing.F) {
	for _, in := range reservedInputs {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, payload []byte) { checkReservedAgree(t, payload) })
}

func checkReservedAgree(t *testing.T, payload []byte) {
	t.Helper()
	e := &Event{Payload: json.RawMessage(payload)}
	u, tn := e.Reserved()
	wu, wt := "", ""
	if len(payload) > 0 {
		wu, wt = reservedAny(payload)
	}
	if u != wu || tn != wt {
		t.Errorf("Reserved(%q) = %q, %q; encoding/json reads %q, %q", payload, u, tn, wu, wt)
	}
}
