package storetest

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sync"
	"testing"

	"github.com/heraldhq/herald/auditlog"
)

// testForgetter checks a store's record of deleted users, when it keeps
// one (auditlog.Forgetter): nothing before the first Forget, exactly what
// was recorded after, and recording twice, or from two callers at once,
// is no error.
func testForgetter(t *testing.T, s auditlog.Store) {
	f, ok := s.(auditlog.Forgetter)
	if !ok {
		t.Skipf("%T keeps no record of deleted users (auditlog.Forgetter)", s)
	}
	d := func(s string) []byte { sum := sha256.Sum256([]byte(s)); return sum[:] }
	a, b, c := d("a"), d("b"), d("c")
	if got, err := f.Forgotten(ctx(t), [][]byte{a, b}); err != nil || len(got) != 0 {
		t.Fatalf("Forgotten before any Forget: %x, %v; want none", got, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() { errs <- f.Forget(ctx(t), [][]byte{a, b}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Forget: %v", err)
		}
	}
	if err := f.Forget(ctx(t), [][]byte{b}); err != nil {
		t.Fatalf("Forget of a recorded digest: %v", err)
	}
	got, err := f.Forgotten(ctx(t), [][]byte{a, c, b})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, bytes.Compare)
	want := [][]byte{a, b}
	slices.SortFunc(want, bytes.Compare)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Errorf("Forgotten(a, c, b) = %x, want a and b", got)
	}
}
