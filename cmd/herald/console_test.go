package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/internal/testkit"
)

var updateScreenshot = flag.Bool("update", false, "TestConsoleScreenshot rewrites docs/console.png")

// The tokens the emulated IAM of the console tests knows.
var consoleIdentities = map[string]string{
	"admin-token": `{"_id":"admin-1","username":"admin@example.com","permissions":["all"]}`,
	"alice-token": `{"_id":"alice","username":"alice@a.example","tenant":"tenant-a","permissions":["logs.read"]}`,
}

// chromiumPath is the browser the console tests drive: HERALD_TEST_CHROMIUM.
func chromiumPath(t *testing.T) string {
	t.Helper()
	return testkit.Need(t, "HERALD_TEST_CHROMIUM", "/usr/bin/chromium, from Debian's chromium package")
}

// consoleServe runs herald serve with IAM introspection against an
// emulated IAM that knows consoleIdentities, and more flags, and returns
// its base URL and broker URL. It stops when the test ends.
func consoleServe(t *testing.T, flags ...string) (api, broker string) {
	t.Helper()
	iamSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Token string }
		json.NewDecoder(r.Body).Decode(&body)
		doc, ok := consoleIdentities[body.Token]
		if !ok {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, doc)
	}))
	t.Cleanup(iamSrv.Close)
	t.Setenv("INTROSPECT_ENDPOINT_BASIC", iamSrv.URL+"/api/v1/tokens/introspect")
	t.Setenv("IAM_TOKEN", "svc-token")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var stderr testkit.Buffer
	go func() {
		defer close(done)
		run(ctx, append([]string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, flags...), pw, &stderr)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return banner(t, pr)
}

// publishEvents runs herald publish.
func publishEvents(t *testing.T, broker string, args ...string) {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append(append([]string{"publish"}, args...), "--broker", broker), &out, &errb); code != 0 {
		t.Fatalf("herald publish %v: exit %d: %s", args, code, errb.String())
	}
}

// total is GET /logs's total for query as token.
func total(t *testing.T, api, token, query string) int {
	t.Helper()
	p, code := getLogs(t, api+"/logs?"+query, token)
	if code != http.StatusOK {
		t.Fatalf("GET /logs?%s: %d", query, code)
	}
	return p.Meta.Total
}

// xssPayload is an event payload whose values would run script if the
// console ever parsed them as HTML.
const xssPayload = `{"flowId":"<img src=x onerror=alert(1)>","user":"</script><script>alert(2)</script>","tenant":"tenant-x","note":"<svg onload=alert(3)>"}`

// seedConsole publishes a simulated story and a few events of known
// tenants, and waits until the audit log holds them all, with the
// records of the story's erasures; it returns that number.
func seedConsole(t *testing.T, api, broker string) int {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--count", "400", "--seed", "11", "--broker", broker, "--output", "json"}, &out, &errb); code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, errb.String())
	}
	for i, tenant := range []string{"tenant-a", "tenant-a", "tenant-b", "tenant-b", "tenant-b"} {
		publishEvents(t, broker, "flowrepo.flow.created", "--service", "flow-repository",
			"--payload", fmt.Sprintf(`{"flowId":"flow-%d","user":"user-%d","tenant":%q}`, i, i, tenant))
	}
	publishEvents(t, broker, "flowrepo.flow.created", "--service", "flow-repository", "--payload", xssPayload)
	var sim struct {
		ByName map[string]int `json:"byName"`
	}
	json.Unmarshal(out.Bytes(), &sim)
	// With the log's own record of each simulated user's erasure, which
	// follows the deletion's entry: waiting for fewer would return before
	// the records, and every total after would count them.
	want := 6 + sim.ByName[auditlog.UserDeleted]
	for name, n := range sim.ByName {
		if e, ok := catalog.Default().Lookup(name); ok && e.Audited {
			want += n
		}
	}
	waitFor(t, 30*time.Second, "the seeded events in the audit log", func() bool {
		return total(t, api, "admin-token", "") == want
	})
	return want
}

