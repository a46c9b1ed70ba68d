package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
)

// integrityCases are the conformance cases of the Merkle tree.
var integrityCases = []struct {
	name string
	run  func(t *testing.T, s auditlog.Store)
}{
	{"IntegrationPlacesEntriesInSeqOrderAndSignsEachTree", testIntegration},
	{"InclusionAndConsistencyProofsVerifyIndependently", testProofs},
	{"ErasureKeepsTheLeafAndEveryProof", testErasureKeepsProofs},
	{"LateErasureKeepsTheLeafAndEveryProof", testLateErasureKeepsProofs},
	{"PruningKeepsTheLeafAndEveryProof", testPruneKeepsProofs},
	{"AppendRefusesContentTheStoresWouldNotKeepAlike", testRefusedContent},
	{"ContentHashCommitsToValuesNotBytes", testValuesNotBytes},
	{"OneIntegratorAtATime", testOneIntegrator},
	{"VerifyPassesAnUntouchedLog", testVerifyPasses},
}

// NewSigner returns a signer with a new key named name.
func NewSigner(t testing.TB, name string) (*auditlog.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := auditlog.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auditlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func mustIntegrate(t testing.TB, s auditlog.Store, signer *auditlog.Signer) auditlog.Checkpoint {
	t.Helper()
	cp, err := auditlog.IntegrateAll(ctx(t), s, signer)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// allLeaves reads every entry in seq order.
func allLeaves(t testing.TB, s auditlog.Store) []auditlog.Entry {
	t.Helper()
	var out []auditlog.Entry
	var after int64
	for {
		es, err := s.Leaves(ctx(t), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, es...)
		if len(es) < 1000 {
			return out
		}
		after = es[len(es)-1].Seq
	}
}

// rfc6962Root is the Merkle tree hash of leaf hashes, as RFC 9162 §2.1.1
// defines it, written here apart from tlog.
func rfc6962Root(leaves [][]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		var h [32]byte
		copy(h[:], leaves[0])
		return h
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	l, r := rfc6962Root(leaves[:k]), rfc6962Root(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func testIntegration(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "conformance")
	// Before anything is integrated, the log signs the empty tree.
	cp0 := mustIntegrate(t, s, signer)
	if cp0.Size != 0 {
		t.Fatalf("first checkpoint of an empty log has size %d", cp0.Size)
	}
	d := NewDataset(3, 1234)
	sizes := []int64{0}
	for lo := 0; lo < 1234; lo += 400 {
		mustAppend(t, s, d.Entries(lo, min(400, 1234-lo))...)
		sizes = append(sizes, mustIntegrate(t, s, signer).Size)
	}
	if !slices.Equal(sizes, []int64{0, 400, 800, 1200, 1234}) {
		t.Errorf("checkpoint sizes %v, want one per integration", sizes)
	}
	// Nothing new: no new checkpoint.
	if cp := mustIntegrate(t, s, signer); cp.Size != 1234 {
		t.Errorf("an integration with nothing new returned size %d", cp.Size)
	}
	leaves := allLeaves(t, s)
	var hashes [][]byte
	for i, e := range leaves {
		if e.LeafIndex != int64(i) {
			t.Fatalf("entry %s (seq %d) at leaf %d, want %d: leaves follow seq order", e.ID, e.Seq, e.LeafIndex, i)
		}
		h, err := auditlog.LeafHash(e)
		if err != nil || !bytes.Equal(h[:], e.LeafHash) {
			t.Fatalf("entry %s: recomputed leaf hash %x (error %v), stored %x", e.ID, h, err, e.LeafHash)
		}
		hashes = append(hashes, e.LeafHash)
	}
	var prev int64
	all, err := s.Checkpoints(ctx(t), -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(sizes) {
		t.Fatalf("%d checkpoints stored, want %d", len(all), len(sizes))
	}
	for i, stored := range all {
		cp, err := auditlog.OpenCheckpoint(stored.Note, v)
		if err != nil {
			t.Fatalf("checkpoint %d: %v", stored.Size, err)
		}
		if cp.Size != sizes[i] || cp.Origin != "conformance" || (i > 0 && cp.Prev != prev) {
			t.Errorf("checkpoint %d: %+v, want size %d after %d", i, cp, sizes[i], prev)
		}
		if want := rfc6962Root(hashes[:cp.Size]); cp.Root != tlog.Hash(want) {
			t.Errorf("checkpoint %d: root %x, RFC 6962 says %x", cp.Size, cp.Root, want)
		}
		prev = cp.Size
	}
	// /logs reads carry the leaf index.
	p := mustQuery(t, s, auditlog.Query{ID: leaves[7].ID})
	if len(p.Entries) != 1 || p.Entries[0].LeafIndex != 7 {
		t.Errorf("query of leaf 7 read back %+v", p.Entries)
	}
	// So do the live stream's reads: in seq order, after a position,
	// without a total.
	p = mustQuery(t, s, auditlog.Query{Order: auditlog.BySeq, AfterSeq: leaves[6].Seq, Limit: 2, SkipTotal: true})
	if len(p.Entries) != 2 || p.Entries[0].LeafIndex != 7 || p.Entries[1].LeafIndex != 8 {
		t.Errorf("reading 2 entries after leaf 6's seq read back %+v", p.Entries)
	}
	// Appended, not integrated.
	mustAppend(t, s, entry("late", "x.y", at(1), nil))
	if p := mustQuery(t, s, auditlog.Query{ID: "late"}); p.Entries[0].LeafIndex != auditlog.NotIntegrated || len(p.Entries[0].LeafHash) != 32 {
		t.Errorf("an appended entry reads back at leaf %d with a %d-byte leaf hash, want none yet and 32", p.Entries[0].LeafIndex, len(p.Entries[0].LeafHash))
	}
}

// checkInclusion is RFC 9162 §2.1.3.2's verification of an inclusion
// proof, written here apart from tlog.
func checkInclusion(index, size int64, leaf [32]byte, proof []tlog.Hash, root tlog.Hash) bool {
	if index >= size {
		return false
	}
	fn, sn := index, size-1
	r := leaf
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = sha256.Sum256(append(append([]byte{1}, p[:]...), r[:]...))
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = sha256.Sum256(append(append([]byte{1}, r[:]...), p[:]...))
		}
		fn >>= 1
		sn >>= 1
	}
	return sn == 0 && r == [32]byte(root)
}

// checkConsistency is RFC 9162 §2.1.4.2's verification of a consistency
// proof, written here apart from tlog.
func checkConsistency(first, second int64, firstRoot, secondRoot tlog.Hash, proof []tlog.Hash) bool {
	if first == second {
		return len(proof) == 0 && firstRoot == secondRoot
	}
	if first == 0 || first > second {
		return false
	}
	path := proof
	if first&(first-1) == 0 { // a power of two
		path = append([]tlog.Hash{firstRoot}, proof...)
	}
	if len(path) == 0 {
		return false
	}
	fn, sn := first-1, second-1
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	fr, sr := [32]byte(path[0]), [32]byte(path[0])
	for _, c := range path[1:] {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			fr = sha256.Sum256(append(append([]byte{1}, c[:]...), fr[:]...))
			sr = sha256.Sum256(append(append([]byte{1}, c[:]...), sr[:]...))
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			sr = sha256.Sum256(append(append([]byte{1}, sr[:]...), c[:]...))
		}
		fn >>= 1
		sn >>= 1
	}
	return fr == [32]byte(firstRoot) && sr == [32]byte(secondRoot) && sn == 0
}

func flip(proof []tlog.Hash, rng *rand.Rand) []tlog.Hash {
	out := slices.Clone(proof)
	i := rng.IntN(len(out))
	out[i][rng.IntN(32)] ^= 1 << rng.IntN(8)
	return out
}

func testProofs(t *testing.T, s auditlog.Store) {
	signer, _ := NewSigner(t, "proofs")
	d := NewDataset(5, 700)
	var sizes []int64
	rng := rand.New(rand.NewPCG(1, 2))
	for lo := 0; lo < 700; {
		hi := min(lo+1+rng.IntN(90), 700)
		mustAppend(t, s, d.Entries(lo, hi-lo)...)
		sizes = append(sizes, mustIntegrate(t, s, signer).Size)
		lo = hi
	}
	leaves := allLeaves(t, s)
	for range 200 {
		size := sizes[rng.IntN(len(sizes))]
		e := leaves[rng.IntN(int(size))]
		in, err := auditlog.ProveInclusion(ctx(t), s, e, size)
		if err != nil {
			t.Fatalf("prove leaf %d in %d: %v", e.LeafIndex, size, err)
		}
		if in.Checkpoint.Size != size || in.LeafIndex != e.LeafIndex {
			t.Fatalf("proof of leaf %d in %d is against %d for leaf %d", e.LeafIndex, size, in.Checkpoint.Size, in.LeafIndex)
		}
		root := tlog.Hash(rfc6962Root(leafHashesOf(leaves[:size])))
		if in.Checkpoint.Root != root || !checkInclusion(in.LeafIndex, size, in.LeafHash, in.Proof, root) {
			t.Fatalf("inclusion proof of leaf %d in %d does not verify", in.LeafIndex, size)
		}
		if tlog.CheckRecord(in.Proof, size, root, in.LeafIndex, in.LeafHash) != nil {
			t.Fatalf("tlog rejects the inclusion proof of leaf %d in %d", in.LeafIndex, size)
		}
		if len(in.Proof) > 0 {
			bad := flip(in.Proof, rng)
			if checkInclusion(in.LeafIndex, size, in.LeafHash, bad, root) || tlog.CheckRecord(bad, size, root, in.LeafIndex, in.LeafHash) == nil {
				t.Fatalf("a bit-flipped inclusion proof of leaf %d in %d verifies", in.LeafIndex, size)
			}
		}
		other := in.LeafHash
		other[0] ^= 1
		if checkInclusion(in.LeafIndex, size, other, in.Proof, root) {
			t.Fatalf("another leaf hash verifies as leaf %d", in.LeafIndex)
		}
	}
	for range 200 {
		a, b := sizes[rng.IntN(len(sizes))], sizes[rng.IntN(len(sizes))]
		if a > b {
			a, b = b, a
		}
		c, err := auditlog.ProveConsistency(ctx(t), s, a, b)
		if err != nil {
			t.Fatalf("prove %d to %d: %v", a, b, err)
		}
		if !checkConsistency(a, b, c.From.Root, c.To.Root, c.Proof) || tlog.CheckTree(c.Proof, b, c.To.Root, a, c.From.Root) != nil {
			t.Fatalf("consistency proof from %d to %d does not verify", a, b)
		}
		if len(c.Proof) > 0 {
			bad := flip(c.Proof, rng)
			if checkConsistency(a, b, c.From.Root, c.To.Root, bad) || tlog.CheckTree(bad, b, c.To.Root, a, c.From.Root) == nil {
				t.Fatalf("a bit-flipped consistency proof from %d to %d verifies", a, b)
			}
		}
	}
	// A size no checkpoint has, and an entry not in the tree of a size.
	if _, err := auditlog.ProveInclusion(ctx(t), s, leaves[0], sizes[0]+1); !errors.Is(err, auditlog.ErrNoCheckpoint) && sizes[1] != sizes[0]+1 {
		t.Errorf("proof against a size without checkpoint: %v, want ErrNoCheckpoint", err)
	}
	if _, err := auditlog.ProveInclusion(ctx(t), s, leaves[sizes[0]], sizes[0]); !errors.Is(err, auditlog.ErrNotIntegrated) {
		t.Errorf("proof of leaf %d in a tree of %d: %v, want ErrNotIntegrated", sizes[0], sizes[0], err)
	}
}

func leafHashesOf(es []auditlog.Entry) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.LeafHash
	}
	return out
}

