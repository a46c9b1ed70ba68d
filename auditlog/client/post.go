package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/heraldhq/herald/event"
)

// Post stores ev in the audit log (POST /logs, permission logs.push) and
// returns the entry as stored. created is false when the log already held
// ev's id with the same event: posting again after a lost answer is safe.
// The audit log refuses an invalid event with ErrBadRequest, and another
// event under a stored id with ErrConflict. A token that is not an admin's
// is stored as the serviceName, whatever ev says.
func (c *Client) Post(ctx context.Context, ev *event.Event) (e Entry, created bool, err error) {
	body, err := ev.Encode()
	if err != nil {
		return Entry{}, false, fmt.Errorf("post %s: %w", ev, err)
	}
	status, err := c.do(ctx, request{
		method: http.MethodPost, path: "/logs", body: body,
		accept: []int{http.StatusCreated, http.StatusOK}, out: &e,
	})
	if err != nil {
		return Entry{}, false, err
	}
	return e, status == http.StatusCreated, nil
}

// Health is the audit log's health check.
type Health struct {
	// OK holds when every check passes (the server answered 200).
	OK bool
	// Status is "pass" or "fail", Version the server's version.
	Status  string `json:"status"`
	Version string `json:"version"`
	// Details holds a check per part: "store", and "queue" (the bus).
	Details map[string]Check `json:"details"`
}

// Check is the state of one part of the audit log.
type Check struct {
	// Status is "pass" or "fail"; Message says why a part fails.
	Status  string
	Message string
	// Info holds what else the server says of the part (its transport, …).
	Info map[string]any
}

// UnmarshalJSON reads {"status", "message", …Info}.
func (c *Check) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	c.Status, _ = m["status"].(string)
	c.Message, _ = m["message"].(string)
	delete(m, "status")
	delete(m, "message")
	c.Info = nil
	if len(m) > 0 {
		c.Info = m
	}
	return nil
}

// Health reads GET /healthcheck, which needs no token. A failing part is
// not an error: Health returns it with OK false.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	status, err := c.do(ctx, request{
		method: http.MethodGet, path: "/healthcheck",
		accept: []int{http.StatusOK, http.StatusInternalServerError}, out: &h,
	})
	if err != nil {
		return Health{}, err
	}
	if h.Status == "" {
		return Health{}, fmt.Errorf("GET /healthcheck: %d without a health check in the answer", status)
	}
	h.OK = status == http.StatusOK
	return h, nil
}
