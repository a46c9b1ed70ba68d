package bus_test

import (
	"os/exec"
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
	for _, pkg := range []string{"bus", "bus/nats", "bus/amqp", "bus/memory"} {
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
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list %s's dependencies: %v", pkg, err)
	}
	out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v: %s", pkg, err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != pkg {
		t.Fatalf("go list -deps %s printed %d packages, not ending with %s", pkg, len(deps), pkg)
	}
	return deps
}
