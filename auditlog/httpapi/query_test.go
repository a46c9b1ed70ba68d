package httpapi

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/httpapi/wire"
)

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseListDefaults(t *testing.T) {
	req, err := parseList(url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	q := req.query
	if req.page != 1 || req.pageSize != 10 || q.Limit != 10 || q.Offset != 0 || q.Order != auditlog.NewestFirst || q.After != nil {
		t.Errorf("defaults: %+v", req)
	}
}

func TestParseListReadsOIHParameters(t *testing.T) {
	req, err := parseList(mustQuery(t,
		"page[size]=25&page[number]=3&filter[service]=accounts&filter[name]=iam.user.created"+
			"&filter[tenant]=t1&filter[user]=u1&filter[flowId]=f-9&from=2024-01-01T00:00:00Z&to=1704153600000&sort=createdAt&unrelated=x"))
	if err != nil {
		t.Fatal(err)
	}
	q := req.query
	if req.page != 3 || q.Limit != 25 || q.Offset != 50 {
		t.Errorf("paging: page %d limit %d offset %d", req.page, q.Limit, q.Offset)
	}
	if q.Service != "accounts" || q.Name != "iam.user.created" || q.Tenant != "t1" || q.User != "u1" ||
		len(q.Payload) != 1 || q.Payload["flowId"] != "f-9" {
		t.Errorf("filters: %+v", q)
	}
	if !q.From.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("from %v to %v", q.From, q.To)
	}
	if q.Order != auditlog.OldestFirst {
		t.Error("sort=createdAt is not oldest first")
	}
}

func TestParseListRefuses(t *testing.T) {
	tests := []struct {
		query, mention string
	}{
		{"page[size]=0", "page[size]"},
		{"page[size]=-1", "page[size]"},
		{"page[size]=abc", "page[size]"},
		{"page[size]=5000", "page[size]"},
		{"page[size]=1.5", "page[size]"},
		{"page[size]=", "page[size]"},
		{"page[number]=0", "page[number]"},
		{"page[number]=x", "page[number]"},
		{"page[number]=999999999&page[size]=1000", "nextCursor"},
		{"page[sise]=5", "page[sise]"},
		{"page=5", "page"},
		{"page[size]=5&page[size]=6", "once"},
		{"filter[user][$ne]=x", "filter[user][$ne]"},
		{"filter[user][0]=x", "filter[user][0]"},
		{"filter[$where]=1", "$where"},
		{"filter[a.b]=1", "a.b"},
		{"filter[]=1", "filter key"},
		{"filter=x", "filter"},
		{"filter[user=x", "filter[user"},
		{"filter[" + strings.Repeat("k", 65) + "]=x", "64"},
		{"filter[user]=a&filter[user]=b", "once"},
		{"sort=name", "sort"},
		{"from=yesterday", "from"},
		{"to=2024-13-01", "to"},
		{"from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z", "after"},
		{"cursor=abc", "cursor"},
	}
	for _, tt := range tests {
		_, err := parseList(mustQuery(t, tt.query))
		if err == nil {
			t.Errorf("%s accepted", tt.query)
			continue
		}
		if !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: message %q does not mention %q", tt.query, err, tt.mention)
		}
	}
}

