package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/heraldhq/herald/internal/datalock"
)

// lockDataDir creates the data folder if needed and takes its lock: one
// process per data folder, since two embedded brokers or SQLite writers on
// one folder lose confirmed events. serve and broker call it before
// anything else; the lock goes with the process, also when it is killed.
func lockDataDir(dir string) (*datalock.Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data folder: %w (choose another with --data or %s)", err, envDataDir)
	}
	l, err := datalock.Acquire(dir)
	var held *datalock.HeldError
	switch {
	case errors.As(err, &held):
		return nil, fmt.Errorf("%w: one process per data folder; stop that one, or give this one its own --data", err)
	case err != nil:
		return nil, fmt.Errorf("%w (herald needs a data folder it can write; choose another with --data or %s)", err, envDataDir)
	}
	return l, nil
}
