package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Events shaped as OIH services really send them (oih-events.md §1).
var oihSamples = []string{
	// IAM through lib/event-bus: createdAt as ms, serviceName accounts.
	`{"headers":{"name":"iam.user.created","createdAt":1700000000123,"serviceName":"accounts"},"payload":{"username":"jane@example.com","id":"5f1c0c6e2a9b4c0012345678"}}`,
	`{"headers":{"name":"iam.tenant.created","createdAt":1700000000123,"serviceName":"accounts"},"payload":{"tenant":{"_id":"5f1c0c6e2a9b4c00000000aa","name":"Acme","confirmed":true,"status":"ACTIVE"},"id":"5f1c0c6e2a9b4c00000000aa"}}`,
	`{"headers":{"name":"iam.user.loginFailed","createdAt":1700000000123,"serviceName":"accounts"},"payload":{"user":"jane@example.com"}}`,
	`{"headers":{"name":"secrets.token.get","createdAt":1700000000123,"serviceName":"secret-service"},"payload":{"message":"requested RAW Token"}}`,
	`{"headers":{"name":"flowrepo.flow.created","createdAt":1700000000123,"serviceName":"flow-repository"},"payload":{"tenant":"","user":"u1","flowId":"f1"}}`,
	// scheduler: extra header "type".
	`{"headers":{"name":"flow.execute","createdAt":1700000000123,"serviceName":"scheduler","type":"scheduler"},"payload":{"flow":{"_id":"f1","cron":"* * * * *"},"msg":{"data":{},"metadata":{"source":{"name":"scheduler"}}}}}`,
	// ferryman: no serviceName, no createdAt.
	`{"headers":{"name":"raw-record.created"},"payload":{"userId":"u1","rawRecordId":"r1","tenant":"t1","payload":{"a":1}}}`,
	`{"headers":{"name":"provenance"},"payload":{"entity":{"id":"o1","entityType":"oihUid"}}}`,
	// createdAt as a numeric string and as RFC 3339.
	`{"headers":{"name":"flow.started","createdAt":"1700000000123","serviceName":"component-orchestrator"},"payload":{"id":"f1"}}`,
	`{"headers":{"name":"flow.stopped","createdAt":"2023-11-14T22:13:20.123Z","serviceName":"component-orchestrator"},"payload":{"id":"f1"}}`,
	// herald: with id.
	`{"headers":{"name":"iam.user.deleted","serviceName":"accounts","createdAt":1700000000123,"id":"018bcfe5-6800-7000-8000-000000000001"},"payload":{"id":"u1"}}`,
}

func TestDecodeReadsCreatedAtInEveryForm(t *testing.T) {
	want := time.UnixMilli(1700000000123).UTC()
	for _, in := range []string{`1700000000123`, `1700000000123.0`, `"1700000000123"`, `"2023-11-14T22:13:20.123Z"`, `"2023-11-14T23:13:20.123+01:00"`} {
		ev, err := Decode([]byte(`{"headers":{"name":"a.b","createdAt":` + in + `},"payload":{}}`))
		if err != nil {
			t.Fatalf("createdAt %s: %v", in, err)
		}
		if !ev.Headers.CreatedAt.Equal(want) {
			t.Errorf("createdAt %s: got %v, want %v", in, ev.Headers.CreatedAt, want)
		}
	}
	for _, in := range []string{`"yesterday"`, `true`, `{}`, `[]`} {
		if _, err := Decode([]byte(`{"headers":{"name":"a.b","createdAt":` + in + `},"payload":{}}`)); !errors.Is(err, ErrMalformed) {
			t.Errorf("createdAt %s: got %v, want ErrMalformed", in, err)
		}
	}
}

func TestEncodeWritesOIHWireForm(t *testing.T) {
	ev := &Event{
		Headers: Headers{
			Name: "iam.user.created", ServiceName: "accounts",
			CreatedAt: time.UnixMilli(1700000000123), ID: "id-1",
			Extra: map[string]json.RawMessage{"type": json.RawMessage(`"scheduler"`), "b": json.RawMessage(`{ "x" : 1 }`)},
		},
		Payload: json.RawMessage(`{ "id": "u1" }`),
	}
	got, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"headers":{"name":"iam.user.created","serviceName":"accounts","createdAt":1700000000123,"id":"id-1","b":{"x":1},"type":"scheduler"},"payload":{"id":"u1"}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestDecodeKeepsExtraHeaders(t *testing.T) {
	ev, err := Decode([]byte(oihSamples[5]))
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Headers.Extra["type"]) != `"scheduler"` {
		t.Fatalf("extra header lost: %v", ev.Headers.Extra)
	}
	out, _ := ev.Encode()
	if !strings.Contains(string(out), `"type":"scheduler"`) {
		t.Errorf("extra header dropped on encode: %s", out)
	}
}

func TestDecodeDerivesStableIDWhenAbsent(t *testing.T) {
	body := []byte(oihSamples[0])
	a, _ := Decode(body)
	b, _ := Decode(body)
	if a.Headers.ID == "" || a.Headers.ID != b.Headers.ID {
		t.Fatalf("ids %q and %q: want equal and non-empty", a.Headers.ID, b.Headers.ID)
	}
	c, _ := Decode([]byte(oihSamples[2]))
	if c.Headers.ID == a.Headers.ID {
		t.Fatal("different bodies got the same id")
	}
	withID, _ := Decode([]byte(oihSamples[len(oihSamples)-1]))
	if withID.Headers.ID != "018bcfe5-6800-7000-8000-000000000001" {
		t.Errorf("explicit id replaced: %q", withID.Headers.ID)
	}
}

