package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/natsserver"
)

// TestANewcomersDeletedUserIsErasedThroughTheBinary is what a new user
// tried: a user is created, used, deleted, and events naming them arrive
// after the deletion; through the real binary and bus, on SQLite and on
// PostgreSQL, no entry the API returns names them, the erasure is in the
// log, and the log verifies.
func TestANewcomersDeletedUserIsErasedThroughTheBinary(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { newcomerErasure(t, "") })
	t.Run("postgres", func(t *testing.T) {
		// A schema of the test's own, dropped after serve has stopped.
		store, _ := postgresSchema(t)
		newcomerErasure(t, store)
	})
}

func newcomerErasure(t *testing.T, store string) {
	bin := heraldBinary(t)
	ctx := context.Background()
	broker, err := natsserver.Run(ctx, natsserver.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Shutdown(ctx)
	data := t.TempDir()
	// Reads of the log are not recorded, so that the entries are the story.
	args := []string{"--data", data, "--broker", broker.ClientURL(), "--audit-reads=false"}
	if store != "" {
		args = append(args, "--store", store)
	}
	p := startServeProcess(t, bin, args...)
	token, err := os.ReadFile(filepath.Join(data, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	iam, flows := natsBus(t, broker.ClientURL(), "accounts"), natsBus(t, broker.ClientURL(), "flow-repository")
	publish := func(from interface {
		Publish(context.Context, *event.Event) error
	}, name, payload string) {
		t.Helper()
		ev, err := event.New(name, json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := from.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	logs := func() (logsPage, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, p.api+"/logs?num=100", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var page logsPage
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &page) != nil {
			t.Fatalf("GET /logs: %d %s", resp.StatusCode, body)
		}
		return page, string(body)
	}
	publish(iam, "iam.user.created", `{"id":"zz2","username":"z2@z.z"}`)
	publish(flows, "flow.starting", `{"id":"f1","status":"starting","graph":{"nodes":[],"edges":[]},"owners":[{"id":"zz2","type":"user"},{"id":"zz3","type":"user"}],"startedBy":"zz2"}`)
	publish(iam, "iam.user.deleted", `{"id":"zz2"}`)
	waitFor(t, 30*time.Second, "the erasure recorded", func() bool {
		page, _ := logs()
		return len(page.Data) == 4 && page.Data[0].Headers.Name == "audit-log.subject.erased"
	})
	publish(iam, "iam.token.deleted", `{"account":"zz2"}`)
	publish(iam, "iam.user.loginFailed", `{"user":"z2@z.z"}`)
	var body string
	waitFor(t, 30*time.Second, "the events after the deletion stored", func() bool {
		var page logsPage
		page, body = logs()
		return len(page.Data) == 6
	})
	if strings.Contains(body, "zz2") || strings.Contains(body, "z2@z.z") {
		t.Errorf("GET /logs still names the deleted user:\n%s\n%s", body, p.stderr.String())
	}
	if !strings.Contains(body, `"zz3"`) {
		t.Errorf("the other owner was erased too:\n%s", body)
	}
	verify := []string{"verify", "--data", data, "--output", "json"}
	if store != "" {
		verify = []string{"verify", "--store", store, "--signing-key", filepath.Join(data, signingKeyFileName), "--output", "json"}
	}
	waitFor(t, 30*time.Second, "every entry integrated", func() bool { return checkpointSize(p.api) >= 6 })
	code, out := runBin(t, bin, verify...)
	var res verifyResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Erased < 5 {
		t.Errorf("verify exited %d, want 0 with 5 entries erased:\n%s", code, out)
	}
}
