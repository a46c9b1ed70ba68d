//go:build unix

// Package brokerlock serialises herald's tests around the machine's shared
// RabbitMQ: tests that stop or block the broker hold the lock exclusively,
// the others shared, so `go test ./...`, which runs packages in parallel,
// never restarts the broker under another package's test.
package brokerlock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Path is the lock file shared by every herald test process on the machine.
var Path = filepath.Join(os.TempDir(), "herald-test-rabbitmq.lock")

// Hold holds the lock (exclusively or shared) until t ends.
func Hold(t testing.TB, exclusive bool) {
	t.Helper()
	f, err := os.OpenFile(Path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("broker lock: %v", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("broker lock %s: %v", Path, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
