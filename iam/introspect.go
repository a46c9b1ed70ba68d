package iam

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxIntrospectionBody bounds the introspection response read.
const maxIntrospectionBody = 1 << 20

// Introspector authenticates bearer tokens by introspecting them at OIH's
// IAM, exactly as iam-utils' middleware does (see Config). It is safe for
// concurrent use.
type Introspector struct {
	cfg    Config
	client *http.Client
	cache  *tokenCache // nil: no cache
	// oidcAuth is the Authorization header of OIDC requests.
	oidcAuth string
}

// NewIntrospector returns an Introspector for cfg; unset fields take
// iam-utils' defaults.
func NewIntrospector(cfg Config) (*Introspector, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("iam: %w", err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout: cfg.Timeout,
			// request (iam-utils' HTTP library) follows no redirect of a
			// POST: a 3xx is a failed introspection.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	in := &Introspector{
		cfg:    cfg,
		client: client,
		// base64url, not standard base64, of the URI-encoded id and
		// secret: what iam-utils sends (with the base64url package,
		// which drops the padding).
		oidcAuth: "Basic " + base64.RawURLEncoding.EncodeToString(
			[]byte(encodeURIComponent(cfg.OIDCClientID)+":"+encodeURIComponent(cfg.OIDCClientSecret))),
	}
	if cfg.CacheTTL > 0 {
		in.cache = newTokenCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now)
	}
	return in, nil
}

// Authenticate reads the bearer token of r, answers from the cache when it
// holds the token, and introspects it otherwise, with the configured type
// (Config.Type). A client's x-auth-type header is ignored: the caller
// must not choose where its token is sent, nor which IAM answer decides
// its permissions. Failures are *Error values with iam-utils' status and
// message.
func (in *Introspector) Authenticate(ctx context.Context, r *http.Request) (*User, error) {
	token, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	if in.cache != nil {
		if u, ok := in.cache.get(token); ok {
			return u, nil
		}
	}
	return in.Introspect(ctx, token, "")
}

// Introspect asks IAM who token belongs to. authType chooses the
// introspection type ("basic" or "oidc", any case); "" means the
// configured one. Never pass a value a client chose. A successful answer is cached when the cache is on.
func (in *Introspector) Introspect(ctx context.Context, token, authType string) (*User, error) {
	if authType == "" {
		authType = in.cfg.Type
	}
	typ := strings.ToLower(authType)
	endpoint := in.cfg.EndpointOIDC
	if typ == TypeBasic {
		endpoint = in.cfg.EndpointBasic
	}

	var body []byte
	header := http.Header{"Accept": {"application/json"}}
	if typ == TypeOIDC {
		body = []byte(url.Values{"token": {token}}.Encode())
		header.Set("Content-Type", "application/x-www-form-urlencoded")
		header.Set("Authorization", in.oidcAuth)
	} else {
		// basic, and (as in iam-utils) any unknown type: basic-style
		// headers and a JSON body, to the endpoint chosen above.
		body, _ = json.Marshal(map[string]string{"token": token})
		header.Set("Content-Type", "application/json")
		header.Set(headerAuthType, TypeBasic)
		header.Set("Authorization", "Bearer "+in.cfg.IAMToken)
	}

	ctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: %w", endpoint, err))
	}
	req.Header = header
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: %w", endpoint, err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionBody+1))
	if err != nil {
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: read answer: %w", endpoint, err))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrTokenNotFound.withCause(fmt.Errorf("introspect at %s: %s", endpoint, resp.Status))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: %s", endpoint, resp.Status))
	case len(raw) > maxIntrospectionBody:
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: answer larger than %d bytes", endpoint, maxIntrospectionBody))
	}

	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: answer is not a JSON object", endpoint))
	}
	// iam-utils compares the endpoint, not the type: any non-basic type
	// posts to the OIDC endpoint and honours its "active".
	if endpoint == in.cfg.EndpointOIDC {
		if active, ok := doc["active"].(bool); ok && !active {
			return nil, ErrTokenExpired.withCause(fmt.Errorf("introspect at %s: token not active", endpoint))
		}
	}
	u, err := userFromIntrospection(doc)
	if err != nil {
		return nil, ErrAuthorizationFailed.withCause(fmt.Errorf("introspect at %s: %w", endpoint, err))
	}
	if in.cache != nil {
		in.cache.set(token, u)
	}
	return u.clone(), nil
}

// userFromIntrospection builds a User from an introspection answer as
// iam-utils' getUserData does.
func userFromIntrospection(body map[string]any) (*User, error) {
	// user = {...body, ...body.claims}
	merged := make(map[string]any, len(body))
	for k, v := range body {
		merged[k] = v
	}
	if claims, ok := body["claims"].(map[string]any); ok {
		for k, v := range claims {
			merged[k] = v
		}
	}
	u := &User{Raw: merged, Permissions: []string{}}

	// sub = user.sub || body._id: the claims' sub wins, but only the body's
	// _id counts.
	u.Sub = str(merged["sub"])
	if u.Sub == "" {
		u.Sub = str(body["_id"])
	}
	if u.Sub == "" {
		// iam-utils would go on with an undefined sub; herald refuses an
		// identity it cannot scope (its entries would match "no user").
		return nil, errors.New("answer has neither sub nor _id")
	}
	u.Username = str(merged["username"])
	u.Role = str(merged["role"])

	// currentContext: the first active membership when there are
	// memberships, else the deprecated top-level tenant.
	if ms, present := merged["memberships"]; present && truthy(ms) {
		list, ok := ms.([]any)
		if !ok {
			return nil, fmt.Errorf("memberships is %T, not a list", ms)
		}
		// No active membership leaves the user without a tenant (OIH's
		// audit log hung on that case).
		for _, m := range list {
			if mm, ok := m.(map[string]any); ok && truthy(mm["active"]) {
				u.Tenant = idOf(mm["tenant"])
				break
			}
		}
	} else {
		u.Tenant = idOf(merged["tenant"])
	}

	if ps, ok := merged["permissions"].([]any); ok {
		for _, p := range ps {
			if s, ok := p.(string); ok {
				u.Permissions = append(u.Permissions, s)
			}
		}
	}
	u.IsAdmin = slices.Contains(u.Permissions, PermissionAll)
	u.IsTenantAdmin = slices.Contains(u.Permissions, PermissionTenantAll)
	return u, nil
}

// str returns v if it is a string, else "".
func str(v any) string {
	s, _ := v.(string)
	return s
}

// idOf returns an id given as a string, or as a document's _id or id.
func idOf(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		if s := str(t["_id"]); s != "" {
			return s
		}
		return str(t["id"])
	}
	return ""
}

// truthy is JavaScript's truthiness of a decoded JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case float64:
		return t != 0
	}
	return true // objects and arrays, even empty
}

// clone returns a copy of u that shares only Raw (read only).
func (u *User) clone() *User {
	c := *u
	c.Permissions = append([]string{}, u.Permissions...)
	return &c
}

// encodeURIComponent escapes s as JavaScript's encodeURIComponent: every
// byte but A–Z a–z 0–9 - _ . ! ~ * ' ( ) is percent-encoded.
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
