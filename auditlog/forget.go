package auditlog

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Forgetter is implemented by stores that remember the users whose
// entries were anonymised, as digests of their id and usernames: an entry
// of such a user that is stored after the anonymisation (an event
// redelivered after a crash, or in a batch of another replica that
// committed a moment later) is anonymised in turn. Without it, only the
// entries stored before a deletion are.
//
// A digest is SHA-256 over a kind and a value: it cannot be turned back
// into the id or e-mail address, but it confirms a guessed one.
type Forgetter interface {
	// Forget records digests; recording one again is not an error.
	Forget(ctx context.Context, digests [][]byte) error
	// Forgotten returns those of digests that are recorded.
	Forgotten(ctx context.Context, digests [][]byte) ([][]byte, error)
}

// The kinds of value a digest is of.
const (
	digestUserID   = "user-id"
	digestUsername = "username"
)

func forgetDigest(kind, value string) []byte {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return sum[:]
}

// digests are what Forget records for a.
func (a Anonymisation) digests() [][]byte {
	var out [][]byte
	if a.UserID != "" {
		out = append(out, forgetDigest(digestUserID, a.UserID))
	}
	for _, u := range a.Usernames {
		if u != "" {
			out = append(out, forgetDigest(digestUsername, u))
		}
	}
	return out
}

// candidate is a value of an entry that may name a deleted user.
type candidate struct{ kind, value string }

// candidates are the values of e that Anonymise would redact for some
// user: the payload's user, id and account as ids, its user and username
// as usernames (iam.user.loginFailed names its user by e-mail).
func candidates(e Entry, into map[string]candidate) {
	var p struct {
		ID, Account, User, Username json.RawMessage
	}
	_ = json.Unmarshal(e.Payload, &p)
	add := func(kind string, raw json.RawMessage) {
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" || s == Redacted {
			return
		}
		into[string(forgetDigest(kind, s))] = candidate{kind, s}
	}
	for _, v := range []json.RawMessage{p.ID, p.Account, p.User} {
		add(digestUserID, v)
	}
	for _, v := range []json.RawMessage{p.User, p.Username} {
		add(digestUsername, v)
	}
	if e.User != "" && e.User != Redacted {
		into[string(forgetDigest(digestUserID, e.User))] = candidate{digestUserID, e.User}
		into[string(forgetDigest(digestUsername, e.User))] = candidate{digestUsername, e.User}
	}
}

// anonymiseLate anonymises the entries just committed that name a user
// the store has forgotten. It runs after the entries' commit and the
// deletion records its user before anonymising, so whichever of the two
// commits first, one of them sees the other. It returns how many entries
// it anonymised.
func (in *Ingester) anonymiseLate(entries []Entry) (int64, error) {
	f, ok := in.cfg.Store.(Forgetter)
	if !ok {
		return 0, nil
	}
	cands := make(map[string]candidate)
	for _, e := range entries {
		if e.Name != UserDeleted {
			candidates(e, cands)
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	digests := make([][]byte, 0, len(cands))
	for d := range cands {
		digests = append(digests, []byte(d))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	found, err := f.Forgotten(ctx, digests)
	if err != nil || len(found) == 0 {
		return 0, err
	}
	var usernames []string
	var ids []string
	for _, d := range found {
		c := cands[string(d)]
		switch c.kind {
		case digestUserID:
			ids = append(ids, c.value)
		case digestUsername:
			usernames = append(usernames, c.value)
		}
	}
	var total int64
	for _, id := range ids {
		// A user's own iam.user.created or modified stored after their
		// deletion names a username the deletion could not know.
		n, err := in.forgetUser(ctx, id, usernamesOf(entries, []string{id}))
		if err != nil {
			return total, err
		}
		total += n
	}
	if len(usernames) > 0 {
		n, err := Anonymisation{Usernames: usernames}.apply(ctx, in.cfg.Store)
		if err != nil {
			return total, fmt.Errorf("anonymise entries of a deleted user stored after the deletion: %w", err)
		}
		total += n
	}
	if in.cfg.Metrics != nil {
		in.cfg.Metrics.Anonymised.Add(float64(total))
	}
	in.cfg.Logger.Info("anonymised entries stored after their user's deletion", "entries", total)
	return total, nil
}

// usernamesOf returns the usernames that the iam.user.created and
// iam.user.modified entries of ids hold.
func usernamesOf(entries []Entry, ids []string) []string {
	var out []string
	for _, e := range entries {
		if e.Name != "iam.user.created" && e.Name != "iam.user.modified" {
			continue
		}
		var p struct{ ID, Username string }
		if json.Unmarshal(e.Payload, &p) != nil || p.Username == "" || p.Username == Redacted {
			continue
		}
		if slices.Contains(ids, p.ID) && !slices.Contains(out, p.Username) {
			out = append(out, p.Username)
		}
	}
	return out
}

// forgetUser records a deleted user (when the store keeps such records)
// and anonymises their entries, in an order that leaves no entry behind:
// the id is recorded, then the usernames are read from the user's entries
// (with known, those learned elsewhere), recorded, and only then
// anonymised, since anonymising erases them. An entry committed after a
// step is checked against what that step recorded (anonymiseLate); one
// committed before it, the next step reads. It returns the entries
// changed.
func (in *Ingester) forgetUser(ctx context.Context, userID string, known []string) (int64, error) {
	forget := func(Anonymisation) error { return nil }
	if f, ok := in.cfg.Store.(Forgetter); ok {
		forget = func(a Anonymisation) error {
			if err := f.Forget(ctx, a.digests()); err != nil {
				return fmt.Errorf("anonymise user %s: record the deletion: %w", userID, err)
			}
			return nil
		}
	}
	if err := forget(Anonymisation{UserID: userID}); err != nil {
		return 0, err
	}
	names, err := Usernames(ctx, in.cfg.Store, userID)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	for _, u := range known {
		if !slices.Contains(names, u) {
			names = append(names, u)
		}
	}
	if err := forget(Anonymisation{Usernames: names}); err != nil {
		return 0, err
	}
	n, err := Anonymisation{UserID: userID, Usernames: names}.apply(ctx, in.cfg.Store)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	return n, nil
}
