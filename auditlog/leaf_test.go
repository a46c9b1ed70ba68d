package auditlog

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// goldenEntry is an entry with every kind of content: nested objects and
// arrays, escapes, numbers in several spellings, headers.
func goldenEntry() Entry {
	return Entry{
		ID:          "3f6c1f0e-8f5e-4c4a-9b8e-2b7d0f2a9c11",
		Name:        "flowrepo.flow.created",
		ServiceName: "flow-repository",
		CreatedAt:   time.UnixMilli(1767225600123).UTC(),
		ReceivedAt:  time.UnixMilli(1767225600456).UTC(),
		Headers:     []byte(`{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","retry":2}`),
		Payload: []byte(`{"tenant":"tenant-007","user":"user-00042","flowId":"flow-00000001","note":"caf\u00e9 \"x\"",` +
			`"n":[1,1.50,-0,1e2,{"deep":[true,false,null]}],"a/b~c":{}}`),
		Seed: bytes.Repeat([]byte{0x5a}, SeedSize),
	}
}

// The leaf hash is a format (docs/integrity.md): a change to how it is
// computed must not change a single bit of it, or every stored log stops
// verifying. These values were computed by the first implementation.
func TestLeafHashIsStable(t *testing.T) {
	e := goldenEntry()
	h := wantLeafHash(t, "the sealed entry", e, "2ab9aedaa4894bc37366ee7d0c248b2cd554e525645467ad9075be7b6eb94989")

	// Erased: the seed gives way to salts and kept commitments; the leaf
	// stays.
	erased := e
	if err := Erase(&erased, []string{PayloadPointer("user"), "/payload/n/4/deep/0", "/headers/retry"}, Redacted); err != nil {
		t.Fatal(err)
	}
	if h2, err := LeafHash(erased); err != nil || h2 != h {
		t.Errorf("leaf hash after erasure = %x, %v; want %x", h2, err, h)
	}
	// Pruned: only the content hash is left.
	pruned := erased
	if err := Prune(&pruned); err != nil {
		t.Fatal(err)
	}
	if h3, err := LeafHash(pruned); err != nil || h3 != h {
		t.Errorf("leaf hash after pruning = %x, %v; want %x", h3, err, h)
	}

	// Without createdAt, without headers.
	bare := goldenEntry()
	bare.CreatedAt, bare.Headers = time.Time{}, nil
	wantLeafHash(t, "the bare entry", bare, "57e414bfbbe2dcd52e3394f41641f4fb818f4e0f7237987b4609f351e1bc9e3a")
}

// wantLeafHash checks e's leaf hash against want, in hex, and returns it.
func wantLeafHash(t *testing.T, what string, e Entry, want string) tlog.Hash {
	t.Helper()
	h, err := LeafHash(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h[:]); got != want {
		t.Errorf("leaf hash of %s = %s, want %s", what, got, want)
	}
	return h
}

// BenchmarkSeal seals an entry as ingest does (the payload of
// BenchmarkIngest's events).
func BenchmarkSeal(b *testing.B) {
	b.ReportAllocs()
	e := Entry{
		ID: "01890f4e-1b2c-7d3e-8f40-123456789abc", Name: "flowrepo.flow.created", ServiceName: "flow-repository",
		CreatedAt: time.Now(), ReceivedAt: time.Now(),
		Payload: []byte(fmt.Sprintf(`{"tenant":"tenant-%03d","user":"user-%05d","flowId":"flow-%08d","note":"created from the integration wizard"}`, 7, 42, 1)),
	}
	for b.Loop() {
		x := e
		if err := Seal(&x); err != nil {
			b.Fatal(err)
		}
	}
}

// Every sealed entry gets a seed of its own: seeds are read from
// crypto/rand many at a time, and none may be handed out twice.
func TestSealGivesEverySeedOnce(t *testing.T) {
	seen := map[string]bool{}
	zero := make([]byte, SeedSize)
	for i := range 1000 {
		e := goldenEntry()
		e.Seed = nil
		if err := Seal(&e); err != nil {
			t.Fatal(err)
		}
		if len(e.Seed) != SeedSize || bytes.Equal(e.Seed, zero) || seen[string(e.Seed)] {
			t.Fatalf("entry %d: seed %x is empty or was handed out before", i, e.Seed)
		}
		seen[string(e.Seed)] = true
	}
}

// A pointer names a key holding "/" or "~" by its escapes (~1, ~0): Erase
// finds the value there and keeps the leaf hash.
func TestEraseFindsEscapedKeys(t *testing.T) {
	e := goldenEntry()
	e.Payload = []byte(`{"a/b":"jane","c~d":{"e/f~g":"joe"}}`)
	h, err := LeafHash(e)
	if err != nil {
		t.Fatal(err)
	}
	if err := Erase(&e, []string{PayloadPointer("a/b"), "/payload/c~0d/e~1f~0g"}, Redacted); err != nil {
		t.Fatal(err)
	}
	if want := `{"a/b":"XXXXXXXXXX","c~d":{"e/f~g":"XXXXXXXXXX"}}`; string(e.Payload) != want {
		t.Errorf("payload after erasure = %s, want %s", e.Payload, want)
	}
	if h2, err := LeafHash(e); err != nil || h2 != h {
		t.Errorf("leaf hash after erasure = %x, %v; want %x", h2, err, h)
	}
}
