package natsserver

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
)

const testTimeout = 30 * time.Second

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("start embedded server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shut down embedded server: %v", err)
		}
	})
	return s
}

func TestRunRefusesATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	addr := "127.0.0.1:" + strconv.Itoa(port)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := Run(ctx, Config{StoreDir: t.TempDir(), Port: port})
	if err == nil {
		_ = s.Shutdown(ctx)
		t.Fatalf("Run on the taken %s succeeded", addr)
	}
	if !errors.Is(err, ErrAddressInUse) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Run on the taken %s: err = %v, want ErrAddressInUse naming the address", addr, err)
	}
	if ctx.Err() != nil {
		t.Errorf("Run waited for its context (%v) instead of failing at once", ctx.Err())
	}
}

func TestRunNeedsAStoreFolder(t *testing.T) {
	if _, err := Run(context.Background(), Config{Port: RandomPort}); err == nil {
		t.Fatal("Run without StoreDir succeeded")
	}
}

func TestRunReportsItsURLWithJetStreamOn(t *testing.T) {
	s := startServer(t, Config{StoreDir: t.TempDir(), Port: RandomPort})
	cfg := s.Config()
	if cfg.Port <= 0 {
		t.Fatalf("Config().Port = %d, want the port the server got", cfg.Port)
	}
	if want := "nats://127.0.0.1:" + strconv.Itoa(cfg.Port); s.ClientURL() != want {
		t.Errorf("ClientURL() = %q, want %q", s.ClientURL(), want)
	}
	nc, err := natsgo.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("connect to %s: %v", s.ClientURL(), err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.INFO", nil, testTimeout); err != nil {
		t.Errorf("JetStream API on the embedded server: %v", err)
	}
}

func TestServerWithoutListenerIsReachedInProcess(t *testing.T) {
	s := startServer(t, Config{StoreDir: t.TempDir(), DontListen: true})
	if s.ClientURL() != "" {
		t.Errorf("ClientURL() of a server without listener = %q, want empty", s.ClientURL())
	}
	nc, err := natsgo.Connect("", natsgo.InProcessServer(s))
	if err != nil {
		t.Fatalf("connect in process: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.INFO", nil, testTimeout); err != nil {
		t.Errorf("JetStream API in process: %v", err)
	}
}
