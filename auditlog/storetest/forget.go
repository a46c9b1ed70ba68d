package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
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

// integratingStore integrates the log after each append, before the
// ingester goes on: what serve's integrator, running beside the
// ingester, may do between an append and the anonymisation that follows.
type integratingStore struct {
	auditlog.Store
	auditlog.Forgetter
	t      testing.TB
	signer *auditlog.Signer
}

func (s integratingStore) Append(ctx context.Context, entries []auditlog.Entry) (int, error) {
	n, err := s.Store.Append(ctx, entries)
	if err == nil {
		mustIntegrate(s.t, s.Store, s.signer)
	}
	return n, err
}

// testLateAnonymisationKeepsProofs: the entries of a deleted user stored
// after the deletion (a redelivery, another replica's batch) are
// anonymised by erasure, as those before it are, so that herald verify
// passes: the leaf of each is the one integrated before its values were
// replaced, and every checkpoint still verifies.
func testLateAnonymisationKeepsProofs(t *testing.T, s auditlog.Store) {
	f, ok := s.(auditlog.Forgetter)
	if !ok {
		t.Skipf("%T keeps no record of deleted users (auditlog.Forgetter)", s)
	}
	signer, v := NewSigner(t, "late")
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: integratingStore{s, f, t, signer}, FlushInterval: time.Millisecond})
	defer in.Close()
	handle := func(name, payload string) string {
		t.Helper()
		ev, err := event.New(name, json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Handle(ctx(t), ev); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return ev.Headers.ID
	}
	handle("iam.user.created", `{"id":"u-late","username":"late@example.com"}`)
	handle("iam.user.loginFailed", `{"user":"late@example.com"}`)
	handle("iam.user.deleted", `{"id":"u-late"}`)
	late := []string{
		handle("flowrepo.flow.created", `{"user":"u-late","tenant":"t1","flowId":"f1"}`),
		handle("iam.user.loginFailed", `{"user":"late@example.com"}`),
		handle("iam.token.deleted", `{"account":"u-late"}`),
		// A username the deletion could not know, then an entry naming it.
		handle("iam.user.modified", `{"id":"u-late","username":"late.new@example.com"}`),
		handle("iam.user.loginFailed", `{"user":"late.new@example.com"}`),
	}
	kept := handle("iam.user.loginFailed", `{"user":"someone@example.com"}`)
	mustIntegrate(t, s, signer)

	for _, e := range allLeaves(t, s) {
		if strings.Contains(string(e.Payload), "u-late") || strings.Contains(string(e.Payload), "late") || e.User == "u-late" {
			t.Errorf("entry %s (%s) still names the deleted user: %s, user %q", e.ID, e.Name, e.Payload, e.User)
		}
		if e.ID == kept && len(e.Erased) > 0 {
			t.Errorf("another user's entry %s was erased: %s", e.ID, e.Payload)
		}
	}
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure != nil {
		t.Fatalf("verify after a late anonymisation: %v, %v", err, r.Failure)
	}
	for _, id := range late {
		if _, ok := r.ErasedFields[id]; !ok {
			t.Errorf("entry %s, stored after the deletion, is not reported erased: %v", id, r.ErasedFields)
		}
	}
	if r.Pending != 0 || r.Integrated != r.Entries {
		t.Errorf("report %+v: want every entry integrated", r)
	}
}
