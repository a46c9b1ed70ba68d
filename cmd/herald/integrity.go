package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi"
)

// loadSigner reads the log's signing key from --signing-key, or from the
// data folder, where the first serve creates it (mode 0600).
func (o serveOptions) loadSigner() (*auditlog.Signer, string, error) {
	if o.signingKey != "" {
		b, err := os.ReadFile(o.signingKey)
		if err != nil {
			return nil, "", fmt.Errorf("signing key (--signing-key): %w", err)
		}
		s, err := auditlog.NewSigner(string(b))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", o.signingKey, err)
		}
		return s, o.signingKey, nil
	}
	path := filepath.Join(o.data, signingKeyFileName)
	s, created, err := auditlog.LoadOrCreateKey(path, o.logName)
	if err != nil {
		return nil, "", fmt.Errorf("signing key: %w", err)
	}
	desc := path
	if created {
		desc += " (new)"
	}
	return s, desc, nil
}

// withIntegrity adds the log's verifier key and, with auditReads, the
// recording of reads to the API's configuration.
func withIntegrity(cfg httpapi.Config, signer *auditlog.Signer, ingester *auditlog.Ingester, auditReads bool) httpapi.Config {
	cfg.VerifierKey = signer.VerifierKey()
	cfg.IDKey = signer.IDKey()
	if auditReads {
		cfg.RecordRead = ingester.Record
	}
	return cfg
}

// integrityBanner is the banner's lines on the log's identity.
func integrityBanner(base string, signer *auditlog.Signer, keyDesc string) string {
	return fmt.Sprintf(`  checkpoints    %s/checkpoint   (signing key %s)
  verifier key   %s
`, base, keyDesc, signer.VerifierKey())
}

// retain prunes entries older than retention now and every hour (or
// every tenth of the retention, if shorter) until ctx ends.
func retain(ctx context.Context, store auditlog.Store, retention time.Duration, ingester *auditlog.Ingester, log *slog.Logger) {
	every := min(time.Hour, max(retention/10, time.Second))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := auditlog.Retain(ctx, store, time.Now().Add(-retention), retention, ingester.Record)
		if err != nil && ctx.Err() == nil {
			log.Error("retention: pruning failed; trying again later", "error", err)
		} else if n > 0 {
			log.Info("retention: pruned entries", "entries", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
