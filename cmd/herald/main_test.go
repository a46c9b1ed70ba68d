package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestVersionPrintsHeraldAndGo(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "herald ") || !strings.Contains(out.String(), "go1.") {
		t.Errorf("version printed %q", out.String())
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"version"}, 0},
		{[]string{"version", "extra"}, 2},
		{[]string{"no-such-command"}, 2},
		{[]string{"catalog", "--output", "yaml"}, 2},
		{[]string{"serve", "--no-such-flag"}, 2},
		{[]string{"catalog", "check", "flowrepo.flow.creatd"}, 1},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(context.Background(), c.args, &out, &errb); code != c.code {
			t.Errorf("herald %s: exit %d, want %d (%s)", strings.Join(c.args, " "), code, c.code, errb.String())
		}
	}
}

func TestVersionFlagPrintsWhatVersionPrints(t *testing.T) {
	var cmdOut, flagOut, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &cmdOut, &errb); code != 0 {
		t.Fatalf("herald version: exit %d: %s", code, errb.String())
	}
	if code := run(context.Background(), []string{"--version"}, &flagOut, &errb); code != 0 {
		t.Fatalf("herald --version: exit %d: %s", code, errb.String())
	}
	if flagOut.String() != cmdOut.String() {
		t.Errorf("herald --version printed %q, herald version %q", flagOut.String(), cmdOut.String())
	}
}

func TestTheVersionNamesTheCommitItWasBuiltFrom(t *testing.T) {
	const commit = "c5b32286415a4df4e376939ce0eaa3abd6174e1d"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: commit}, {Key: "vcs.modified", Value: modified}}
	}
	cases := []struct {
		name    string
		release string
		bi      *debug.BuildInfo
		want    string
	}{
		{"go build in a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, "(devel) c5b32286415a"},
		{"with changes", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, "(devel) c5b32286415a+dirty"},
		{"pseudo-version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129232822-c5b32286415a"}, Settings: vcs("false")}, "v0.0.0-20261129232822-c5b32286415a"},
		{"pseudo-version with changes", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261129232822-c5b32286415a+dirty"}, Settings: vcs("true")}, "v0.0.0-20261129232822-c5b32286415a+dirty"},
		{"release build", "v1.2.0", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, "v1.2.0 c5b32286415a"},
		{"go install of a release", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, "v1.2.0"},
		{"go run", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"no build information", "", nil, "(devel)"},
	}
	for _, c := range cases {
		if got := describeBuild(c.release, c.bi); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.Name() != "help" && c.Name() != "completion" && c.Parent() != nil && c.Parent().Name() != "completion" {
			if strings.TrimSpace(c.Example) == "" || c.Short == "" {
				t.Errorf("%s has no example or no short description", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}
