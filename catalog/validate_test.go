package catalog

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/event"
)

func asSchemaError(err error, target **SchemaError) bool { return errors.As(err, target) }

func mustEvent(t *testing.T, name, payload string) *event.Event {
	t.Helper()
	ev, err := event.New(name, json.RawMessage(payload))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestValidateRefusesAnUnknownNameSuggestingTheClosest(t *testing.T) {
	err := Default().Validate(mustEvent(t, "flowrepo.flow.creatd", `{}`))
	if !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("err = %v, want ErrUnknownEvent", err)
	}
	if !strings.Contains(err.Error(), "did you mean flowrepo.flow.created?") {
		t.Fatalf("err = %q, want it to suggest flowrepo.flow.created", err)
	}
}

func TestValidateRefusesAFarOffNameWithoutASuggestion(t *testing.T) {
	err := Default().Validate(mustEvent(t, "billing.invoice.paid", `{}`))
	if !errors.Is(err, ErrUnknownEvent) || strings.Contains(err.Error(), "did you mean") {
		t.Fatalf("err = %v, want ErrUnknownEvent with no suggestion", err)
	}
}

func TestValidateRefusesAMalformedName(t *testing.T) {
	err := Default().ValidatePayload("iam..user", nil)
	if !errors.Is(err, event.ErrNameInvalid) {
		t.Fatalf("err = %v, want event.ErrNameInvalid", err)
	}
}

