package console

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	h := New(Config{})
	for path, wantType := range map[string]string{
		"/":                   "text/html; charset=utf-8",
		"/console/app.js":     "text/javascript; charset=utf-8",
		"/console/style.css":  "text/css; charset=utf-8",
		"/console/icon.svg":   "image/svg+xml",
		"/catalog.json":       "application/json; charset=utf-8",
		"/asyncapi.json":      "application/json; charset=utf-8",
		"/nothing-here":       "text/plain; charset=utf-8",
		"/console/missing.js": "text/plain; charset=utf-8",
	} {
		resp := get(t, h, path)
		wantStatus := http.StatusOK
		if strings.Contains(path, "missing") || strings.Contains(path, "nothing") {
			wantStatus = http.StatusNotFound
		}
		if resp.StatusCode != wantStatus || resp.Header.Get("Content-Type") != wantType {
			t.Errorf("GET %s: %d %q, want %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), wantStatus, wantType)
		}
		for k, v := range map[string]string{
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, v)
			}
		}
	}
	for _, directive := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(ContentSecurityPolicy, directive) {
			t.Errorf("the policy lacks %s", directive)
		}
	}
	if strings.Contains(ContentSecurityPolicy, "unsafe") {
		t.Error("the policy allows something unsafe")
	}
}

// TestAssetsNeverParseHTML guards the rule that event values are set as
// text: no script of the console may hand a string to the HTML parser or
// evaluate one, and the page has no inline script or style to allow.
func TestAssetsNeverParseHTML(t *testing.T) {
	forbidden := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(['"](on|style)|createContextualFragment|DOMParser`)
	inline := regexp.MustCompile(`<script>|<script [^>]*>[^<]|\sstyle=|\son[a-z]+=`)
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := fs.ReadFile(assets, path)
		if strings.HasSuffix(path, ".js") {
			if m := forbidden.Find(b); m != nil {
				t.Errorf("%s uses %s", path, m)
			}
		}
		if strings.HasSuffix(path, ".html") {
			if m := inline.Find(b); m != nil {
				t.Errorf("%s has inline script or style: %s", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCatalogueNamesEachEventsPersonalData(t *testing.T) {
	resp := get(t, New(Config{}), "/catalog.json")
	b, _ := io.ReadAll(resp.Body)
	var doc struct {
		Services []struct{ ID string }
		Events   []struct {
			Name         string
			Audited      bool
			PersonalData []string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	personal := map[string][]string{}
	audited := 0
	for _, e := range doc.Events {
		personal[e.Name] = e.PersonalData
		if e.Audited {
			audited++
		}
	}
	if len(doc.Services) == 0 || audited == 0 || audited == len(doc.Events) {
		t.Fatalf("%d services, %d events of which %d audited: want both kinds", len(doc.Services), len(doc.Events), audited)
	}
	for name, want := range map[string][]string{
		"iam.user.created":      {"id", "username"},
		"flowrepo.flow.created": {"user"},
		"iam.tenant.created":    {},
	} {
		if got, ok := personal[name]; !ok || !slices.Equal(got, want) {
			t.Errorf("%s: personal data %v, want %v", name, got, want)
		}
	}
}
