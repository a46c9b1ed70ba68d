package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/console"
)

func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not valid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

func TestOpenAPIDocumentIsValid31(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	// Every route the handler serves is documented.
	for path, methods := range map[string][]string{
		"/logs":              {"GET", "POST"},
		"/events":            {"POST"},
		"/logs/stream":       {"GET"},
		"/healthcheck":       {"GET"},
		"/openapi.json":      {"GET"},
		"/metrics":           {"GET"},
		"/checkpoint":        {"GET"},
		"/checkpoint/key":    {"GET"},
		"/logs/{id}/proof":   {"GET"},
		"/proof/consistency": {"GET"},
		"/checkpoints":       {"GET"},
		"/export":            {"GET"},
		// The console's routes, when Config.Console is set.
		"/":                {"GET"},
		"/console/{asset}": {"GET"},
		"/catalog.json":    {"GET"},
		"/asyncapi.json":   {"GET"},
	} {
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("%s is not documented", path)
			continue
		}
		for _, m := range methods {
			if item.GetOperation(m) == nil {
				t.Errorf("%s %s is not documented", m, path)
			}
		}
	}
}

// exchange is one real request to the handler and its answer.
type exchange struct {
	name         string
	method, path string
	token        string
	body         string
	validRequest bool // the request itself follows the document
	status       int
}

// TestResponsesFollowTheOpenAPIDocument sends real requests to the
// handler, over the real SQLite store, and checks each answer (status,
// content type, body) against the document with kin-openapi's
// openapi3filter, which validates OpenAPI 3.1 schemas as JSON Schema
// 2020-12. Requests meant to be valid are checked too.
func TestResponsesFollowTheOpenAPIDocument(t *testing.T) {
	_, router := loadOpenAPI(t)
	// NDJSON answers are checked line by line, as the array of their
	// lines the document describes.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		out := []any{}
		dec := json.NewDecoder(body)
		for dec.More() {
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	})
	t.Cleanup(func() { openapi3filter.UnregisterBodyDecoder("application/x-ndjson") })
	queueUp := true
	e := newEnv(t, func(c *Config) {
		c.MaxEventSize = 4096
		c.Console = console.New(console.Config{})
		c.Health = func(context.Context) map[string]Check {
			if queueUp {
				return map[string]Check{"queue": {Status: StatusPass, Info: map[string]any{"transport": "memory"}}}
			}
			return map[string]Check{"queue": {Status: StatusFail, Message: "disconnected"}}
		}
	})
	ids := e.seed()
	// An entry whose publisher sent no createdAt (null in the answer).
	if _, err := e.store.Append(context.Background(), []auditlog.Entry{{
		ID: "0190f0e4-0000-7000-8000-0000000000ff", Name: "component.started", ServiceName: "component-orchestrator",
		ReceivedAt: base, Payload: json.RawMessage(`{}`), Headers: json.RawMessage(`{"traceId":"x"}`),
	}}); err != nil {
		t.Fatal(err)
	}
	// The log integrated and signed, so that entries carry leafIndex and
	// the integrity routes answer.
	skey, _, _ := auditlog.GenerateKey("openapi")
	signer, _ := auditlog.NewSigner(skey)
	if _, err := auditlog.IntegrateAll(context.Background(), e.store, signer); err != nil {
		t.Fatal(err)
	}
	first := e.list("admin", "page[size]=2")
	ev := `{"headers":{"name":"flowrepo.flow.created","serviceName":"flow-repository","createdAt":1700000000000,"id":"retry-1"},"payload":{"id":"f","user":"alice","tenant":"tenant-a"}}`

	exchanges := []exchange{
		{name: "list", method: "GET", path: "/logs", token: "admin", validRequest: true, status: 200},
		{name: "list filtered", method: "GET", path: "/logs?page[size]=2&page[number]=2&filter[name]=flowrepo.flow.created&filter[tenant]=tenant-a&filter[flowId]=x&sort=createdAt&from=2024-01-01T00:00:00Z&to=1893456000000", token: "admin", validRequest: true, status: 200},
		{name: "list scoped", method: "GET", path: "/logs?page[size]=100", token: "alice", validRequest: true, status: 200},
		{name: "list by cursor", method: "GET", path: "/logs?page[size]=2&cursor=" + first.NextCursor, token: "admin", validRequest: true, status: 200},
		{name: "bad page size", method: "GET", path: "/logs?page[size]=0", token: "admin", status: 400},
		{name: "operator", method: "GET", path: "/logs?filter[user][$ne]=x", token: "admin", status: 400},
		{name: "no token", method: "GET", path: "/logs", status: 401},
		{name: "no permission", method: "GET", path: "/logs", token: "no-perms", validRequest: true, status: 403},
		{name: "post", method: "POST", path: "/logs", token: "alice", body: ev, validRequest: true, status: 201},
		{name: "post again", method: "POST", path: "/logs", token: "alice", body: ev, validRequest: true, status: 200},
		{name: "post invalid", method: "POST", path: "/logs", token: "admin", body: `{"headers":{"name":"a..b"}}`, status: 400},
		{name: "post too large", method: "POST", path: "/logs", token: "admin", body: `{"headers":{"name":"a.b"},"payload":{"x":"` + strings.Repeat("x", 40000) + `"}}`, status: 413},
		{name: "post unauthenticated", method: "POST", path: "/logs", body: ev, status: 401},
		{name: "stream refused", method: "GET", path: "/logs/stream?lastEventId=x", token: "admin", status: 400},
		{name: "stream unauthenticated", method: "GET", path: "/logs/stream", status: 401},
		{name: "healthcheck", method: "GET", path: "/healthcheck", validRequest: true, status: 200},
		{name: "openapi", method: "GET", path: "/openapi.json", validRequest: true, status: 200},
		{name: "metrics", method: "GET", path: "/metrics", validRequest: true, status: 200},
		{name: "console", method: "GET", path: "/", validRequest: true, status: 200},
		{name: "console script", method: "GET", path: "/console/app.js", validRequest: true, status: 200},
		{name: "console style", method: "GET", path: "/console/style.css", validRequest: true, status: 200},
		{name: "console icon", method: "GET", path: "/console/icon.svg", validRequest: true, status: 200},
		{name: "console no such asset", method: "GET", path: "/console/nope.js", validRequest: true, status: 404},
		{name: "catalogue", method: "GET", path: "/catalog.json", validRequest: true, status: 200},
		{name: "asyncapi", method: "GET", path: "/asyncapi.json", validRequest: true, status: 200},
		{name: "checkpoint", method: "GET", path: "/checkpoint", validRequest: true, status: 200},
		{name: "checkpoint key missing", method: "GET", path: "/checkpoint/key", validRequest: true, status: 404},
		{name: "proof", method: "GET", path: "/logs/" + ids["flow-a1"] + "/proof", token: "alice", validRequest: true, status: 200},
		{name: "proof of another's entry", method: "GET", path: "/logs/" + ids["flow-b1"] + "/proof", token: "alice", validRequest: true, status: 404},
		{name: "proof at a size", method: "GET", path: "/logs/" + ids["flow-a1"] + "/proof?size=8", token: "admin", validRequest: true, status: 200},
		{name: "consistency", method: "GET", path: "/proof/consistency?from=3", token: "alice", validRequest: true, status: 200},
		{name: "consistency bad", method: "GET", path: "/proof/consistency", token: "alice", status: 400},
		{name: "checkpoints", method: "GET", path: "/checkpoints", token: "alice", validRequest: true, status: 200},
		{name: "export", method: "GET", path: "/export?limit=3", token: "admin", validRequest: true, status: 200},
		{name: "export refused", method: "GET", path: "/export", token: "alice", validRequest: true, status: 403},
	}
	for _, x := range exchanges {
		t.Run(x.name, func(t *testing.T) {
			status, _, body := checkExchange(t, e, router, x)
			if x.status != 0 && status != x.status {
				t.Errorf("status %d, want %d: %s", status, x.status, body)
			}
		})
	}

	// The conflict: the same event id (given), another createdAt.
	withID := `{"headers":{"name":"flowrepo.flow.created","id":"0190f0e4-0000-7000-8000-0000000000aa","createdAt":1},"payload":{}}`
	checkExchange(t, e, router, exchange{name: "post id", method: "POST", path: "/logs", token: "admin", body: withID, validRequest: true, status: 201})
	st, _, _ := checkExchange(t, e, router, exchange{name: "conflict", method: "POST", path: "/logs", token: "admin",
		body: strings.Replace(withID, `"createdAt":1`, `"createdAt":2000`, 1), validRequest: true})
	if st != http.StatusConflict {
		t.Errorf("conflict: %d", st)
	}

	queueUp = false
	if st, _, _ := checkExchange(t, e, router, exchange{name: "unhealthy", method: "GET", path: "/healthcheck", validRequest: true}); st != 500 {
		t.Errorf("unhealthy: %d", st)
	}
}

