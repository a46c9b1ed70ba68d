package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

// TestServeReportsItsDeadLetters: a message the audit log cannot read is
// dead-lettered; /healthcheck and /metrics count it, and herald dlq lists
// it under the audit log's queue.
func TestServeReportsItsDeadLetters(t *testing.T) {
	addr := freeAddr(t)
	s := startServe(t, "--nats-listen", addr, "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	nc, err := natsgo.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Not an event: the audit log dead-letters it at once.
	if err := nc.Publish("herald.events.iam.user.created", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var health struct {
		Details struct {
			Queue struct {
				Status      string `json:"status"`
				DeadLetters *int   `json:"deadLetters"`
			} `json:"queue"`
		} `json:"details"`
	}
	waitFor(t, 30*time.Second, "/healthcheck to count the dead letter", func() bool {
		resp, err := http.Get(s.api + "/healthcheck")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&health) == nil && health.Details.Queue.DeadLetters != nil && *health.Details.Queue.DeadLetters == 1
	})
	if health.Details.Queue.Status != "pass" {
		t.Errorf("queue check %q: a dead letter is for an operator, not a failed check", health.Details.Queue.Status)
	}
	resp, err := http.Get(s.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^herald_auditlog_dead_letters\{queue="audit-log"\} 1$`).Match(body) {
		t.Errorf("/metrics has no herald_auditlog_dead_letters of 1:\n%s", grepLines(string(body), "herald_auditlog_"))
	}
	code, out, stderr := herald(t, "dlq", "list", "--broker", "nats://"+addr)
	if code != 0 || !strings.Contains(out, "1 dead letter in audit-log's queue") || !strings.Contains(out, "decode") {
		t.Errorf("dlq list: exit %d, stdout:\n%s\nstderr %s", code, out, stderr)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
