//go:build unix

// Package cputime reads the CPU time this process has used, for the
// benchmarks' CPU-per-event figures: on a shared machine a rate moves with
// whatever else runs, the CPU an event costs much less.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the user and system CPU time of the process so far, and
// false where it cannot be read.
func Process() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
