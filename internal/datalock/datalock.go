// Package datalock gives one process at a time a herald data folder. The
// embedded broker's streams and the SQLite audit store lose confirmed
// events when two processes write them at once, so herald serve and herald
// broker take the folder's lock before anything else.
//
// The lock is the operating system's (flock on unix, LockFileEx on
// Windows) on the file FileName in the folder: it goes with the process,
// also when the process is killed, so a crash never leaves a stale lock
// behind. The holder writes its pid into the file, so a refused process can
// say who holds the folder.
package datalock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside a data folder.
const FileName = "herald.lock"

// HeldError is returned by Acquire when another process holds the folder.
type HeldError struct {
	// Dir is the data folder.
	Dir string
	// PID is the holder's process id, 0 when it could not be read.
	PID int
}

func (e *HeldError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data folder %s is in use by another herald process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("data folder %s is in use by another herald process", e.Dir)
}

// Lock is a held data folder. Release gives it back; so does the end of
// the process.
type Lock struct {
	f    *os.File
	path string
}

// Acquire takes the lock of dir, which must exist, without waiting: when
// another process holds it, the error is a *HeldError. Any other error
// means the lock file could not be opened (a folder this process may not
// write to, say).
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the lock of data folder %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, &HeldError{Dir: dir, PID: readPID(path)}
		}
		return nil, fmt.Errorf("lock data folder %s: %w", dir, err)
	}
	// The holder's pid, for the message of the next process that tries.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f, path: path}, nil
}

// Release gives the folder back. The file stays: removing it would let a
// process that opened it just before lock a file no longer in the folder.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing releases the lock
	l.f = nil
	return err
}

// errLocked is what lockFile returns when another process holds the lock.
var errLocked = errors.New("locked by another process")

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
