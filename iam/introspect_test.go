package iam

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIAM emulates OIH's IAM: a basic introspection endpoint
// (/api/v1/tokens/introspect) and an OIDC one (/op/userinfo). Each token
// maps to an answer; unknown tokens get 404, as IAM answers.
type fakeIAM struct {
	*httptest.Server
	mu       sync.Mutex
	answers  map[string]answer
	requests []seenRequest
}

type answer struct {
	status int
	body   string
}

type seenRequest struct {
	path   string
	method string
	header http.Header
	body   string
	token  string
}

func newFakeIAM(t *testing.T) *fakeIAM {
	t.Helper()
	f := &fakeIAM{answers: map[string]answer{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeIAM) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	seen := seenRequest{path: r.URL.Path, method: r.Method, header: r.Header.Clone(), body: string(raw)}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		var b struct{ Token string }
		_ = json.Unmarshal(raw, &b)
		seen.token = b.Token
	} else {
		v, _ := url.ParseQuery(string(raw))
		seen.token = v.Get("token")
	}
	f.mu.Lock()
	f.requests = append(f.requests, seen)
	a, ok := f.answers[seen.token]
	f.mu.Unlock()
	if r.URL.Path == "/hang" {
		<-r.Context().Done()
		return
	}
	if !ok {
		http.Error(w, `{"message":"Token not found"}`, http.StatusNotFound)
		return
	}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func (f *fakeIAM) answer(token string, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[token] = answer{status, body}
}

func (f *fakeIAM) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

func (f *fakeIAM) config() Config {
	return Config{
		EndpointBasic: f.URL + "/api/v1/tokens/introspect",
		EndpointOIDC:  f.URL + "/op/userinfo",
		IAMToken:      "service-token",
	}
}

func newIntrospector(t *testing.T, cfg Config) *Introspector {
	t.Helper()
	in, err := NewIntrospector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func request(authorization string, header ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/logs", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// realIAMAccount is what IAM's basic introspection really returns: the
// account document, with no sub, no role and no memberships.
const realIAMAccount = `{"_id":"5c1a2b3c4d5e6f7a8b9c0d1e","username":"jane@example.com","firstname":"Jane","lastname":"Doe",
"status":"ACTIVE","confirmed":true,"tenant":"tenant-1","roles":[{"_id":"r1","name":"Auditor"}],
"permissions":["logs.read","flows.read"],"isAdmin":false,"createdAt":"2024-01-01T00:00:00.000Z"}`

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	c, err := ConfigFromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Configured {
		t.Error("Configured with no variable set")
	}
	if c.Type != TypeBasic || c.EndpointBasic != DefaultEndpointBasic || c.EndpointOIDC != DefaultEndpointOIDC ||
		c.IAMToken != DefaultIAMToken || c.OIDCClientID != "id" || c.OIDCClientSecret != "secret" || c.CacheTTL != 0 {
		t.Errorf("defaults are not iam-utils': %+v", c)
	}

	c, err = ConfigFromEnv(env(map[string]string{
		"INTROSPECT_TYPE":           "oidc",
		"INTROSPECT_ENDPOINT_BASIC": "https://iam.example/api/v1/tokens/introspect",
		"INTROSPECT_ENDPOINT_OIDC":  "https://iam.example/op/token/introspection",
		"IAM_TOKEN":                 "tok",
		"OIDC_CLIENT_ID":            "cid",
		"OIDC_CLIENT_SECRET":        "csecret",
		"IAM_TOKEN_CACHE_TTL":       "30",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Type: "oidc", EndpointBasic: "https://iam.example/api/v1/tokens/introspect",
		EndpointOIDC: "https://iam.example/op/token/introspection", IAMToken: "tok", OIDCClientID: "cid",
		OIDCClientSecret: "csecret", CacheTTL: 30 * time.Second, Configured: true}
	if c.Type != want.Type || c.EndpointBasic != want.EndpointBasic || c.EndpointOIDC != want.EndpointOIDC ||
		c.IAMToken != want.IAMToken || c.OIDCClientID != want.OIDCClientID || c.OIDCClientSecret != want.OIDCClientSecret ||
		c.CacheTTL != want.CacheTTL || !c.Configured {
		t.Errorf("got %+v, want %+v", c, want)
	}

	for _, bad := range []map[string]string{
		{"IAM_TOKEN_CACHE_TTL": "30s"},
		{"IAM_TOKEN_CACHE_TTL": "-1"},
		{"INTROSPECT_ENDPOINT_BASIC": "iam.example/introspect"},
		{"INTROSPECT_ENDPOINT_OIDC": "ftp://iam.example/"},
	} {
		if _, err := ConfigFromEnv(env(bad)); err == nil {
			t.Errorf("ConfigFromEnv(%v) accepted", bad)
		}
	}
	if c, err := ConfigFromEnv(env(map[string]string{"IAM_TOKEN_CACHE_TTL": "0"})); err != nil || c.CacheTTL != 0 {
		t.Errorf("TTL 0: %v, %v; want the cache off", c.CacheTTL, err)
	}
	if c, _ := ConfigFromEnv(env(map[string]string{"IAM_TOKEN_CACHE_TTL": "60"})); c.Configured {
		t.Error("a cache TTL alone counts as configuring IAM")
	}
	if c, _ := ConfigFromEnv(env(map[string]string{"IAM_TOKEN": "x"})); !c.Configured {
		t.Error("IAM_TOKEN alone does not count as configuring IAM")
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	c := Config{IAMToken: "supersecrettoken", OIDCClientSecret: "clientsecret"}
	v := c.LogValue().String()
	if strings.Contains(v, "supersecret") || strings.Contains(v, "clientsec") {
		t.Errorf("secrets in %s", v)
	}
	if !strings.Contains(v, "************oken") {
		t.Errorf("token not masked as iam-utils does: %s", v)
	}
}

func TestBasicIntrospectionSendsWhatIAMUtilsSends(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("user-token", 200, realIAMAccount)
	in := newIntrospector(t, iam.config())

	u, err := in.Authenticate(context.Background(), request("Bearer user-token"))
	if err != nil {
		t.Fatal(err)
	}
	reqs := iam.seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests to IAM, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/api/v1/tokens/introspect" {
		t.Errorf("request %s %s, want POST /api/v1/tokens/introspect", r.method, r.path)
	}
	if got := r.header.Get("x-auth-type"); got != "basic" {
		t.Errorf("x-auth-type %q, want basic", got)
	}
	if got := r.header.Get("Authorization"); got != "Bearer service-token" {
		t.Errorf("authorization %q, want Bearer service-token", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	if r.body != `{"token":"user-token"}` {
		t.Errorf("body %s", r.body)
	}

	if u.Sub != "5c1a2b3c4d5e6f7a8b9c0d1e" || u.Username != "jane@example.com" || u.Tenant != "tenant-1" {
		t.Errorf("user %+v", u)
	}
	if u.Admin() || !u.Can("logs.read") || u.Can("logs.push") {
		t.Errorf("permissions wrong: %+v", u)
	}
	if u.Raw["firstname"] != "Jane" {
		t.Errorf("Raw lacks the body: %v", u.Raw)
	}
}

func TestOIDCIntrospectionSendsWhatIAMUtilsSends(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("oidc-token", 200, `{"active":true,"sub":"u-1","username":"o@example.com","permissions":["logs.read"]}`)
	cfg := iam.config()
	cfg.Type = "oidc"
	// Characters that encodeURIComponent escapes and whose base64 has
	// '+' or '/', so standard base64 or query escaping would differ.
	cfg.OIDCClientID = "my client?"
	cfg.OIDCClientSecret = "s3cr€t+/=~>"
	in := newIntrospector(t, cfg)

	if _, err := in.Authenticate(context.Background(), request("Bearer oidc-token")); err != nil {
		t.Fatal(err)
	}
	r := iam.seen()[0]
	if r.path != "/op/userinfo" {
		t.Errorf("path %s, want the OIDC endpoint", r.path)
	}
	wantCred := "my%20client%3F:s3cr%E2%82%ACt%2B%2F%3D~%3E"
	want := "Basic " + base64.RawURLEncoding.EncodeToString([]byte(wantCred))
	if got := r.header.Get("Authorization"); got != want {
		t.Errorf("authorization %q, want %q", got, want)
	}
	if r.header.Get("x-auth-type") != "" {
		t.Errorf("OIDC request sent x-auth-type %q", r.header.Get("x-auth-type"))
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("content type %q", ct)
	}
	if r.body != "token=oidc-token" {
		t.Errorf("body %q", r.body)
	}
}

func TestEncodeURIComponent(t *testing.T) {
	for in, want := range map[string]string{
		"abcXYZ019-_.!~*'()": "abcXYZ019-_.!~*'()",
		"a b+c/d?e=f&g":      "a%20b%2Bc%2Fd%3Fe%3Df%26g",
		"ü€":                 "%C3%BC%E2%82%AC",
	} {
		if got := encodeURIComponent(in); got != want {
			t.Errorf("encodeURIComponent(%q) = %q, want %q", in, got, want)
		}
	}
}

// The introspection type is the server's configuration: a client's
// x-auth-type header never sends its token elsewhere.
func TestXAuthTypeHeaderIsIgnored(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("t", 200, `{"_id":"u-1"}`)
	basic := newIntrospector(t, iam.config()) // basic by default
	oidcCfg := iam.config()
	oidcCfg.Type = "oidc"
	oidc := newIntrospector(t, oidcCfg)

	for _, c := range []struct {
		in   *Introspector
		path string
		form bool
	}{{basic, "/api/v1/tokens/introspect", false}, {oidc, "/op/userinfo", true}} {
		for _, header := range []string{"", "OIDC", "oidc", "Basic", "basic", "saml"} {
			before := len(iam.seen())
			r := request("Bearer t")
			if header != "" {
				r.Header.Set("x-auth-type", header)
			}
			if _, err := c.in.Authenticate(context.Background(), r); err != nil {
				t.Fatalf("x-auth-type %q: %v", header, err)
			}
			got := iam.seen()[before]
			if got.path != c.path {
				t.Errorf("configured for %s, x-auth-type %q: posted to %s", c.path, header, got.path)
			}
			if form := !strings.HasPrefix(got.header.Get("Content-Type"), "application/json"); form != c.form {
				t.Errorf("configured for %s, x-auth-type %q: form body %v, want %v", c.path, header, form, c.form)
			}
		}
	}
}

func TestAuthenticateFailuresCarryOIHMessages(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("broken", 500, `{"message":"boom"}`)
	iam.answer("forbidden", 403, `{}`)
	iam.answer("redirect", 302, ``)
	iam.answer("not-json", 200, `<html>`)
	iam.answer("array", 200, `[1,2]`)
	iam.answer("inactive", 200, `{"active":false,"sub":"u"}`)
	iam.answer("nobody", 200, `{"username":"x"}`)
	iam.answer("bad-memberships", 200, `{"_id":"u","memberships":"t1"}`)
	basic := newIntrospector(t, iam.config())
	oidcCfg := iam.config()
	oidcCfg.Type = "oidc"
	oidc := newIntrospector(t, oidcCfg)

	tests := []struct {
		name string
		in   *Introspector
		r    *http.Request
		want *Error
		msg  string
	}{
		{"no header", basic, request(""), ErrMissingAuthorization, "Missing authorization header."},
		{"one part", basic, request("Bearer"), ErrInvalidAuthorization, "Invalid authorization header"},
		{"unknown token (IAM 404)", basic, request("Bearer unknown"), ErrTokenNotFound, "Token invalid. Error: Error. Details: Token not found in IAM"},
		{"IAM 500", basic, request("Bearer broken"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"IAM 403", basic, request("Bearer forbidden"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"IAM redirects", basic, request("Bearer redirect"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"not JSON", basic, request("Bearer not-json"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"not an object", basic, request("Bearer array"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"no sub nor _id", basic, request("Bearer nobody"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"memberships not a list", basic, request("Bearer bad-memberships"), ErrAuthorizationFailed, "Token invalid. Error: Error. Details: Authorization failed"},
		{"OIDC inactive", oidc, request("Bearer inactive"), ErrTokenExpired, "Token invalid. Error: Token expired."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.in.Authenticate(context.Background(), tt.r)
			if err == nil {
				t.Fatalf("authenticated %+v", u)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *iam.Error", err, err)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if e.Status != http.StatusUnauthorized || e.Message != tt.msg {
				t.Errorf("got %d %q, want 401 %q", e.Status, e.Message, tt.msg)
			}
		})
	}
}

func TestInactiveOnlyCountsAtTheOIDCEndpoint(t *testing.T) {
	// iam-utils checks "active" only for answers of the OIDC endpoint.
	iam := newFakeIAM(t)
	iam.answer("t", 200, `{"active":false,"_id":"u-1"}`)
	in := newIntrospector(t, iam.config())
	if _, err := in.Authenticate(context.Background(), request("Bearer t")); err != nil {
		t.Errorf("basic answer with active:false refused: %v", err)
	}
}

func TestIAMUnreachableFailsAuthorization(t *testing.T) {
	iam := newFakeIAM(t)
	cfg := iam.config()
	iam.Close()
	in := newIntrospector(t, cfg)
	_, err := in.Authenticate(context.Background(), request("Bearer t"))
	if !errors.Is(err, ErrAuthorizationFailed) {
		t.Errorf("got %v, want ErrAuthorizationFailed", err)
	}
}

func TestIntrospectionIsBoundedByTimeoutAndContext(t *testing.T) {
	iam := newFakeIAM(t)
	cfg := iam.config()
	cfg.EndpointBasic = iam.URL + "/hang"
	cfg.Timeout = 50 * time.Millisecond
	in := newIntrospector(t, cfg)
	if _, err := in.Authenticate(context.Background(), request("Bearer t")); !errors.Is(err, ErrAuthorizationFailed) {
		t.Errorf("hung IAM: got %v, want ErrAuthorizationFailed", err)
	}

	cfg.Timeout = time.Hour
	in = newIntrospector(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := in.Authenticate(ctx, request("Bearer t"))
	if !errors.Is(err, ErrAuthorizationFailed) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
}

func TestUserFromIntrospection(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		sub, tenant string
		username    string
		admin       bool
		tenantAdmin bool
		perms       []string
	}{
		{"real IAM account", realIAMAccount, "5c1a2b3c4d5e6f7a8b9c0d1e", "tenant-1", "jane@example.com", false, false, []string{"logs.read", "flows.read"}},
		{"admin is the all permission, no role", `{"_id":"a","permissions":["all"]}`, "a", "", "", true, false, []string{"all"}},
		{"role ADMIN as OIH's tests send", `{"sub":"a","role":"ADMIN"}`, "a", "", "", true, false, []string{}},
		{"isAdmin field of the body is not trusted", `{"_id":"a","isAdmin":true}`, "a", "", "", false, false, []string{}},
		{"tenant admin", `{"_id":"a","permissions":["tenant.all"],"tenant":"t"}`, "a", "t", "", false, true, []string{"tenant.all"}},
		{"sub wins over _id", `{"_id":"id","sub":"sub"}`, "sub", "", "", false, false, []string{}},
		{"claims merged over the body", `{"sub":"s","username":"old","claims":{"username":"new","permissions":["logs.push"]}}`, "s", "", "new", false, false, []string{"logs.push"}},
		{"first active membership", `{"_id":"a","tenant":"ignored","memberships":[{"tenant":"t1","active":false},{"tenant":"t2","active":true},{"tenant":"t3","active":true}]}`, "a", "t2", "", false, false, []string{}},
		{"memberships, none active: no tenant", `{"_id":"a","tenant":"ignored","memberships":[{"tenant":"t1","active":false}]}`, "a", "", "", false, false, []string{}},
		{"tenant as a document", `{"_id":"a","tenant":{"_id":"t9","name":"Acme"}}`, "a", "t9", "", false, false, []string{}},
		{"null tenant", `{"_id":"a","tenant":null}`, "a", "", "", false, false, []string{}},
		{"permissions not strings skipped", `{"_id":"a","permissions":["logs.read",7,null]}`, "a", "", "", false, false, []string{"logs.read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body map[string]any
			if err := json.Unmarshal([]byte(tt.body), &body); err != nil {
				t.Fatal(err)
			}
			u, err := userFromIntrospection(body)
			if err != nil {
				t.Fatal(err)
			}
			if u.Sub != tt.sub || u.Tenant != tt.tenant || u.Username != tt.username {
				t.Errorf("sub %q tenant %q username %q, want %q %q %q", u.Sub, u.Tenant, u.Username, tt.sub, tt.tenant, tt.username)
			}
			if u.Admin() != tt.admin || u.TenantAdmin() != tt.tenantAdmin {
				t.Errorf("admin %v tenant admin %v, want %v %v", u.Admin(), u.TenantAdmin(), tt.admin, tt.tenantAdmin)
			}
			if u.Permissions == nil || strings.Join(u.Permissions, ",") != strings.Join(tt.perms, ",") {
				t.Errorf("permissions %#v, want %#v", u.Permissions, tt.perms)
			}
		})
	}
}

func TestCanFollowsHasAll(t *testing.T) {
	tests := []struct {
		name  string
		user  *User
		perms []string
		want  bool
	}{
		{"admin by permission", &User{Permissions: []string{"all"}}, []string{"logs.read", "anything"}, true},
		{"admin by role", &User{Role: "ADMIN"}, []string{"logs.push"}, true},
		{"all granted", &User{Permissions: []string{"logs.read", "logs.push"}}, []string{"logs.read", "logs.push"}, true},
		{"one missing", &User{Permissions: []string{"logs.read"}}, []string{"logs.read", "logs.push"}, false},
		{"none held", &User{Permissions: []string{}}, []string{"logs.read"}, false},
		{"tenant admin, common permission", &User{Permissions: []string{"tenant.all"}}, []string{"tenant.flows.read", "metadata.domains.crud"}, true},
		{"tenant admin, logs.read is not common", &User{Permissions: []string{"tenant.all"}}, []string{"logs.read"}, false},
		{"tenant admin, logs.read granted", &User{Permissions: []string{"tenant.all", "logs.read"}}, []string{"logs.read"}, true},
		{"tenant admin, one not common", &User{Permissions: []string{"tenant.all"}}, []string{"tenant.flows.read", "iam.tenant.read"}, false},
		{"role USER is nothing", &User{Role: "USER"}, []string{"logs.read"}, false},
		{"nil user", nil, []string{"logs.read"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.user.Can(tt.perms...); got != tt.want {
				t.Errorf("Can(%v) = %v, want %v", tt.perms, got, tt.want)
			}
		})
	}
	u := &User{Permissions: []string{"logs.read"}}
	if !u.CanAny("logs.push", "logs.read") || u.CanAny("logs.push") {
		t.Error("CanAny wrong")
	}
}

// clock is a settable time for cache tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestCacheServesUntilTTL(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("t", 200, `{"_id":"u-1","permissions":["logs.read"]}`)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	cfg := iam.config()
	cfg.CacheTTL = time.Minute
	cfg.Now = clk.now
	in := newIntrospector(t, cfg)
	ctx := context.Background()

	for range 3 {
		u, err := in.Authenticate(ctx, request("Bearer t"))
		if err != nil || u.Sub != "u-1" {
			t.Fatalf("%+v, %v", u, err)
		}
		// A caller changing its copy does not change the cached one.
		u.Permissions[0] = "all"
	}
	if n := len(iam.seen()); n != 1 {
		t.Fatalf("%d introspections within the TTL, want 1", n)
	}
	u, _ := in.Authenticate(ctx, request("Bearer t"))
	if u.Admin() {
		t.Error("cached identity was modified through a returned copy")
	}

	clk.advance(59 * time.Second)
	in.Authenticate(ctx, request("Bearer t"))
	if n := len(iam.seen()); n != 1 {
		t.Fatalf("%d introspections before the TTL ran out (a hit must not extend it either), want 1", n)
	}
	clk.advance(time.Second)
	if _, err := in.Authenticate(ctx, request("Bearer t")); err != nil {
		t.Fatal(err)
	}
	if n := len(iam.seen()); n != 2 {
		t.Fatalf("%d introspections after the TTL, want 2", n)
	}
}

func TestCacheKeepsOnlySuccesses(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("broken", 500, `{}`)
	cfg := iam.config()
	cfg.CacheTTL = time.Minute
	in := newIntrospector(t, cfg)
	for range 2 {
		in.Authenticate(context.Background(), request("Bearer unknown"))
		in.Authenticate(context.Background(), request("Bearer broken"))
	}
	if n := len(iam.seen()); n != 4 {
		t.Errorf("%d introspections, want 4: failures must not be cached", n)
	}
	if n := in.cache.len(); n != 0 {
		t.Errorf("%d cached, want 0", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	iam := newFakeIAM(t)
	for _, tok := range []string{"a", "b", "c"} {
		iam.answer(tok, 200, `{"_id":"u-`+tok+`"}`)
	}
	cfg := iam.config()
	cfg.CacheTTL = time.Hour
	cfg.CacheSize = 2
	in := newIntrospector(t, cfg)
	ctx := context.Background()
	for _, tok := range []string{"a", "b", "c"} {
		if _, err := in.Authenticate(ctx, request("Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
	}
	if n := in.cache.len(); n != 2 {
		t.Fatalf("%d cached, want at most 2", n)
	}
	in.Authenticate(ctx, request("Bearer c")) // cached
	if n := len(iam.seen()); n != 3 {
		t.Fatalf("%d introspections, want 3", n)
	}
	in.Authenticate(ctx, request("Bearer a")) // the oldest, dropped
	if n := len(iam.seen()); n != 4 {
		t.Fatalf("%d introspections, want 4: the oldest entry should have been dropped", n)
	}
}

func TestCacheIsSafeForConcurrentUse(t *testing.T) {
	iam := newFakeIAM(t)
	iam.answer("t", 200, `{"_id":"u"}`)
	cfg := iam.config()
	cfg.CacheTTL = time.Minute
	cfg.CacheSize = 1
	in := newIntrospector(t, cfg)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			tok := "t"
			if i%2 == 1 {
				tok = "unknown"
			}
			in.Authenticate(context.Background(), request("Bearer "+tok))
		})
	}
	wg.Wait()
}

func TestBearerTokenParsesAsIAMUtils(t *testing.T) {
	tests := []struct {
		header string
		token  string
		err    error
	}{
		{"", "", ErrMissingAuthorization},
		{"Bearer", "", ErrInvalidAuthorization},
		{"Bearer abc", "abc", nil},
		{"Token abc", "abc", nil}, // the scheme is not checked
		{"Bearer a b", "a", nil},  // the second part
		{"Bearer  abc", "", nil},  // split on single spaces
		{"abc", "", ErrInvalidAuthorization},
	}
	for _, tt := range tests {
		tok, err := BearerToken(request(tt.header))
		if tok != tt.token || !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
			t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, tok, err, tt.token, tt.err)
		}
	}
}

func TestErrorIsMatchesStatusAndMessage(t *testing.T) {
	err := ErrTokenNotFound.withCause(errors.New("IAM said 404"))
	if !errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrAuthorizationFailed) {
		t.Error("errors.Is does not tell the failures apart")
	}
	if !strings.Contains(err.Error(), "IAM said 404") {
		t.Errorf("cause missing from %q", err.Error())
	}
}
