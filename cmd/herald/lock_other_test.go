//go:build !unix

package main

import "testing"

// lockBroker is a no-op where flock is not available; the tests that need
// it (rabbitmqctl) do not run there.
func lockBroker(testing.TB, bool) {}
