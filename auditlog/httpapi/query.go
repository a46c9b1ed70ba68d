package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi/wire"
	"github.com/heraldhq/herald/event"
)

// maxOffset bounds page[number] × page[size]: deeper pages take a cursor.
const maxOffset = 10_000_000

// Limits on a query string: MaxQueryParams parameters in all (above it,
// net/url would drop every parameter silently), MaxPayloadFilters
// filter[<payload key>] parameters (each is a condition over the payload
// index; thousands of them cost seconds of the database's time).
const (
	MaxQueryParams    = 100
	MaxPayloadFilters = 16
)

// queryValues parses r's query string, refusing one with more than
// MaxQueryParams parameters or one net/url cannot read whole (it would
// drop the parameters it cannot read, filters included).
func queryValues(raw string) (url.Values, error) {
	if raw == "" {
		return url.Values{}, nil
	}
	if n := strings.Count(raw, "&") + 1; n > MaxQueryParams {
		return nil, badf("the query has %d parameters; at most %d are read", n, MaxQueryParams)
	}
	v, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badf("malformed query string: %v", err)
	}
	return v, nil
}

// validText refuses a parameter value no entry can hold: invalid UTF-8
// or NUL (the stores hold neither).
func validText(param, v string) error {
	if !utf8.ValidString(v) {
		return badf("%s is not valid UTF-8", param)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return badf("%s holds a NUL character", param)
	}
	return nil
}

// listRequest is a parsed GET /logs query.
type listRequest struct {
	query    auditlog.Query // without Scope
	page     int            // the page number reported in meta.page
	pageSize int
	filters  string // canonical form of the filters, for cursors
}

// badRequest is a 400 with a message that names the parameter.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// parseList reads GET /logs's parameters: OIH's page[size], page[number]
// and filter[<key>], plus from, to, sort and cursor. Unknown parameters
// are ignored, as OIH does, except malformed page[…] and filter[…] ones:
// those are refused rather than guessed at. Each parameter may be given
// once.
func parseList(values url.Values) (listRequest, error) {
	req := listRequest{page: 1, pageSize: wire.DefaultPageSize}
	q := &req.query
	q.Order = auditlog.NewestFirst
	var sortGiven, pageGiven bool
	var cursor string

	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic error messages
	for _, key := range keys {
		vs := values[key]
		if len(vs) > 1 && (key == "sort" || key == "cursor" || key == "from" || key == "to" ||
			strings.HasPrefix(key, "page") || strings.HasPrefix(key, "filter")) {
			return req, badf("%s is given %d times; give it once", key, len(vs))
		}
		v := vs[0]
		if err := validText(key, v); err != nil {
			return req, err
		}
		switch {
		case key == "page[size]":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > wire.MaxPageSize {
				return req, badf("page[size] must be a whole number from 1 to %d, not %q", wire.MaxPageSize, v)
			}
			req.pageSize = n
		case key == "page[number]":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return req, badf("page[number] must be a whole number from 1, not %q", v)
			}
			req.page, pageGiven = n, true
		case key == "page" || strings.HasPrefix(key, "page["):
			return req, badf("unknown parameter %s: the page parameters are page[size] and page[number]", key)
		case key == "sort":
			switch v {
			case "-createdAt", "":
				q.Order = auditlog.NewestFirst
			case "createdAt":
				q.Order = auditlog.OldestFirst
			default:
				return req, badf("sort must be -createdAt (newest first) or createdAt (oldest first), not %q", v)
			}
			sortGiven = v != ""
		case key == "from" || key == "to":
			if v == "" {
				continue
			}
			t, err := event.ParseTime(v)
			if err != nil {
				return req, badf("%s must be an RFC 3339 time or milliseconds since the epoch, not %q", key, v)
			}
			if key == "from" {
				q.From = t
			} else {
				q.To = t
			}
		case key == "cursor":
			cursor = v
		case key == "filter" || strings.HasPrefix(key, "filter["):
			if err := addFilter(q, key, v); err != nil {
				return req, err
			}
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return req, badf("from (%s) is after to (%s)", q.From.Format(time.RFC3339Nano), q.To.Format(time.RFC3339Nano))
	}
	req.filters = canonicalFilters(q)
	q.Limit = req.pageSize

	if cursor == "" {
		if (req.page - 1) > maxOffset/req.pageSize {
			return req, badf("page[number] %d is too deep for offset paging; follow nextCursor instead", req.page)
		}
		q.Offset = (req.page - 1) * req.pageSize
		return req, nil
	}
	if pageGiven {
		return req, badf("give either cursor or page[number], not both")
	}
	c, err := decodeCursor(cursor)
	if err != nil {
		return req, err
	}
	if sortGiven && c.order != q.Order {
		return req, badf("cursor belongs to the other sort order")
	}
	if c.filters != filtersDigest(req.filters) {
		return req, badf("cursor belongs to a query with other filters, from or to")
	}
	q.Order = c.order
	q.After = &auditlog.Cursor{CreatedAt: c.createdAt, Seq: c.seq}
	req.page = c.page
	return req, nil
}

