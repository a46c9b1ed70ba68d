package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// contentHasher computes content hashes (ContentHash) without allocating
// per scalar: the SHA-256 states, the pointers' bytes and the list of
// nodes are kept from one entry to the next (hashers), and the salts are
// HMAC-SHA256 computed with two of those states rather than a new
// crypto/hmac per entry. The bytes hashed are those docs/integrity.md
// specifies; TestLeafHashIsStable pins them.
type contentHasher struct {
	content, commit hash.Hash // the content hash, each commitment
	inner, outer    hash.Hash // HMAC-SHA256(seed, pointer)
	// innerState and outerState are inner and outer keyed with the
	// entry's seed.
	innerState, outerState []byte
	// parser parses the content document, its stacks reused.
	parser parser
	// pointers holds every item's JSON pointer, one after another.
	pointers []byte
	items    []contentItem
	// Scratch space, here rather than on the stack, which a hash.Hash
	// argument escapes from.
	buf                  [4 + 1 + sha256.Size]byte
	lenKind              [5]byte
	pad                  [sha256.BlockSize]byte
	sum, salt, committed [sha256.Size]byte
}

// contentTagBytes is contentTag, to write.
var contentTagBytes = []byte(contentTag)

// contentItem is one node of the content document and its pointer,
// pointers[start:end].
type contentItem struct {
	start, end int
	n          *node
}

var hashers = sync.Pool{New: func() any {
	return &contentHasher{content: sha256.New(), commit: sha256.New(), inner: sha256.New(), outer: sha256.New()}
}}

// release returns c to hashers, keeping no node, and not when a large
// document has grown it.
func (c *contentHasher) release() {
	clear(c.items)
	keys, kids := c.parser.keys[:cap(c.parser.keys)], c.parser.kids[:cap(c.parser.kids)]
	clear(keys)
	clear(kids)
	if cap(c.pointers) > 1<<16 || cap(c.items) > 1<<12 || cap(keys) > 1<<12 || cap(kids) > 1<<12 {
		return
	}
	c.pointers, c.items = c.pointers[:0], c.items[:0]
	// The nodes handed out stay with the document parsed.
	c.parser = parser{keys: keys[:0], kids: kids[:0]}
	hashers.Put(c)
}

// contentHash is the hash of e's content document doc: SHA-256 of the tag
// and each node sorted by pointer, containers with their member count,
// scalars with their commitment (kept, for erased ones).
func (c *contentHasher) contentHash(e *Entry, doc *node) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	c.collect(0, 0, doc)
	items := c.items
	ptr := func(it contentItem) []byte { return c.pointers[it.start:it.end] }
	slices.SortFunc(items, func(a, b contentItem) int { return bytes.Compare(ptr(a), ptr(b)) })
	if len(e.Erased) > 0 {
		seen := 0
		for _, it := range items {
			if _, ok := e.Erased[string(ptr(it))]; ok && it.n.kind.scalar() {
				seen++
			}
		}
		if seen != len(e.Erased) {
			return out, errors.New("an erased field is missing from the content")
		}
	}
	if e.Seed != nil {
		c.key(e.Seed)
	}
	h := c.content
	h.Reset()
	h.Write(contentTagBytes)
	buf := c.buf[:]
	used := 0
	for _, it := range items {
		p, n := ptr(it), it.n
		binary.BigEndian.PutUint32(buf[:4], uint32(len(p)))
		h.Write(buf[:4])
		h.Write(p)
		switch cm, erased := e.Erased[string(p)]; {
		case !n.kind.scalar():
			buf[0] = byte(n.kind)
			binary.BigEndian.PutUint32(buf[1:5], uint32(len(n.kids)))
			h.Write(buf[:5])
		case erased:
			if len(cm.Hash) != sha256.Size || !cm.Kind.scalar() || !cm.Kind.valid() {
				return out, fmt.Errorf("kept commitment of %q is malformed", p)
			}
			buf[0] = byte(cm.Kind)
			h.Write(buf[:1])
			h.Write(cm.Hash)
		default:
			var salt []byte
			if e.Seed != nil {
				salt = c.saltOf(p)
			} else {
				v, ok := e.Salts[string(p)]
				if !ok || len(v) != sha256.Size {
					return out, fmt.Errorf("no salt for %q", p)
				}
				used++
				salt = v
			}
			buf[0] = byte(n.kind)
			h.Write(buf[:1])
			h.Write(c.commitment(salt, p, n.kind, n.value))
		}
	}
	if e.Seed == nil && used != len(e.Salts) {
		// Salts are stored for exactly the fields that remain: one more
		// is an edit, never an erasure's.
		return out, errors.New("a stored salt names no field of the content")
	}
	copy(out[:], h.Sum(c.sum[:0]))
	return out, nil
}

