package auditlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// FuzzParseCheckpoint feeds arbitrary text to ParseCheckpoint, which reads
// a checkpoint served by a log being verified: it must never panic, and a
// checkpoint it accepts has a size, a root and a previous size that make
// sense.
func FuzzParseCheckpoint(f *testing.F) {
	f.Add("herald\n0\n" + strings.Repeat("A", 43) + "=\n")
	f.Add("herald.example\n12\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nprev 3\n")
	f.Add("o\n-1\nAA==\n")
	f.Add("o\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nprev 99\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if cp.Size < 0 || cp.Prev < 0 || cp.Prev > cp.Size {
			t.Fatalf("accepted %q as size %d, prev %d", text, cp.Size, cp.Prev)
		}
	})
}

// FuzzOpenCheckpoint feeds arbitrary signed notes to OpenCheckpoint with
// the log's key: only the notes that key signed open, whatever else the
// bytes hold.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, err := GenerateKey("fuzz.example")
	if err != nil {
		f.Fatal(err)
	}
	signer, err := NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	for _, size := range []int64{0, 1, 1 << 40} {
		cp, err := signer.Sign(size, tlog.Hash{1, 2, 3}, size/2)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cp.Note)
		f.Add(bytes.Replace(cp.Note, []byte("\n"), []byte("\n\n"), 1))
	}
	f.Add([]byte("fuzz.example\n1\nAA==\n\n— fuzz.example AAAA\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := OpenCheckpoint(msg, v)
		if err != nil {
			return
		}
		if cp.Origin != "fuzz.example" || cp.Size < 0 || cp.Prev > cp.Size {
			t.Fatalf("opened %q as %+v", msg, cp)
		}
		// Every opened note was signed by the key: signing its content
		// again gives the same text.
		again, err := signer.Sign(cp.Size, cp.Root, cp.Prev)
		if err != nil {
			t.Fatal(err)
		}
		if NoteText(again.Note) != NoteText(msg) {
			t.Fatalf("opened a note whose text the key did not sign:\n%q\nsigned text:\n%q", msg, again.Note)
		}
	})
}

// FuzzLeafHash feeds arbitrary content to what turns a served entry into
// its leaf (Seal, LeafHash, Salts, Erase), as herald verify does with every
// entry and proof a log serves: it must never panic, and an erased field
// leaves the leaf hash as it was.
func FuzzLeafHash(f *testing.F) {
	f.Add([]byte(`{"user":"u1","tenant":"t","a":[1,"x",{"b":null}]}`), []byte(`{"traceId":"t-1"}`), "user")
	f.Add([]byte(`{"é":"\ud83d\ude00","n":1.50}`), []byte(``), "é")
	f.Add([]byte(`{"a":1,"a":2}`), []byte(`{"x":"\u0000"}`), "a")
	f.Add([]byte(`{"a":{"b":{"c":[[[[]]]]}}}`), []byte(`null`), "a")
	f.Add([]byte(`[]`), []byte(`{}`), "")
	f.Fuzz(func(t *testing.T, payload, headers []byte, key string) {
		e := Entry{ID: "id-1", Name: "a.b", ServiceName: "s", CreatedAt: time.UnixMilli(1700000000000), ReceivedAt: time.UnixMilli(1700000001000),
			Payload: json.RawMessage(payload), Headers: json.RawMessage(headers)}
		if len(headers) == 0 {
			e.Headers = nil
		}
		if err := Seal(&e); err != nil {
			return
		}
		h1, err := LeafHash(e)
		if err != nil || string(h1[:]) != string(e.LeafHash) {
			t.Fatalf("sealed entry does not recompute to its leaf hash: %v", err)
		}
		if _, err := Salts(e); err != nil {
			t.Fatalf("sealed entry has no salts: %v", err)
		}
		erased := e
		erased.Payload = bytes.Clone(e.Payload)
		if err := Erase(&erased, []string{PayloadPointer(key)}, Redacted); err != nil {
			return
		}
		h2, err := LeafHash(erased)
		if err != nil || h2 != h1 {
			t.Fatalf("erasing %q changed the leaf hash (%v)", key, err)
		}
	})
}