// addFilter applies filter[<key>]=value. An empty value filters nothing
// (as an empty form field). A key that is not a plain name, such as
// filter[user][$ne] (what qs turns into a MongoDB operator in OIH), is
// refused.
func addFilter(q *auditlog.Query, param, value string) error {
	inner, ok := strings.CutPrefix(param, "filter[")
	if !ok || !strings.HasSuffix(inner, "]") || strings.ContainsAny(inner[:len(inner)-1], "[]") {
		return badf("%s is not a filter: write filter[<key>]=<value>; values are plain strings, never operators", param)
	}
	key := inner[:len(inner)-1]
	if !auditlog.ValidPayloadKey(key) {
		return badf("filter key %q must be 1 to 64 letters, digits, '_' or '-'", key)
	}
	if value == "" {
		return nil
	}
	switch key {
	case "service":
		q.Service = value
	case "name":
		q.Name = value
	case "tenant":
		q.Tenant = value
	case "user":
		q.User = value
	default:
		if q.Payload == nil {
			q.Payload = map[string]string{}
		}
		if len(q.Payload) >= MaxPayloadFilters {
			return badf("at most %d payload filters (filter[<key>] other than service, name, tenant, user) are allowed", MaxPayloadFilters)
		}
		q.Payload[key] = value
	}
	return nil
}

// canonicalFilters is a stable text of what a query selects (not how it
// pages), so a cursor can be tied to its query.
func canonicalFilters(q *auditlog.Query) string {
	var b strings.Builder
	field := func(k, v string) {
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v))
		b.WriteByte(';')
	}
	field("service", q.Service)
	field("name", q.Name)
	field("tenant", q.Tenant)
	field("user", q.User)
	keys := make([]string, 0, len(q.Payload))
	for k := range q.Payload {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field("payload."+k, q.Payload[k])
	}
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixNano(), 10)
	}
	field("from", ts(q.From))
	field("to", ts(q.To))
	return b.String()
}

func filtersDigest(canonical string) uint64 {
	sum := sha256.Sum256([]byte(canonical))
	return binary.BigEndian.Uint64(sum[:8])
}

// cursor is the position a page ends at, and what it belongs to.
//
// Encoded (base64url, no padding): version 1 | order | seq (8) | filters
// digest (8) | page (4) | createdAt (time.MarshalBinary) | checksum (4, of
// what precedes). It is opaque to callers and not signed: it carries no
// right (the caller's scope applies to every page); the checksum and the
// digest only catch cursors that were damaged or used with another query.
type cursor struct {
	order     auditlog.Order
	seq       int64
	filters   uint64
	page      int
	createdAt time.Time
}

const cursorVersion = 1

func (c cursor) encode() string {
	t, _ := c.createdAt.UTC().MarshalBinary() // fails only for odd zone offsets, not UTC
	b := make([]byte, 0, 2+8+8+4+len(t)+4)
	b = append(b, cursorVersion, byte(c.order))
	b = binary.BigEndian.AppendUint64(b, uint64(c.seq))
	b = binary.BigEndian.AppendUint64(b, c.filters)
	b = binary.BigEndian.AppendUint32(b, uint32(c.page))
	b = append(b, t...)
	sum := sha256.Sum256(b)
	b = append(b, sum[:4]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	bad := badf("cursor is not one this API returned (damaged or edited)")
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	const fixed = 2 + 8 + 8 + 4
	if err != nil || len(b) < fixed+4+1 || len(b) > 64 {
		return cursor{}, bad
	}
	body, sum := b[:len(b)-4], b[len(b)-4:]
	want := sha256.Sum256(body)
	if string(sum) != string(want[:4]) || body[0] != cursorVersion {
		return cursor{}, bad
	}
	c := cursor{order: auditlog.Order(body[1])}
	if c.order != auditlog.NewestFirst && c.order != auditlog.OldestFirst {
		return cursor{}, bad
	}
	seq := binary.BigEndian.Uint64(body[2:10])
	if seq > math.MaxInt64 {
		return cursor{}, bad
	}
	c.seq = int64(seq)
	c.filters = binary.BigEndian.Uint64(body[10:18])
	page := binary.BigEndian.Uint32(body[18:22])
	if page < 1 || page > math.MaxInt32 {
		return cursor{}, bad
	}
	c.page = int(page)
	if err := c.createdAt.UnmarshalBinary(body[fixed:]); err != nil {
		return cursor{}, bad
	}
	return c, nil
}