// collect appends n and every node below it to c.items, n's pointer
// being c.pointers[start:end].
func (c *contentHasher) collect(start, end int, n *node) {
	c.items = append(c.items, contentItem{start, end, n})
	for i, kid := range n.kids {
		s := len(c.pointers)
		c.pointers = append(c.pointers, c.pointers[start:end]...)
		c.pointers = append(c.pointers, '/')
		if n.kind == KindObject {
			c.pointers = appendPointerToken(c.pointers, n.keys[i])
		} else {
			c.pointers = strconv.AppendInt(c.pointers, int64(i), 10)
		}
		c.collect(s, len(c.pointers), kid)
	}
}

// appendPointerToken appends key escaped for a JSON pointer, as
// catalog.EscapeToken does.
func appendPointerToken(b []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		switch key[i] {
		case '~':
			b = append(b, '~', '0')
		case '/':
			b = append(b, '~', '1')
		default:
			b = append(b, key[i])
		}
	}
	return b
}

// key sets the HMAC key, a seed of SeedSize bytes (shorter than a block,
// so used as it is, padded with zeros): the inner and outer states after
// their padded keys are kept, so that each salt hashes only its pointer
// and the inner hash, as crypto/hmac does.
func (c *contentHasher) key(seed []byte) {
	pad := c.pad[:]
	for i := range pad {
		var k byte
		if i < len(seed) {
			k = seed[i]
		}
		pad[i] = k ^ 0x36
	}
	c.innerState = keyedState(c.inner, pad, c.innerState[:0])
	for i := range pad {
		pad[i] ^= 0x36 ^ 0x5c
	}
	c.outerState = keyedState(c.outer, pad, c.outerState[:0])
}

// keyedState is the state of h after the block pad, appended to dst.
func keyedState(h hash.Hash, pad, dst []byte) []byte {
	h.Reset()
	h.Write(pad)
	st, err := h.(encoding.BinaryAppender).AppendBinary(dst)
	if err != nil {
		panic(err) // SHA-256 always encodes its state
	}
	return st
}

// saltOf is HMAC-SHA256(seed, pointer), for the seed of the last key
// call, valid until the next call.
func (c *contentHasher) saltOf(pointer []byte) []byte {
	restore(c.inner, c.innerState)
	c.inner.Write(pointer)
	restore(c.outer, c.outerState)
	c.outer.Write(c.inner.Sum(c.sum[:0]))
	return c.outer.Sum(c.salt[:0])
}

// restore sets h to a state keyedState returned.
func restore(h hash.Hash, state []byte) {
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		panic(err) // a state SHA-256 encoded
	}
}

// commitment is SHA-256(salt ‖ u32(len p) ‖ p ‖ kind ‖ value) (commit),
// valid until the next call.
func (c *contentHasher) commitment(salt, pointer []byte, k Kind, value []byte) []byte {
	h := c.commit
	h.Reset()
	h.Write(salt)
	l := c.lenKind[:]
	binary.BigEndian.PutUint32(l[:4], uint32(len(pointer)))
	l[4] = byte(k)
	h.Write(l[:4])
	h.Write(pointer)
	h.Write(l[4:])
	h.Write(value)
	return h.Sum(c.committed[:0])
}

// leafHash is SHA-256(0x00 ‖ LeafData(e, contentHash)), tlog.RecordHash
// of the leaf's data, built in c's buffer.
func (c *contentHasher) leafHash(e *Entry, contentHash [sha256.Size]byte) tlog.Hash {
	c.pointers = append(c.pointers[:0], 0)
	c.pointers = appendLeafData(c.pointers, e, contentHash)
	h := c.content
	h.Reset()
	h.Write(c.pointers)
	var out tlog.Hash
	copy(out[:], h.Sum(c.sum[:0]))
	c.pointers = c.pointers[:0]
	return out
}