func testErasureKeepsProofs(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "erasure")
	mustAppend(t, s, anonymiseData()...)
	before := mustIntegrate(t, s, signer)
	leavesBefore := allLeaves(t, s)
	n, err := auditlog.Anonymise(ctx(t), s, deleted)
	if err != nil || n == 0 {
		t.Fatalf("anonymise: %d entries, %v", n, err)
	}
	after := allLeaves(t, s)
	erased := 0
	for i, e := range after {
		h, err := auditlog.LeafHash(e)
		if err != nil {
			t.Fatalf("entry %s after erasure: %v", e.ID, err)
		}
		if !bytes.Equal(h[:], leavesBefore[i].LeafHash) {
			t.Errorf("entry %s: leaf hash changed by the erasure", e.ID)
		}
		if len(e.Erased) > 0 {
			erased++
			if e.Seed != nil || e.Salts == nil {
				t.Errorf("erased entry %s keeps its seed (or has no salts): the erased value could be confirmed by guessing", e.ID)
			}
			if strings.Contains(string(e.Payload), deletedMail) {
				t.Errorf("erased entry %s still holds the e-mail: %s", e.ID, e.Payload)
			}
			for p := range e.Erased {
				if _, ok := e.Salts[p]; ok {
					t.Errorf("erased entry %s keeps the salt of %s", e.ID, p)
				}
			}
		}
	}
	if int64(erased) != n {
		t.Errorf("%d entries hold erased fields, anonymise changed %d", erased, n)
	}
	// An erasure needs no new checkpoint: the old one verifies.
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure != nil {
		t.Fatalf("verify after erasure: %v, %v", err, r.Failure)
	}
	if r.Erased != int64(erased) || r.TreeSize != before.Size {
		t.Errorf("verify reports %d erased entries in a tree of %d, want %d in %d", r.Erased, r.TreeSize, erased, before.Size)
	}
}

