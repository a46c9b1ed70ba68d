package sqlite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// TestErasureLeavesNoBytesInTheFiles: after a user's erasure, the
// database file, its WAL and shared memory hold no copy of the user's id
// or e-mail address, nor the payload index's tokens of them: the old row
// versions, freed pages and WAL frames are gone, not only the values in
// the rows. A small log, whose WAL still holds every insert (the
// checkpoint's part), and a larger one, whose pages were checkpointed
// into the database file and then rewritten (secure_delete's).
func TestErasureLeavesNoBytesInTheFiles(t *testing.T) {
	for _, n := range []int{10, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) { erasureScan(t, n) })
	}
}

func erasureScan(t *testing.T, n int) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, err := auditlog.NewEraser(auditlog.ErasureConfig{Store: s, Key: []byte("raw-scan-erasure-key-0123")})
	if err != nil {
		t.Fatal(err)
	}
	in := auditlog.NewIngester(auditlog.IngestConfig{Store: s, Catalog: catalog.Default(), Eraser: x, BatchSize: 100, FlushInterval: time.Millisecond})
	defer in.Close()
	const id, mail = "uScan4f1c0c6e2a9b4c00", "scan.person@example.com"
	handle := func(name, service, payload string) {
		t.Helper()
		ev, err := event.New(name, json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		ev.Headers.ServiceName = service
		if err := in.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	handle("iam.user.created", "accounts", `{"id":"`+id+`","username":"`+mail+`"}`)
	for i := range n {
		// Many pages, and other users' entries around the deleted user's.
		handle("iam.user.loginFailed", "accounts", fmt.Sprintf(`{"user":"%s","n":%d}`, mail, i))
		handle("flowrepo.flow.created", "flow-repository", fmt.Sprintf(`{"user":"other-%d","tenant":"t","flowId":"f%d"}`, i, i))
		handle("flow.starting", "flow-repository", fmt.Sprintf(`{"id":"f%d","status":"starting","graph":{},"owners":[{"id":"%s","type":"user"}],"startedBy":"%s"}`, i, id, id))
	}
	handle("iam.token.deleted", "accounts", `{"account":"`+id+`"}`)
	scan := func() map[string][]string {
		found := map[string][]string{}
		needles := map[string][]byte{"id": []byte(id), "e-mail": []byte(mail)}
		for _, term := range []auditlog.Term{{Key: "user", Value: mail}, {Key: "username", Value: mail}, {Key: "id", Value: id}, {Key: "startedBy", Value: id}, {Key: "account", Value: id}} {
			needles["index token of "+term.Key] = []byte(token(term))
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			b, err := os.ReadFile(f)
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for what, n := range needles {
				if c := bytes.Count(b, n); c > 0 {
					found[filepath.Base(f)] = append(found[filepath.Base(f)], fmt.Sprintf("%s ×%d", what, c))
				}
			}
		}
		return found
	}
	if found := scan(); len(found["audit.db"])+len(found["audit.db-wal"]) == 0 {
		t.Fatalf("the files hold no copy of the user before the erasure: the scan finds nothing")
	}
	handle("iam.user.deleted", "accounts", `{"id":"`+id+`"}`)
	if found := scan(); len(found) > 0 {
		t.Errorf("after the erasure the files still hold the user: %v", found)
	}
	// Still a working database.
	p, err := s.Query(ctx, auditlog.Query{Payload: map[string]string{"user": "other-7"}})
	if err != nil || p.Total != 1 {
		t.Errorf("another user's entry: %d, %v", p.Total, err)
	}
}
