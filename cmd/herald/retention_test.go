package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/simulate"
)

// TestRetentionPrunesThroughServeAndVerifyHoldsIt runs herald serve with a
// short --retention: the entries of a simulated story, once older than
// that, lose their content, each pruning is recorded in the log, and
// herald verify of the stopped log passes, counting the pruned entries
// (it fails a pruning that no record covers).
func TestRetentionPrunesThroughServeAndVerifyHoldsIt(t *testing.T) {
	bin := heraldBinary(t)
	dir := t.TempDir()
	const retention = 2 * time.Second
	s := startServeProcess(t, bin, "--data", dir, "--nats-listen", "127.0.0.1:0", "--retention", retention.String(), "--audit-reads=false")
	if code, out := runBin(t, bin, "simulate", "--count", "300", "--seed", "8", "--broker", s.broker); code != 0 {
		t.Fatalf("simulate exited %d: %s", code, out)
	}
	published := time.Now()
	tokenBytes, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	// A pruning recorded for a time after the story was stored prunes
	// every entry of it.
	waitFor(t, 60*time.Second, "a pruning of everything the story stored", func() bool {
		p, _ := getLogs(t, s.api+"/logs?filter[name]="+auditlog.PrunedEvent+"&page[size]=1", token)
		if len(p.Data) == 0 {
			return false
		}
		before, _ := p.Data[0].Payload["before"].(string)
		at, err := time.Parse(time.RFC3339Nano, before)
		return err == nil && at.After(published)
	})
	// The pruning follows its record: wait until the story's last entry
	// has lost its content (its proof says so).
	last, _ := getLogs(t, s.api+"/logs?filter[service]="+simulate.ServiceFlowRepo+"&page[size]=1", token)
	if len(last.Data) == 0 {
		t.Fatal("the story stored no flow repository entry")
	}
	waitFor(t, 30*time.Second, "the pruning of the story's entries", func() bool {
		req, _ := http.NewRequest(http.MethodGet, s.api+"/logs/"+last.Data[0].ID+"/proof", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var proof struct{ Pruned bool }
		return json.NewDecoder(resp.Body).Decode(&proof) == nil && proof.Pruned
	})
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, s.stderr.String())
	}
	code, out := runBin(t, bin, "verify", "--data", dir, "--output", "json")
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || !res.OK {
		t.Fatalf("verify --data of the pruned log exited %d (%v):\n%s", code, err, out)
	}
	if res.Pruned < 200 {
		t.Errorf("verify counted %d pruned entries, want the story's (over 200):\n%s", res.Pruned, out)
	}
}
