package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auditlog"
)

// withEraser has POST /logs erase as serve's does.
func withEraser(e **auditlog.Eraser) func(*Config) {
	return func(c *Config) {
		x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: c.Store, Key: []byte("httpapi-test-erasure-key")})
		if err != nil {
			panic(err)
		}
		*e = x
		c.Eraser = x
	}
}

// TestAPushedUserEventErasesNobody: a non-admin's POST of an
// iam.user.created teaches no username and its iam.user.deleted erases
// nobody (its serviceName is the poster's own); an admin's POST of a
// deletion from IAM erases the user, and what is POSTed of them later.
func TestAPushedUserEventErasesNobody(t *testing.T) {
	var x *auditlog.Eraser
	e := newEnv(t, withEraser(&x))
	post := func(token, name string, payload map[string]any) {
		t.Helper()
		ev := newEvent(name, nil, payload)
		ev["headers"].(map[string]any)["serviceName"] = "accounts"
		if r := e.do(http.MethodPost, "/logs", token, ev); r.status != http.StatusCreated {
			t.Fatalf("POST %s as %s: %d %s", name, token, r.status, r.body)
		}
	}
	payloads := func() string {
		t.Helper()
		r := e.do(http.MethodGet, "/logs?num=1000", "admin", nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET /logs: %d %s", r.status, r.body)
		}
		return string(r.body)
	}
	post("admin", "iam.user.created", map[string]any{"id": "uVictim", "username": "victim@example.com"})
	post("admin", "iam.user.loginFailed", map[string]any{"user": "uB@example.com"})
	post("admin", "iam.user.loginFailed", map[string]any{"user": "victim@example.com"})
	// The attack: alice claims uVictim's username is uB's.
	post("alice", "iam.user.created", map[string]any{"id": "uVictim", "username": "uB@example.com"})
	// And deletes a user she cannot delete.
	post("alice", "iam.user.deleted", map[string]any{"id": "uB"})
	post("admin", "flowrepo.flow.created", map[string]any{"user": "uB", "flowId": "f1", "tenant": "tenant-a"})
	post("admin", "iam.user.deleted", map[string]any{"id": "uVictim"})

	all := payloads()
	// uB's own login stays; alice's entry names uVictim, so it is erased.
	if got := strings.Count(all, `"uB@example.com"`); got != 1 {
		t.Errorf("uB's address appears %d times after uVictim's deletion, want 1 (their login):\n%s", got, all)
	}
	if !strings.Contains(all, `"user":"uB"`) {
		t.Errorf("alice's iam.user.deleted erased uB:\n%s", all)
	}
	if strings.Contains(all, "victim@example.com") || strings.Contains(all, `"uVictim"`) {
		t.Errorf("the deleted user is still in the log:\n%s", all)
	}
	// Posted after the deletion, by anyone: erased at once.
	// (A non-admin writes as themselves: the victim is named in another
	// field.)
	post("nora", "iam.user.loginFailed", map[string]any{"username": "victim@example.com", "attempt": 2})
	if all := payloads(); strings.Contains(all, "victim@example.com") {
		t.Errorf("an entry of the deleted user POSTed later is in clear:\n%s", all)
	}
}
