// Package migration reads the versioned schema migrations the audit-log
// stores embed: files named NNNN_what.sql, each bringing the schema to
// version NNNN. A released file is never edited; a change is a new file.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema version.
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// Load returns the migrations in dir of fsys, in version order. It fails
// on a file whose name does not start with a positive version number, and
// on two files with one version.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, f := range files {
		base := path.Base(f)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with its version number", base)
		}
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: base, SQL: string(body)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].Name, out[i].Name)
		}
	}
	return out, nil
}

// Pending returns the migrations after version current, in order. A
// database at a version newer than the last migration is refused: it was
// written by a newer herald, and guessing would be worse than stopping.
func Pending(ms []Migration, current int) ([]Migration, error) {
	if len(ms) > 0 && current > ms[len(ms)-1].Version {
		return nil, fmt.Errorf("the database's schema version %d is newer than this herald's %d", current, ms[len(ms)-1].Version)
	}
	for i, m := range ms {
		if m.Version > current {
			return ms[i:], nil
		}
	}
	return nil, nil
}
