package event

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// plainCases are envelopes of every shape the two decoders must agree on:
// the plain form decodePlain takes, and the forms it leaves to decodeAny.
var plainCases = []string{
	`{"headers":{"name":"a.b","serviceName":"svc","createdAt":1714642200000,"id":"x"},"payload":{"k":"v"}}`,
	` { "headers" : { "name" : "a.b" , "createdAt" : "2024-05-02T09:30:00Z" } , "payload" : { } } `,
	`{"payload":{"k":[1,{"n":null}]},"headers":{"name":"a.b","trace":{"a":[1,"}"]},"hops":3}}`,
	`{"headers":{"name":"a.b","createdAt":"1714642200000"},"payload":null}`,
	`{"headers":{"name":"a.b","createdAt":1.7146422e12,"serviceName":null,"id":null}}`,
	`{"headers":{"name":"a.b","createdAt":-1},"payload":{},"other":[true,false]}`,
	`{"headers":{"name":"a.b","createdAt":null},"payload":{"s":"\"quoted\" \\ \u00e9"}}`,
	`{"headers":{"name":"a.b","name":"c.d"},"payload":{}}`,
	`{"headers":{"name":"a.b","x":1,"x":2},"payload":{}}`,
	`{"headers":{},"payload":{}}`,
	// Left to decodeAny, which accepts them:
	`{"headers":{"name":"a\u002eb"},"payload":{}}`,
	`{"headers":{"na\u006de":"a.b"},"payload":{}}`,
	`{"Headers":{"name":"a.b"},"PAYLOAD":{"k":1}}`,
	`{"headers":{"name":"a.b"},"Payload":{"k":1}}`,
	`{"headers":{"name":"a.b"},"payloaſ":{"k":1}}`,
	`{"headers":{"name":"a.b"},"headerſ":{"id":"x"}}`,
	`{"headers":{"name":"a.b"},"headers":{"id":"x"},"payload":{}}`,
	`{"headers":{"name":"a.b"},"payload":{"a":1},"payload":{"b":2}}`,
	`{"headers":{"name":null},"payload":{}}`,
	"{\"headers\":{\"name\":\"a.\xffb\"},\"payload\":{}}",
	"{\"headers\":{\"k\xff\":1,\"name\":\"a.b\"},\"payload\":{}}",
	// Left to decodeAny, which refuses them:
	`{"headers":{"name":5},"payload":{}}`,
	`{"headers":{"name":"a.b","createdAt":true},"payload":{}}`,
	`{"headers":{"name":"a.b","createdAt":"yesterday"},"payload":{}}`,
	`{"headers":{"name":"a.b","createdAt":1e400},"payload":{}}`,
	`{"headers":{"name":"a.b"},"payload":[1]}`,
	`{"headers":{"name":"a.b"},"payload":"text"}`,
	`{"headers":null,"payload":{}}`,
	`{"headers":"x","payload":{}}`,
	`{"payload":{}}`,
	`[{"headers":{}}]`,
	`null`,
	`{"headers":{"name":"a.b"},"payload":{}`,
	``,
}

// TestDecodePlainAgreesWithDecodeAny checks that the fast path changes
// nothing: for every case, Decode and the encoding/json decoder alone
// accept the same inputs and produce the same events.
func TestDecodePlainAgreesWithDecodeAny(t *testing.T) {
	for _, in := range plainCases {
		checkDecodersAgree(t, []byte(in))
	}
	for _, in := range oihSamples {
		checkDecodersAgree(t, []byte(in))
	}
	// The plain form must really take the fast path.
	var e Event
	if !e.decodePlain([]byte(plainCases[0])) {
		t.Errorf("decodePlain left the plain form %s to decodeAny", plainCases[0])
	}
}

func FuzzDecodePlainAgreesWithDecodeAny(f *testing.F) {
	for _, in := range plainCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecodersAgree(t, body) })
}

