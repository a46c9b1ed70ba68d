package auditlog

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/catalog"
)

// An entry is a leaf of the audit log's Merkle tree. Its leaf hash commits
// to the envelope (id, name, serviceName, createdAt, receivedAt) and to a
// content hash of its extra headers and payload, which commits to values,
// not bytes, through a salted commitment of every scalar: PostgreSQL's
// JSONB keeps neither key order nor number spelling, and an erased value
// must leave the leaf intact. docs/integrity.md specifies every byte.

// Domain tags: a leaf's data and a content hash's input start with these,
// so that neither can be read as the other or as another protocol's.
const (
	leafTag    = "herald/leaf/v1\x00"
	contentTag = "herald/content/v1\x00"
)

// SeedSize is the size of an entry's random seed, from which the salt of
// every scalar of its content is derived.
const SeedSize = 32

// NotIntegrated is the LeafIndex of an entry the integrator has not yet
// placed in the tree.
const NotIntegrated = -1

// Commitment is what stays of an erased scalar: its kind and the
// commitment the content hash was computed with.
type Commitment struct {
	Kind Kind   `json:"kind"`
	Hash []byte `json:"hash"`
}

// MarshalJSON writes the kind as its letter.
func (c Commitment) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Kind string `json:"kind"`
		Hash []byte `json:"hash"`
	}{string(rune(c.Kind)), c.Hash})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *Commitment) UnmarshalJSON(b []byte) error {
	var v struct {
		Kind string `json:"kind"`
		Hash []byte `json:"hash"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if len(v.Kind) != 1 || !Kind(v.Kind[0]).valid() || !Kind(v.Kind[0]).scalar() || len(v.Hash) != sha256.Size {
		return fmt.Errorf("commitment: kind %q, %d-byte hash: want a scalar kind and 32 bytes", v.Kind, len(v.Hash))
	}
	c.Kind, c.Hash = Kind(v.Kind[0]), v.Hash
	return nil
}

// ErrPruned is returned for an entry whose content retention has
// deleted: only its envelope and content hash are left.
var ErrPruned = errors.New("entry content pruned")

// Seal prepares an entry for the tree: it gives the entry a random seed
// when it has no salts yet, and computes its leaf hash. Content the two
// stores would not keep alike is refused with an error wrapping
// ErrInvalidEntry and ErrContent. The stores seal every entry they
// append.
func Seal(e *Entry) error {
	// The seed and the leaf hash share one allocation.
	var buf []byte
	if e.Seed == nil && e.Salts == nil && e.ContentHash == nil {
		buf = make([]byte, SeedSize+sha256.Size)
		e.Seed = buf[:SeedSize:SeedSize]
		readSeed(e.Seed)
		buf = buf[SeedSize:SeedSize]
	}
	h, err := leafHash(e)
	if err != nil {
		return fmt.Errorf("entry %s: %w", e.ID, err)
	}
	e.LeafHash = append(buf, h[:]...)
	return nil
}

// seeds hands out random bytes for seeds, read from crypto/rand many
// seeds at a time: one read per entry was a system call on every
// delivery's goroutine (and the stack it grew). Each byte is handed out
// once and cleared from the buffer as it is.
var seeds = sync.Pool{New: func() any { return new(seedBuffer) }}

type seedBuffer struct {
	b    [128 * SeedSize]byte
	next int // the first byte not handed out; len(b) when all are
}

// readSeed fills seed with random bytes from crypto/rand.
func readSeed(seed []byte) {
	sb := seeds.Get().(*seedBuffer)
	if sb.next == 0 || sb.next+len(seed) > len(sb.b) {
		rand.Read(sb.b[:]) // never fails (crypto/rand)
		sb.next = 0
	}
	n := copy(seed, sb.b[sb.next:])
	clear(sb.b[sb.next : sb.next+n])
	sb.next += n
	if sb.next == len(sb.b) {
		sb.next = 0
	}
	seeds.Put(sb)
}

// LeafHash recomputes an entry's leaf hash from what is stored of it: its
// envelope, and its content with its seed or salts and the commitments of
// erased fields, or, once pruned, its kept content hash. It never reads
// e.LeafHash.
func LeafHash(e Entry) (tlog.Hash, error) { return leafHash(&e) }

// leafHash is LeafHash. Entries go by pointer on the sealing path, which
// runs on every delivery's goroutine: copies of the large struct in each
// frame grew those goroutines' stacks.
func leafHash(e *Entry) (tlog.Hash, error) {
	c := hashers.Get().(*contentHasher)
	defer c.release()
	ch, err := c.entryContentHash(e)
	if err != nil {
		return tlog.Hash{}, err
	}
	return c.leafHash(e, ch), nil
}

// LeafData is the leaf's data: the tag, the envelope and the content
// hash. The leaf hash is SHA-256(0x00 ‖ LeafData) (tlog.RecordHash).
func LeafData(e Entry, contentHash [sha256.Size]byte) []byte {
	b := make([]byte, 0, len(leafTag)+12+len(e.ID)+len(e.Name)+len(e.ServiceName)+17+sha256.Size)
	return appendLeafData(b, &e, contentHash)
}

// appendLeafData appends LeafData(e, contentHash) to b.
func appendLeafData(b []byte, e *Entry, contentHash [sha256.Size]byte) []byte {
	b = append(b, leafTag...)
	for _, s := range [...]string{e.ID, e.Name, e.ServiceName} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	if e.CreatedAt.IsZero() {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(e.CreatedAt.UnixMilli()))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(e.ReceivedAt.UnixMilli()))
	return append(b, contentHash[:]...)
}

// ContentHash is the hash of an entry's content: its kept ContentHash once
// pruned, else recomputed from its headers and payload.
func ContentHash(e Entry) ([sha256.Size]byte, error) {
	c := hashers.Get().(*contentHasher)
	defer c.release()
	return c.entryContentHash(&e)
}

// entryContentHash is ContentHash.
func (c *contentHasher) entryContentHash(e *Entry) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	if e.ContentHash != nil {
		// A pruned entry keeps nothing of its content: anything there
		// was put there after.
		if len(e.ContentHash) != sha256.Size {
			return out, fmt.Errorf("kept content hash has %d bytes, want %d", len(e.ContentHash), sha256.Size)
		}
		if e.Seed != nil || e.Salts != nil || e.Erased != nil || len(e.Headers) > 0 || string(bytes.TrimSpace(e.Payload)) != "{}" {
			return out, errors.New("a pruned entry holds content")
		}
		copy(out[:], e.ContentHash)
		return out, nil
	}
	if e.Seed != nil && (e.Salts != nil || e.Erased != nil) {
		return out, errors.New("an entry holds both a seed and stored salts or kept commitments")
	}
	if e.Seed != nil && len(e.Seed) != SeedSize {
		return out, fmt.Errorf("seed has %d bytes, want %d", len(e.Seed), SeedSize)
	}
	doc, err := document(e, &c.parser)
	if err != nil {
		return out, err
	}
	return c.contentHash(e, doc)
}

// document parses the entry's content document {"headers":…,"payload":…}.
func document(e *Entry, p *parser) (*node, error) {
	part := func(name string, raw []byte) (*node, error) {
		if len(bytes.TrimSpace(raw)) == 0 {
			return p.node(KindObject), nil
		}
		n, err := p.parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if n.kind != KindObject {
			return nil, fmt.Errorf("%s: %w: not a JSON object", name, ErrInvalidEntry)
		}
		return n, nil
	}
	h, err := part("headers", e.Headers)
	if err != nil {
		return nil, err
	}
	pl, err := part("payload", e.Payload)
	if err != nil {
		return nil, err
	}
	doc := p.node(KindObject)
	doc.keys, doc.kids = []string{"headers", "payload"}, []*node{h, pl}
	return doc, nil
}

// salter derives the salts of one entry's scalars.
type salter struct {
	mac   hash.Hash
	salts map[string][]byte
	used  int // stored salts read
}

// newSalter derives from the seed, or else reads the stored salts (none
// when every scalar is erased).
func newSalter(e Entry) (*salter, error) {
	if e.Seed != nil {
		if len(e.Seed) != SeedSize {
			return nil, fmt.Errorf("seed has %d bytes, want %d", len(e.Seed), SeedSize)
		}
		return &salter{mac: hmac.New(sha256.New, e.Seed)}, nil
	}
	return &salter{salts: e.Salts}, nil
}

// salt is HMAC-SHA256(seed, pointer), or the stored salt once the seed is
// gone.
func (s *salter) salt(pointer string, buf []byte) ([]byte, error) {
	if s.mac == nil {
		v, ok := s.salts[pointer]
		if !ok || len(v) != sha256.Size {
			return nil, fmt.Errorf("no salt for %q", pointer)
		}
		s.used++
		return v, nil
	}
	s.mac.Reset()
	s.mac.Write([]byte(pointer))
	return s.mac.Sum(buf[:0]), nil
}

// commit is SHA-256(salt ‖ u32(len p) ‖ p ‖ kind ‖ value).
func commit(salt []byte, pointer string, k Kind, value []byte) []byte {
	return appendCommit(sha256.New(), nil, salt, pointer, k, value)
}

// appendCommit appends the commitment to dst, hashing with h (reset
// first), so that one hash serves all of an entry's scalars.
func appendCommit(h hash.Hash, dst, salt []byte, pointer string, k Kind, value []byte) []byte {
	h.Reset()
	h.Write(salt)
	var l [5]byte
	binary.BigEndian.PutUint32(l[:4], uint32(len(pointer)))
	h.Write(l[:4])
	h.Write([]byte(pointer))
	l[4] = byte(k)
	h.Write(l[4:])
	h.Write(value)
	return h.Sum(dst)
}

// Salts returns the salt of every scalar of an entry's content that is not
// erased: what a reader needs, with the content and the kept commitments
// of erased fields, to recompute the entry's leaf hash without the seed.
func Salts(e Entry) (map[string][]byte, error) {
	if e.ContentHash != nil {
		return nil, ErrPruned
	}
	doc, err := document(&e, &parser{})
	if err != nil {
		return nil, err
	}
	s, err := newSalter(e)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	err = doc.walk("", func(p string, n *node) error {
		if !n.kind.scalar() {
			return nil
		}
		if _, erased := e.Erased[p]; erased {
			return nil
		}
		salt, err := s.salt(p, make([]byte, 0, sha256.Size))
		if err != nil {
			return err
		}
		out[p] = salt
		return nil
	})
	return out, err
}

// IsReplacement reports whether s is what an erasure writes in place of a
// value: Redacted, or PseudonymPrefix and 20 lowercase hex digits. The
// leaf hash covers an erased field's commitment, not the text shown in its
// place, so Verify checks that text against this.
func IsReplacement(s string) bool {
	if s == Redacted {
		return true
	}
	h, ok := strings.CutPrefix(s, PseudonymPrefix)
	if !ok || len(h) != 20 {
		return false
	}
	for _, c := range []byte(h) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// PayloadPointer is the JSON pointer of a top-level payload key in an
// entry's content document.
func PayloadPointer(key string) string { return "/payload/" + catalog.EscapeToken(key) }

// Erase replaces the values at pointers (JSON pointers into the content
// document {"headers":…,"payload":…}, e.g. PayloadPointer("username"))
// with replacement, keeping the leaf hash: each field's commitment is kept
// in e.Erased, and the seed is replaced by the salts of the fields that
// remain, so that an erased value can neither be read nor confirmed by
// guessing. Each pointer must name a scalar; erasing an erased field again
// changes nothing. It changes e only when it succeeds. This is the one way
// the audit log erases a value. The replacement must be one Verify accepts
// (IsReplacement).
func Erase(e *Entry, pointers []string, replacement string) error {
	if !IsReplacement(replacement) {
		return fmt.Errorf("erase in entry %s: replacement %q is neither %s nor a pseudonym", e.ID, replacement, Redacted)
	}
	if e.ContentHash != nil {
		return fmt.Errorf("erase in entry %s: %w", e.ID, ErrPruned)
	}
	doc, err := document(e, &parser{})
	if err != nil {
		return fmt.Errorf("erase in entry %s: %w", e.ID, err)
	}
	s, err := newSalter(*e)
	if err != nil {
		return fmt.Errorf("erase in entry %s: %w", e.ID, err)
	}
	erased := make(map[string]Commitment, len(e.Erased)+len(pointers))
	for p, c := range e.Erased {
		erased[p] = c
	}
	for _, p := range pointers {
		if _, done := erased[p]; done {
			continue
		}
		n := doc.find(p)
		if n == nil || !n.kind.scalar() {
			return fmt.Errorf("erase in entry %s: %q is not a scalar of its content", e.ID, p)
		}
		salt, err := s.salt(p, make([]byte, 0, sha256.Size))
		if err != nil {
			return fmt.Errorf("erase in entry %s: %w", e.ID, err)
		}
		erased[p] = Commitment{Kind: n.kind, Hash: commit(salt, p, n.kind, n.value)}
		*n = node{kind: KindString, value: []byte(replacement)}
	}
	next := *e
	next.Erased = erased
	next.Seed = nil
	next.Salts = nil
	salts, err := Salts(Entry{Headers: e.Headers, Payload: e.Payload, Seed: e.Seed, Salts: e.Salts, Erased: erased})
	if err != nil {
		return fmt.Errorf("erase in entry %s: %w", e.ID, err)
	}
	next.Salts = salts
	setContent(&next, doc)
	*e = next
	return nil
}

// setContent writes doc, an entry's content document (document), back
// to its payload, and to its headers when it had any.
func setContent(e *Entry, doc *node) {
	var pb bytes.Buffer
	doc.kids[1].encode(&pb)
	e.Payload = pb.Bytes()
	if len(e.Headers) > 0 {
		var hb bytes.Buffer
		doc.kids[0].encode(&hb)
		e.Headers = hb.Bytes()
	}
}

// Prune deletes an entry's content, keeping its envelope and content
// hash: the leaf hash, and every proof, stay as they were.
func Prune(e *Entry) error {
	if e.ContentHash != nil {
		return nil
	}
	ch, err := ContentHash(*e)
	if err != nil {
		return fmt.Errorf("prune entry %s: %w", e.ID, err)
	}
	e.ContentHash = ch[:]
	e.Payload = json.RawMessage("{}")
	e.Headers = nil
	e.Seed, e.Salts, e.Erased = nil, nil, nil
	return nil
}

// Pruned reports whether retention has deleted the entry's content.
func (e Entry) Pruned() bool { return e.ContentHash != nil }
