package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// IntegratorConfig configures RunIntegrator.
type IntegratorConfig struct {
	Store  Store
	Signer *Signer
	// Interval is how often the integrator looks for entries other
	// processes appended (default 500ms); Kick makes it look at once.
	Interval time.Duration
	// MinGap is the least time between the end of an integration that
	// placed entries and the next one a kick starts (default 250ms):
	// batches that commit within it share one integration and one
	// checkpoint, and a kick after a quieter spell integrates at once.
	MinGap time.Duration
	// MaxLeaves is the most entries one integration places (default
	// 10,000).
	MaxLeaves int
	Logger    *slog.Logger
	// Integrated, when set, is called after every integration that placed
	// entries, with its checkpoint.
	Integrated func(cp Checkpoint, leaves int)
}

// Integration is a running integrator: it places committed entries in the
// tree and signs a checkpoint after each integration, while it holds the
// integrator's role (waiting for it when another process has it).
type Integration struct {
	cfg    IntegratorConfig
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// RunIntegrator starts the integrator; Close stops it.
func RunIntegrator(ctx context.Context, cfg IntegratorConfig) *Integration {
	if cfg.Interval <= 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = 250 * time.Millisecond
	}
	if cfg.MaxLeaves <= 0 {
		cfg.MaxLeaves = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	in := &Integration{cfg: cfg, kick: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go in.run(ctx)
	return in
}

// Kick asks for an integration soon (a batch has committed). It never
// blocks.
func (in *Integration) Kick() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// Close stops the integrator and gives up its role.
func (in *Integration) Close() {
	in.once.Do(in.cancel)
	<-in.done
}

func (in *Integration) run(ctx context.Context) {
	defer close(in.done)
	log := in.cfg.Logger
	for ctx.Err() == nil {
		ig, err := in.cfg.Store.Integrator(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("integrator: waiting for the role failed; trying again", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		log.Info("integrator: this process integrates the log and signs its checkpoints", "origin", in.cfg.Signer.Origin())
		err = in.serve(ctx, ig)
		ig.Close()
		if err != nil && ctx.Err() == nil {
			log.Error("integrator: integration failed; taking the role again", "error", err)
			sleep(ctx, time.Second)
		}
	}
}

// serve integrates while it holds the role, until ctx ends or an
// integration fails. A kick is served at once when the last integration
// that placed entries ended MinGap ago or more, else when that is so: a
// batch committed after a quiet spell is in a checkpoint without
// waiting, and busy ingest still gets one integration per MinGap.
func (in *Integration) serve(ctx context.Context, ig Integrator) error {
	tick := time.NewTicker(in.cfg.Interval)
	defer tick.Stop()
	var last time.Time // the end of the last integration that placed entries
	for {
		placed, err := in.integrate(ctx, ig)
		if err != nil {
			return err
		}
		if placed {
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-in.kick:
			if wait := in.cfg.MinGap - time.Since(last); wait > 0 {
				sleep(ctx, wait)
			}
		}
	}
}

// integrate places every committed entry, MaxLeaves at a time, and
// reports whether there were any.
func (in *Integration) integrate(ctx context.Context, ig Integrator) (bool, error) {
	placed := false
	for {
		cp, n, err := ig.Integrate(ctx, in.cfg.MaxLeaves, in.cfg.Signer.Sign)
		if err != nil {
			if ctx.Err() != nil {
				return placed, nil
			}
			return placed, err
		}
		if n > 0 {
			placed = true
			if in.cfg.Integrated != nil {
				in.cfg.Integrated(cp, n)
			}
		}
		if n < in.cfg.MaxLeaves {
			return placed, nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// IntegrateAll places every committed entry of s in the tree, signing with
// signer, and returns the latest checkpoint. It waits for the integrator's
// role; tools and tests use it where no integrator runs.
func IntegrateAll(ctx context.Context, s Store, signer *Signer) (Checkpoint, error) {
	ig, err := s.Integrator(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	defer ig.Close()
	for {
		cp, n, err := ig.Integrate(ctx, 10000, signer.Sign)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("integrate: %w", err)
		}
		if n == 0 {
			return cp, nil
		}
	}
}
