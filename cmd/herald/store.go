package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/postgres"
	"github.com/heraldhq/herald/auditlog/sqlite"
)

// storeSpec is the audit store --store names.
type storeSpec struct {
	// postgres is the PostgreSQL URL without herald's own parameters;
	// empty for SQLite.
	postgres string
	// schema is the PostgreSQL schema of the tables (the URL's schema
	// parameter); empty is the connection's search_path.
	schema string
	// path is the SQLite file.
	path string
}

// schemeLike is the start of a URL: a scheme of two letters or more (one
// is a Windows drive) and its colon; schemeWord is what comes before a
// mistyped URL's "//" ("postgres" in postgres//host/db).
var (
	schemeLike = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]+:`)
	schemeWord = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:?$`)
)

// parseStore reads --store: postgres://… or postgresql://… (with an
// optional schema=NAME parameter), sqlite://PATH, or a SQLite file path;
// empty is <data>/audit.db. A value that looks like a URL of another kind,
// or like a URL with its "://" mistyped, is a usage error: taking it as a
// file name would quietly start an empty SQLite store.
func parseStore(raw, dataDir string) (storeSpec, error) {
	if raw == "" {
		return storeSpec{path: filepath.Join(dataDir, "audit.db")}, nil
	}
	scheme, rest, isURL := strings.Cut(raw, "://")
	if isURL && !strings.ContainsAny(scheme, `/\`) {
		switch strings.ToLower(scheme) {
		case "postgres", "postgresql":
			return parsePostgres(raw)
		case "sqlite":
			if rest == "" {
				return storeSpec{}, usagef("--store %q: want sqlite://PATH", raw)
			}
			return storeSpec{path: rest}, nil
		default:
			return storeSpec{}, usagef("--store %q: herald stores the audit log in PostgreSQL (postgres://…) or SQLite (a file path), not %s (env %s)", redactURL(raw), scheme, envStoreURL)
		}
	}
	before, _, doubleSlash := strings.Cut(raw, "//")
	if schemeLike.MatchString(raw) || (doubleSlash && schemeWord.MatchString(before)) {
		return storeSpec{}, usagef("--store %q looks like a URL without its \"://\": want postgres://user@host/db, sqlite://PATH or a file path (env %s)", redactURL(raw), envStoreURL)
	}
	return storeSpec{path: raw}, nil
}

// parsePostgres splits herald's schema parameter off a PostgreSQL URL:
// the driver would send it to the server as a setting, which refuses it.
func parsePostgres(raw string) (storeSpec, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return storeSpec{}, usagef("--store: %v", err)
	}
	q := u.Query()
	spec := storeSpec{schema: q.Get("schema")}
	if q.Has("schema") {
		if spec.schema == "" {
			return storeSpec{}, usagef("--store %s: the schema parameter is empty", u.Redacted())
		}
		q.Del("schema")
		u.RawQuery = q.Encode()
	}
	spec.postgres = u.String()
	return spec, nil
}

// describe says where the store is, without a password.
func (s storeSpec) describe() string {
	if s.postgres == "" {
		return "SQLite " + s.path
	}
	d := "PostgreSQL " + redactURL(s.postgres)
	if s.schema != "" {
		d += ", schema " + s.schema
	}
	return d
}

// open opens the store, bringing its schema up to date.
func (s storeSpec) open(ctx context.Context) (auditlog.Store, error) {
	if s.postgres != "" {
		var opts []postgres.Option
		if s.schema != "" {
			opts = append(opts, postgres.WithSchema(s.schema))
		}
		st, err := postgres.Open(ctx, s.postgres, opts...)
		if err != nil {
			return nil, fmt.Errorf("open audit store (--store): %w", err)
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, s.path)
	if err != nil {
		return nil, fmt.Errorf("open audit store (--store): %w", err)
	}
	return st, nil
}
