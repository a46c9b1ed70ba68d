package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/auditlog/console"
)

// merkle is an RFC 6962 Merkle tree of leaf hashes, computed as the RFC
// writes it (recursively), independently of the console's verifier.
type merkle [][32]byte

func nodeHash(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

// split is the largest power of two below n.
func split(n int) int {
	k := 1
	for k*2 < n {
		k *= 2
	}
	return k
}

func (m merkle) root() [32]byte {
	if len(m) == 1 {
		return m[0]
	}
	k := split(len(m))
	return nodeHash(m[:k].root(), m[k:].root())
}

// path is PATH(i, D[n]) of RFC 6962, 2.1.1.
func (m merkle) path(i int) [][32]byte {
	if len(m) <= 1 {
		return nil
	}
	k := split(len(m))
	if i < k {
		return append(m[:k].path(i), m[k:].root())
	}
	return append(m[k:].path(i-k), m[:k].root())
}

// TestConsoleProofModuleChecksInclusionProofs runs the console's proof
// module in Chromium against checkpoints and inclusion proofs of RFC 6962
// trees computed above, served as GET /checkpoint and GET
// /logs/{id}/proof: every proof of every leaf of trees of 1 to 17 leaves
// (and a larger one) verifies; a proof with one bit flipped, a wrong leaf
// index or a proof for another size fails; without the routes the module
// says integrity is not available.
func TestConsoleProofModuleChecksInclusionProofs(t *testing.T) {
	bctx := browser(t)
	leaves := make(merkle, 1000)
	for i := range leaves {
		leaves[i] = sha256.Sum256(append([]byte{0}, fmt.Sprintf("entry %d", i)...))
	}
	var (
		size    atomic.Int64 // the checkpoint's size; 0: no routes
		tamper  atomic.Int32 // 1 flips a bit, 2 shifts the leaf index, 3 answers another tree size
		proofOf = func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("size"))
			i, err := strconv.Atoi(strings.TrimPrefix(r.PathValue("id"), "e"))
			if err != nil || n < 1 || n > len(leaves) || i >= n {
				http.NotFound(w, r)
				return
			}
			tree := leaves[:n]
			var hashes []string
			for _, h := range tree.path(i) {
				hashes = append(hashes, base64.StdEncoding.EncodeToString(h[:]))
			}
			leafIndex, treeSize := i, n
			switch tamper.Load() {
			case 1:
				b, _ := base64.StdEncoding.DecodeString(hashes[len(hashes)/2])
				b[7] ^= 0x10
				hashes[len(hashes)/2] = base64.StdEncoding.EncodeToString(b)
			case 2:
				leafIndex = (i + 1) % n
			case 3:
				treeSize = n - 1
			}
			json.NewEncoder(w).Encode(map[string]any{
				"leafIndex": leafIndex, "leafHash": base64.StdEncoding.EncodeToString(tree[i][:]),
				"proof": hashes, "treeSize": treeSize,
			})
		}
	)
	mux := http.NewServeMux()
	mux.Handle("/", console.New(console.Config{}))
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		n := int(size.Load())
		if n == 0 {
			http.NotFound(w, r)
			return
		}
		root := leaves[:n].root()
		fmt.Fprintf(w, "herald.test/log\n%d\n%s\n\n— herald.test/log AAAAAA==\n", n, base64.StdEncoding.EncodeToString(root[:]))
	})
	mux.HandleFunc("GET /logs/{id}/proof", func(w http.ResponseWriter, r *http.Request) {
		if size.Load() == 0 {
			http.NotFound(w, r)
			return
		}
		proofOf(w, r)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, _ := tab(t, bctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	check := func(id string) string {
		t.Helper()
		state, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`import('/console/proof.js').then(m => m.checkInclusion(%q,
			(path, opts) => fetch(path).then(r => { if (!(opts?.ok ?? [200]).includes(r.status)) throw new Error('HTTP ' + r.status); return r; })))
			.then(r => r.state + ': ' + r.message)`, id), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return state
	}
	if got := check("e0"); !strings.HasPrefix(got, "unavailable") {
		t.Errorf("without the routes: %s", got)
	}
	for n := 1; n <= 17; n++ {
		size.Store(int64(n))
		for i := range n {
			if got := check(fmt.Sprintf("e%d", i)); !strings.HasPrefix(got, "verified") {
				t.Fatalf("leaf %d of %d: %s", i, n, got)
			}
		}
	}
	size.Store(1000)
	for _, i := range []int{0, 511, 512, 767, 998, 999} {
		if got := check(fmt.Sprintf("e%d", i)); !strings.HasPrefix(got, "verified") {
			t.Fatalf("leaf %d of 1000: %s", i, got)
		}
	}
	for mode, what := range map[int32]string{1: "a bit flipped", 2: "another leaf index", 3: "another tree size"} {
		tamper.Store(mode)
		for _, i := range []int{0, 500, 999} {
			if got := check(fmt.Sprintf("e%d", i)); !strings.HasPrefix(got, "failed") {
				t.Errorf("%s, leaf %d: %s", what, i, got)
			}
		}
	}
	tamper.Store(0)
	if got := check("e1000"); !strings.HasPrefix(got, "pending") {
		t.Errorf("an entry not in the checkpoint: %s", got)
	}
}
