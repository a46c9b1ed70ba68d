package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
)

// The events whose payload id and username name a user: where the audit
// log learns the usernames (e-mail addresses) a deleted user is
// anonymised by.
const (
	UserCreated  = "iam.user.created"
	UserModified = "iam.user.modified"
)

// Redacted replaces anonymised values.
const Redacted = "XXXXXXXXXX"

// Anonymisation is what one user's deletion anonymises.
type Anonymisation struct {
	// UserID is the deleted user's IAM id.
	UserID string
	// Usernames are the user's usernames (e-mail addresses), learned from
	// their iam.user.created and iam.user.modified entries.
	Usernames []string
}

// Anonymise redacts a deleted user's entries in s, as OIH does and where
// OIH misses them: it learns the user's usernames (Usernames), then
// rewrites every entry that names the user (Anonymisation.Terms) as
// Anonymisation.Redact says. It returns the number of entries changed;
// running it again changes nothing.
func Anonymise(ctx context.Context, s Store, userID string) (int64, error) {
	names, err := Usernames(ctx, s, userID)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	n, err := Anonymisation{UserID: userID, Usernames: names}.apply(ctx, s)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	return n, nil
}

// apply rewrites the entries of s that name a's user (Terms) as Redact
// says, and returns the number changed. Every change goes through Erase,
// so proofs stay valid.
func (a Anonymisation) apply(ctx context.Context, s Store) (int64, error) {
	terms := a.Terms()
	if len(terms) == 0 {
		return 0, nil
	}
	return s.Rewrite(ctx, terms, a.Redact)
}

// Usernames returns the usernames in the payloads of userID's
// iam.user.created and iam.user.modified entries (those whose payload id
// is userID), sorted, without repeats and without redacted ones.
func Usernames(ctx context.Context, s Store, userID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	var out []string
	for _, name := range []string{UserCreated, UserModified} {
		p, err := s.Query(ctx, Query{Name: name, Payload: map[string]string{"id": userID}, Order: OldestFirst})
		if err != nil {
			return nil, fmt.Errorf("usernames of %s: %w", userID, err)
		}
		for _, e := range p.Entries {
			fs, err := jsonobj.Fields(e.Payload)
			if err != nil {
				return nil, fmt.Errorf("usernames of %s: entry %s: %w", userID, e.ID, err)
			}
			for _, f := range fs {
				if u, ok := jsonobj.String(f.Raw); ok && f.Key == "username" && u != "" && u != Redacted {
					out = append(out, u)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Terms are the terms of the entries an anonymisation rewrites: payload
// user, id or account equal to the user id, or payload user or username
// equal to one of the usernames.
func (a Anonymisation) Terms() []Term {
	var out []Term
	if a.UserID != "" {
		for _, k := range []string{"user", "id", "account"} {
			out = append(out, Term{k, a.UserID})
		}
	}
	for _, u := range a.Usernames {
		if u != "" {
			out = append(out, Term{"user", u}, Term{"username", u})
		}
	}
	return out
}

// Redact anonymises one entry, an Edit for Store.Rewrite: every top-level
// payload string equal to the user id or one of the usernames, and any
// username that is set, become Redacted; nested values are left alone, as
// OIH leaves them. The values are erased with Erase, so the entry's leaf
// hash and every proof stay valid. The User column, which mirrors the
// payload's user, is redacted with it. An entry already redacted is not
// changed.
func (a Anonymisation) Redact(e *Entry) (bool, error) {
	fs, err := jsonobj.Fields(e.Payload)
	if err != nil {
		return false, fmt.Errorf("entry %s: payload: %w", e.ID, err)
	}
	var pointers []string
	for _, f := range fs {
		v, isString := jsonobj.String(f.Raw)
		hit := isString && v != Redacted && v != "" && a.names(v)
		if f.Key == "username" && isSet(f.Raw) && !(isString && v == Redacted) {
			hit = true
		}
		if hit {
			pointers = append(pointers, PayloadPointer(f.Key))
		}
	}
	if len(pointers) == 0 {
		return false, nil
	}
	if e.Seed == nil && e.Salts == nil && e.ContentHash == nil {
		// Appended before entries had seeds, and not yet sealed: the
		// integrator seals the redacted content.
		redacted, _ := json.Marshal(Redacted)
		for i, f := range fs {
			if slices.Contains(pointers, PayloadPointer(f.Key)) {
				fs[i].Raw = redacted
			}
		}
		e.Payload = jsonobj.Encode(fs)
	} else if err := Erase(e, pointers, Redacted); err != nil {
		return false, err
	}
	if e.User != "" && a.names(e.User) {
		e.User = Redacted
	}
	return true, nil
}

// names reports whether v is the user's id or one of their usernames.
func (a Anonymisation) names(v string) bool {
	return v == a.UserID || slices.Contains(a.Usernames, v)
}

// isSet reports whether a JSON value is truthy in JavaScript's sense (OIH
// redacts a username "if truthy"): not null, false, "" or zero.
func isSet(raw json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(raw)); {
	case s == "null" || s == "false" || s == `""`:
		return false
	case len(s) > 0 && (s[0] == '-' || s[0] >= '0' && s[0] <= '9'):
		f, err := strconv.ParseFloat(s, 64)
		return err != nil || f != 0
	}
	return true
}

// PersonalFields returns those of keys, the top-level payload fields of an
// event called name, that name a person and that Anonymise redacts when
// that person is deleted: user, username and account, and id in IAM's
// user events (whose subject is the user).
func PersonalFields(name string, keys []string) []string {
	var out []string
	for _, k := range keys {
		switch k {
		case "user", "username", "account":
			out = append(out, k)
		case "id":
			if strings.HasPrefix(name, "iam.user.") {
				out = append(out, k)
			}
		}
	}
	return out
}