func checkDecodersAgree(t *testing.T, body []byte) {
	t.Helper()
	var viaAny Event
	errAny := viaAny.decodeAny(body)
	got, err := Decode(body)
	if (err == nil) != (errAny == nil) {
		t.Fatalf("%q: Decode error %v, encoding/json error %v", body, err, errAny)
	}
	if err != nil {
		if err.Error() != errAny.Error() {
			t.Errorf("%q: Decode error %q, encoding/json error %q", body, err, errAny)
		}
		return
	}
	if !reflect.DeepEqual(*got, viaAny) {
		t.Errorf("%q: Decode gives\n%#v\nencoding/json gives\n%#v", body, *got, viaAny)
	}
}

// TestEncodeWritesStringsAsEncodingJSONDoes: the headers herald writes
// directly must come out as encoding/json would write them, escapes and
// all, so the wire form does not depend on which path wrote it.
func TestEncodeWritesStringsAsEncodingJSONDoes(t *testing.T) {
	for _, s := range []string{
		"iam.user.created", "", "with space", `quote"d`, `back\slash`, "<b>&amp;</b>",
		"tab\there", "new\nline", "\x00\x1f\x7f", "żółw ☃", "\u2028\u2029", "bad \xff utf-8", "~!@#$%^*()_+`-={}|[]:;',./?",
	} {
		ev := &Event{Headers: Headers{Name: s, ServiceName: s, ID: s, Extra: map[string]json.RawMessage{s + "x": json.RawMessage(`1`)}}}
		got, err := ev.Encode()
		if err != nil {
			t.Fatalf("encode %q: %v", s, err)
		}
		q, _ := json.Marshal(s)
		qx, _ := json.Marshal(s + "x")
		want := `{"headers":{"name":` + string(q) + `,"serviceName":` + string(q) + `,"id":` + string(q) + `,` + string(qx) + `:1},"payload":{}}`
		if s == "" {
			want = `{"headers":{"name":"","x":1},"payload":{}}`
		}
		if string(got) != want {
			t.Errorf("%q encodes as\n%s\nwant\n%s", s, got, want)
		}
	}
}

// TestDecodedPartsDoNotOverlap: the payload and the extra headers are
// slices of one copy of the body, with no spare capacity, so appending to
// one copies it rather than write over the others; and they do not follow
// later changes of the body decoded.
func TestDecodedPartsDoNotOverlap(t *testing.T) {
	body := []byte(`{"payload":{"p":1},"headers":{"a":{"x":1},"name":"n.m","b":[2]}}`)
	ev, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if cap(ev.Payload) != len(ev.Payload) {
		t.Errorf("payload has %d bytes of spare capacity", cap(ev.Payload)-len(ev.Payload))
	}
	for k, v := range ev.Headers.Extra {
		if cap(v) != len(v) {
			t.Errorf("extra header %s has %d bytes of spare capacity", k, cap(v)-len(v))
		}
	}
	for i := range body {
		body[i] = 'X'
	}
	if string(ev.Payload) != `{"p":1}` || string(ev.Headers.Extra["a"]) != `{"x":1}` || ev.Headers.Name != "n.m" {
		t.Errorf("the decoded event follows changes of its body: %s", ev)
	}
}

// validCases exercise every rule of the JSON grammar, valid and not.
var validCases = []string{
	``, ` `, `{}`, ` { } `, `[]`, `[ ]`, `{"a":1}`, `{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a":1 "b":2}`,
	`[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `]`, `{`, `}`, `[}`, `{]`, `[[[]]]`, `[[[]]`, `{"a":[{"b":{}}]}`,
	`"a"`, `"a`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\u00e"`, `"\x"`, "\"tab\there\"", "\"\x1f\"", "\"\x7f\xff\"",
	`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `2.`, `1.2.3`, `1ee5`, `00`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `[true,false,null]`, `[truefalse]`, `nulll`, `True`,
	`1 2`, `{} {}`, `{}x`, "\t\n\r {}\t\n\r", "\v{}", `{"a":1}}`, `[1]]`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range append(validCases, plainCases...) {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", in, got, want)
		}
	}
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		deep := []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
		if got, want := validJSON(deep), json.Valid(deep); got != want {
			t.Errorf("validJSON of %d nested arrays = %v, json.Valid says %v", depth, got, want)
		}
	}
}

func FuzzValidJSONAgreesWithEncodingJSON(f *testing.F) {
	for _, in := range append(validCases, plainCases...) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}
