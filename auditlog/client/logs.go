package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/heraldhq/herald/auditlog/httpapi/wire"
	"github.com/heraldhq/herald/event"
)

// Order is the order entries come in: by createdAt, then by the order the
// audit log stored them.
type Order int

// Orders.
const (
	NewestFirst Order = iota // sort=-createdAt, the API's default
	OldestFirst              // sort=createdAt
)

// Query selects entries of GET /logs. Every field set must match, as an
// exact string; a non-admin token sees only its own and its tenant's
// entries whatever the query.
type Query struct {
	// Service is the publisher's headers.serviceName (IAM publishes as
	// accounts).
	Service string
	// Name is the event name.
	Name string
	// User and Tenant are the payload's reserved user and tenant.
	User   string
	Tenant string
	// Payload filters on other top-level payload keys. The API reads
	// service and name as the headers above, and user and tenant as the
	// fields above: Payload may not name them.
	Payload map[string]string
	// From and To bound createdAt: From inclusive, To exclusive.
	From, To time.Time
	Order    Order
	// Limit is the most entries asked for: List's page size (0: the
	// server's default, wire.DefaultPageSize); the entries All and Pages
	// return in all, and the newest entries Follow shows before the new
	// ones (0: every one).
	Limit int
	// Page or Cursor says where List, All and Pages start: page[number]
	// (from 1), or the NextCursor of the page before. Follow ignores them.
	Page   int
	Cursor string
}

// Entry is one entry of the audit log.
type Entry struct {
	// ID is the event id (OIH's audit log calls it _id).
	ID string
	// Seq is herald's store sequence, increasing as entries are stored; 0
	// from OIH's audit log.
	Seq         int64
	Name        string
	ServiceName string
	// CreatedAt is the publisher's createdAt; ReceivedAt when the audit
	// log received the event. Either is zero when the server sent none.
	CreatedAt  time.Time
	ReceivedAt time.Time
	// User and Tenant are the payload's reserved user and tenant.
	User   string
	Tenant string
	// Headers and Payload are the entry's JSON objects as sent.
	Headers json.RawMessage
	Payload json.RawMessage
	// Unknown marks an event the server's catalogue does not know.
	Unknown bool
	// Raw is the whole entry as the server sent it.
	Raw json.RawMessage
}

// UnmarshalJSON reads an entry of herald's or of OIH's audit log.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w struct {
		ID         string          `json:"id"`
		MongoID    string          `json:"_id"` // OIH's audit log
		Seq        int64           `json:"seq"`
		ReceivedAt json.RawMessage `json:"receivedAt"`
		Headers    json.RawMessage `json:"headers"`
		Payload    json.RawMessage `json:"payload"`
		Unknown    bool            `json:"unknown"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	var h struct {
		Name        string          `json:"name"`
		ServiceName string          `json:"serviceName"`
		CreatedAt   json.RawMessage `json:"createdAt"`
	}
	if len(w.Headers) > 0 {
		if err := json.Unmarshal(w.Headers, &h); err != nil {
			return fmt.Errorf("entry headers: %w", err)
		}
	}
	*e = Entry{
		ID: w.ID, Seq: w.Seq, Name: h.Name, ServiceName: h.ServiceName,
		CreatedAt: jsonTime(h.CreatedAt), ReceivedAt: jsonTime(w.ReceivedAt),
		Headers: w.Headers, Payload: w.Payload, Unknown: w.Unknown,
		Raw: slices.Clone(json.RawMessage(b)),
	}
	if e.ID == "" {
		e.ID = w.MongoID
	}
	ev := event.Event{Payload: w.Payload}
	e.User, e.Tenant = ev.Reserved()
	return nil
}

// jsonTime reads a time the way OIH writes one (milliseconds as a number
// or a string, or RFC 3339); anything else is the zero time.
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

// Page is one answer of GET /logs.
type Page struct {
	Entries []Entry `json:"data"`
	// Number is the page's number (meta.page), PerPage its size.
	Number  int `json:"-"`
	PerPage int `json:"-"`
	// Total counts every entry the query selects that the token may see;
	// TotalPages the pages of PerPage they fill.
	Total      int64 `json:"-"`
	TotalPages int   `json:"-"`
	// NextCursor continues after this page (Query.Cursor); empty on the
	// last page, and from OIH's audit log, which pages by number only.
	NextCursor string `json:"nextCursor"`
}

// UnmarshalJSON reads {data, meta:{page, perPage, total, totalPages},
// nextCursor}.
func (p *Page) UnmarshalJSON(b []byte) error {
	type page Page // without this method
	var w struct {
		page
		Meta struct {
			Page       int   `json:"page"`
			PerPage    int   `json:"perPage"`
			Total      int64 `json:"total"`
			TotalPages int   `json:"totalPages"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*p = Page(w.page)
	p.Number, p.PerPage, p.Total, p.TotalPages = w.Meta.Page, w.Meta.PerPage, w.Meta.Total, w.Meta.TotalPages
	return nil
}

