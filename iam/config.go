package iam

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Introspection types, as INTROSPECT_TYPE and the x-auth-type header name
// them (compared case-insensitively).
const (
	TypeBasic = "basic"
	TypeOIDC  = "oidc"
)

// The environment variables of iam-utils that ConfigFromEnv reads.
const (
	EnvIntrospectType   = "INTROSPECT_TYPE"
	EnvEndpointBasic    = "INTROSPECT_ENDPOINT_BASIC"
	EnvEndpointOIDC     = "INTROSPECT_ENDPOINT_OIDC"
	EnvIAMToken         = "IAM_TOKEN"
	EnvOIDCClientID     = "OIDC_CLIENT_ID"
	EnvOIDCClientSecret = "OIDC_CLIENT_SECRET"
	EnvTokenCacheTTL    = "IAM_TOKEN_CACHE_TTL"
)

const (
	// headerAuthType is the header basic introspection sends to IAM
	// (iam-utils does). A client's x-auth-type is never read.
	headerAuthType        = "x-auth-type"
	defaultMaxCachedUsers = 10000
)

// iam-utils' defaults (src/conf.js).
const (
	DefaultEndpointBasic    = "http://iam.openintegrationhub.com/api/v1/tokens/introspect"
	DefaultEndpointOIDC     = "http://iam.openintegrationhub.com/op/userinfo"
	DefaultIAMToken         = "NoToken"
	DefaultOIDCClientID     = "id"
	DefaultOIDCClientSecret = "secret"
	// DefaultTimeout bounds one introspection request. iam-utils sets
	// none; a hung IAM must not hang every API request with it.
	DefaultTimeout = 10 * time.Second
)

// Config configures an Introspector. The zero value of each field means
// iam-utils' default.
type Config struct {
	// Type is the introspection type of every request: "basic"
	// (default) or "oidc". Unlike iam-utils, a request's x-auth-type
	// header does not change it. Any other value
	// posts to the OIDC endpoint with basic-style headers and a JSON
	// body, as iam-utils does.
	Type string
	// EndpointBasic is IAM's token introspection URL (basic type).
	EndpointBasic string
	// EndpointOIDC is the OIDC introspection (userinfo) URL.
	EndpointOIDC string
	// IAMToken is this service's own IAM token, sent as the bearer of
	// basic introspection requests; IAM requires it to hold the
	// permission iam.token.introspect.
	IAMToken string
	// OIDCClientID and OIDCClientSecret authenticate OIDC introspection.
	OIDCClientID     string
	OIDCClientSecret string
	// CacheTTL caches each successful introspection, keyed by the token,
	// for this long; 0 disables the cache (iam-utils' default). Cached
	// identities are not revoked early: a deleted token or a removed
	// permission takes effect only after CacheTTL, as in OIH.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached identities (default 10,000);
	// the oldest are dropped first.
	CacheSize int
	// Timeout bounds one introspection request (default DefaultTimeout).
	Timeout time.Duration
	// HTTPClient sends the introspection requests. The default client has
	// Timeout and, as iam-utils' request library, does not follow
	// redirects of a POST.
	HTTPClient *http.Client
	// Now returns the current time, for the cache (default time.Now).
	Now func() time.Time
	// Configured reports that ConfigFromEnv found at least one of the
	// introspection variables set (every one it reads except
	// IAM_TOKEN_CACHE_TTL). When it is false the caller may choose another
	// authenticator (herald serve falls back to a StaticToken) instead of
	// introspecting at OIH's public defaults.
	Configured bool
}

// ConfigFromEnv reads iam-utils' environment variables with getenv
// (os.Getenv, or a map lookup in tests): INTROSPECT_TYPE,
// INTROSPECT_ENDPOINT_BASIC, INTROSPECT_ENDPOINT_OIDC, IAM_TOKEN,
// OIDC_CLIENT_ID, OIDC_CLIENT_SECRET and IAM_TOKEN_CACHE_TTL (whole
// seconds). Unset variables take iam-utils' defaults. It fails on a
// malformed cache TTL or endpoint URL.
//
// Unlike node-cache, for which a TTL of 0 means "never expire", a TTL of 0
// disables the cache: a revoked token must not stay valid forever.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Type:             getenv(EnvIntrospectType),
		EndpointBasic:    getenv(EnvEndpointBasic),
		EndpointOIDC:     getenv(EnvEndpointOIDC),
		IAMToken:         getenv(EnvIAMToken),
		OIDCClientID:     getenv(EnvOIDCClientID),
		OIDCClientSecret: getenv(EnvOIDCClientSecret),
	}
	c.Configured = c.Type != "" || c.EndpointBasic != "" || c.EndpointOIDC != "" ||
		c.IAMToken != "" || c.OIDCClientID != "" || c.OIDCClientSecret != ""
	if s := strings.TrimSpace(getenv(EnvTokenCacheTTL)); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("%s=%q: want a whole number of seconds", EnvTokenCacheTTL, s)
		}
		c.CacheTTL = time.Duration(n) * time.Second
	}
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func (c Config) withDefaults() Config {
	if c.Type == "" {
		c.Type = TypeBasic
	}
	if c.EndpointBasic == "" {
		c.EndpointBasic = DefaultEndpointBasic
	}
	if c.EndpointOIDC == "" {
		c.EndpointOIDC = DefaultEndpointOIDC
	}
	if c.IAMToken == "" {
		c.IAMToken = DefaultIAMToken
	}
	if c.OIDCClientID == "" {
		c.OIDCClientID = DefaultOIDCClientID
	}
	if c.OIDCClientSecret == "" {
		c.OIDCClientSecret = DefaultOIDCClientSecret
	}
	if c.CacheSize <= 0 {
		c.CacheSize = defaultMaxCachedUsers
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	for _, e := range []struct{ name, url string }{
		{EnvEndpointBasic, c.EndpointBasic},
		{EnvEndpointOIDC, c.EndpointOIDC},
	} {
		u, err := url.Parse(e.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s=%q: want an http or https URL", e.name, e.url)
		}
	}
	if c.CacheTTL < 0 {
		return fmt.Errorf("negative cache TTL %v", c.CacheTTL)
	}
	return nil
}

// LogValue implements slog.LogValuer: the configuration with the IAM token
// and the OIDC client secret masked but for their last four characters,
// as iam-utils logs it.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("type", c.Type),
		slog.String("endpointBasic", c.EndpointBasic),
		slog.String("endpointOIDC", c.EndpointOIDC),
		slog.String("iamToken", mask(c.IAMToken)),
		slog.String("oidcClientID", c.OIDCClientID),
		slog.String("oidcClientSecret", mask(c.OIDCClientSecret)),
		slog.Duration("cacheTTL", c.CacheTTL),
	)
}

func mask(s string) string {
	if len(s) <= 4 {
		return s
	}
	return strings.Repeat("*", len(s)-4) + s[len(s)-4:]
}
