//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// brokerLockPath is a lock file shared by every herald test process on the
// machine that uses the local RabbitMQ: tests that stop it or block it
// hold it exclusively, the others (cmd/herald's) shared, so `go test
// ./...`, which runs packages in parallel, never restarts the broker under
// another package's test.
var brokerLockPath = filepath.Join(os.TempDir(), "herald-test-rabbitmq.lock")

// lockBroker holds the broker lock (exclusively or shared) until t ends.
func lockBroker(t testing.TB, exclusive bool) {
	t.Helper()
	f, err := os.OpenFile(brokerLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("broker lock: %v", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("broker lock %s: %v", brokerLockPath, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}