// values is q as GET /logs's parameters, with a page of size entries.
func (q Query) values(size int) (url.Values, error) {
	v := url.Values{}
	for k, val := range q.Payload {
		switch k {
		case "service", "name", "user", "tenant":
			return nil, fmt.Errorf("Query.Payload[%q]: the API reads filter[%s] as a field of its own: set Query's field instead", k, k)
		}
		v.Set("filter["+k+"]", val)
	}
	for k, val := range map[string]string{"service": q.Service, "name": q.Name, "user": q.User, "tenant": q.Tenant} {
		if val != "" {
			v.Set("filter["+k+"]", val)
		}
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	switch q.Order {
	case NewestFirst:
		v.Set("sort", "-createdAt")
	case OldestFirst:
		v.Set("sort", "createdAt")
	default:
		return nil, fmt.Errorf("Query.Order %d: want NewestFirst or OldestFirst", q.Order)
	}
	if size > 0 {
		v.Set("page[size]", strconv.Itoa(size))
	}
	switch {
	case q.Cursor != "":
		v.Set("cursor", q.Cursor)
	case q.Page > 1:
		v.Set("page[number]", strconv.Itoa(q.Page))
	}
	return v, nil
}

// List returns one page: q.Limit entries (the server's default when 0)
// from where q.Page or q.Cursor says.
func (c *Client) List(ctx context.Context, q Query) (*Page, error) {
	if q.Limit < 0 || q.Limit > wire.MaxPageSize {
		return nil, fmt.Errorf("Query.Limit %d: a page holds 1 to %d entries (0: the server's default)", q.Limit, wire.MaxPageSize)
	}
	return c.list(ctx, q, q.Limit)
}

func (c *Client) list(ctx context.Context, q Query, size int) (*Page, error) {
	v, err := q.values(size)
	if err != nil {
		return nil, err
	}
	var p Page
	if _, err := c.do(ctx, request{method: http.MethodGet, path: "/logs", query: v, accept: []int{http.StatusOK}, out: &p}); err != nil {
		return nil, err
	}
	if size > 0 && len(p.Entries) > size {
		p.Entries = p.Entries[:size]
	}
	return &p, nil
}

// Pages returns the pages of q's entries, up to q.Limit entries in all
// (0: every one), in the largest pages the API serves. It follows
// NextCursor, or page numbers on a server that sends no cursor (OIH's
// audit log). It stops at the first error, which it yields.
func (c *Client) Pages(ctx context.Context, q Query) iter.Seq2[*Page, error] {
	return func(yield func(*Page, error) bool) {
		if q.Limit < 0 {
			yield(nil, fmt.Errorf("Query.Limit %d: want 0 (every entry) or more", q.Limit))
			return
		}
		size := wire.MaxPageSize
		if q.Limit > 0 {
			size = min(size, q.Limit)
		}
		page, byNumber := max(q.Page, 1), false
		for done := 0; q.Limit == 0 || done < q.Limit; {
			// A cursor page may be smaller than the one before, so the last
			// asks for no more than is missing; a numbered page may not: its
			// number counts pages of one size.
			ask := size
			if q.Limit > 0 && !byNumber {
				ask = min(size, q.Limit-done)
			}
			p, err := c.list(ctx, q, ask)
			if err != nil {
				yield(nil, err)
				return
			}
			if q.Limit > 0 && len(p.Entries) > q.Limit-done {
				p.Entries = p.Entries[:q.Limit-done]
			}
			if len(p.Entries) == 0 {
				return
			}
			if !yield(p, nil) {
				return
			}
			done += len(p.Entries)
			switch {
			case p.NextCursor != "":
				q.Page, q.Cursor = 0, p.NextCursor
			case q.Cursor == "" && len(p.Entries) == ask && p.TotalPages > page:
				page++
				q.Page, byNumber = page, true
			default:
				return
			}
		}
	}
}

// All returns q's entries one by one, as Pages fetches them.
func (c *Client) All(ctx context.Context, q Query) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		for p, err := range c.Pages(ctx, q) {
			if err != nil {
				yield(Entry{}, err)
				return
			}
			for _, e := range p.Entries {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}
