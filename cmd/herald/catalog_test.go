package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/catalog/export"
)

// herald runs the command line in process, as main does, and returns its
// exit code and output.
func herald(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// listedNames returns the event names of `herald catalog`'s table: the
// indented rows.
func listedNames(out string) []string {
	var names []string
	for line := range strings.Lines(out) {
		if rest, ok := strings.CutPrefix(line, "  "); ok {
			names = append(names, strings.Fields(rest)[0])
		}
	}
	return names
}

func TestCatalogListsEverySeedName(t *testing.T) {
	code, out, stderr := herald(t, "catalog")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	f, err := os.Open("../../catalog/testdata/seed-names.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := listedNames(out)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" && !slices.Contains(listed, name) {
			t.Errorf("herald catalog does not list %s", name)
		}
	}
	if len(listed) != len(catalog.Default().Entries()) {
		t.Errorf("listed %d events, the catalogue has %d", len(listed), len(catalog.Default().Entries()))
	}
}

func TestCatalogGroupsRowsUnderTheirService(t *testing.T) {
	_, out, _ := herald(t, "catalog")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], "NAME ") || !strings.Contains(lines[0], "KIND") ||
		!strings.Contains(lines[0], "AUDITED") || !strings.HasSuffix(lines[0], "DESCRIPTION") {
		t.Fatalf("header = %q, want NAME KIND AUDITED DESCRIPTION", lines[0])
	}
	service := ""
	var services []string
	for _, line := range lines[1:] {
		switch {
		case line == "" || strings.Contains(line, " audited) from "):
		case strings.HasPrefix(line, "  "):
			name := strings.Fields(line)[0]
			e, ok := catalog.Default().Lookup(name)
			if !ok || e.Service != service {
				t.Errorf("%s is listed under %q", name, service)
			}
		default:
			service = line
			services = append(services, service)
		}
	}
	if !slices.Equal(services, catalog.Default().Services()) {
		t.Errorf("service headings %q, want %q", services, catalog.Default().Services())
	}
	// Columns line up across services: every KIND starts in one column.
	col := strings.Index(lines[0], "KIND")
	for _, line := range lines[1:] {
		if strings.HasPrefix(line, "  ") && !strings.HasPrefix(line[col:], "canonical") &&
			!strings.HasPrefix(line[col:], "alias") && !strings.HasPrefix(line[col:], "operational") {
			t.Errorf("KIND is not in column %d: %q", col, line)
		}
	}
}

func TestCatalogPatternListsExactlyTheMatchingNames(t *testing.T) {
	tests := map[string][]string{
		"iam.*.created": {"iam.permission.created", "iam.role.created", "iam.tenant.created", "iam.token.created", "iam.user.created"},
		"#.ownerAdded":  {"secrets.secret.ownerAdded"},
		"flow.start*":   nil, // refused: a wildcard must be a whole word
	}
	for pattern, want := range tests {
		code, out, stderr := herald(t, "catalog", pattern)
		if want == nil {
			if code != 2 {
				t.Errorf("herald catalog %q: exit %d, want 2 (usage)", pattern, code)
			}
			continue
		}
		if code != 0 {
			t.Fatalf("herald catalog %q: exit %d: %s", pattern, code, stderr)
		}
		got := listedNames(out)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("herald catalog %q listed %q, want %q", pattern, got, want)
		}
	}
}

func TestCatalogPatternMatchingNothingFailsWithASuggestion(t *testing.T) {
	code, out, stderr := herald(t, "catalog", "flowrepo.flow.creatd")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want exit 1 and no listing", code, out)
	}
	if !strings.Contains(stderr, "did you mean flowrepo.flow.created?") {
		t.Fatalf("stderr %q does not suggest flowrepo.flow.created", stderr)
	}
}

