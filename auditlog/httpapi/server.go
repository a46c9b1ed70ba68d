package httpapi

import (
	"net/http"
	"time"
)

// Timeouts are the HTTP server's limits on a connection, so that clients
// that never finish a request, or never read an answer, or keep a
// connection idle, do not hold it (and its file descriptor) for ever.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers; Read the whole
	// request, body included; Write the answer, from the end of the
	// request's headers (the live stream and the NDJSON routes extend
	// it as they write: Write is then the longest one write may take);
	// Idle a keep-alive connection between requests.
	ReadHeader, Read, Write, Idle time.Duration
}

// DefaultTimeouts are herald serve's.
var DefaultTimeouts = Timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      60 * time.Second,
	Idle:       60 * time.Second,
}

// MaxHeaderBytes bounds a request's headers.
const MaxHeaderBytes = 64 << 10

// NewServer returns the HTTP server of h with timeouts t (zero fields take
// DefaultTimeouts').
func NewServer(h http.Handler, t Timeouts) *http.Server {
	d := DefaultTimeouts
	if t.ReadHeader <= 0 {
		t.ReadHeader = d.ReadHeader
	}
	if t.Read <= 0 {
		t.Read = d.Read
	}
	if t.Write <= 0 {
		t.Write = d.Write
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// longAnswer lifts the read deadline of a request whose answer is long
// (its body is read; a deadline left would cancel the request's context
// while the answer is being written) and returns what extends its write
// deadline by write before each part of the answer.
func longAnswer(w http.ResponseWriter, write time.Duration) (extend func()) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	return func() { _ = rc.SetWriteDeadline(time.Now().Add(write)) }
}
