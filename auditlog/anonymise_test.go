package auditlog_test

import (
	"encoding/json"
	"testing"

	"github.com/heraldhq/herald/auditlog"
)

func TestRedactKeepsOrderAndOtherValues(t *testing.T) {
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Key: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	const R = auditlog.Redacted
	redact := x.Redact(map[string]string{"u1": R, "m@x": R})
	tests := []struct {
		name, event, payload, user string
		want, wantUser             string // want "" means unchanged
	}{
		{
			name:     "every value equal to the id or a username, at any depth, and the username",
			event:    "x.y",
			payload:  `{"z":"u1","a":{"user":"u1"},"username":"m@x","n":1,"owner":"u1","list":["m@x",2],"other":"u2","user":"u1"}`,
			want:     `{"z":"XXXXXXXXXX","a":{"user":"XXXXXXXXXX"},"username":"XXXXXXXXXX","n":1,"owner":"XXXXXXXXXX","list":["XXXXXXXXXX",2],"other":"u2","user":"XXXXXXXXXX"}`,
			user:     "u1",
			wantUser: R,
		},
		{
			name:     "the user column only with the payload it mirrors",
			event:    "iam.token.deleted",
			payload:  `{"account":"u1","user":"admin"}`,
			user:     "admin",
			want:     `{"account":"XXXXXXXXXX","user":"admin"}`,
			wantUser: "admin",
		},
		{name: "a set username in an entry of the user", event: "iam.user.modified", payload: `{"id":"u1","username":"new@x"}`, want: `{"id":"XXXXXXXXXX","username":"XXXXXXXXXX"}`},
		{name: "a truthy non-string username", event: "x.y", payload: `{"id":"u1","username":12}`, want: `{"id":"XXXXXXXXXX","username":"XXXXXXXXXX"}`},
		{name: "an unset username", event: "x.y", payload: `{"id":"u1","username":0,"u":null,"v":false,"w":""}`, want: `{"id":"XXXXXXXXXX","username":0,"u":null,"v":false,"w":""}`},
		{name: "a catalogued nested field", event: "flow.starting", payload: `{"id":"f","owners":[{"id":"u2"},{"id":"u1"}]}`, want: `{"id":"f","owners":[{"id":"u2"},{"id":"XXXXXXXXXX"}]}`},
		{name: "a nested value of an entry that does not name the user where users are", event: "x.y", payload: `{"details":{"user":"u1"},"list":["m@x"]}`},
		{name: "someone else's username", event: "iam.user.created", payload: `{"id":"u2","username":"someone@else"}`},
		{name: "already redacted", event: "x.y", payload: `{"user":"XXXXXXXXXX","username":"XXXXXXXXXX"}`},
		{name: "another user", event: "x.y", payload: `{"user":"u2","tenant":"t1"}`, user: "u2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := auditlog.Entry{ID: "e", Name: tt.event, User: tt.user, Payload: json.RawMessage(tt.payload)}
			if err := auditlog.Seal(&e); err != nil {
				t.Fatal(err)
			}
			leaf := string(e.LeafHash)
			changed, err := redact(&e)
			if err != nil {
				t.Fatal(err)
			}
			want, wantUser := tt.want, tt.wantUser
			if want == "" {
				want, wantUser = tt.payload, tt.user
			}
			if changed != (tt.want != "") || string(e.Payload) != want || e.User != wantUser {
				t.Errorf("redact = %v, payload %s, user %q; want %v, %s, %q", changed, e.Payload, e.User, tt.want != "", want, wantUser)
			}
			if h, err := auditlog.LeafHash(e); err != nil || string(h[:]) != leaf {
				t.Errorf("the leaf hash changed (%v)", err)
			}
			if changed {
				// Redacting what is redacted changes nothing.
				if again, err := redact(&e); err != nil || again {
					t.Errorf("a second redact changed %s again (error %v)", e.Payload, err)
				}
			}
		})
	}
}
