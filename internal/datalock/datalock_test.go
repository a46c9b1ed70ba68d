package datalock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestASecondAcquireIsRefusedNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir)
	var held *HeldError
	if !errors.As(err, &held) {
		t.Fatalf("second Acquire: %v, want a *HeldError", err)
	}
	if held.PID != os.Getpid() || held.Dir != dir {
		t.Errorf("HeldError %+v, want pid %d and folder %s", held, os.Getpid(), dir)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "pid") {
		t.Errorf("message %q names neither the folder nor the pid", msg)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	again.Release()
}

func TestAnUnwritableFolderIsNotReportedAsHeld(t *testing.T) {
	// A lock file that cannot be opened (here a folder in its place, which
	// even root cannot open for writing).
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Acquire(dir)
	var held *HeldError
	if err == nil || errors.As(err, &held) {
		t.Fatalf("Acquire: %v, want an error that is not a *HeldError", err)
	}
}

// TestAKilledHolderLeavesNoLock runs a process that takes the lock, kills
// it with SIGKILL, and takes the lock at once.
func TestAKilledHolderLeavesNoLock(t *testing.T) {
	if dir := os.Getenv("DATALOCK_HOLD"); dir != "" {
		if _, err := Acquire(dir); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("held\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAKilledHolderLeavesNoLock$")
	cmd.Env = append(os.Environ(), "DATALOCK_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the holder did not take the lock: %q, %v", buf, err)
	}
	var held *HeldError
	if _, err := Acquire(dir); !errors.As(err, &held) || held.PID != cmd.Process.Pid {
		t.Errorf("Acquire while another process holds it: %v, want a *HeldError naming pid %d", err, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after the holder was killed: %v", err)
	}
	l.Release()
}
