package bus_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestClientPackagesLinkNeitherTheServerNorTheExporters guards what a
// service that publishes and subscribes links: the bus and the transports
// must not pull in the NATS server herald serve embeds (package
// natsserver), nor the catalogue's document exporters (catalog/export).
// Validation against the catalogue stays: package catalog is allowed.
func TestClientPackagesLinkNeitherTheServerNorTheExporters(t *testing.T) {
	forbidden := []string{
		"github.com/nats-io/nats-server/",
		"github.com/heraldhq/herald/natsserver",
		"github.com/heraldhq/herald/catalog/export",
	}
	for _, pkg := range []string{"bus", "bus/driver", "bus/nats", "bus/amqp", "bus/memory"} {
		t.Run(strings.ReplaceAll(pkg, "/", "_"), func(t *testing.T) {
			deps := listDeps(t, "github.com/heraldhq/herald/"+pkg)
			for _, f := range forbidden {
				var found []string
				for _, dep := range deps {
					if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
						found = append(found, dep)
					}
				}
				if len(found) > 0 {
					t.Errorf("%s links %d packages of %s (%s, …)", pkg, len(found), f, found[0])
				}
			}
		})
	}
}

// listDeps returns the import paths pkg depends on, itself included, as
// `go list -deps` prints them (tests not included).
func listDeps(t *testing.T, pkg string) []string {
	t.Helper()
	deps := goList(t, "-deps", pkg)
	if len(deps) == 0 || deps[len(deps)-1] != pkg {
		t.Fatalf("go list -deps %s printed %d packages, not ending with %s", pkg, len(deps), pkg)
	}
	return deps
}

// goList runs go list with args and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list packages: %v", err)
	}
	out, err := exec.Command(goTool, append([]string{"list"}, args...)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// TestReadmeArchitectureTableMatchesTheImports checks the README's
// package table against go list: every package of the module is named in
// it, the imports column of each row lists exactly the herald packages its
// packages import, and each of those is in a row above.
func TestReadmeArchitectureTableMatchesTheImports(t *testing.T) {
	const module = "github.com/heraldhq/herald/"
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Architecture\n")
	if !ok {
		t.Fatal("README has no Architecture section")
	}
	type row struct {
		packages []string // the first column's packages
		named    string   // the first two columns, where any package may be named
		imports  []string // nil for "everything"
	}
	var rows []row
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) != 3 || !strings.HasPrefix(cells[0], "| `") {
			continue
		}
		r := row{packages: backticked(cells[0]), named: cells[0] + cells[1]}
		if imp := strings.TrimSuffix(cells[2], " |"); imp != "everything" {
			r.imports = backticked(imp)
			slices.Sort(r.imports)
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		t.Fatal("no package table under README's Architecture")
	}

	imports := make(map[string][]string) // package → herald packages it imports, sorted
	for _, line := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"...") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module)
		var own []string
		for _, imp := range fields[1:] {
			if p, ok := strings.CutPrefix(imp, module); ok && !strings.Contains(p, "internal") {
				own = append(own, p)
			}
		}
		slices.Sort(own)
		imports[pkg] = own
	}
	for pkg := range imports {
		if strings.Contains(pkg, "internal") {
			continue
		}
		named := false
		for _, r := range rows {
			named = named || slices.Contains(backticked(r.named), pkg)
		}
		if !named {
			t.Errorf("package %s is not in the README's architecture table", pkg)
		}
	}
	var above []string // the packages of the rows so far
	for _, r := range rows {
		for _, imp := range r.imports {
			if !slices.Contains(above, imp) {
				t.Errorf("README lists %s as imported by %v, but not above it", imp, r.packages)
			}
		}
		above = append(above, r.packages...)
		for _, pkg := range r.packages {
			have, ok := imports[pkg]
			if !ok {
				t.Errorf("README names package %s, which does not exist", pkg)
				continue
			}
			if r.imports != nil && !slices.Equal(have, r.imports) {
				t.Errorf("README says %s imports %v; it imports %v", pkg, r.imports, have)
			}
		}
	}
}

// backticked returns the `quoted` words of a Markdown cell.
func backticked(cell string) []string {
	var out []string
	parts := strings.Split(cell, "`")
	for i := 1; i < len(parts); i += 2 {
		out = append(out, parts[i])
	}
	return out
}
