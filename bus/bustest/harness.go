// Package bustest is the conformance suite every driver.Transport passes: the
// same tests, run against each transport, so "works on RabbitMQ" and "works
// on NATS" mean the same thing. A transport adds one call to Run in its own
// test.
package bustest

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/bus/driver"
)

// Harness describes the transport under test.
type Harness struct {
	// NewTransport returns a new, connected transport to the broker under
	// test. Each call is a separate connection to the same broker, so two
	// buses made from two calls compete on one queue like two replicas.
	// The suite closes what it gets (through bus.Close).
	NewTransport func(t testing.TB) driver.Transport

	// DeadLetters reads the dead letters of a queue, when the transport
	// cannot do it through driver.DeadLetterLister.
	DeadLetters func(ctx context.Context, t testing.TB, queue string) ([]driver.DeadLetter, error)

	// Disconnect forcibly breaks every connection of the transports under
	// test (for example through the broker's management interface), for the
	// reconnect case. Nil skips the reconnect case with Features' reason.
	Disconnect func(t testing.TB)

	Features Features
}

// Features declares what a transport cannot do, so the suite skips the
// cases that need it and says why.
type Features struct {
	// NoReconnectReason, when not empty, skips the reconnect case.
	NoReconnectReason string
	// MinRetryDelayMillis is the least time a retry takes to come back
	// (RabbitMQ retry queues round delays up); the retry cases wait that
	// much longer per attempt. Zero means retries come back after the
	// requested delay.
	MinRetryDelayMillis int
}