// browser starts Chromium headless with a fresh profile and returns a
// context of its first tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start %s: %v", chromiumPath(t), err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// tab opens a new tab (its own sessionStorage) that counts the JavaScript
// dialogs (alert, confirm) the page opens, and dismisses them.
func tab(t *testing.T, bctx context.Context) (context.Context, *atomic.Int32) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	var dialogs atomic.Int32
	events := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range events {
			if err != nil {
				return
			}
			dialogs.Add(1)
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return ctx, &dialogs
}

// screenshots is the folder the browser tests save their screenshots in,
// kept after the run: HERALD_TEST_SCREENSHOTS, or a new temporary one.
func screenshots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HERALD_TEST_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "herald-console-"); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(screenshots(t), strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	return path
}

// signIn opens the console and signs in with token, then waits for the
// table to show entries.
func signIn(api, token string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(api+"/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")),
		waitJS(`document.querySelectorAll('#entries tbody tr[data-id]').length > 0`, 15*time.Second),
	)
}

// waitJS waits until expr is true in the page.
func waitJS(expr string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(25*time.Millisecond))
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

const rowsJS = `[...document.querySelectorAll('#entries tbody tr[data-id]')]`

// withoutAuditedReads is serve's flag for the browser tests that count a
// seeded story exactly: with audited reads on, every read the console and
// the test make is an entry too (TestConsoleWithAuditedReads covers that).
const withoutAuditedReads = "--audit-reads=false"

