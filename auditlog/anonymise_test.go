package auditlog_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/heraldhq/herald/auditlog"
)

func TestRedactKeepsOrderAndOtherValues(t *testing.T) {
	a := auditlog.Anonymisation{UserID: "u1", Usernames: []string{"m@x"}}
	tests := []struct {
		name, payload, user string
		want, wantUser      string // want "" means unchanged
	}{
		{
			name:     "top-level values equal to the id or a username, and any username",
			payload:  `{"z":"u1","a":{"user":"u1"},"username":"m@x","n":1,"owner":"u1","mail":"m@x","other":"u2"}`,
			want:     `{"z":"XXXXXXXXXX","a":{"user":"u1"},"username":"XXXXXXXXXX","n":1,"owner":"XXXXXXXXXX","mail":"XXXXXXXXXX","other":"u2"}`,
			user:     "u1",
			wantUser: auditlog.Redacted,
		},
		{
			name:     "the user column only with the payload it mirrors",
			payload:  `{"account":"u1","user":"admin"}`,
			user:     "admin",
			want:     `{"account":"XXXXXXXXXX","user":"admin"}`,
			wantUser: "admin",
		},
		{name: "a username that is set, whoever's", payload: `{"username":"someone@else"}`, want: `{"username":"XXXXXXXXXX"}`},
		{name: "a truthy non-string username", payload: `{"username":12}`, want: `{"username":"XXXXXXXXXX"}`},
		{name: "an unset username", payload: `{"username":0,"u":null,"v":false,"w":""}`},
		{name: "nested values are left alone", payload: `{"details":{"user":"u1"},"list":["m@x"]}`},
		{name: "already redacted", payload: `{"user":"XXXXXXXXXX","username":"XXXXXXXXXX"}`},
		{name: "another user", payload: `{"user":"u2","tenant":"t1"}`, user: "u2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := auditlog.Entry{ID: "e", User: tt.user, Payload: json.RawMessage(tt.payload)}
			changed, err := a.Redact(&e)
			if err != nil {
				t.Fatal(err)
			}
			want, wantUser := tt.want, tt.wantUser
			if want == "" {
				want, wantUser = tt.payload, tt.user
			}
			if changed != (tt.want != "") || string(e.Payload) != want || e.User != wantUser {
				t.Errorf("Redact = %v, payload %s, user %q; want %v, %s, %q", changed, e.Payload, e.User, tt.want != "", want, wantUser)
			}
			if changed {
				// Redacting what is redacted changes nothing.
				if again, err := a.Redact(&e); err != nil || again {
					t.Errorf("a second Redact changed %s again (error %v)", e.Payload, err)
				}
			}
		})
	}
	if _, err := a.Redact(&auditlog.Entry{ID: "bad", Payload: json.RawMessage(`[1]`)}); err == nil {
		t.Error("Redact of a payload that is not an object succeeded")
	}
}

func TestAnonymisationTermsNameTheUserWhereverOIHRecordsThem(t *testing.T) {
	got := auditlog.Anonymisation{UserID: "u1", Usernames: []string{"a@x", "", "b@x"}}.Terms()
	want := []auditlog.Term{
		{Key: "user", Value: "u1"}, {Key: "id", Value: "u1"}, {Key: "account", Value: "u1"},
		{Key: "user", Value: "a@x"}, {Key: "username", Value: "a@x"},
		{Key: "user", Value: "b@x"}, {Key: "username", Value: "b@x"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("terms %v, want %v", got, want)
	}
	if got := (auditlog.Anonymisation{}).Terms(); len(got) != 0 {
		t.Errorf("an empty anonymisation has terms %v, want none", got)
	}
}
