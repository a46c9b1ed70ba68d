package iam

import "net/http"

// Error is an authentication or authorisation failure, with the HTTP
// status and the message OIH's iam-utils answers with. Err, when set, is
// the cause (for logs): it is not part of the message a caller is shown.
type Error struct {
	Status  int
	Message string
	Err     error
}

// Error returns the message, followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same status and message,
// so errors.Is(err, ErrTokenNotFound) holds whatever the cause.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status && t.Message == e.Message
}

// withCause returns a copy of e with cause err.
func (e *Error) withCause(err error) *Error {
	return &Error{Status: e.Status, Message: e.Message, Err: err}
}

// The failures of iam-utils' middleware, with its exact messages. Compare
// with errors.Is; the errors returned carry a cause and are copies.
var (
	// ErrMissingAuthorization: the request has no Authorization header.
	ErrMissingAuthorization = &Error{Status: http.StatusUnauthorized, Message: "Missing authorization header."}
	// ErrInvalidAuthorization: the header has fewer than two
	// space-separated parts (the scheme itself is not checked).
	ErrInvalidAuthorization = &Error{Status: http.StatusUnauthorized, Message: "Invalid authorization header"}
	// ErrTokenNotFound: IAM answered 404 (unknown, expired or inactive
	// account's token), or a static token did not match.
	ErrTokenNotFound = &Error{Status: http.StatusUnauthorized, Message: "Token invalid. Error: Error. Details: Token not found in IAM"}
	// ErrAuthorizationFailed: any other introspection failure (IAM down,
	// an error status, a body that is not an identity).
	ErrAuthorizationFailed = &Error{Status: http.StatusUnauthorized, Message: "Token invalid. Error: Error. Details: Authorization failed"}
	// ErrTokenExpired: the OIDC endpoint said the token is not active.
	ErrTokenExpired = &Error{Status: http.StatusUnauthorized, Message: "Token invalid. Error: Token expired."}
	// ErrMissingPermission: the caller lacks a required permission
	// (iam-utils' can()).
	ErrMissingPermission = &Error{Status: http.StatusForbidden, Message: "MISSING_PERMISSION"}
)
