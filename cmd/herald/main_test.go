package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
