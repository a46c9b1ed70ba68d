package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testkit"
)

// fakeLog is an audit log's GET /logs over canned OIH-shaped entries,
// newest last in entries. It honours sort, page[size], cursor (an index),
// from and filter[name]; it records every query it answered.
type fakeLog struct {
	mu      sync.Mutex
	entries []map[string]any
	queries []url.Values
	token   string // required bearer token, when set
	status  int    // answer every request with this status, when set
	noCur   bool   // answer like OIH: page numbers, no nextCursor, _id
}

func (f *fakeLog) add(name, service, user, tenant string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.entries) + 1
	p := map[string]any{"n": n}
	if user != "" {
		p["user"] = user
	}
	if tenant != "" {
		p["tenant"] = tenant
	}
	f.entries = append(f.entries, map[string]any{
		"id":         fmt.Sprintf("0195f2a1-0000-7000-8000-%012d", n),
		"seq":        n,
		"receivedAt": at.Add(time.Millisecond).UTC().Format(time.RFC3339Nano),
		"headers":    map[string]any{"name": name, "serviceName": service, "createdAt": at.UnixMilli()},
		"payload":    p,
	})
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	f.queries = append(f.queries, q)
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"errors":[{"message":%q,"code":%d}]}`, msg, status)
	}
	if f.status != 0 {
		fail(f.status, "Something broke: "+http.StatusText(f.status))
		return
	}
	if r.URL.Path != "/logs" {
		fail(404, "no route "+r.URL.Path)
		return
	}
	if f.token != "" {
		switch h := r.Header.Get("Authorization"); {
		case h == "":
			fail(401, "Missing authorization header.")
			return
		case h != "Bearer "+f.token:
			fail(401, "Token invalid. Error: Error. Details: Token not found in IAM")
			return
		}
	}
	var sel []map[string]any
	for _, e := range f.entries {
		h := e["headers"].(map[string]any)
		if v := q.Get("filter[name]"); v != "" && h["name"] != v {
			continue
		}
		if v := q.Get("from"); v != "" {
			from, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				fail(400, "from: "+err.Error())
				return
			}
			if h["createdAt"].(int64) < from.UnixMilli() {
				continue
			}
		}
		sel = append(sel, e)
	}
	if q.Get("sort") != "createdAt" {
		for i, j := 0, len(sel)-1; i < j; i, j = i+1, j-1 {
			sel[i], sel[j] = sel[j], sel[i]
		}
	}
	size, _ := strconv.Atoi(q.Get("page[size]"))
	if size <= 0 || size > 1000 {
		fail(400, "page[size] must be between 1 and 1000")
		return
	}
	start := 0
	if c := q.Get("cursor"); c != "" {
		start, _ = strconv.Atoi(c)
	}
	if p := q.Get("page[number]"); p != "" {
		n, _ := strconv.Atoi(p)
		start = (n - 1) * size
	}
	end := min(start+size, len(sel))
	page := sel[min(start, len(sel)):end]
	resp := map[string]any{
		"data": page,
		"meta": map[string]any{"page": 1, "perPage": size, "total": len(sel), "totalPages": (len(sel) + size - 1) / size},
	}
	if f.noCur {
		for _, e := range page {
			e["_id"] = e["id"]
			delete(e, "id")
		}
	} else if end < len(sel) {
		resp["nextCursor"] = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeLog) lastQuery() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queries[len(f.queries)-1]
}

var logsT0 = time.Date(2025, 3, 31, 9, 0, 0, 0, time.UTC)

func newFakeLog(t *testing.T, n int) (*fakeLog, *httptest.Server) {
	t.Helper()
	f := &fakeLog{}
	for i := range n {
		f.add("iam.user.created", "accounts", "", "5f1c0c6e2a9b4c0012345678", logsT0.Add(time.Duration(i)*time.Second))
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// heraldLogs runs herald logs args with no token or URL in the
// environment and an empty data folder, and returns the exit code and
// outputs.
func heraldLogs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	t.Setenv(envToken, "")
	t.Setenv(envURL, "")
	t.Setenv(envDataDir, t.TempDir())
	code := run(context.Background(), append([]string{"logs"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestLogsPrintsAnAlignedTable(t *testing.T) {
	f, srv := newFakeLog(t, 0)
	f.add("iam.user.loginFailed", "accounts", "jane.doe@acme-logistics.example.com", "", logsT0)
	f.add("flowrepo.flow.created", "flow-repository", "5f1c0c6e2a9b4c0012345679", "5f1c0c6e2a9b4c0012345678", logsT0.Add(time.Second))
	code, out, stderr := heraldLogs(t, "--url", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out)
	}
	for _, col := range []string{"TIME", "NAME", "SERVICE", "USER", "TENANT", "ID", "PAYLOAD"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	// Newest first; every column starts where its header does.
	if !strings.Contains(lines[1], "flowrepo.flow.created") || !strings.Contains(lines[2], "iam.user.loginFailed") {
		t.Fatalf("want newest first:\n%s", out)
	}
	for _, col := range []string{"NAME", "SERVICE", "USER", "PAYLOAD"} {
		at := strings.Index(lines[0], col) // the header is ASCII
		for _, line := range lines[1:] {
			l := []rune(line)
			if at > len(l) || string(l[at-2:at]) != "  " || l[at] == ' ' {
				t.Errorf("column %s not aligned:\n%s", col, out)
			}
		}
	}
	for _, want := range []string{"5f1c0c6e2a9b4c0012345679", "jane.doe@acme-logistics.example.com", "00000002", `{"n":2,`} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour when not on a terminal:\n%q", out)
	}
}

func TestLogsSendsEveryFilter(t *testing.T) {
	f, srv := newFakeLog(t, 1)
	code, _, stderr := heraldLogs(t, "--url", srv.URL+"/",
		"--service", "accounts", "--name", "iam.user.created", "--user", "u1", "--tenant", "t1",
		"--where", "flowId=f1", "--where", "username=jane@example.com",
		"--since", "2025-03-30T00:00:00Z", "--until", "2025-04-01T00:00:00Z", "--sort", "oldest", "--limit", "7")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	q := f.lastQuery()
	want := map[string]string{
		"filter[service]": "accounts", "filter[name]": "iam.user.created", "filter[user]": "u1", "filter[tenant]": "t1",
		"filter[flowId]": "f1", "filter[username]": "jane@example.com",
		"from": "2025-03-30T00:00:00Z", "to": "2025-04-01T00:00:00Z", "sort": "createdAt", "page[size]": "7",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q (query %v)", k, q.Get(k), v, q)
		}
	}
}

func TestLogsSinceIsADurationBackFromNow(t *testing.T) {
	now := time.Date(2025, 3, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1h":                   now.Add(-time.Hour),
		"90s":                  now.Add(-90 * time.Second),
		"2d":                   now.Add(-48 * time.Hour),
		"2025-03-30T08:00:00Z": time.Date(2025, 3, 30, 8, 0, 0, 0, time.UTC),
		"1743321600000":        time.UnixMilli(1743321600000),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWhen("yesterday", now); err == nil {
		t.Error("parseWhen(yesterday) succeeded")
	}
}

func TestLogsFollowsCursorsPastOnePage(t *testing.T) {
	f, srv := newFakeLog(t, 2500)
	code, out, stderr := heraldLogs(t, "--url", srv.URL, "--limit", "2200", "--output", "ndjson")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := strings.Count(out, "\n"); n != 2200 {
		t.Fatalf("printed %d entries, want 2200", n)
	}
	if len(f.queries) != 3 || f.queries[1].Get("cursor") != "1000" || f.queries[2].Get("page[size]") != "200" {
		t.Fatalf("queries %v, want pages of 1000, 1000 (cursor 1000) and 200", f.queries)
	}

	code, out, _ = heraldLogs(t, "--url", srv.URL, "--limit", "0", "--output", "ndjson")
	if code != 0 || strings.Count(out, "\n") != 2500 {
		t.Fatalf("--limit 0: exit %d, %d entries, want all 2500", code, strings.Count(out, "\n"))
	}
}

func TestLogsPagesByNumberOnOIHsAuditLog(t *testing.T) {
	f, srv := newFakeLog(t, 1500)
	f.noCur = true
	code, out, stderr := heraldLogs(t, "--url", srv.URL, "--limit", "1200", "--output", "csv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1201 {
		t.Fatalf("%d rows, want a header and 1200", len(rows))
	}
	if rows[1][0] != "0195f2a1-0000-7000-8000-000000001500" || rows[1][4] != "iam.user.created" || rows[1][7] != "5f1c0c6e2a9b4c0012345678" {
		t.Fatalf("first row %q: want OIH's _id, the name and the tenant", rows[1])
	}
	if f.queries[1].Get("page[number]") != "2" {
		t.Fatalf("second query %v, want page[number]=2", f.queries[1])
	}
}

func TestLogsJSONIsAnArrayOfTheServersEntries(t *testing.T) {
	_, srv := newFakeLog(t, 3)
	code, out, _ := heraldLogs(t, "--url", srv.URL, "-o", "json")
	var got []struct {
		ID      string `json:"id"`
		Headers struct {
			Name      string `json:"name"`
			CreatedAt int64  `json:"createdAt"`
		} `json:"headers"`
	}
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if len(got) != 3 || got[0].Headers.CreatedAt != logsT0.Add(2*time.Second).UnixMilli() {
		t.Fatalf("got %+v", got)
	}

	_, srv = newFakeLog(t, 0)
	code, out, _ = heraldLogs(t, "--url", srv.URL, "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty log: exit %d, %q", code, out)
	}
}

func TestLogsReportsTheServersMessage(t *testing.T) {
	f, srv := newFakeLog(t, 1)
	f.token = "s3cret"
	code, _, stderr := heraldLogs(t, "--url", srv.URL)
	if code != 1 || !strings.Contains(stderr, "Missing authorization header.") || !strings.Contains(stderr, "--token") {
		t.Fatalf("exit %d, stderr %q: want 1, OIH's message and how to pass a token", code, stderr)
	}
	code, _, stderr = heraldLogs(t, "--url", srv.URL, "--token", "s3cret")
	if code != 0 {
		t.Fatalf("with the token: exit %d: %s", code, stderr)
	}

	f.status = http.StatusInternalServerError
	code, _, stderr = heraldLogs(t, "--url", srv.URL, "--token", "s3cret")
	if code != 1 || !strings.Contains(stderr, "Something broke: Internal Server Error") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestLogsReadsTheTokenServeWrote(t *testing.T) {
	f, srv := newFakeLog(t, 1)
	f.token = "from-the-file"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tokenFileName), []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := heraldLogs(t, "--url", srv.URL, "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestLogsNamesTheURLWhenNothingAnswers(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	code, _, stderr := heraldLogs(t, "--url", addr)
	if code != 1 || !strings.Contains(stderr, "--url") || !strings.Contains(stderr, envURL) {
		t.Fatalf("exit %d, stderr %q: want 1 naming --url and %s", code, stderr, envURL)
	}
}

func TestLogsUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--output", "yaml"},
		{"--sort", "sideways"},
		{"--limit", "-1"},
		{"--where", "novalue"},
		{"--where", "name=x"},
		{"--since", "yesterday"},
		{"--since", "1h", "--until", "2h"},
		{"--follow", "--output", "json"},
		{"--follow", "--until", "1h"},
		{"--follow", "--sort", "newest"},
		{"--url", "localhost:3007"},
	} {
		code, _, stderr := heraldLogs(t, args...)
		if code != 2 {
			t.Errorf("logs %v: exit %d (%s), want 2", args, code, stderr)
		}
	}
}

func TestLogsFollowPrintsNewEntriesOnce(t *testing.T) {
	f, srv := newFakeLog(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := &testkit.Buffer{}
	lines := func(n int) func(string) bool {
		return func(s string) bool { return strings.Count(s, "\n") >= n }
	}
	// The backlog is the newest 3; then two more arrive.
	out.When(lines(3), func() {
		f.add("flow.started", "component-orchestrator", "", "", logsT0.Add(10*time.Second))
		f.add("flow.stopped", "component-orchestrator", "", "", logsT0.Add(11*time.Second))
	})
	out.When(lines(5), cancel)
	o := logsOptions{url: srv.URL, limit: 3, sort: "oldest", output: "ndjson", follow: true, interval: 10 * time.Millisecond, data: t.TempDir()}
	if err := runLogs(ctx, o, out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != context.Canceled {
		t.Fatalf("follow ended before the new entries came: %v\n%s", ctx.Err(), out)
	}
	var seqs []int
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var e struct{ Seq int }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if fmt.Sprint(seqs) != "[3 4 5 6 7]" {
		t.Fatalf("printed %v, want [3 4 5 6 7]: the backlog oldest first, then each new entry once", seqs)
	}
	// Polls ask oldest first, from shortly before the newest entry seen.
	q := f.lastQuery()
	if q.Get("sort") != "createdAt" || q.Get("from") == "" {
		t.Fatalf("poll query %v", q)
	}
}

func TestLogsPrintsNothingWhenTheLogRefuses(t *testing.T) {
	f, srv := newFakeLog(t, 1)
	f.status = http.StatusInternalServerError
	for _, format := range []string{"table", "json"} {
		code, out, _ := heraldLogs(t, "--url", srv.URL, "--output", format)
		if code != 1 || out != "" {
			t.Errorf("--output %s: exit %d, stdout %q; want 1 and nothing printed (no empty table or array)", format, code, out)
		}
	}
}

func TestLogsTableSaysHowManyOfHowManyItShows(t *testing.T) {
	_, srv := newFakeLog(t, 12)
	code, out, stderr := heraldLogs(t, "--url", srv.URL, "-n", "5")
	if code != 0 {
		t.Fatalf("logs -n 5: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[6], "5 of 12 entries shown") || !strings.Contains(lines[6], "--limit 0") {
		t.Errorf("logs -n 5 of 12 entries printed:\n%s\nwant a header, 5 rows and a line saying 5 of 12 are shown", out)
	}
	// Everything shown: nothing to add; other formats stay data only.
	for _, args := range [][]string{{"--limit", "0"}, {"-n", "12"}, {"-n", "5", "--output", "ndjson"}} {
		_, out, _ := heraldLogs(t, append([]string{"--url", srv.URL}, args...)...)
		if strings.Contains(out, "entries shown") {
			t.Errorf("logs %s says %q", strings.Join(args, " "), out)
		}
	}
}

func TestLogsNotesANameTheCatalogueDoesNotKnow(t *testing.T) {
	_, srv := newFakeLog(t, 1)
	code, _, stderr := heraldLogs(t, "--url", srv.URL, "--name", "iam.user.craeted")
	if code != 0 || !strings.Contains(stderr, "did you mean iam.user.created") {
		t.Errorf("logs --name iam.user.craeted: exit %d, stderr %q; want 0 and a note with the closest name", code, stderr)
	}
	if _, _, stderr := heraldLogs(t, "--url", srv.URL, "--name", "iam.user.created"); stderr != "" {
		t.Errorf("logs --name of a catalogued event: stderr %q", stderr)
	}
}
