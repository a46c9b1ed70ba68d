package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// EnvRequire, set to 1, turns every skip of Need and SkipUnless into a
// failure: on CI nothing may skip.
const EnvRequire = "HERALD_REQUIRE_SERVICES"

var skips = struct {
	sync.Mutex
	byVar map[string][]string // variable → tests skipped for want of it
}{byVar: map[string][]string{}}

// Need returns the value of the environment variable env, which points a
// test at an outside service (example is a value to set). Unset, the test
// is skipped saying which variable enables it — or fails under
// HERALD_REQUIRE_SERVICES=1 — and the skip is counted in the package's
// summary (see Main).
func Need(t testing.TB, env, example string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	SkipUnless(t, env, fmt.Sprintf("set %s to run this test (for example %s)", env, example))
	return ""
}

// SkipUnless skips t for reason, which env would lift (a variable to set,
// or to unset), failing it instead under HERALD_REQUIRE_SERVICES=1, and
// counts the skip in the package's summary.
func SkipUnless(t testing.TB, env, reason string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("%s; %s=1 requires every test to run", reason, EnvRequire)
	}
	skips.Lock()
	skips.byVar[env] = append(skips.byVar[env], t.Name())
	skips.Unlock()
	t.Skip(reason)
}

// Main runs the package's tests and then prints one line per variable
// whose absence skipped tests: how many, which, and the variable. `go test`
// shows a passing package's output only with -v, so without -v the lines
// go to the terminal the tests run in, when there is one.
//
// A package with tests that call Need or SkipUnless has
//
//	func TestMain(m *testing.M) { os.Exit(testkit.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	lines := summary(packageDir())
	if len(lines) == 0 {
		return code
	}
	out := os.Stdout
	if !testing.Verbose() && code == 0 {
		tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
		if err != nil {
			return code
		}
		defer tty.Close()
		out = tty
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return code
}

func summary(pkg string) []string {
	skips.Lock()
	defer skips.Unlock()
	vars := make([]string, 0, len(skips.byVar))
	for v := range skips.byVar {
		vars = append(vars, v)
	}
	slices.Sort(vars)
	var lines []string
	for _, v := range vars {
		tests := skips.byVar[v]
		shown := tests
		if len(shown) > 3 {
			shown = append(shown[:3:3], "…")
		}
		lines = append(lines, fmt.Sprintf("%s: %d test(s) skipped for want of %s (%s)", pkg, len(tests), v, strings.Join(shown, ", ")))
	}
	return lines
}

// packageDir is the package under test as a path from the module's root
// (go test runs a test binary in its package's folder).
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Base(os.Args[0])
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, wd)
			if err != nil {
				return wd
			}
			return "./" + filepath.ToSlash(rel)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return wd
		}
		dir = parent
	}
}
