package iam

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestStaticTokenAcceptsOnlyItsToken(t *testing.T) {
	tok := GenerateToken()
	s, err := NewStaticToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Authenticate(context.Background(), request("Bearer "+tok))
	if err != nil {
		t.Fatal(err)
	}
	if !u.Admin() || !u.Can("logs.read", "logs.push") || u.Sub != StaticSub {
		t.Errorf("static token user %+v is not an admin", u)
	}

	for _, tt := range []struct {
		header string
		want   error
	}{
		{"", ErrMissingAuthorization},
		{"Bearer", ErrInvalidAuthorization},
		{"Bearer " + tok[:len(tok)-1], ErrTokenNotFound},
		{"Bearer " + tok + "x", ErrTokenNotFound},
		{"Bearer  " + tok, ErrTokenNotFound},
	} {
		if _, err := s.Authenticate(context.Background(), request(tt.header)); !errors.Is(err, tt.want) {
			t.Errorf("header %q: got %v, want %v", tt.header, err, tt.want)
		}
	}
}

func TestNewStaticTokenRefusesUnusableTokens(t *testing.T) {
	for _, tok := range []string{"", "a b", "a\tb", "ab\n"} {
		if _, err := NewStaticToken(tok); err == nil {
			t.Errorf("NewStaticToken(%q) accepted", tok)
		}
	}
}

func TestGenerateToken(t *testing.T) {
	a, b := GenerateToken(), GenerateToken()
	if a == b {
		t.Fatal("two tokens are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || len(a) != 43 {
		t.Errorf("token %q: %d bytes, %v; want 32 random bytes, base64url", a, len(raw), err)
	}
}

func TestLoadOrCreateToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald-data", "admin.token")
	tok, created, err := LoadOrCreateToken(path)
	if err != nil || !created || tok == "" {
		t.Fatalf("first call: %q, %v, %v", tok, created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", info.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != tok {
		t.Errorf("file holds %q, want %q", b, tok)
	}
	again, created, err := LoadOrCreateToken(path)
	if err != nil || created || again != tok {
		t.Errorf("second call: %q, %v, %v; want the same token, not created", again, created, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestLoadOrCreateTokenRefusesReadableOrEmptyFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable")
	if err := os.WriteFile(readable, []byte(GenerateToken()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(readable); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group/world-readable token file: %v, want a refusal saying what to do", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateToken(empty); err == nil {
		t.Error("empty token file accepted")
	}
}

func TestLoadOrCreateTokenRaceYieldsOneToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	const n = 8
	tokens := make([]string, n)
	createdCount := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, created, err := LoadOrCreateToken(path)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			tokens[i] = tok
			if created {
				createdCount++
			}
		})
	}
	wg.Wait()
	if createdCount != 1 {
		t.Errorf("%d callers created the token, want 1", createdCount)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("callers got different tokens: %q", tokens)
		}
	}
}
