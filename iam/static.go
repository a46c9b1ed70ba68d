package iam

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// StaticSub is the Sub (and Username) of the identity a StaticToken
// authenticates.
const StaticSub = "herald-admin"

// StaticToken authenticates a single bearer token as an admin: the
// authenticator of herald serve when no IAM is configured. The token is
// compared in constant time.
type StaticToken struct {
	digest [sha256.Size]byte
}

// NewStaticToken returns a StaticToken accepting token, which must be
// non-empty and free of white space (it travels in an HTTP header).
func NewStaticToken(token string) (*StaticToken, error) {
	if token == "" {
		return nil, errors.New("iam: empty static token")
	}
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("iam: static token contains white space or control characters")
	}
	return &StaticToken{digest: sha256.Sum256([]byte(token))}, nil
}

// Authenticate accepts a request whose Authorization header carries the
// token (iam-utils' parsing: the second space-separated part, whatever the
// scheme) and returns an admin with Sub StaticSub. Any other token fails
// with ErrTokenNotFound.
func (s *StaticToken) Authenticate(_ context.Context, r *http.Request) (*User, error) {
	token, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	// Comparing digests keeps the time independent of the token's
	// length as well as of its content.
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], s.digest[:]) != 1 {
		return nil, ErrTokenNotFound.withCause(errors.New("not the static token"))
	}
	return &User{
		Sub:         StaticSub,
		Username:    StaticSub,
		Permissions: []string{PermissionAll},
		IsAdmin:     true,
	}, nil
}

// GenerateToken returns a new random token: 32 bytes from crypto/rand,
// base64url-encoded without padding (43 characters).
func GenerateToken() string {
	b := make([]byte, 32)
	// crypto/rand.Read never fails (it crashes the program if the
	// system's random source does).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// LoadOrCreateToken returns the token stored in the file at path, or, when
// there is none, generates one (GenerateToken), writes it there with mode
// 0600 and reports created. The parent directory is created (mode 0700)
// when missing. Creation is atomic: the file appears complete or not at
// all, and of two processes racing, both end up with the same token.
//
// An existing file that other users may read or write (mode bits beyond
// 0600) is refused, not fixed: whoever could read it may hold the admin
// token, so the operator must restrict it (chmod 600) or, better, delete
// it to have a new token generated. Windows has no such mode bits and is
// not checked.
func LoadOrCreateToken(path string) (token string, created bool, err error) {
	token, err = readTokenFile(path)
	if err == nil {
		return token, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create token folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".token-*") // mode 0600
	if err != nil {
		return "", false, fmt.Errorf("create token file: %w", err)
	}
	defer os.Remove(tmp.Name())
	token = GenerateToken()
	if _, err := tmp.WriteString(token + "\n"); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("write token file: %w", err)
	}
	// A hard link never replaces an existing file: if another process
	// created the token first, use its token.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			token, err = readTokenFile(path)
			return token, false, err
		}
		return "", false, fmt.Errorf("create token file %s: %w", path, err)
	}
	return token, true, nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("token file %s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %04o: other users may read the admin token; "+
			"run chmod 600 %s, or delete it to have a new token generated", path, info.Mode().Perm(), path)
	}
	const maxLen = 4096
	b, err := io.ReadAll(io.LimitReader(f, maxLen+1))
	if err != nil {
		return "", fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(b) > maxLen {
		return "", fmt.Errorf("token file %s is longer than %d bytes", path, maxLen)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("token file %s is empty; delete it to have a new token generated", path)
	}
	if _, err := NewStaticToken(token); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return token, nil
}
