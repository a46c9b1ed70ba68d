package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise it comes from the module's build information.
var version = ""

// buildVersion is herald's version, with the commit it was built from when
// the build recorded it (go build or go install in a git checkout; go run
// and -buildvcs=false record none).
func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(version, bi)
}

// describeBuild is the version of a build: release (the -X main.version of
// a release build), else the module's version, else "(devel)"; then the
// first 12 digits of the VCS commit unless the version already holds
// them (a pseudo-version does), and "+dirty" when the work tree had
// changes that are not in that commit.
func describeBuild(release string, bi *debug.BuildInfo) string {
	v := release
	var commit string
	var dirty bool
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit != "" && !strings.Contains(v, commit) {
		v += " " + commit
	}
	if commit != "" && dirty && !strings.Contains(v, "+dirty") {
		v += "+dirty"
	}
	return v
}

// versionLine is what herald version and herald --version print.
func versionLine() string {
	return fmt.Sprintf("herald %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print herald's version (also herald --version)",
		Example: "  herald version\n  herald --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprint(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}