func TestConsoleInChromium(t *testing.T) {
	bctx := browser(t)
	api, broker := consoleServe(t, withoutAuditedReads)
	all := seedConsole(t, api, broker)

	t.Run("sign in with the admin token shows the simulated events", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		if err := chromedp.Do(ctx, signIn(api, "admin-token")); err != nil {
			t.Fatal(err)
		}
		defer screenshot(t, ctx, "signed-in")
		if got := evalJS[string](t, ctx, `document.querySelector('#summary').textContent`); got != fmt.Sprintf("%s entries", thousands(all)) {
			t.Errorf("summary %q, want the %d stored", got, all)
		}
		if n := evalJS[int](t, ctx, rowsJS+`.length`); n != 50 {
			t.Errorf("%d rows on the first page, want 50", n)
		}
		if evalJS[string](t, ctx, `sessionStorage.getItem('herald.token')`) != "admin-token" || strings.Contains(evalJS[string](t, ctx, `location.href`), "admin-token") {
			t.Error("the token is not in sessionStorage, or it is in the URL")
		}
	})

	t.Run("a wrong token is refused with a clear message", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		err := chromedp.Do(ctx,
			chromedp.Navigate(api+"/"),
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), "nobody"),
			chromedp.Click(chromedp.CSS("#signin-form button[type=submit]")),
			waitJS(`!document.querySelector('#notice').hidden`, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if msg := evalJS[string](t, ctx, `document.querySelector('#notice').textContent`); !strings.Contains(msg, "401") {
			t.Errorf("notice %q, want it to say the token was refused (401)", msg)
		}
		screenshot(t, ctx, "refused")
	})

	t.Run("filtering by name narrows the table and the total", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		want := total(t, api, "admin-token", "filter[name]=iam.user.created")
		if want == 0 || want == all {
			t.Fatalf("%d iam.user.created of %d: the filter would prove nothing", want, all)
		}
		err := chromedp.Do(ctx, signIn(api, "admin-token"),
			chromedp.SetValue(chromedp.CSS(`#filters [name=name]`), "iam.user.created"),
			chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
			waitJS(fmt.Sprintf(`document.querySelector('#summary').textContent === %q`, thousands(want)+" entries"), 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer screenshot(t, ctx, "filtered")
		if !evalJS[bool](t, ctx, rowsJS+`.every(r => r.cells[1].textContent === 'iam.user.created')`) {
			t.Error("a row of another name is shown")
		}
		if h := evalJS[string](t, ctx, `location.hash`); !strings.Contains(h, "name=iam.user.created") {
			t.Errorf("the filter is not in the URL's hash: %q", h)
		}
	})

	t.Run("a tenant user sees only their tenant's rows", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		want := total(t, api, "alice-token", "")
		if want != 2 {
			t.Fatalf("alice may see %d entries, want the 2 of tenant-a", want)
		}
		if err := chromedp.Do(ctx, signIn(api, "alice-token")); err != nil {
			t.Fatal(err)
		}
		defer screenshot(t, ctx, "tenant")
		if n := evalJS[int](t, ctx, rowsJS+`.length`); n != want {
			t.Errorf("%d rows, want %d", n, want)
		}
		if !evalJS[bool](t, ctx, rowsJS+`.every(r => r.cells[4].textContent === 'tenant-a')`) {
			t.Error("a row of another tenant is shown to alice")
		}
	})

	t.Run("live mode shows a published event within 2 seconds", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		err := chromedp.Do(ctx, signIn(api, "admin-token"),
			chromedp.Click(chromedp.CSS("#live")),
			waitJS(`document.querySelector('#live-state').textContent === 'live'`, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		flow := fmt.Sprintf("live-%d", time.Now().UnixNano())
		publishEvents(t, broker, "flowrepo.flow.created", "--service", "flow-repository",
			"--payload", fmt.Sprintf(`{"flowId":%q,"user":"u-live","tenant":"tenant-live"}`, flow))
		published := time.Now()
		if err := chromedp.Do(ctx, waitJS(fmt.Sprintf(`document.querySelector('#entries tbody tr').cells[5].textContent.includes(%q)`, flow), 2*time.Second)); err != nil {
			t.Fatalf("the published event is not at the top of the table within 2 s of its publish: %v", err)
		}
		t.Logf("shown %v after herald publish returned", time.Since(published).Round(time.Millisecond))
		screenshot(t, ctx, "live")
		if got := evalJS[string](t, ctx, `document.querySelector('#summary').textContent`); got != thousands(all+1)+" entries" {
			t.Errorf("summary %q after one live entry, want %d", got, all+1)
		}

		// Paused, new entries wait; resumed, they come to the top.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#pause"))); err != nil {
			t.Fatal(err)
		}
		held := flow + "-held"
		publishEvents(t, broker, "flowrepo.flow.created", "--service", "flow-repository",
			"--payload", fmt.Sprintf(`{"flowId":%q,"user":"u-live","tenant":"tenant-live"}`, held))
		if err := chromedp.Do(ctx, waitJS(`document.querySelector('#live-state').textContent === 'paused: 1 new'`, 5*time.Second)); err != nil {
			t.Fatalf("paused: %v (state %q)", err, evalJS[string](t, ctx, `document.querySelector('#live-state').textContent`))
		}
		if top := evalJS[string](t, ctx, `document.querySelector('#entries tbody tr').cells[5].textContent`); strings.Contains(top, held) {
			t.Error("a new entry came to the table while paused")
		}
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#pause")),
			waitJS(fmt.Sprintf(`document.querySelector('#entries tbody tr').cells[5].textContent.includes(%q)`, held), 5*time.Second))
		if err != nil {
			t.Fatalf("resumed: %v", err)
		}
	})

	t.Run("older and newer page through the filtered entries", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		first := `document.querySelector('#entries tbody tr[data-id]').dataset.id`
		if err := chromedp.Do(ctx, signIn(api, "admin-token")); err != nil {
			t.Fatal(err)
		}
		top := evalJS[string](t, ctx, first)
		err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#older")),
			waitJS(`document.querySelector('#page').textContent.startsWith('page 2 of ')`, 5*time.Second),
			waitJS(fmt.Sprintf(`%s !== %q`, first, top), 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if ids := evalJS[[]string](t, ctx, rowsJS+`.map(r => r.dataset.id)`); len(ids) != 50 || slices.Contains(ids, top) {
			t.Errorf("page 2 holds %d rows (the first page's top among them: %v)", len(ids), slices.Contains(ids, top))
		}
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#newer")),
			waitJS(fmt.Sprintf(`%s === %q`, first, top), 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("an event's markup renders as text and runs nothing", func(t *testing.T) {
		ctx, dialogs := tab(t, bctx)
		err := chromedp.Do(ctx, signIn(api, "admin-token"),
			chromedp.SetValue(chromedp.CSS(`#filters [name=tenant]`), "tenant-x"),
			chromedp.Click(chromedp.CSS(`#filters button[type=submit]`)),
			waitJS(`document.querySelector('#summary').textContent === '1 entry'`, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		row := `document.querySelector('#entries tbody tr[data-id]')`
		if got := evalJS[string](t, ctx, row+`.cells[3].textContent`); got != "</script><script>alert(2)</script>" {
			t.Errorf("user cell %q", got)
		}
		if got := evalJS[string](t, ctx, row+`.cells[5].textContent`); !strings.Contains(got, "<img src=x onerror=alert(1)>") {
			t.Errorf("payload cell %q", got)
		}
		// Open the detail with the keyboard: focus the row, press Enter.
		err = chromedp.Do(ctx,
			chromedp.Focus(chromedp.CSS(`#entries tbody tr[data-id]`)),
			chromedp.KeyEvent("\r"),
			waitJS(`document.querySelector('#detail').open`, 5*time.Second),
			waitJS(`!document.querySelector('#integrity').textContent.startsWith('checking')`, 10*time.Second))
		if err != nil {
			t.Fatalf("%v: detail open %v, integrity %q", err, evalJS[bool](t, ctx, `document.querySelector('#detail').open`), evalJS[string](t, ctx, `document.querySelector('#integrity').textContent`))
		}
		defer screenshot(t, ctx, "markup-as-text")
		if got := evalJS[string](t, ctx, `document.querySelector('#detail-payload').textContent`); !strings.Contains(got, `"note": "<svg onload=alert(3)>"`) {
			t.Errorf("detail payload %q", got)
		}
		if n := evalJS[int](t, ctx, `document.querySelectorAll('main img, main svg:not(#chart svg):not(.legend svg), dialog img, dialog svg, main script, dialog script').length`); n != 0 {
			t.Errorf("%d elements came from the event's values", n)
		}
		if n := dialogs.Load(); n != 0 {
			t.Errorf("%d JavaScript dialogs opened", n)
		}
	})

	t.Run("the entry detail shows its inclusion proof verified", func(t *testing.T) {
		// The detail checks once, when it opens: wait until the newest
		// entry (the one clicked) is in a checkpoint.
		waitFor(t, 30*time.Second, "the newest entry in a checkpoint", func() bool {
			p, code := getLogs(t, api+"/logs?page[size]=1", "admin-token")
			return code == http.StatusOK && len(p.Data) == 1 && p.Data[0].LeafIndex != nil
		})
		ctx, _ := tab(t, bctx)
		err := chromedp.Do(ctx, signIn(api, "admin-token"),
			chromedp.Click(chromedp.CSS(`#entries tbody tr[data-id]`)),
			waitJS(`document.querySelector('#integrity').textContent.startsWith('verified')`, 15*time.Second))
		screenshot(t, ctx, "verified")
		if err != nil {
			t.Fatalf("the detail does not say verified: %v (it says %q)", err, evalJS[string](t, ctx, `document.querySelector('#integrity').textContent`))
		}
	})

	t.Run("the catalogue lists every event with its personal data", func(t *testing.T) {
		ctx, _ := tab(t, bctx)
		err := chromedp.Do(ctx, chromedp.Navigate(api+"/#/catalog"),
			waitJS(`document.querySelectorAll('#catalog-list .event').length > 0`, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer screenshot(t, ctx, "catalogue")
		if n, want := evalJS[int](t, ctx, `document.querySelectorAll('#catalog-list .event').length`), len(catalog.Default().Entries()); n != want {
			t.Errorf("%d events listed, want the catalogue's %d", n, want)
		}
		if !evalJS[bool](t, ctx, `[...document.querySelectorAll('#catalog-list .event')].some(e => e.querySelector('h3').firstChild.textContent === 'iam.user.created' && e.textContent.includes('Personal data: id, username'))`) {
			t.Error("iam.user.created does not show id and username as personal data")
		}
	})
}

// TestConsoleWithAuditedReads runs the console against serve's defaults,
// where every read is recorded: a tenant user's table shows their own
// reads among their tenant's entries, the console's proof check (itself a
// recorded read) verifies an entry, and the reads it made are in the log.
func TestConsoleWithAuditedReads(t *testing.T) {
	bctx := browser(t)
	api, broker := consoleServe(t)
	for i := range 3 {
		publishEvents(t, broker, "flowrepo.flow.created", "--service", "flow-repository",
			"--payload", fmt.Sprintf(`{"flowId":"flow-%d","user":"user-%d","tenant":"tenant-a"}`, i, i))
	}
	// Wait until the three are in a checkpoint: the detail's proof check
	// asks once, when it opens.
	waitFor(t, 30*time.Second, "the published events in a checkpoint", func() bool {
		p, code := getLogs(t, api+"/logs?filter[name]=flowrepo.flow.created", "admin-token")
		return code == http.StatusOK && len(p.Data) == 3 && !slices.ContainsFunc(p.Data, func(d logsEntry) bool { return d.LeafIndex == nil })
	})
	ctx, _ := tab(t, bctx)
	err := chromedp.Do(ctx, signIn(api, "alice-token"),
		waitJS(rowsJS+`.some(r => r.cells[1].textContent === 'audit-log.logs.read')`, 10*time.Second))
	if err != nil {
		t.Fatalf("alice's table does not show her own reads: %v", err)
	}
	if !evalJS[bool](t, ctx, rowsJS+`.filter(r => r.cells[1].textContent === 'audit-log.logs.read').every(r => r.cells[3].textContent === 'alice')`) {
		t.Error("alice's table shows a read that is not hers")
	}
	evalJS[bool](t, ctx, rowsJS+`.find(r => r.cells[1].textContent === 'flowrepo.flow.created').click() ?? true`)
	err = chromedp.Do(ctx, waitJS(`document.querySelector('#integrity').textContent.startsWith('verified')`, 15*time.Second))
	screenshot(t, ctx, "verified")
	if err != nil {
		t.Fatalf("the detail does not say verified: %v (it says %q)", err, evalJS[string](t, ctx, `document.querySelector('#integrity').textContent`))
	}
	// The console's reads are in the log: its sign-in, its page, its
	// chart and the proof it asked for.
	p, _ := getLogs(t, api+"/logs?filter[name]=audit-log.logs.read&filter[user]=alice&page[size]=100", "admin-token")
	routes := map[string]int{}
	for _, d := range p.Data {
		if r, ok := d.Payload["route"].(string); ok {
			routes[r]++
		}
	}
	if routes["logs"] < 2 || routes["proof"] != 1 {
		t.Errorf("alice's recorded reads by route: %v, want the console's reads of /logs and one proof", routes)
	}
}

// TestConsoleScreenshot checks the console at a desktop's and a phone's
// width, light and dark, and with -update writes the README's picture:
//
//	HERALD_TEST_CHROMIUM=/usr/bin/chromium go test ./cmd/herald -run TestConsoleScreenshot -update
func TestConsoleScreenshot(t *testing.T) {
	bctx := browser(t)
	api, broker := consoleServe(t, withoutAuditedReads)
	seedConsole(t, api, broker)
	for _, c := range []struct {
		name          string
		width, height int64
		dark          bool
	}{
		{"1280-light", 1280, 900, false},
		{"1280-dark", 1280, 900, true},
		{"390-light", 390, 844, false},
		{"390-dark", 390, 844, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, _ := tab(t, bctx)
			scheme := "light"
			if c.dark {
				scheme = "dark"
			}
			err := chromedp.Do(ctx,
				chromedp.EmulateViewport(c.width, c.height),
				chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
					_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
						Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
					})
					return err
				}),
				signIn(api, "admin-token"),
				waitJS(`document.querySelector('#chart svg') !== null`, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if dark := evalJS[bool](t, ctx, `getComputedStyle(document.body).backgroundColor === 'rgb(18, 21, 28)'`); dark != c.dark {
				t.Errorf("dark background %v, want %v", dark, c.dark)
			}
			if w := evalJS[int64](t, ctx, `document.documentElement.scrollWidth`); w > c.width {
				t.Errorf("the page is %d px wide in a %d px window: it scrolls sideways", w, c.width)
			}
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(screenshots(t), "console-"+c.name+".png")
			if err := os.WriteFile(path, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s", path)
			if *updateScreenshot && c.name == "1280-light" {
				if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// thousands writes n as the console does (toLocaleString in en-US).
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
