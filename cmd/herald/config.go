package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// Every environment variable and default herald reads is named here, so
// the README's configuration table has one source.
const (
	envBrokerURL = "HERALD_BROKER_URL"
	envStoreURL  = "HERALD_STORE_URL"
	envDataDir   = "HERALD_DATA_DIR"
	envURL       = "HERALD_URL"
	envToken     = "HERALD_TOKEN"
	envPort      = "PORT"
	// envSigningKey names the file of the log's signing key.
	envSigningKey = "HERALD_SIGNING_KEY"
	// envErasureKey holds the erasure key itself (auditlog.Eraser).
	envErasureKey = "HERALD_ERASURE_KEY"
	// envErasure is the erasure mode.
	envErasure = "HERALD_ERASURE"

	defaultBrokerURL = "nats://127.0.0.1:4222"
	defaultDataDir   = "herald-data"
	defaultListen    = "127.0.0.1:3007"
	defaultURL       = "http://127.0.0.1:3007"

	// tokenFileName is the file in the data folder holding the admin token
	// that `herald serve` generates when no IAM is configured.
	tokenFileName = "admin-token"
	// signingKeyFileName is the file in the data folder holding the log's
	// note signing key that `herald serve` creates when none is given.
	signingKeyFileName = "signing-key"
	// erasureKeyFileName is the file in the data folder holding the
	// erasure key that `herald serve` creates when HERALD_ERASURE_KEY is
	// not set.
	erasureKeyFileName = "erasure-key"
)

// envOr returns the environment variable key, or def when it is unset or empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// addDataDirFlag adds --data (HERALD_DATA_DIR, default ./herald-data).
func addDataDirFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "data", envOr(envDataDir, defaultDataDir), "data folder (env "+envDataDir+")")
}

// tokenPath is where `herald serve` keeps its generated admin token.
func tokenPath(dataDir string) string { return filepath.Join(dataDir, tokenFileName) }
