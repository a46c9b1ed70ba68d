package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

func TestServePublishesAPostedCloudEvent(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr testkit.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, pw, &stderr)
		pw.Close()
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of its signal")
		}
	}()
	api, _ := banner(t, pr)
	go io.Copy(io.Discard, pr)
	tokenBytes, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))

	post := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, api+"/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const id = "0190f0e4-0000-7000-8000-0000000000c1"
	if code := post(`{"specversion":"1.0","id":"` + id + `","source":"accounts","type":"iam.user.created","data":{"id":"u-9","username":"u9@example.com"}}`); code != http.StatusAccepted {
		t.Fatalf("POST /events: %d, want 202", code)
	}
	if code := post(`{"specversion":"1.0","id":"x","source":"accounts","type":"iam.user.removedFormTennant","data":{}}`); code != http.StatusBadRequest {
		t.Errorf("POST /events of a name the catalogue lacks: %d, want 400", code)
	}
	// The audit log, on the same bus, records what was published.
	waitFor(t, 20*time.Second, "the posted event in the audit log", func() bool {
		p, _ := getLogs(t, api+"/logs?filter[name]=iam.user.created", token)
		return len(p.Data) == 1 && p.Data[0].ID == id && p.Data[0].Headers.ServiceName == "accounts"
	})
}