func TestParseListEmptyFilterValueFiltersNothing(t *testing.T) {
	req, err := parseList(mustQuery(t, "filter[name]=&filter[flowId]="))
	if err != nil {
		t.Fatal(err)
	}
	if req.query.Name != "" || len(req.query.Payload) != 0 {
		t.Errorf("%+v", req.query)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []cursor{
		{order: auditlog.NewestFirst, seq: 42, filters: 7, page: 2, createdAt: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)},
		{order: auditlog.OldestFirst, seq: 1, filters: 0, page: 10000, createdAt: time.Time{}},
	} {
		got, err := decodeCursor(c.encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.order != c.order || got.seq != c.seq || got.filters != c.filters || got.page != c.page || !got.createdAt.Equal(c.createdAt) {
			t.Errorf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestCursorRefusesEveryEdit(t *testing.T) {
	s := cursor{order: auditlog.NewestFirst, seq: 42, filters: 7, page: 2, createdAt: time.Now()}.encode()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(s) {
		for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, s[i])+1)%64], '!'} {
			edited := s[:i] + string(c) + s[i+1:]
			if _, err := decodeCursor(edited); err == nil {
				t.Fatalf("edited cursor %q (byte %d) accepted", edited, i)
			}
		}
	}
	for _, bad := range []string{"", s[:len(s)-1], s + "A", strings.Repeat("A", 200)} {
		if _, err := decodeCursor(bad); err == nil {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}

func TestCursorIsTiedToItsQuery(t *testing.T) {
	req, _ := parseList(mustQuery(t, "filter[name]=a"))
	c := cursor{order: auditlog.NewestFirst, seq: 5, filters: filtersDigest(req.filters), page: 2, createdAt: time.Now()}.encode()
	if _, err := parseList(mustQuery(t, "filter[name]=a&page[size]=3&cursor="+c)); err != nil {
		t.Errorf("same filters, other page size: %v", err)
	}
	for _, other := range []string{"filter[name]=b", "", "filter[name]=a&filter[x]=1", "filter[name]=a&from=0"} {
		if _, err := parseList(mustQuery(t, other+"&cursor="+c)); err == nil {
			t.Errorf("cursor of filter[name]=a accepted for %q", other)
		}
	}
	if _, err := parseList(mustQuery(t, "filter[name]=a&sort=createdAt&cursor="+c)); err == nil {
		t.Error("cursor of -createdAt accepted for sort=createdAt")
	}
	if _, err := parseList(mustQuery(t, "filter[name]=a&page[number]=2&cursor="+c)); err == nil {
		t.Error("cursor accepted with page[number]")
	}
}

// An entry stored with invalid UTF-8 (before it was refused at the
// door) is served as valid UTF-8, so a page stays valid JSON for strict
// clients.
func TestRenderEntryIsValidUTF8(t *testing.T) {
	e := auditlog.Entry{
		ID: "x\xff", Name: "a.b", ServiceName: "s\xfe",
		Headers: json.RawMessage("{\"trace\":\"t\xff\"}"),
		Payload: json.RawMessage("{\"user\":\"u\xc3\",\"k\xff\":1}"),
	}
	b := renderEntry(e)
	if !utf8.Valid(b) {
		t.Fatalf("rendered entry is not valid UTF-8: %q", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if p := got["payload"].(map[string]any); p["user"] != "u\ufffd" {
		t.Errorf("payload %v, want the invalid byte replaced by U+FFFD", p)
	}
}

func TestRenderEntryKeepsOIHShape(t *testing.T) {
	e := auditlog.Entry{
		Seq: 7, ID: "0190f0e4-0000-7000-8000-000000000001", Name: "iam.user.created", ServiceName: "accounts",
		CreatedAt:  time.UnixMilli(1700000000123),
		ReceivedAt: time.UnixMilli(1700000000456).Add(789 * time.Microsecond),
		Headers:    json.RawMessage(`{"traceId":"abc","name":"spoof"}`),
		Payload:    json.RawMessage(`{"id":"u1","username":"jane@example.com"}`),
	}
	var got map[string]any
	if err := json.Unmarshal(renderEntry(e), &got); err != nil {
		t.Fatal(err)
	}
	h := got["headers"].(map[string]any)
	if h["name"] != "iam.user.created" || h["serviceName"] != "accounts" || h["createdAt"] != "2023-11-14T22:13:20.123Z" ||
		h["id"] != e.ID || h["traceId"] != "abc" {
		t.Errorf("headers %v", h)
	}
	if got["_id"] != e.ID || got["id"] != e.ID || got["seq"] != float64(7) || got["receivedAt"] != "2023-11-14T22:13:20.456Z" || got["unknown"] != false {
		t.Errorf("entry %v", got)
	}
	if p := got["payload"].(map[string]any); p["username"] != "jane@example.com" {
		t.Errorf("payload %v", p)
	}

	e.CreatedAt = time.Time{}
	e.Payload = nil
	got = nil
	json.Unmarshal(renderEntry(e), &got)
	if h := got["headers"].(map[string]any); h["createdAt"] != nil {
		t.Errorf("zero createdAt rendered as %v, want null", h["createdAt"])
	}
	if p, ok := got["payload"].(map[string]any); !ok || len(p) != 0 {
		t.Errorf("empty payload rendered as %v", got["payload"])
	}
}

func FuzzParseList(f *testing.F) {
	f.Add("page[size]=10&filter[name]=a&cursor=AQ")
	f.Add("filter[user][$ne]=x&sort=createdAt&from=0&to=2024-01-01T00:00:00Z")
	f.Add("cursor=" + cursor{page: 2, seq: 3, createdAt: time.Unix(5, 0)}.encode())
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := parseList(v)
		if err != nil {
			return
		}
		if req.pageSize < 1 || req.pageSize > wire.MaxPageSize || req.page < 1 || req.query.Offset < 0 {
			t.Fatalf("accepted out-of-range paging: %+v", req)
		}
		for k := range req.query.Payload {
			if !auditlog.ValidPayloadKey(k) {
				t.Fatalf("accepted payload key %q", k)
			}
		}
	})
}

func TestEntryTextIsWhatEncodingJSONWrites(t *testing.T) {
	for _, s := range []string{"", "flow.started", "a\"b", `back\slash`, "<img src=x>", "a&b", "tab\there", "\x00", "é", "\u2028", "\xff", "日本"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}
