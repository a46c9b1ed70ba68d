package auditlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
)

// A kick after a quiet spell integrates at once; the kicks that follow
// within MinGap of that integration share the next one.
func TestIntegratorServesAKickAfterAQuietSpellAtOnce(t *testing.T) {
	ctx := context.Background()
	store := openSQLite(t)
	skey, _, _ := auditlog.GenerateKey("test")
	signer, _ := auditlog.NewSigner(skey)
	signed := make(chan auditlog.Checkpoint, 10)
	// Neither the interval nor the gap elapses during the test: only a
	// kick served at once can integrate.
	integ := auditlog.RunIntegrator(ctx, auditlog.IntegratorConfig{
		Store: store, Signer: signer, Interval: time.Hour, MinGap: time.Hour,
		Integrated: func(cp auditlog.Checkpoint, _ int) { signed <- cp },
	})
	defer integ.Close()

	appendOne := func(i int) {
		t.Helper()
		e := auditlog.Entry{ID: fmt.Sprintf("e-%d", i), Name: "accounts.user.created", ServiceName: "accounts",
			CreatedAt: time.Now(), ReceivedAt: time.Now(), Payload: []byte(`{"n":1}`)}
		if _, err := store.Append(ctx, []auditlog.Entry{e}); err != nil {
			t.Fatal(err)
		}
	}
	// The integrator's first integration, of the empty log, signs the
	// checkpoint of size 0; the log is quiet from then on.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := store.Checkpoint(ctx, 0); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the integrator signed no checkpoint of the empty log")
		}
		time.Sleep(time.Millisecond)
	}
	appendOne(1)
	integ.Kick()
	select {
	case cp := <-signed:
		if cp.Size != 1 {
			t.Fatalf("checkpoint of size %d, want 1", cp.Size)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no checkpoint 30 s after a kick to an idle integrator")
	}

	// Within MinGap of that integration, a kick waits.
	appendOne(2)
	integ.Kick()
	select {
	case cp := <-signed:
		t.Fatalf("checkpoint of size %d within MinGap of the last", cp.Size)
	case <-time.After(200 * time.Millisecond):
	}
}