func testPruneKeepsProofs(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "prune")
	d := NewDataset(9, 300)
	es := d.Entries(0, 300)
	cut := es[0].ReceivedAt
	for i := range es {
		es[i].ReceivedAt = cut.Add(time.Duration(i) * time.Second)
	}
	mustAppend(t, s, es...)
	mustIntegrate(t, s, signer)
	cutoff := cut.Add(100 * time.Second)
	n, err := s.Prune(ctx(t), cutoff, 70)
	if err != nil || n != 70 {
		t.Fatalf("prune of 70: %d, %v", n, err)
	}
	n, err = s.Prune(ctx(t), cutoff, 1000)
	if err != nil || n != 30 {
		t.Fatalf("prune of the rest: %d, %v; want 30", n, err)
	}
	for _, e := range allLeaves(t, s) {
		h, err := auditlog.LeafHash(e)
		if err != nil || !bytes.Equal(h[:], e.LeafHash) {
			t.Fatalf("entry %s after pruning: leaf %x, stored %x (%v)", e.ID, h, e.LeafHash, err)
		}
		old := e.ReceivedAt.Before(cutoff)
		if e.Pruned() != old || old && (string(e.Payload) != "{}" || e.Headers != nil || e.Seed != nil) {
			t.Errorf("entry %s received %v: pruned %v, payload %s", e.ID, e.ReceivedAt, e.Pruned(), e.Payload)
		}
	}
	// Verify holds the pruning to a record of it.
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure == nil || r.Failure.What != auditlog.PrunedUnrecorded {
		t.Fatalf("verify of a pruning nothing records: %v, %v; want %q", err, r.Failure, auditlog.PrunedUnrecorded)
	}
	rec := entry("prune-record", auditlog.PrunedEvent, at(1), map[string]any{"before": cutoff.Format(time.RFC3339Nano), "count": 100})
	mustAppend(t, s, rec)
	mustIntegrate(t, s, signer)
	r, err = auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{})
	if err != nil || r.Failure != nil || r.Pruned != 100 {
		t.Fatalf("verify after a recorded pruning: %v, %v, %d pruned", err, r.Failure, r.Pruned)
	}
	// Pruned entries' payloads no longer match a filter.
	if p := mustQuery(t, s, auditlog.Query{Payload: map[string]string{"id": payloadOf(t, es[0])["id"].(string)}}); p.Total != 0 {
		t.Errorf("a pruned payload still matches its filter: %v", ids(p.Entries))
	}
}

