package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/heraldhq/herald/auditlog/client"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

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

With --follow it prints the newest entries, then each entry as it is stored,
from the audit log's live stream (GET /logs/stream), until interrupted; a
broken stream is opened again where it stopped. Against an audit log without
the stream (OIH's) it polls GET /logs every --interval.`,
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
			return runLogs(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
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
	f.IntVarP(&o.limit, "limit", "n", 50, "most entries to print, 0 for all (with --follow: how many to show before following)")
	f.StringVar(&o.sort, "sort", "newest", "order: newest or oldest first")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json, ndjson or csv")
	f.BoolVarP(&o.follow, "follow", "f", false, "print new entries as they are stored, until interrupted")
	f.DurationVar(&o.interval, "interval", time.Second, "how often --follow polls an audit log without the live stream")
	return cmd
}

func runLogs(ctx context.Context, o logsOptions, stdout, stderr io.Writer) error {
	q, err := o.query(time.Now())
	if err != nil {
		return err
	}
	if o.name != "" {
		// A typo would list nothing, silently; the audit log keeps
		// uncatalogued names too, so the query still runs.
		if _, ok := catalog.Default().Lookup(o.name); !ok {
			fmt.Fprintf(stderr, "note: --name %s (the audit log also keeps uncatalogued events, so this asks for it anyway)\n", uncatalogued(catalog.Default(), o.name))
		}
	}
	c, err := client.New(o.url, client.WithToken(o.bearer()), client.WithPollInterval(o.interval))
	if err != nil {
		return usagef("--url %q: want http://host:port or https://…", o.url)
	}
	out, err := newLogWriter(o.output, stdout, o.follow)
	if err != nil {
		return err
	}
	batches := pageEntries(c.Pages(ctx, q), &out.total)
	if o.follow {
		batches = c.Follow(ctx, q)
	}
	err = writeAll(out, batches)
	// A listing that failed prints nothing more; a follow that printed
	// nothing says so whatever stopped it.
	if err == nil || o.follow {
		if cerr := out.close(); err == nil {
			err = cerr
		}
	}
	return o.explain(err)
}

// writeAll writes each batch of entries until the first error.
func writeAll(out *logWriter, batches iter.Seq2[[]client.Entry, error]) error {
	for es, err := range batches {
		if err != nil {
			return err
		}
		if err := out.write(es); err != nil {
			return err
		}
	}
	return nil
}

// pageEntries turns pages into their entries, a page at a time: the table
// is aligned a page at a time. total is set to how many entries the query
// selects, as the first page says.
func pageEntries(pages iter.Seq2[*client.Page, error], total *int64) iter.Seq2[[]client.Entry, error] {
	return func(yield func([]client.Entry, error) bool) {
		first := true
		for p, err := range pages {
			if err != nil {
				yield(nil, err)
				return
			}
			if first {
				*total, first = p.Total, false
			}
			if !yield(p.Entries, nil) {
				return
			}
		}
	}
}

// query checks the options and turns them into the client's query.
func (o logsOptions) query(now time.Time) (client.Query, error) {
	q := client.Query{Service: o.service, Name: o.name, User: o.user, Tenant: o.tenant, Limit: o.limit}
	if o.limit < 0 {
		return q, usagef("--limit must be 0 (all) or more, got %d", o.limit)
	}
	switch o.sort {
	case "newest":
		q.Order = client.NewestFirst
	case "oldest":
		q.Order = client.OldestFirst
	default:
		return q, usagef("--sort %q: want newest or oldest", o.sort)
	}
	if err := o.checkFollow(); err != nil {
		return q, err
	}
	if err := o.addWhere(&q); err != nil {
		return q, err
	}
	return q, o.addTimes(&q, now)
}

// checkFollow refuses what --follow cannot do.
func (o logsOptions) checkFollow() error {
	switch {
	case !o.follow:
		return nil
	case o.sortSet && o.sort == "newest":
		return usagef("--follow prints entries oldest first, as they come; drop --sort newest")
	case o.until != "":
		return usagef("--follow and --until contradict each other: follow waits for new entries")
	case o.interval <= 0:
		return usagef("--interval must be positive, got %v", o.interval)
	}
	return nil
}

// addWhere adds the --where filters. --where user=… and tenant=… are the
// --user and --tenant filters: the API reads those keys so.
func (o logsOptions) addWhere(q *client.Query) error {
	for _, w := range o.where {
		k, v, ok := strings.Cut(w, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return usagef("--where %q: want key=value", w)
		}
		var field *string
		switch k {
		case "service", "name":
			// The API reads filter[service] and filter[name] as headers, as
			// OIH's does, so a payload key of that name cannot be filtered.
			return usagef("--where %s=…: the audit log reads filter[%s] as the event's %s; use --%s", k, k, map[string]string{"service": "serviceName", "name": "name"}[k], k)
		case "user":
			field = &q.User
		case "tenant":
			field = &q.Tenant
		}
		_, dup := q.Payload[k]
		if dup || field != nil && *field != "" {
			return usagef("--where %s is given twice (or also as --%s)", k, k)
		}
		if field != nil {
			*field = v
			continue
		}
		if q.Payload == nil {
			q.Payload = map[string]string{}
		}
		q.Payload[k] = v
	}
	return nil
}

// addTimes adds --since and --until.
func (o logsOptions) addTimes(q *client.Query, now time.Time) error {
	if o.since != "" {
		t, err := parseWhen(o.since, now)
		if err != nil {
			return usagef("--since: %v", err)
		}
		q.From = t
	}
	if o.until != "" {
		t, err := parseWhen(o.until, now)
		if err != nil {
			return usagef("--until: %v", err)
		}
		if !q.From.IsZero() && !t.After(q.From) {
			return usagef("--until %s is not after --since %s", o.until, o.since)
		}
		q.To = t
	}
	return nil
}

// bearer is --token, else the token of the local herald serve. A missing
// token file is not an error here: the server says what it wants.
func (o logsOptions) bearer() string {
	if o.token != "" || o.tokenSet {
		return o.token
	}
	if b, err := os.ReadFile(tokenPath(o.data)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// explain adds to an error the flag or variable that would change it.
func (o logsOptions) explain(err error) error {
	switch {
	case errors.Is(err, client.ErrUnauthorized):
		return fmt.Errorf("%w; pass --token or set %s (herald serve writes its admin token to %s)", err, envToken, tokenPath(o.data))
	case errors.Is(err, client.ErrUnreachable):
		return fmt.Errorf("%w (start herald serve, or point --url or %s at one)", err, envURL)
	}
	return err
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

// --- output ------------------------------------------------------------

type logWriter struct {
	format string
	w      io.Writer
	n      int   // entries written
	total  int64 // entries the query selects, when known

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

func (lw *logWriter) write(es []client.Entry) error {
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
				e.Name, e.ServiceName, e.User, e.Tenant, p.String(),
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
		if lw.total > int64(lw.n) {
			// A table reads as everything there is unless it says not.
			_, err := fmt.Fprintf(lw.w, "%d of %d entries shown (--limit N shows more, --limit 0 all)\n", lw.n, lw.total)
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

func (lw *logWriter) table(es []client.Entry) error {
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
			when, e.Name, e.ServiceName,
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
