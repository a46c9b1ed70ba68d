package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/testkit"
)

// TestVerifyDrawsItsProgressOnATerminalOnly runs herald verify --data on
// a terminal (script(1) gives it one) and on a pipe: the progress bar is
// drawn on the terminal only, and a pipe gets the report alone.
func TestVerifyDrawsItsProgressOnATerminalOnly(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		testkit.SkipUnless(t, "PATH", "script(1) is not installed (Debian's bsdutils)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	signer, _, err := auditlog.LoadOrCreateKey(filepath.Join(dir, signingKeyFileName), "")
	if err != nil {
		t.Fatal(err)
	}
	store, err := storeSpec{path: filepath.Join(dir, "audit.db")}.open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var es []auditlog.Entry
	for i := range 3000 {
		e, _ := auditlog.EntryFromEvent(&event.Event{Headers: event.Headers{Name: "x.y", ID: fmt.Sprint(i), CreatedAt: time.Now()}, Payload: json.RawMessage(`{"i":1}`)}, time.Now(), nil)
		es = append(es, e)
	}
	if _, err := store.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.IntegrateAll(ctx, store, signer); err != nil {
		t.Fatal(err)
	}
	store.Close()

	bin := heraldBinary(t)
	tty, err := exec.Command("script", "-qec", bin+" verify --data "+dir, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("verify on a terminal: %v\n%s", err, tty)
	}
	if !strings.Contains(string(tty), "verifying") {
		t.Errorf("verify on a terminal drew no progress bar:\n%q", tty)
	}
	if !strings.Contains(string(tty), "entries/s") || strings.Contains(string(tty), "events/s") {
		t.Errorf("verify's progress bar does not count entries per second:\n%q", tty)
	}
	code, piped := runBin(t, bin, "verify", "--data", dir)
	if code != 0 || strings.Contains(piped, "verifying") {
		t.Errorf("verify on a pipe: exit %d, output with a progress bar:\n%s", code, piped)
	}
}