func testRefusedContent(t *testing.T, s auditlog.Store) {
	for name, payload := range map[string]string{
		"duplicate key":          `{"a":1,"a":2}`,
		"nested duplicate key":   `{"a":{"b":1,"b":1}}`,
		"NUL escape":             `{"a":"x\u0000y"}`,
		"NUL in a key":           `{"a\u0000":1}`,
		"lone surrogate":         `{"a":"\ud800"}`,
		"invalid UTF-8":          "{\"a\":\"\xff\"}",
		"number PG cannot store": `{"a":1e200000}`,
	} {
		e := entry("bad", "x.y", at(1), nil)
		e.Payload = json.RawMessage(payload)
		if _, err := s.Append(ctx(t), []auditlog.Entry{e}); !errors.Is(err, auditlog.ErrInvalidEntry) || !errors.Is(err, auditlog.ErrContent) {
			t.Errorf("%s: append: %v, want ErrInvalidEntry and ErrContent", name, err)
		}
	}
	if p := mustQuery(t, s, auditlog.Query{}); p.Total != 0 {
		t.Errorf("refused entries were stored: %v", ids(p.Entries))
	}
}

// testValuesNotBytes appends one value in several spellings: each store
// keeps its own (PostgreSQL rewrites JSONB), and the leaf recomputed from
// what it read back is the leaf sealed from what was sent.
func testValuesNotBytes(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "values")
	spellings := []string{
		`{"n":100,"m":1.50,"s":"é\u00e9\/","o":{"b":[1,{"c":null}],"a":true},"z":-0}`,
		`{ "z": 0, "o": {"a": true, "b": [1e0, {"c": null}]}, "s": "\u00e9é/", "m": 15e-1, "n": 1E2 }`,
	}
	var sent []auditlog.Entry
	for i, p := range spellings {
		e := entry(fmt.Sprintf("v%d", i), "x.y", at(i), nil)
		e.Payload = json.RawMessage(p)
		e.Headers = json.RawMessage(`{"trace":{"k":1.0,"j":"x"}}`)
		e.Seed = bytes.Repeat([]byte{7}, auditlog.SeedSize)
		if err := auditlog.Seal(&e); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, e)
	}
	c0, _ := auditlog.ContentHash(sent[0])
	c1, _ := auditlog.ContentHash(sent[1])
	if c0 != c1 {
		t.Errorf("two spellings of one value have different content hashes")
	}
	mustAppend(t, s, sent...)
	mustIntegrate(t, s, signer)
	for i, e := range allLeaves(t, s) {
		h, err := auditlog.LeafHash(e)
		if err != nil || !bytes.Equal(h[:], sent[i].LeafHash) {
			t.Errorf("%s read back as %s: leaf %x (%v), sealed %x", e.ID, e.Payload, h, err, sent[i].LeafHash)
		}
	}
	if r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{}); err != nil || r.Failure != nil {
		t.Errorf("verify: %v, %v", err, r.Failure)
	}
}

