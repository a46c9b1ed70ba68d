// Package wire holds what the audit log's HTTP API and its clients share:
// the page sizes of GET /logs and the body of an error answer. It imports
// nothing, so that a client (auditlog/client) keeps to the server's
// contract without linking the server, its store or its metrics.
package wire

// Page sizes of GET /logs: page[size] is DefaultPageSize when absent and
// at most MaxPageSize.
const (
	DefaultPageSize = 10
	MaxPageSize     = 1000
)

// ErrorBody is the body of every error answer, OIH's shape:
// {"errors":[{"message":…,"code":…}]}.
type ErrorBody struct {
	Errors []ErrorMessage `json:"errors"`
}

// ErrorMessage is one error of an ErrorBody. Code repeats the HTTP status.
// Details, which OIH's audit log never sends, holds more facts as JSON
// text: a 403 names the permissions the caller lacks, ["logs.read"].
type ErrorMessage struct {
	Message string `json:"message"`
	Code    int    `json:"code"`
	Details string `json:"details,omitempty"`
}
