package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/natsserver"
)

// takenBrokerAddress explains a broker address something else listens
// on. It is not a herald on this data folder (the folder's lock comes
// first), so it is a NATS server or a herald with a folder of its own: use
// that broker, or run this one on another address with its own folder.
func takenBrokerAddress(flag, addr string, err error) error {
	return fmt.Errorf("%s %s: %w: a NATS server, or a herald with another data folder, listens there; use that broker (--broker nats://%s), or give this one a free %s and its own --data",
		flag, addr, err, addr, flag)
}

// defaultBrokerListen is where `herald broker` listens: the address of
// defaultBrokerURL, which publish and tail use when given no --broker.
var defaultBrokerListen = strings.TrimPrefix(defaultBrokerURL, "nats://")

// brokerStoreDir is the folder of the embedded broker's streams inside a
// data folder (the one `herald serve` uses too).
func brokerStoreDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

type brokerOptions struct {
	listen string
	data   string
	output string
}

func newBrokerCmd() *cobra.Command {
	var o brokerOptions
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run only the embedded NATS JetStream broker",
		Long: `broker runs the NATS server with JetStream that herald serve embeds, and
nothing else: no audit log, no HTTP. Services, herald publish and herald tail
connect to it at nats://127.0.0.1:4222, the address they use when given no
--broker. Events are kept in the data folder (<data>/nats) and survive a
restart. Ctrl-C (or SIGTERM) stops it cleanly.

--listen 0.0.0.0:4222 makes it reachable from other machines; it has no
authentication, so do that only on a network you trust.`,
		Example: `  herald broker
  herald broker --listen 127.0.0.1:4333 --data /var/lib/herald
  herald broker --output json   # {"url":…,"store":…} on one line, for scripts`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("broker takes no arguments, got %q (the address is --listen)", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBroker(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", defaultBrokerListen, "address the broker listens on (port 0: any free port)")
	addDataDirFlag(cmd, &o.data)
	f.StringVarP(&o.output, "output", "o", "text", "what to print once it runs: text, or json (url and store folder)")
	return cmd
}

func runBroker(ctx context.Context, o brokerOptions, stdout, stderr io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usagef("--output %q: want text or json", o.output)
	}
	host, port, err := splitHostPort(o.listen)
	if err != nil {
		return usagef("--listen %q: %v (want host:port, such as %s)", o.listen, err, defaultBrokerListen)
	}
	// Before anything else: one process per data folder.
	lock, err := lockDataDir(o.data)
	if err != nil {
		return err
	}
	defer lock.Release()
	store := brokerStoreDir(o.data)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := natsserver.Run(ctx, natsserver.Config{StoreDir: store, Host: host, Port: port, Logger: log})
	if errors.Is(err, natsserver.ErrAddressInUse) {
		return takenBrokerAddress("--listen", o.listen, err)
	}
	if err != nil {
		return fmt.Errorf("start the broker in %s: %w", store, err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Error("broker shutdown", "error", err)
		}
	}()

	if o.output == "json" {
		if err := json.NewEncoder(stdout).Encode(map[string]string{"url": srv.ClientURL(), "store": store}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "NATS JetStream broker at %s, data in %s\n", srv.ClientURL(), store)
		if srv.ClientURL() == defaultBrokerURL {
			fmt.Fprintln(stdout, "herald publish and herald tail use it without flags. Ctrl-C stops it.")
		} else {
			fmt.Fprintf(stdout, "Use it with --broker %s (or %s). Ctrl-C stops it.\n", srv.ClientURL(), envBrokerURL)
		}
	}
	<-ctx.Done()
	if o.output == "text" {
		fmt.Fprintln(stdout, "stopping the broker")
	}
	return nil
}