func testOneIntegrator(t *testing.T, s auditlog.Store) {
	first, err := s.Integrator(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := NewSigner(t, "one")
	mustAppend(t, s, entry("a", "x.y", at(1), nil))
	if _, n, err := first.Integrate(ctx(t), 10, signer.Sign); err != nil || n != 1 {
		t.Fatalf("integrate: %d, %v", n, err)
	}
	// While the first is open, a second waits for the role: asked with
	// a deadline, it gets none.
	short, cancel := context.WithTimeout(ctx(t), 500*time.Millisecond)
	second, err := s.Integrator(short)
	cancel()
	if err == nil {
		second.Close()
		t.Fatal("a second integrator was handed out while the first was open")
	}
	first.Close()
	second, err = s.Integrator(ctx(t))
	if err != nil {
		t.Fatalf("the second integrator after the first closed: %v", err)
	}
	if _, n, err := second.Integrate(ctx(t), 10, signer.Sign); err != nil || n != 0 {
		t.Errorf("the second integrator: %d new, %v; want the log as the first left it", n, err)
	}
	second.Close()
}

func testVerifyPasses(t *testing.T, s auditlog.Store) {
	signer, v := NewSigner(t, "verify")
	d := NewDataset(11, 3000)
	for lo := 0; lo < 3000; lo += 1000 {
		mustAppend(t, s, d.Entries(lo, 1000)...)
		mustIntegrate(t, s, signer)
	}
	mustAppend(t, s, entry("pending", "x.y", at(1), nil))
	var progress int64
	r, err := auditlog.Verify(ctx(t), s, v, auditlog.VerifyOptions{Page: 700, Progress: func(n int64) { progress = n }})
	if err != nil || r.Failure != nil {
		t.Fatalf("verify of an untouched log: %v, %v", err, r.Failure)
	}
	if r.Entries != 3001 || r.Integrated != 3000 || r.Pending != 1 || r.Checkpoints != 3 || r.TreeSize != 3000 || progress != 3001 {
		t.Errorf("report %+v (progress %d), want 3001 entries, 3000 integrated, 1 pending, 3 checkpoints", r, progress)
	}
	// Another key's verifier refuses every checkpoint.
	_, other := NewSigner(t, "verify")
	if r, _ := auditlog.Verify(ctx(t), s, other, auditlog.VerifyOptions{}); r.Failure == nil || r.Failure.What != auditlog.BadSignature {
		t.Errorf("verify with another key: %v, want %q", r.Failure, auditlog.BadSignature)
	}
}
