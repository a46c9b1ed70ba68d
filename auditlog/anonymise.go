package auditlog

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/heraldhq/herald/catalog"
)

// Anonymise erases userID from the entries of s now, in the anonymise
// mode, as EraseUser does, but without recording the erasure in the
// store's erasure state or in the log: for a tool or test with no
// erasure key. It returns the number of entries changed; running it again
// changes nothing.
func Anonymise(ctx context.Context, s Store, userID string) (int64, error) {
	if userID == "" {
		return 0, nil
	}
	x := newEraser(ErasureConfig{Store: s, Catalog: catalog.Default(), Mode: ErasureAnonymise, Logger: slog.New(slog.DiscardHandler)})
	names, err := Usernames(ctx, s, x.cfg.Catalog, userID)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	values := map[string]string{userID: Redacted}
	for _, u := range names {
		values[u] = Redacted
	}
	n, err := x.rewrite(ctx, values, nil)
	if err != nil {
		return 0, fmt.Errorf("anonymise user %s: %w", userID, err)
	}
	return n, nil
}

// PersonalFields returns those of keys, the top-level payload fields of an
// event called name, that name a person and that an erasure replaces when
// that person is deleted: user, username and account, id in IAM's user
// events (whose subject is the user), and the event's catalogued
// personal fields.
func PersonalFields(name string, keys []string) []string {
	var personal []catalog.PersonalField
	if c, ok := catalog.Default().Lookup(name); ok {
		personal = c.Personal
	}
	var out []string
	for _, k := range keys {
		switch {
		case k == "user" || k == "username" || k == "account":
			out = append(out, k)
		case k == "id" && len(name) > 9 && name[:9] == "iam.user.":
			out = append(out, k)
		case slices.ContainsFunc(personal, func(f catalog.PersonalField) bool { return f.Path == PayloadPointer(k)[len("/payload"):] }):
			out = append(out, k)
		}
	}
	return out
}
