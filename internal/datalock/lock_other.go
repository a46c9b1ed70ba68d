//go:build !unix && !windows

package datalock

import "os"

// lockFile does nothing where the system has no file locks (plan9, wasm):
// there, nothing stops a second process on one data folder.
func lockFile(*os.File) error { return nil }