func TestDecodeNormalisesPayload(t *testing.T) {
	for _, p := range []string{``, `,"payload":null`} {
		ev, err := Decode([]byte(`{"headers":{"name":"a.b"}` + p + `}`))
		if err != nil {
			t.Fatalf("payload %q: %v", p, err)
		}
		if string(ev.Payload) != "{}" {
			t.Errorf("payload %q became %s, want {}", p, ev.Payload)
		}
	}
	for _, p := range []string{`[]`, `"x"`, `1`, `true`} {
		_, err := Decode([]byte(`{"headers":{"name":"a.b"},"payload":` + p + `}`))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "JSON object") {
			t.Errorf("payload %s: got %v, want a malformed-payload error", p, err)
		}
	}
}

func TestDecodeRejectsNonEnvelopes(t *testing.T) {
	for _, in := range []string{``, `[]`, `{}`, `{"headers":1}`, `{"headers":{"name":5}}`, `not json`, `{"headers":{"id":5}}`} {
		if _, err := Decode([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
}

func TestReservedFields(t *testing.T) {
	cases := []struct {
		payload, user, tenant string
	}{
		{`{"user":"u1","tenant":"t1"}`, "u1", "t1"},
		{`{}`, "", ""},
		{`{"user":5,"tenant":null}`, "", ""},
		{`{"tenant":{"_id":"t9","name":"Acme"}}`, "", "t9"},
		{`{"tenant":{"id":"t8"}}`, "", "t8"},
		// The keys are exact: case variants are ordinary keys, wherever
		// they come.
		{`{"user":"uA","USER":"uB","tenant":"tA","TENANT":"tB","Tenant":"tC"}`, "uA", "tA"},
		{`{"USER":"uB","Tenant":"tC"}`, "", ""},
		{`{"tenant":{"ID":"t7","_ID":"t6"}}`, "", ""},
	}
	for _, c := range cases {
		ev := &Event{Payload: json.RawMessage(c.payload)}
		if ev.User() != c.user || ev.Tenant() != c.tenant {
			t.Errorf("%s: user %q tenant %q, want %q %q", c.payload, ev.User(), ev.Tenant(), c.user, c.tenant)
		}
	}
}

func TestValidateName(t *testing.T) {
	good := []string{"iam.user.loginFailed", "secret-service.auth-client.created", "a", "data_hub.x-1", "provenance", strings.Repeat("a", 255)}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	bad := map[string]error{
		"":                       ErrNameEmpty,
		strings.Repeat("a", 256): ErrNameTooLong,
		"a..b":                   ErrNameInvalid,
		".a":                     ErrNameInvalid,
		"a.":                     ErrNameInvalid,
		"a b":                    ErrNameInvalid,
		"iam.*.created":          ErrNameInvalid,
		"iam.#":                  ErrNameInvalid,
		"ümlaut":                 ErrNameInvalid,
	}
	for n, want := range bad {
		err := ValidateName(n)
		var ve *ValidationError
		if !errors.Is(err, want) || !errors.As(err, &ve) || ve.Field != "name" {
			t.Errorf("%q: got %v, want %v in a *ValidationError", n, err, want)
		}
	}
}

func TestValidateSizeLimit(t *testing.T) {
	ev, err := New("a.b", map[string]string{"blob": strings.Repeat("x", 2000)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(0); err != nil {
		t.Fatalf("default limit: %v", err)
	}
	if err := ev.Validate(1000); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit 1000: got %v, want ErrTooLarge", err)
	}
	big, _ := New("a.b", map[string]string{"blob": strings.Repeat("x", DefaultMaxSize)})
	if err := big.Validate(0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over 1 MiB: got %v, want ErrTooLarge", err)
	}
}

func TestNewRefusesNonObjectPayload(t *testing.T) {
	for _, p := range []any{[]int{1}, "x", 3, json.RawMessage(`[1]`)} {
		if _, err := New("a.b", p); !errors.Is(err, ErrPayloadNotObject) {
			t.Errorf("%v: got %v, want ErrPayloadNotObject", p, err)
		}
	}
	ev, err := New("a.b", nil)
	if err != nil || string(ev.Payload) != "{}" {
		t.Fatalf("nil payload: %v %s", err, ev.Payload)
	}
	if ev.Headers.ID == "" || ev.Headers.CreatedAt.IsZero() {
		t.Fatal("New must set id and createdAt")
	}
}

func TestOIHSamplesDecodeAndRoundTrip(t *testing.T) {
	for _, s := range oihSamples {
		ev, err := Decode([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		assertRoundTrip(t, ev)
	}
}

func TestTimesOutsideYears1To9999AreRefused(t *testing.T) {
	for _, s := range []string{"1e300", "-1e300", "1e19", "NaN", "Inf", "-9999999999999999", "253402300800000", "-62135596800001", "10000-01-01T00:00:00Z"} {
		if _, err := ParseTime(s); err == nil {
			t.Errorf("ParseTime(%q) accepted", s)
		}
		body := `{"headers":{"name":"a.b","createdAt":` + s + `},"payload":{}}`
		if _, err := Decode([]byte(body)); err == nil && s != "NaN" && s != "Inf" && !strings.Contains(s, "T") {
			t.Errorf("Decode with createdAt %s accepted", s)
		}
		quoted := `{"headers":{"name":"a.b","createdAt":"` + s + `"},"payload":{}}`
		if _, err := Decode([]byte(quoted)); err == nil {
			t.Errorf("Decode with createdAt %q accepted", s)
		}
	}
	for _, s := range []string{"-62135596800000", "253402300799999", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"} {
		if _, err := ParseTime(s); err != nil {
			t.Errorf("ParseTime(%q): %v", s, err)
		}
	}
}
