package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldhq/herald/event"
)

// maxPageSize is the largest page the audit log's /logs serves.
const maxPageSize = 1000

// followOverlap is how far before the newest entry seen each --follow poll
// looks again: an event created earlier can be stored later (another
// publisher, another batch), and the ids already printed weed out repeats.
// An entry stored more than this after its createdAt (a backlog caught up
// after a restart) is not shown by --follow.
const followOverlap = 5 * time.Second

type logsOptions struct {
	url      string
	token    string
	data     string
	service  string
	name     string
	user     string
	tenant   string
	since    string
	until    string
	where    []string
	limit    int
	sort     string
	output   string
	follow   bool
	interval time.Duration

	tokenSet bool // --token was given, even empty: do not read the token file
	sortSet  bool
}

func newLogsCmd() *cobra.Command {
	var o logsOptions
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Query a running audit log",
		Long: `logs asks a running audit log (herald serve, or OIH's audit-log service) for
its entries over HTTP (GET /logs) and prints them.

The URL and token default to the local herald serve: http://127.0.0.1:3007,
and the admin token serve wrote to <data>/admin-token. Filters are exact
matches; --where filters on any top-level payload key. Times are durations
back from now (90s, 15m, 1h, 2d) or RFC 3339 timestamps.

With --follow it prints the newest entries, then polls for new ones until
interrupted.`,
		Example: `  herald logs
  herald logs --service accounts --since 1h
  herald logs --name iam.user.loginFailed --output json
  herald logs --tenant 5f1c0c6e2a9b4c0012345678 --where flowId=60a7… --sort oldest
  herald logs --limit 0 --output ndjson > audit.ndjson
  herald logs --follow --name 'flow.started'
  herald logs --url https://audit.example.com --token "$OIH_TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.tokenSet = cmd.Flags().Changed("token")
			o.sortSet = cmd.Flags().Changed("sort")
			return runLogs(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", envOr(envURL, defaultURL), "audit log base URL (env "+envURL+")")
	f.StringVar(&o.token, "token", os.Getenv(envToken), "bearer token (env "+envToken+"; default: the token herald serve wrote to <data>/"+tokenFileName+")")
	addDataDirFlag(cmd, &o.data)
	f.StringVar(&o.service, "service", "", "only events published by this serviceName (IAM publishes as accounts)")
	f.StringVar(&o.name, "name", "", "only events with this name")
	f.StringVar(&o.user, "user", "", "only events whose payload user is this id")
	f.StringVar(&o.tenant, "tenant", "", "only events whose payload tenant is this id")
	f.StringVar(&o.since, "since", "", "only events created at or after this time (1h, 30m, 2d or RFC 3339)")
	f.StringVar(&o.until, "until", "", "only events created before this time (1h, 30m, 2d or RFC 3339)")
	f.StringArrayVar(&o.where, "where", nil, "only events whose top-level payload `key=value` (repeatable)")
	f.IntVar(&o.limit, "limit", 50, "most entries to print, 0 for all (with --follow: how many to show before following)")
	f.StringVar(&o.sort, "sort", "newest", "order: newest or oldest first")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json, ndjson or csv")
	f.BoolVarP(&o.follow, "follow", "f", false, "keep polling for new entries until interrupted")
	f.DurationVar(&o.interval, "interval", time.Second, "how often --follow polls")
	return cmd
}

// logQuery is a validated logs request.
type logQuery struct {
	base    *url.URL
	token   string
	filters url.Values // filter[...], from, to
	from    time.Time
	limit   int
	newest  bool
}

func runLogs(ctx context.Context, o logsOptions, stdout io.Writer) error {
	q, err := o.query(time.Now())
	if err != nil {
		return err
	}
	out, err := newLogWriter(o.output, stdout, o.follow)
	if err != nil {
		return err
	}
	c := &logsClient{http: &http.Client{Timeout: 30 * time.Second}, base: q.base, token: q.token, hint: o.tokenHint()}
	if !o.follow {
		if err := c.fetch(ctx, q, q.limit, q.newest, out.write); err != nil {
			return err
		}
		return out.close()
	}
	err = c.follow(ctx, q, o.interval, out.write)
	if cerr := out.close(); err == nil {
		err = cerr
	}
	return err
}

// query checks the options and turns them into a request.
func (o logsOptions) query(now time.Time) (logQuery, error) {
	var q logQuery
	u, err := url.Parse(strings.TrimSuffix(o.url, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return q, usagef("--url %q: want http://host:port or https://…", o.url)
	}
	q.base = u
	if o.limit < 0 {
		return q, usagef("--limit must be 0 (all) or more, got %d", o.limit)
	}
	q.limit = o.limit
	switch o.sort {
	case "newest":
		q.newest = true
	case "oldest":
	default:
		return q, usagef("--sort %q: want newest or oldest", o.sort)
	}
	if o.follow {
		if o.sortSet && q.newest {
			return q, usagef("--follow prints entries oldest first, as they come; drop --sort newest")
		}
		if o.until != "" {
			return q, usagef("--follow and --until contradict each other: follow waits for new entries")
		}
		if o.interval <= 0 {
			return q, usagef("--interval must be positive, got %v", o.interval)
		}
	}
	f := url.Values{}
	set := func(key, v string) {
		if v != "" {
			f.Set("filter["+key+"]", v)
		}
	}
	set("service", o.service)
	set("name", o.name)
	set("user", o.user)
	set("tenant", o.tenant)
	for _, w := range o.where {
		k, v, ok := strings.Cut(w, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return q, usagef("--where %q: want key=value", w)
		}
		switch k {
		case "service", "name":
			// The API reads filter[service] and filter[name] as headers, as
			// OIH's does, so a payload key of that name cannot be filtered.
			return q, usagef("--where %s=…: the audit log reads filter[%s] as the event's %s; use --%s", k, k, map[string]string{"service": "serviceName", "name": "name"}[k], k)
		}
		if f.Has("filter[" + k + "]") {
			return q, usagef("--where %s is given twice (or also as --%s)", k, k)
		}
		f.Set("filter["+k+"]", v)
	}
	if o.since != "" {
		t, err := parseWhen(o.since, now)
		if err != nil {
			return q, usagef("--since: %v", err)
		}
		q.from = t
		f.Set("from", t.UTC().Format(time.RFC3339Nano))
	}
	if o.until != "" {
		t, err := parseWhen(o.until, now)
		if err != nil {
			return q, usagef("--until: %v", err)
		}
		if !q.from.IsZero() && !t.After(q.from) {
			return q, usagef("--until %s is not after --since %s", o.until, o.since)
		}
		f.Set("to", t.UTC().Format(time.RFC3339Nano))
	}
	q.filters = f
	q.token = o.token
	if q.token == "" && !o.tokenSet {
		// The local herald serve's token; a missing file is not an error
		// here: the server says what it wants.
		if b, err := os.ReadFile(tokenPath(o.data)); err == nil {
			q.token = strings.TrimSpace(string(b))
		}
	}
	return q, nil
}

// tokenHint is added to a 401: where a token comes from.
func (o logsOptions) tokenHint() string {
	return fmt.Sprintf("pass --token or set %s (herald serve writes its admin token to %s)", envToken, tokenPath(o.data))
}

// parseWhen reads a time as a duration back from now (90s, 15m, 1h, 2d),
// an RFC 3339 timestamp, a date (2006-01-02, local midnight) or
// milliseconds since the epoch.
func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(d, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			d = -d
		}
		return now.Add(-d), nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if t, err := event.ParseTime(s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a duration back from now (90s, 15m, 1h, 2d) nor a time (RFC 3339, 2006-01-02)", s)
}

// logEntry is one item of a /logs response. Raw keeps it as the server
// sent it, for the json and ndjson outputs.
type logEntry struct {
	ID         string
	Seq        int64
	CreatedAt  time.Time
	ReceivedAt time.Time
	Name       string
	Service    string
	User       string
	Tenant     string
	Payload    json.RawMessage
	Raw        json.RawMessage
}

func (e *logEntry) UnmarshalJSON(b []byte) error {
	var w struct {
		ID         string          `json:"id"`
		MongoID    string          `json:"_id"` // OIH's audit log
		Seq        int64           `json:"seq"`
		ReceivedAt json.RawMessage `json:"receivedAt"`
		Headers    struct {
			Name        string          `json:"name"`
			ServiceName string          `json:"serviceName"`
			CreatedAt   json.RawMessage `json:"createdAt"`
		} `json:"headers"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = logEntry{
		ID: w.ID, Seq: w.Seq, Name: w.Headers.Name, Service: w.Headers.ServiceName,
		Payload: w.Payload, Raw: slices.Clone(json.RawMessage(b)),
	}
	if e.ID == "" {
		e.ID = w.MongoID
	}
	e.CreatedAt = jsonTime(w.Headers.CreatedAt)
	e.ReceivedAt = jsonTime(w.ReceivedAt)
	ev := event.Event{Payload: w.Payload}
	e.User, e.Tenant = ev.Reserved()
	return nil
}

