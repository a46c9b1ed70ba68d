package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/testkit"
)

// TestVerifyDrawsItsProgressOnATerminalOnly runs herald verify --data on
// a terminal (script(1) gives it one) and on a pipe: the progress bar is
// drawn on the terminal only, and a pipe gets the report alone.
func TestVerifyDrawsItsProgressOnATerminalOnly(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		testkit.SkipUnless(t, "PATH", "script(1) is not installed (Debian's bsdutils)")
	}
	log := newDataFolderLog(t)
	log.add(t, 0, 3000)
	log.store.Close()
	dir := log.dir

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
