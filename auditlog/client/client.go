// Package client talks to a running audit log over HTTP: herald serve's
// API, or OIH's audit-log service, whose /logs contract herald keeps. It
// lists entries a page at a time or iterates over all of them, follows new
// entries as they are stored, posts events and reads the health check.
//
//	c, err := client.New("http://127.0.0.1:3007", client.WithToken(token))
//	…
//	for e, err := range c.All(ctx, client.Query{Service: "accounts", Limit: 100}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(e.CreatedAt, e.Name, e.User)
//	}
//
// It imports neither the server nor a store: a program that reads the
// audit log links net/http and herald's event envelope, nothing more.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldhq/herald/auditlog/httpapi/wire"
)

// DefaultPollInterval is how often Follow asks for new entries unless
// WithPollInterval says otherwise.
const DefaultPollInterval = time.Second

// maxBody bounds an answer read into memory: a full page of large entries
// fits many times over.
const maxBody = 256 << 20

// Client is a connection to one audit log. It is safe for concurrent use.
type Client struct {
	base         *url.URL
	token        string
	http         *http.Client
	pollInterval time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as the bearer token of every request: an OIH IAM
// token, or the admin token herald serve writes to its data folder.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient sends the requests through hc (default: a client with a
// 30-second timeout per request).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithPollInterval sets how often Follow asks for new entries (default
// DefaultPollInterval); a duration that is not positive keeps the default.
func WithPollInterval(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.pollInterval = d
		}
	}
}

// New returns a client of the audit log at baseURL, such as
// http://127.0.0.1:3007 or https://audit.example.com/prefix. It fails only
// on a URL that is not http:// or https:// with a host; it does not
// connect.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit log URL %q: want http://host:port or https://…", baseURL)
	}
	c := &Client{
		base:         u,
		http:         &http.Client{Timeout: 30 * time.Second},
		pollInterval: DefaultPollInterval,
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// URL returns the base URL the client talks to, without a password.
func (c *Client) URL() string { return c.base.Redacted() }

// ErrUnreachable is wrapped by the errors of requests that got no answer:
// nothing listens at the URL, or the connection broke.
var ErrUnreachable = errors.New("no audit log answers")

// The statuses an *Error can be told apart by with errors.Is.
var (
	// ErrBadRequest: 400, the query or the posted event is refused; the
	// message names what is wrong.
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized: 401, no token, or one IAM does not know.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: 403, the token lacks a permission;
	// Error.MissingPermissions names it.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: 409, another event is stored under the posted event's
	// id.
	ErrConflict = errors.New("conflict")
)

// Error is an error answer of the audit log: its status and the messages
// of its body, OIH's {"errors":[{"message","code"}]}. errors.Is matches it
// with ErrBadRequest, ErrUnauthorized, ErrForbidden and ErrConflict by its
// status.
type Error struct {
	// Method and Path are the request's (the path without its query).
	Method, Path string
	// StatusCode is the HTTP status.
	StatusCode int
	// Errors holds the body's errors; it is empty when the body is not an
	// error body (a proxy's page), and Body then holds its start.
	Errors []wire.ErrorMessage
	Body   string
}

// Error reads "GET /logs: 401 Unauthorized: Missing authorization header.".
func (e *Error) Error() string {
	msg := e.Message()
	if perms := e.MissingPermissions(); len(perms) > 0 {
		msg += " (lacks " + strings.Join(perms, ", ") + ")"
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

// Message returns the first error's message, else the start of the body,
// else the status text.
func (e *Error) Message() string {
	for _, m := range e.Errors {
		if m.Message != "" {
			return m.Message
		}
	}
	if e.Body != "" {
		return e.Body
	}
	return http.StatusText(e.StatusCode)
}

// MissingPermissions returns the permissions a 403 says the token lacks,
// or nil (OIH's audit log does not name them).
func (e *Error) MissingPermissions() []string {
	if e.StatusCode != http.StatusForbidden {
		return nil
	}
	for _, m := range e.Errors {
		var perms []string
		if json.Unmarshal([]byte(m.Details), &perms) == nil && len(perms) > 0 {
			return perms
		}
	}
	return nil
}

// Is reports whether target is the sentinel of e's status.
func (e *Error) Is(target error) bool {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return target == ErrBadRequest
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusConflict:
		return target == ErrConflict
	}
	return false
}

// request is one call of the API.
type request struct {
	method string
	path   string     // below the base URL: /logs
	query  url.Values // nil for none
	body   []byte     // JSON, nil for none
	// accept are the statuses answered with a body to decode into out;
	// any other status is an *Error.
	accept []int
	out    any
}

// do sends r and decodes the answer into r.out. It returns the status.
func (c *Client) do(ctx context.Context, r request) (int, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + r.path
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", r.method, u.Path, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("%s %s: %w", r.method, u.Path, ctx.Err())
		}
		return 0, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.URL(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("%s %s: reading the answer: %w", r.method, u.Path, err)
	}
	for _, s := range r.accept {
		if resp.StatusCode == s {
			if err := json.Unmarshal(b, r.out); err != nil {
				return 0, fmt.Errorf("%s %s: not an audit log answer: %w", r.method, u.Path, err)
			}
			return s, nil
		}
	}
	return 0, answerError(r.method, u.Path, resp.StatusCode, b)
}

// answerError reads an error answer.
func answerError(method, path string, status int, body []byte) *Error {
	e := &Error{Method: method, Path: path, StatusCode: status}
	var eb wire.ErrorBody
	if json.Unmarshal(body, &eb) == nil && len(eb.Errors) > 0 {
		e.Errors = eb.Errors
		return e
	}
	s := strings.TrimSpace(string(body))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	e.Body = s
	return e
}
