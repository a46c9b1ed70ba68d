package catalog_test

import (
	"errors"
	"testing"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// FuzzValidate runs the catalogue check on arbitrary names and payloads,
// as POST /events and publishing do with whatever a caller sends: it must
// never panic, and its answer is one of three: valid, unknown name (or a
// malformed one), or a schema error.
func FuzzValidate(f *testing.F) {
	cat := catalog.Default()
	f.Add("flowrepo.flow.created", []byte(`{"id":"f1","user":"u","tenant":"t"}`))
	f.Add("iam.user.created", []byte(`{"id":"u1","username":"a@b.c"}`))
	f.Add("iam.user.deleted", []byte(`{"id":7}`))
	f.Add("flowrepo.flow.creatd", []byte(`{}`))
	f.Add("a..b", []byte(`[]`))
	f.Add("", []byte(`null`))
	f.Add("secret-service.secret.created", []byte(`{"id":{"$gt":""},"user":["x"]}`))
	f.Add("iam.user.created", []byte(`{"id":"\ud800","username":"\u0000"}`))
	f.Fuzz(func(t *testing.T, name string, payload []byte) {
		ev := &event.Event{Headers: event.Headers{Name: name}, Payload: payload}
		err := cat.Validate(ev)
		if err == nil {
			if _, ok := cat.Lookup(name); !ok {
				t.Fatalf("validated %q, which the catalogue does not know", name)
			}
			return
		}
		var se *catalog.SchemaError
		if !errors.Is(err, catalog.ErrUnknownEvent) && !errors.As(err, &se) && event.ValidateName(name) == nil && err.Error() == "" {
			t.Fatalf("refused %q with an empty reason", name)
		}
		cat.Suggest(name)
	})
}