// jsonTime reads a time the way OIH writes one (ms number or string, or
// RFC 3339); anything else is the zero time.
func jsonTime(raw json.RawMessage) time.Time {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	t, err := event.ParseTime(s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// logsResponse is a /logs response.
type logsResponse struct {
	Data []logEntry `json:"data"`
	Meta struct {
		Page       int   `json:"page"`
		PerPage    int   `json:"perPage"`
		Total      int64 `json:"total"`
		TotalPages int   `json:"totalPages"`
	} `json:"meta"`
	NextCursor string `json:"nextCursor"`
}

type logsClient struct {
	http  *http.Client
	base  *url.URL
	token string
	hint  string // added to a 401
}

// fetch pages through the query's entries, up to limit (0: all), in the
// given order, handing each page to emit. It follows nextCursor, or page
// numbers from a server that sends no cursor (OIH's audit log).
func (c *logsClient) fetch(ctx context.Context, q logQuery, limit int, newest bool, emit func([]logEntry) error) error {
	_, err := c.pages(ctx, q.filters, limit, newest, emit)
	return err
}

// pages is fetch returning the number of entries emitted.
func (c *logsClient) pages(ctx context.Context, filters url.Values, limit int, newest bool, emit func([]logEntry) error) (int, error) {
	v := url.Values{}
	for k, vs := range filters {
		v[k] = vs
	}
	if newest {
		v.Set("sort", "-createdAt")
	} else {
		v.Set("sort", "createdAt")
	}
	done, page := 0, 1
	for limit == 0 || done < limit {
		size := maxPageSize
		if limit > 0 {
			size = min(size, limit-done)
		}
		v.Set("page[size]", strconv.Itoa(size))
		p, err := c.get(ctx, v)
		if err != nil {
			return done, err
		}
		if len(p.Data) > size {
			p.Data = p.Data[:size]
		}
		if len(p.Data) > 0 {
			if err := emit(p.Data); err != nil {
				return done, err
			}
		}
		done += len(p.Data)
		switch {
		case p.NextCursor != "":
			v.Del("page[number]")
			v.Set("cursor", p.NextCursor)
		case v.Get("cursor") == "" && len(p.Data) == size && p.Meta.TotalPages > page:
			page++
			v.Set("page[number]", strconv.Itoa(page))
		default:
			return done, nil
		}
		if len(p.Data) == 0 {
			return done, nil
		}
	}
	return done, nil
}

// get asks for one page.
func (c *logsClient) get(ctx context.Context, v url.Values) (*logsResponse, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/logs"
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no audit log answers at %s (start herald serve, or point --url or %s at one): %w", c.base, envURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading the response: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := serverMessage(body)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		err := fmt.Errorf("GET %s: %s: %s", u.Path, resp.Status, msg)
		if resp.StatusCode == http.StatusUnauthorized {
			err = fmt.Errorf("%w; %s", err, c.hint)
		}
		return nil, err
	}
	var p logsResponse
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("GET %s: not an audit log response: %w", u.Path, err)
	}
	return &p, nil
}