func TestSuggestFindsNearMisses(t *testing.T) {
	tests := map[string]string{
		"flowrepo.flow.creatd":              "flowrepo.flow.created",
		"iam.user.removedFromTenat":         "iam.user.removedFromTenant",
		"IAM.USER.CREATED":                  "iam.user.created",
		"iam.user.loginfailed":              "iam.user.loginFailed",
		"secret-service.authclient.created": "secret-service.auth-client.created",
		"secrets.secret.ownerAded":          "secrets.secret.ownerAdded",
		"flow.stoped":                       "flow.stopped",
		"templaterepo.templates.deleted":    "templaterepo.template.deleted",
		"provenence":                        "provenance",
		"xyz":                               "",
		"":                                  "",
	}
	c := Default()
	for name, want := range tests {
		got, ok := c.Suggest(name)
		if got != want || ok != (want != "") {
			t.Errorf("Suggest(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
}

func TestSuggestPrefersTheCanonicalNameOnATie(t *testing.T) {
	// "iam.user.removedFrmTenant" is one edit from the canonical name and
	// one from OIH's misspelt alias.
	got, _ := Default().Suggest("iam.user.removedFrmTenant")
	if got != "iam.user.removedFromTenant" {
		t.Fatalf("Suggest = %q, want the canonical iam.user.removedFromTenant", got)
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"flowrepo.flow.creatd", "flowrepo.flow.created", 1}, {"Form", "From", 2}, {"abc", "abc", 0},
	}
	for _, tc := range tests {
		if got := levenshtein(tc.a, tc.b); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := levenshtein(tc.b, tc.a); got != tc.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestValidateNamesThePointerAndRuleOfASchemaViolation(t *testing.T) {
	tests := []struct {
		name, payload, pointer, rule, message string
	}{
		{"iam.user.created", `{"id":5,"username":"jane@example.com"}`, "/id", "type", "got number, want string"},
		{"iam.user.created", `{"id":"5f1c"}`, "/username", "required", "missing property 'username'"},
		{"iam.tenant.created", `{"id":"t","tenant":{"name":7}}`, "/tenant/name", "type", "want string"},
		{"iam.tenant.created", `{"id":"t","tenant":"t"}`, "/tenant", "type", "want object"},
		{"iam.role.modified", `{"role":"r","permissions":["a",1]}`, "/permissions/1", "type", "want string"},
		{"iam.token.deleted", `{}`, "", "anyOf", "missing property 'id'; missing property 'account'"},
		{"flow.starting", `{"id":"f","graph":{},"status":"stopping"}`, "/status", "const", "starting"},
		{"flowrepo.flow.created", `{"flowId":"f","user":"u","tenant":null}`, "/tenant", "type", "got null, want string"},
		{"secrets.token.get", `{"user":{"id":"u"}}`, "/user", "type", "want string"},
		{"dispatch.5f1c", `{"data":{}}`, "/meta", "required", "missing property 'meta'"},
	}
	c := Default()
	for _, tc := range tests {
		err := c.Validate(mustEvent(t, tc.name, tc.payload))
		if !errors.Is(err, ErrSchema) {
			t.Errorf("%s %s: err = %v, want ErrSchema", tc.name, tc.payload, err)
			continue
		}
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Errorf("%s %s: err = %v is not a *SchemaError", tc.name, tc.payload, err)
			continue
		}
		if se.Event != tc.name || se.Pointer != tc.pointer || se.Rule != tc.rule || !strings.Contains(se.Message, tc.message) {
			t.Errorf("%s %s: got %+v, want event %s pointer %q rule %q message containing %q",
				tc.name, tc.payload, *se, tc.name, tc.pointer, tc.rule, tc.message)
		}
		if tc.pointer != "" && !strings.Contains(err.Error(), tc.pointer) {
			t.Errorf("%s: message %q does not name the pointer %s", tc.name, err, tc.pointer)
		}
	}
}

func TestValidateCountsFurtherViolations(t *testing.T) {
	err := Default().ValidatePayload("flowrepo.flow.created", json.RawMessage(`{"flowId":1,"user":2,"tenant":3}`))
	var se *SchemaError
	if !errors.As(err, &se) || se.More != 2 || !strings.Contains(err.Error(), "(and 2 more)") {
		t.Fatalf("err = %v, want the first wrong field and 2 more", err)
	}
	err = Default().ValidatePayload("flowrepo.flow.created", json.RawMessage(`{}`))
	if !errors.As(err, &se) || se.More != 0 || !strings.Contains(se.Message, "'flowId', 'user', 'tenant'") {
		t.Fatalf("err = %v, want one required violation naming the three missing fields", err)
	}
}

func TestValidateRefusesAPayloadThatIsNotAnObject(t *testing.T) {
	c := Default()
	err := c.ValidatePayload("iam.user.deleted", json.RawMessage(`["id"]`))
	var se *SchemaError
	if !errors.As(err, &se) || se.Pointer != "" || se.Rule != "type" {
		t.Fatalf("err = %v, want a type violation of the payload itself", err)
	}
	if err := c.ValidatePayload("iam.user.deleted", json.RawMessage(`{"id":`)); !errors.Is(err, event.ErrPayloadNotObject) {
		t.Fatalf("err = %v, want event.ErrPayloadNotObject for broken JSON", err)
	}
}

func TestValidateAcceptsWhatOIHReallySends(t *testing.T) {
	tests := []struct{ name, payload string }{
		{"iam.user.modified", `{"id":"5f1c0c6e2a9b4c0012345678"}`},
		{"iam.token.deleted", `{"id":"5f1c0c6e2a9b4c00cccccccc"}`},
		{"iam.token.deleted", `{"account":"5f1c0c6e2a9b4c0012345678"}`},
		{"iam.role.created", `{"role":"Integrator"}`},
		{"secrets.token.get", `{"message":"requested RAW Token"}`},
		{"flowrepo.flow.created", `{"tenant":"","user":"u1","flowId":"f1"}`},
		{"templaterepo.template.modified", `{"_id":"t1","name":"T","status":"draft","owners":[],"tenant":"x"}`},
		{"component.starting", `{"_id":"c1","startedBy":"u1"}`},
		{"component.stopping", `{"_id":"c1","stoppedBy":"u1"}`},
		{"flow.stopping", `{"id":"f1","status":"stopping","graph":{"nodes":[],"edges":[]},"owners":[]}`},
		{"raw-record.created", `{"userId":"u","rawRecordId":"r","tenant":"t","payload":"<xml/>"}`},
		{"flow.started", `{"id":"f1","extra":true}`},
		{"metadata.domain.created", ``},
	}
	c := Default()
	for _, tc := range tests {
		if err := c.ValidatePayload(tc.name, json.RawMessage(tc.payload)); err != nil {
			t.Errorf("%s %s: %v", tc.name, tc.payload, err)
		}
	}
}

func TestValidateChecksAnEventWithAFamilyName(t *testing.T) {
	c := Default()
	ok := mustEvent(t, "dispatch.5f1c0c6e2a9b4c0033333333", `{"meta":{"applicationUid":"snazzy"},"data":{}}`)
	if err := c.Validate(ok); err != nil {
		t.Fatalf("Validate(dispatch.<flowId>) = %v", err)
	}
	bad := mustEvent(t, "dispatch.5f1c0c6e2a9b4c0033333333", `{"meta":"x"}`)
	var se *SchemaError
	if err := c.Validate(bad); !errors.As(err, &se) || se.Event != bad.Headers.Name || se.Pointer != "/meta" {
		t.Fatalf("Validate = %v, want a schema error at /meta naming the concrete event", err)
	}
}

func TestValidateRefusesANilEvent(t *testing.T) {
	if err := Default().Validate(nil); err == nil {
		t.Fatal("Validate(nil) = nil")
	}
}

func TestFindReturnsTheEntryOrTheErrorValidateWouldGive(t *testing.T) {
	c := Default()
	e, err := c.Find("secrets.token.get")
	if err != nil || e.AliasOf != "secret-service.token.get" {
		t.Fatalf("Find(secrets.token.get) = %s, %v", e.Name, err)
	}
	if _, err := c.Find("secrets.token.gett"); !errors.Is(err, ErrUnknownEvent) || !strings.Contains(err.Error(), "did you mean secrets.token.get?") {
		t.Fatalf("Find(secrets.token.gett) err = %v, want ErrUnknownEvent suggesting secrets.token.get", err)
	}
	if _, err := c.Find("dispatch.*"); !errors.Is(err, event.ErrNameInvalid) {
		t.Fatalf("Find(dispatch.*) err = %v, want event.ErrNameInvalid: a family is not an event name", err)
	}
}
