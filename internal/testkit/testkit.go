// Package testkit is what herald's tests share: waiting for a condition,
// comparing JSON, a buffer that a goroutine writes while the test reads,
// and the outside services a test needs — skipped with a reason, and
// summed up per package, when the variable that points at them is unset.
//
// It is imported by tests and by the conformance suites only.
package testkit

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually waits until cond returns nil, failing the test with cond's
// last error when timeout passes first: every wait is for a condition,
// with a deadline.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %v", timeout, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// JSONEqual reports whether a and b hold the same JSON value: the same
// members in any order and spacing, numbers equal by value however they are
// written (1e2 and 100), exactly (no rounding through float64). Two empty
// texts are equal; an empty and a non-empty one, or text that is not JSON,
// are not.
func JSONEqual(a, b []byte) bool {
	if len(bytes.TrimSpace(a)) == 0 || len(bytes.TrimSpace(b)) == 0 {
		return len(bytes.TrimSpace(a)) == len(bytes.TrimSpace(b))
	}
	x, okA := decode(a)
	y, okB := decode(b)
	return okA && okB && equal(x, y)
}

func decode(data []byte) (any, bool) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil || d.More() {
		return nil, false
	}
	return v, true
}

func equal(x, y any) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := y.(json.Number)
		if !ok {
			return false
		}
		rx, okX := new(big.Rat).SetString(string(x))
		ry, okY := new(big.Rat).SetString(string(y))
		if !okX || !okY {
			return x == y
		}
		return rx.Cmp(ry) == 0
	default:
		return x == y
	}
}

// Buffer is a bytes.Buffer that one goroutine (a command, a logger) writes
// while the test reads it.
type Buffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	whens []when
}

type when struct {
	cond func(written string) bool
	f    func()
	done bool
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	var due []func()
	for i := range l.whens {
		w := &l.whens[i]
		if !w.done && w.cond(l.b.String()) {
			w.done = true
			due = append(due, w.f)
		}
	}
	l.mu.Unlock()
	for _, f := range due {
		f()
	}
	return n, err
}

// When calls f once, from the Write that first makes cond true of all that
// was written (before that Write returns).
func (l *Buffer) When(cond func(written string) bool, f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.whens = append(l.whens, when{cond: cond, f: f})
}

// Contains is a condition for When: the text holds s.
func Contains(s string) func(string) bool {
	return func(written string) bool { return strings.Contains(written, s) }
}

// String is what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