// TestOpenAPIValidationCatchesADeviation makes sure the check above can
// fail: an answer that breaks the document is refused.
func TestOpenAPIValidationCatchesADeviation(t *testing.T) {
	_, router := loadOpenAPI(t)
	e := newEnv(t)
	e.seed()
	for name, mutate := range map[string]func(map[string]any){
		"meta missing": func(m map[string]any) { delete(m, "meta") },
		"createdAt a number": func(m map[string]any) {
			m["data"].([]any)[0].(map[string]any)["headers"].(map[string]any)["createdAt"] = 17
		},
		"extra field":       func(m map[string]any) { m["data"].([]any)[0].(map[string]any)["__v"] = 0 },
		"perPage too large": func(m map[string]any) { m["meta"].(map[string]any)["perPage"] = 5000 },
	} {
		r := e.do(http.MethodGet, "/logs", "admin", nil)
		m := r.json(t)
		mutate(m)
		b, _ := json.Marshal(m)
		if err := validateResponse(t, router, httpRequest(t, e, "GET", "/logs", "admin", ""), r.status, r.header, b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func httpRequest(t *testing.T, e *env, method, path, token, body string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func checkExchange(t *testing.T, e *env, router routers.Router, x exchange) (int, http.Header, []byte) {
	t.Helper()
	req := httpRequest(t, e, x.method, x.path, x.token, x.body)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the document: %v", x.method, x.path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if x.validRequest {
		// ValidateRequest reads the body: give the request a fresh one.
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("%s: the request breaks the document: %v", x.name, err)
		}
		req = httpRequest(t, e, x.method, x.path, x.token, x.body)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := validateResponse(t, router, httpRequest(t, e, x.method, x.path, x.token, x.body), resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("%s: %d answer breaks the document: %v\n%s", x.name, resp.StatusCode, err, truncate(body))
	}
	return resp.StatusCode, resp.Header, body
}

func validateResponse(t *testing.T, router routers.Router, req *http.Request, status int, header http.Header, body []byte) error {
	t.Helper()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

func truncate(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(bytes.TrimSpace(b))
}

func TestOpenAPIIsServed(t *testing.T) {
	e := newEnv(t)
	r := e.do(http.MethodGet, "/openapi.json", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, openAPIDocument) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /openapi.json: %d %s", r.status, r.header.Get("Content-Type"))
	}
}