func TestCatalogOutputFormats(t *testing.T) {
	code, out, _ := herald(t, "catalog", "--output", "json")
	var doc struct{ Events []catalog.Entry }
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Events) != len(catalog.Default().Entries()) {
		t.Errorf("--output json: exit %d, not the catalogue as JSON", code)
	}

	code, out, _ = herald(t, "catalog", "-o", "json", "secrets.#")
	doc.Events = nil
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Events) != 7 {
		t.Errorf("-o json secrets.#: exit %d, %d events, want the 7 secrets.* events", code, len(doc.Events))
	}

	code, out, _ = herald(t, "catalog", "-o", "markdown")
	if code != 0 || out != string(export.Markdown(catalog.Default())) {
		t.Errorf("-o markdown: exit %d, not docs/events.md", code)
	}

	code, out, _ = herald(t, "catalog", "-o", "asyncapi")
	var api struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &api) != nil || api.AsyncAPI != "3.0.0" || len(api.Channels) == 0 {
		t.Errorf("-o asyncapi: exit %d, not an AsyncAPI 3.0.0 document", code)
	}
}

func TestCatalogRefusesABadOutputAsAUsageError(t *testing.T) {
	code, out, stderr := herald(t, "catalog", "--output", "yaml")
	if code != 2 || out != "" || !strings.Contains(stderr, "text, json, markdown, asyncapi") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 naming the formats", code, out, stderr)
	}
}

func TestCatalogRefusesAMalformedPatternAsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"catalog", "iam..created"}, {"catalog", "a", "b"}} {
		if code, _, stderr := herald(t, args...); code != 2 {
			t.Errorf("herald %q: exit %d (%s), want 2", args, code, stderr)
		}
	}
}

func TestCatalogCheckConfirmsAKnownName(t *testing.T) {
	code, out, stderr := herald(t, "catalog", "check", "secrets.secret.created")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(out, "ok: secrets.secret.created") || !strings.Contains(out, "alias of secret-service.secret.created") {
		t.Fatalf("stdout %q, want an ok naming the canonical event", out)
	}
}

func TestCatalogCheckFailsOnAnUnknownNameWithASuggestion(t *testing.T) {
	code, out, stderr := herald(t, "catalog", "check", "flowrepo.flow.creatd")
	if code != 1 || out != "" || !strings.Contains(stderr, "did you mean flowrepo.flow.created?") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 with the suggestion", code, out, stderr)
	}
}

func TestCatalogCheckValidatesThePayload(t *testing.T) {
	code, out, stderr := herald(t, "catalog", "check", "flowrepo.flow.created", "--payload", `{"flowId":"f1","user":"u1","tenant":""}`)
	if code != 0 || !strings.Contains(out, "payload matches") {
		t.Fatalf("valid payload: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = herald(t, "catalog", "check", "iam.user.created", "--payload", `{"id":5,"username":"jane@example.com"}`)
	if code != 1 || !strings.Contains(stderr, "/id") || !strings.Contains(stderr, `"type"`) {
		t.Fatalf("invalid payload: exit %d, stderr %q; want exit 1 naming /id and the type rule", code, stderr)
	}
	code, _, stderr = herald(t, "catalog", "check", "iam.user.created", "--payload", `{"id":`)
	if code != 2 {
		t.Fatalf("payload that is not JSON: exit %d (%s), want 2", code, stderr)
	}
}

func TestCatalogCheckReadsThePayloadFromAFileOrStandardInput(t *testing.T) {
	path := t.TempDir() + "/payload.json"
	if err := os.WriteFile(path, []byte(`{"id":"f1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := herald(t, "catalog", "check", "flow.started", "--payload", "@"+path); code != 0 || !strings.Contains(out, "payload matches") {
		t.Fatalf("@FILE: exit %d, stdout %q, stderr %q", code, out, stderr)
	}

	// - and, as herald publish writes it, @-.
	for _, stdin := range []string{"-", "@-"} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetArgs([]string{"catalog", "check", "flow.started", "--payload", stdin})
		root.SetIn(strings.NewReader(`{"id":7}`))
		root.SetOut(&out)
		root.SetErr(&out)
		err := root.Execute()
		var se *catalog.SchemaError
		if err == nil || !errors.As(err, &se) || se.Pointer != "/id" {
			t.Errorf("--payload %s with {\"id\":7} on standard input: err = %v, want a schema error at /id", stdin, err)
		}
	}
}

func TestCatalogCommandsHaveHelpWithExamples(t *testing.T) {
	for _, args := range [][]string{{"catalog", "--help"}, {"catalog", "check", "--help"}} {
		code, out, _ := herald(t, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "herald catalog") {
			t.Errorf("herald %q: exit %d, help without examples:\n%s", args, code, out)
		}
	}
}
