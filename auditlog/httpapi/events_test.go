package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/event"
)

// recordingPublisher keeps what POST /events publishes; fail, when set,
// is its answer.
type recordingPublisher struct {
	mu   sync.Mutex
	evs  []*event.Event
	fail error
}

func (p *recordingPublisher) Publish(_ context.Context, ev *event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.evs = append(p.evs, ev.Clone())
	return nil
}

func (p *recordingPublisher) last() *event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.evs) == 0 {
		return nil
	}
	return p.evs[len(p.evs)-1]
}

func TestPostEventsPublishesCloudEventsAfterValidation(t *testing.T) {
	_, router := loadOpenAPI(t)
	pub := &recordingPublisher{}
	e := newEnv(t, func(c *Config) { c.Publisher = pub; c.MaxEventSize = 4096 })
	structured := `{"specversion":"1.0","id":"ce-1","source":"accounts","type":"iam.user.created","time":"2024-05-02T09:30:00.123Z",` +
		`"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data":{"id":"u-1","username":"jane@example.com"}}`
	binary := map[string]string{"ce-specversion": "1.0", "ce-id": "ce-2", "ce-source": "flow-repository", "ce-type": "flowrepo.flow.created",
		"ce-time": "2024-05-02T09:30:00Z", "ce-hops": "3", "ce-note": "caf%C3%A9"}
	cases := []struct {
		name        string
		token       string
		contentType string
		headers     map[string]string
		body        string
		status      int
		check       func(t *testing.T, ev *event.Event)
	}{
		{name: "structured", token: "admin", contentType: event.CloudEventsContentType, body: structured, status: 202,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Headers.Name != "iam.user.created" || ev.Headers.ServiceName != "accounts" || ev.Headers.ID != "ce-1" || ev.Headers.CreatedAt.UnixMilli() != 1714642200123 {
					t.Errorf("published headers %+v", ev.Headers)
				}
				if string(ev.Headers.Extra["traceparent"]) != `"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"` {
					t.Errorf("traceparent extension not kept as a header: %v", ev.Headers.Extra)
				}
			}},
		{name: "binary", token: "admin", contentType: "application/json", headers: binary, body: `{"flowId":"f-1","user":"u-1","tenant":""}`, status: 202,
			check: func(t *testing.T, ev *event.Event) {
				if ev.Headers.Name != "flowrepo.flow.created" || ev.Headers.ServiceName != "flow-repository" || ev.Headers.ID != "ce-2" {
					t.Errorf("published headers %+v", ev.Headers)
				}
				if string(ev.Headers.Extra["hops"]) != `"3"` || string(ev.Headers.Extra["note"]) != `"café"` {
					t.Errorf("binary extensions %v, want hops and the percent-decoded note as strings", ev.Headers.Extra)
				}
				if !strings.Contains(string(ev.Payload), `"flowId":"f-1"`) {
					t.Errorf("payload %s", ev.Payload)
				}
			}},
		{name: "unknown name", token: "admin", contentType: event.CloudEventsContentType, body: strings.Replace(structured, "iam.user.created", "iam.user.removedFormTennant", 1), status: 400},
		{name: "payload the catalogue refuses", token: "admin", contentType: event.CloudEventsContentType, body: strings.Replace(structured, `"username":"jane@example.com"`, `"username":7`, 1), status: 400},
		{name: "not a CloudEvent", token: "admin", contentType: "application/json", body: `{"headers":{"name":"a.b"}}`, status: 415},
		{name: "batch", token: "admin", contentType: "application/cloudevents-batch+json", body: "[" + structured + "]", status: 415},
		{name: "malformed", token: "admin", contentType: event.CloudEventsContentType, body: `{"specversion":"1.0","id":"x"}`, status: 400},
		{name: "binary without specversion 1.0", token: "admin", contentType: "application/json", headers: map[string]string{"ce-specversion": "0.3", "ce-id": "x", "ce-source": "s", "ce-type": "flow.started"}, body: `{"id":"f"}`, status: 400},
		{name: "too large", token: "admin", contentType: event.CloudEventsContentType, body: strings.Replace(structured, `"u-1"`, `"`+strings.Repeat("x", 30000)+`"`, 1), status: 413},
		{name: "without the permission", token: "alice", contentType: event.CloudEventsContentType, body: structured, status: 403},
		{name: "without a token", contentType: event.CloudEventsContentType, body: structured, status: 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := pub.last()
			req := eventsRequest(t, e, tc.token, tc.contentType, tc.headers, tc.body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if err := validateResponse(t, router, eventsRequest(t, e, tc.token, tc.contentType, tc.headers, tc.body), resp.StatusCode, resp.Header, body); err != nil {
				t.Errorf("%d answer breaks the OpenAPI document: %v\n%s", resp.StatusCode, err, truncate(body))
			}
			got := pub.last()
			if tc.status != http.StatusAccepted {
				if got != before {
					t.Errorf("a refused event was published: %v", got)
				}
				return
			}
			if got == nil || got == before {
				t.Fatal("nothing was published")
			}
			answered, err := event.Decode(body)
			if err != nil || answered.Headers.ID != got.Headers.ID {
				t.Errorf("answer %s, want the published event %s", body, got.Headers.ID)
			}
			tc.check(t, got)
		})
	}
}

func TestPostEventsAnswers503WhenTheBusRefuses(t *testing.T) {
	pub := &recordingPublisher{fail: errors.New("broker gone")}
	e := newEnv(t, func(c *Config) { c.Publisher = pub })
	body := `{"specversion":"1.0","id":"ce-1","source":"component-orchestrator","type":"flow.started","data":{"id":"f-1"}}`
	resp, err := http.DefaultClient.Do(eventsRequest(t, e, "admin", event.CloudEventsContentType, nil, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var errs struct {
		Errors []struct{ Message string } `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&errs); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || len(errs.Errors) != 1 || strings.Contains(errs.Errors[0].Message, "broker gone") {
		t.Errorf("%d %+v, want 503 without the transport's error text", resp.StatusCode, errs)
	}
}

func TestPostEventsIsAbsentWithoutAPublisher(t *testing.T) {
	e := newEnv(t)
	resp, err := http.DefaultClient.Do(eventsRequest(t, e, "admin", event.CloudEventsContentType, nil, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /events without a publisher: %d, want 404 or 405", resp.StatusCode)
	}
}

func eventsRequest(t *testing.T, e *env, token, contentType string, headers map[string]string, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}
