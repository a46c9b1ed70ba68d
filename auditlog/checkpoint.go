package auditlog

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the log's state: a C2SP
// tlog-checkpoint (origin, tree size, root hash, and herald's extension
// line naming the size of the checkpoint before it) in a C2SP signed
// note, signed with Ed25519.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Prev is the size of the checkpoint the log issued before this one
	// (0 for the first): every checkpoint names its predecessor under the
	// signature, so a deleted one is missed.
	Prev int64
	// Note is the signed note, as served at GET /checkpoint.
	Note []byte
}

// ErrNoCheckpoint is returned when the log has issued no checkpoint (of
// the size asked for).
var ErrNoCheckpoint = errors.New("no such checkpoint")

// prevPrefix starts herald's extension line in a checkpoint's body.
const prevPrefix = "herald-prev "

// checkpointBody is the note text of a checkpoint.
func checkpointBody(origin string, size int64, root tlog.Hash, prev int64) string {
	return fmt.Sprintf("%s\n%d\n%s\n%s%d\n", origin, size, base64.StdEncoding.EncodeToString(root[:]), prevPrefix, prev)
}

// Signer signs the log's checkpoints.
type Signer struct {
	s     note.Signer
	vkey  string
	idKey []byte
}

// NewSigner returns a signer of checkpoints for the private key skey, in
// note's private-key format ("PRIVATE+KEY+<name>+<hash>+<key>"). The key's
// name is the log's origin.
func NewSigner(skey string) (*Signer, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	vkey, err := verifierKey(strings.TrimSpace(skey))
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(strings.TrimSpace(skey)))
	mac.Write([]byte("herald event id key v1"))
	return &Signer{s: s, vkey: vkey, idKey: mac.Sum(nil)}, nil
}

// IDKey is a secret derived from the signing key: the key of the ids
// herald derives for events (POSTed by non-admins, or without an id of
// their own), so that no third party can compute them in advance.
// Replicas that share the signing key derive the same ids.
func (s *Signer) IDKey() []byte { return append([]byte(nil), s.idKey...) }

// verifierKey derives the verifier key of a note private key.
func verifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg ‖ seed)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 {
		return "", errors.New("signing key: malformed")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 33 || raw[0] != 1 {
		return "", errors.New("signing key: not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// Origin is the log's origin, the key's name.
func (s *Signer) Origin() string { return s.s.Name() }

// VerifierKey is the note verifier key of the log ("<name>+<hash>+<key>"),
// which checks its checkpoints.
func (s *Signer) VerifierKey() string { return s.vkey }

// Sign returns the signed checkpoint of a tree of size with root, issued
// after the checkpoint of size prev.
func (s *Signer) Sign(size int64, root tlog.Hash, prev int64) (Checkpoint, error) {
	body := checkpointBody(s.Origin(), size, root, prev)
	msg, err := note.Sign(&note.Note{Text: body}, s.s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint %d: %w", size, err)
	}
	return Checkpoint{Origin: s.Origin(), Size: size, Root: root, Prev: prev, Note: msg}, nil
}

// GenerateKey returns a new Ed25519 note key pair named name; an empty
// name is "herald-" and 16 random hex digits, so that every generated
// key names a log of its own.
func GenerateKey(name string) (skey, vkey string, err error) {
	if name == "" {
		var b [8]byte
		rand.Read(b[:])
		name = "herald-" + hex.EncodeToString(b[:])
	}
	return note.GenerateKey(rand.Reader, name)
}

// LoadOrCreateKey reads the note private key in path, or, when the file
// does not exist, creates a key named name there (mode 0600). It reports
// whether it created the key.
func LoadOrCreateKey(path, name string) (*Signer, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := NewSigner(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return s, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	skey, _, err := GenerateKey(name)
	if err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create signing key: %w", err)
	}
	if _, err := f.WriteString(skey + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write signing key: %w", err)
	}
	s, err := NewSigner(skey)
	return s, true, err
}

// ErrBadSignature wraps the errors of a checkpoint whose signature does
// not verify with the log's key.
var ErrBadSignature = errors.New("checkpoint signature does not verify")

// OpenCheckpoint checks a signed checkpoint against the log's verifier
// key and parses it. A note not signed by that key fails with an error
// wrapping ErrBadSignature.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	cp, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's %q", ErrBadSignature, cp.Origin, v.Name())
	}
	cp.Note = msg
	return cp, nil
}

// ParseCheckpoint parses a checkpoint's body (the note text), without
// checking any signature.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, errors.New("checkpoint: want origin, size and root lines")
	}
	var cp Checkpoint
	cp.Origin = lines[0]
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("checkpoint: size %q", lines[1])
	}
	cp.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(cp.Root) {
		return Checkpoint{}, fmt.Errorf("checkpoint: root %q", lines[2])
	}
	copy(cp.Root[:], root)
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, prevPrefix); ok {
			if cp.Prev, err = strconv.ParseInt(v, 10, 64); err != nil || cp.Prev < 0 || cp.Prev > cp.Size {
				return Checkpoint{}, fmt.Errorf("checkpoint: %q", l)
			}
		}
	}
	return cp, nil
}

// NewVerifier returns the verifier of a note verifier key
// ("<name>+<hash>+<key>").
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	return v, nil
}