// serverMessage returns errors[0].message of an error body, or a short
// excerpt of a body that is not one.
func serverMessage(body []byte) string {
	var e struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 && e.Errors[0].Message != "" {
		return e.Errors[0].Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// follow prints the newest entries (up to q.limit, oldest first), then
// polls every interval for entries stored since, until ctx is done.
//
// The API has no "stored after" filter, so each poll asks for the entries
// created since followOverlap before the newest one seen, and prints those
// it has not printed (by id) that were not already there at the start: an
// entry is new when its seq is above every seq of the first answer (or, from
// a server without seq, such as OIH's, when it was created after them).
func (c *logsClient) follow(ctx context.Context, q logQuery, interval time.Duration, emit func([]logEntry) error) error {
	var backlog []logEntry
	if _, err := c.pages(ctx, q.filters, q.limit, true, func(es []logEntry) error {
		backlog = append(backlog, es...)
		return nil
	}); err != nil {
		return ignoreDone(ctx, err)
	}
	slices.Reverse(backlog)
	var startSeq int64
	var startAt time.Time
	for _, e := range backlog {
		startSeq = max(startSeq, e.Seq)
		if e.CreatedAt.After(startAt) {
			startAt = e.CreatedAt
		}
	}
	existed := func(e logEntry) bool {
		if e.Seq != 0 {
			return e.Seq <= startSeq
		}
		return !e.CreatedAt.After(startAt)
	}
	seen := make(map[string]time.Time)
	newest := startAt
	fresh := func(es []logEntry, first bool) []logEntry {
		out := es[:0]
		for _, e := range es {
			if _, dup := seen[e.ID]; dup && e.ID != "" {
				continue
			}
			seen[e.ID] = e.CreatedAt
			if e.CreatedAt.After(newest) {
				newest = e.CreatedAt
			}
			if first || !existed(e) {
				out = append(out, e)
			}
		}
		return out
	}
	if es := fresh(backlog, true); len(es) > 0 {
		if err := emit(es); err != nil {
			return err
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		f := url.Values{}
		for k, vs := range q.filters {
			f[k] = vs
		}
		if !newest.IsZero() {
			if from := newest.Add(-followOverlap); from.After(q.from) {
				f.Set("from", from.UTC().Format(time.RFC3339Nano))
			}
		}
		_, err := c.pages(ctx, f, 0, false, func(es []logEntry) error {
			if es = fresh(es, false); len(es) > 0 {
				return emit(es)
			}
			return nil
		})
		if err != nil {
			return ignoreDone(ctx, err)
		}
		// Forget ids too old to come back in a poll.
		for id, at := range seen {
			if at.Before(newest.Add(-2 * followOverlap)) {
				delete(seen, id)
			}
		}
	}
}

func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// --- output ------------------------------------------------------------

type logWriter struct {
	format string
	w      io.Writer
	n      int // entries written

	csv *csv.Writer

	// table
	color  bool
	width  int // terminal width, 0 when not a terminal
	widths [5]int
}

func newLogWriter(format string, w io.Writer, follow bool) (*logWriter, error) {
	lw := &logWriter{format: format, w: w}
	switch format {
	case "table":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			lw.color = os.Getenv("NO_COLOR") == ""
			if width, _, err := term.GetSize(int(f.Fd())); err == nil {
				lw.width = width
			}
		}
		// Minimum widths that fit OIH's usual values, so that rows printed
		// by later --follow polls stay aligned with the first.
		lw.widths = [5]int{23, 28, 22, 24, 24}
	case "ndjson":
	case "csv":
		lw.csv = csv.NewWriter(w)
	case "json":
		if follow {
			return nil, usagef("--follow never ends a JSON array: use --output ndjson, csv or table")
		}
	default:
		return nil, usagef("--output %q: want table, json, ndjson or csv", format)
	}
	return lw, nil
}

func (lw *logWriter) write(es []logEntry) error {
	defer func() { lw.n += len(es) }()
	switch lw.format {
	case "table":
		return lw.table(es)
	case "ndjson":
		var b bytes.Buffer
		for _, e := range es {
			if err := json.Compact(&b, e.Raw); err != nil {
				return err
			}
			b.WriteByte('\n')
		}
		_, err := lw.w.Write(b.Bytes())
		return err
	case "csv":
		if lw.n == 0 {
			_ = lw.csv.Write([]string{"id", "seq", "createdAt", "receivedAt", "name", "serviceName", "user", "tenant", "payload"})
		}
		for _, e := range es {
			var p bytes.Buffer
			_ = json.Compact(&p, e.Payload)
			_ = lw.csv.Write([]string{
				e.ID, strconv.FormatInt(e.Seq, 10), csvTime(e.CreatedAt), csvTime(e.ReceivedAt),
				e.Name, e.Service, e.User, e.Tenant, p.String(),
			})
		}
		lw.csv.Flush()
		return lw.csv.Error()
	case "json":
		var b bytes.Buffer
		for _, e := range es {
			if lw.n == 0 && b.Len() == 0 {
				b.WriteString("[\n  ")
			} else {
				b.WriteString(",\n  ")
			}
			if err := json.Compact(&b, e.Raw); err != nil {
				return err
			}
		}
		_, err := lw.w.Write(b.Bytes())
		return err
	}
	return nil
}

func (lw *logWriter) close() error {
	switch lw.format {
	case "json":
		s := "\n]\n"
		if lw.n == 0 {
			s = "[]\n"
		}
		_, err := io.WriteString(lw.w, s)
		return err
	case "table":
		if lw.n == 0 {
			_, err := io.WriteString(lw.w, "no entries\n")
			return err
		}
	}
	return nil
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

const (
	ansiReset = "\x1b[0m"
	ansiDim   = "\x1b[2m"
	ansiBold  = "\x1b[1m"
)

// verbColor colours an event name by what happened.
func verbColor(name string) string {
	verb := name[strings.LastIndexByte(name, '.')+1:]
	switch {
	case strings.HasPrefix(verb, "created"), verb == "started", verb == "assignedToTenant":
		return "\x1b[32m" // green
	case strings.HasPrefix(verb, "deleted"), strings.Contains(strings.ToLower(verb), "fail"):
		return "\x1b[31m" // red
	case verb == "modified", verb == "starting", verb == "stopping":
		return "\x1b[33m" // yellow
	case verb == "stopped":
		return "\x1b[35m" // magenta
	}
	return ""
}

// tableCellMax bounds the user and tenant columns (an e-mail in
// iam.user.loginFailed can be long).
const tableCellMax = 32

func (lw *logWriter) table(es []logEntry) error {
	rows := make([][6]string, 0, len(es)+1)
	if lw.n == 0 {
		rows = append(rows, [6]string{"TIME", "NAME", "SERVICE", "USER", "TENANT", "ID"})
	}
	for _, e := range es {
		when := "-"
		if !e.CreatedAt.IsZero() {
			when = e.CreatedAt.Local().Format("2006-01-02 15:04:05.000")
		}
		rows = append(rows, [6]string{
			when, e.Name, e.Service,
			truncate(orDash(e.User), tableCellMax), truncate(orDash(e.Tenant), tableCellMax),
			shortID(e.ID),
		})
	}
	for _, r := range rows {
		for i := range lw.widths {
			lw.widths[i] = max(lw.widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	for i, r := range rows {
		header := lw.n == 0 && i == 0
		line := 0
		for c := range 6 {
			cell := r[c]
			if c < 5 {
				cell = pad(cell, lw.widths[c])
			} else {
				cell = pad(cell, 8)
			}
			line += utf8.RuneCountInString(cell) + 2
			switch {
			case header && lw.color:
				cell = ansiBold + cell + ansiReset
			case lw.color && c == 0:
				cell = ansiDim + cell + ansiReset
			case lw.color && c == 1:
				if col := verbColor(r[1]); col != "" {
					cell = col + cell + ansiReset
				}
			}
			b.WriteString(cell)
			b.WriteString("  ")
		}
		if header {
			b.WriteString("PAYLOAD")
		} else {
			e := es[i-(len(rows)-len(es))]
			var p bytes.Buffer
			_ = json.Compact(&p, e.Payload)
			room := 80
			if lw.width > 0 {
				room = max(20, lw.width-line)
			}
			b.WriteString(truncate(p.String(), room))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(lw.w, b.String())
	return err
}

// shortID is the part of an id that tells entries apart: a UUIDv7 starts
// with its timestamp, the same for every event of a minute, so the table
// shows its last 8 hex digits.
func shortID(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pad(s string, n int) string {
	if k := utf8.RuneCountInString(s); k < n {
		return s + strings.Repeat(" ", n-k)
	}
	return s
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
