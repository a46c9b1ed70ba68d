package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// TestASecondProcessOnADataFolderFailsAtOnce starts herald broker on a
// data folder, then serve and another broker on the same folder: each
// fails at once, exit 1, naming the folder and the pid that holds it.
func TestASecondProcessOnADataFolderFailsAtOnce(t *testing.T) {
	data := t.TempDir()
	startBroker(t, "--listen", freeAddr(t), "--data", data)
	for _, args := range [][]string{
		{"serve", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", freeAddr(t)},
		{"broker", "--data", data, "--listen", freeAddr(t)},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var stdout, stderr testkit.Buffer
		code := run(ctx, args, &stdout, &stderr)
		cancel()
		msg := stderr.String()
		if code != 1 || !strings.Contains(msg, data) || !strings.Contains(msg, fmt.Sprintf("pid %d", os.Getpid())) {
			t.Errorf("herald %s on a folder in use: exit %d, stderr %q; want exit 1 naming %s and pid %d", args[0], code, msg, data, os.Getpid())
		}
		if strings.Contains(stdout.String(), "running") || strings.Contains(stdout.String(), "broker at") {
			t.Errorf("herald %s started on a folder in use: %s", args[0], stdout.String())
		}
	}
}

// TestABrokerThatCannotStartIsNotBlamedOnItsAddress gives serve a data
// folder where the broker cannot keep its streams: the error names the
// folder, not --nats-listen.
func TestABrokerThatCannotStartIsNotBlamedOnItsAddress(t *testing.T) {
	data := t.TempDir()
	// A file where the broker's folder goes: it cannot be created, even by
	// root (a read-only folder would not stop root).
	if err := os.WriteFile(brokerStoreDir(data), []byte("not a folder"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr testkit.Buffer
	code := run(context.Background(), []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--nats-listen", freeAddr(t)}, &stdout, &stderr)
	msg := stderr.String()
	if code != 1 || strings.Contains(msg, "--nats-listen") || !strings.Contains(msg, brokerStoreDir(data)) {
		t.Errorf("exit %d, stderr %q: want 1, naming %s and not --nats-listen", code, msg, brokerStoreDir(data))
	}
}

func TestAReadOnlyDataFolderIsReportedAsSuch(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes to read-only folders; TestABrokerThatCannotStartIsNotBlamedOnItsAddress covers the message")
	}
	data := t.TempDir()
	if err := os.Chmod(data, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(data, 0o755) })
	for _, cmd := range []string{"serve", "broker"} {
		args := []string{cmd, "--data", data, "--listen", freeAddr(t)}
		var stdout, stderr testkit.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		msg := stderr.String()
		if code != 1 || strings.Contains(msg, "--nats-listen") || !strings.Contains(msg, "--data") || !strings.Contains(msg, filepath.Join(data, "herald.lock")) {
			t.Errorf("herald %s on a read-only folder: exit %d, stderr %q; want 1, naming the folder and --data", cmd, code, msg)
		}
	}
}
