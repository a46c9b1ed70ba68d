package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
)

// DefaultEventsPermission is needed for POST /events
// (EVENTS_PUBLISH_PERMISSION overrides it; the cmd layer reads that).
const DefaultEventsPermission = "events.publish"

// Publisher publishes an event on the bus and returns once the broker has
// it; a *bus.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, ev *event.Event) error
}

// publishTimeout bounds a POST /events's wait for the broker.
const publishTimeout = 30 * time.Second

// postEvent takes one CloudEvent, in the structured JSON format or in
// binary mode (ce-* headers, the data as the body), and publishes the OIH
// event it maps to once the catalogue accepts it. It answers 202 with the
// event as published, in OIH's wire form.
func (a *api) postEvent(w http.ResponseWriter, r *http.Request, _ *iam.User) {
	// Room for a pretty-printed body; the encoded event is checked after.
	body, ok := a.takeBody(w, r)
	if !ok {
		return
	}
	contentType := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(contentType)
	var (
		ev  *event.Event
		err error
	)
	switch {
	case mt == event.CloudEventsContentType:
		ev, err = event.DecodeCloudEvent(body)
	case r.Header.Get("ce-specversion") != "":
		ev, err = binaryCloudEvent(r.Header, contentType, body)
	case mt == "application/cloudevents-batch+json":
		writeError(w, http.StatusUnsupportedMediaType, "the batch format is not taken: send one CloudEvent per request", "")
		return
	default:
		writeError(w, http.StatusUnsupportedMediaType, "want a CloudEvent: structured (Content-Type "+event.CloudEventsContentType+") or binary (ce-specversion, ce-id, ce-source, ce-type headers)", "")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if err := ev.Validate(a.cfg.MaxEventSize); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if a.cfg.Catalog != nil {
		if err := a.cfg.Catalog.Validate(ev); err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	if err := a.cfg.Publisher.Publish(ctx, ev); err != nil {
		a.log.ErrorContext(ctx, "publish a POSTed event", "event", ev.Headers.Name, "id", ev.Headers.ID, "error", err)
		writeError(w, http.StatusServiceUnavailable, "the bus did not take the event", "")
		return
	}
	wire, err := ev.Encode()
	if err != nil {
		a.internalError(w, r, "encode the published event", err)
		return
	}
	writeJSON(w, http.StatusAccepted, json.RawMessage(wire))
}

// binaryCloudEvent reads a CloudEvent in the HTTP binding's binary mode:
// the attributes in ce-* headers (percent-encoded), datacontenttype in
// Content-Type, the data as the body. Extensions arrive as strings.
func binaryCloudEvent(h http.Header, contentType string, body []byte) (*event.Event, error) {
	c := event.CloudEvent{DataContentType: contentType}
	var spec, t string
	for k, vs := range h {
		name, ok := strings.CutPrefix(strings.ToLower(k), "ce-")
		if !ok || len(vs) == 0 {
			continue
		}
		v, err := url.PathUnescape(vs[0])
		if err != nil {
			return nil, fmt.Errorf("%w: header %s: %v", event.ErrCloudEvent, k, err)
		}
		switch name {
		case "specversion":
			spec = v
		case "id":
			c.ID = v
		case "source":
			c.Source = v
		case "type":
			c.Type = v
		case "subject":
			c.Subject = v
		case "dataschema":
			c.DataSchema = v
		case "time":
			t = v
		case "datacontenttype":
			// Content-Type carries it in binary mode.
		default:
			if c.Extensions == nil {
				c.Extensions = make(map[string]json.RawMessage)
			}
			c.Extensions[name] = json.RawMessage(strconv.Quote(v))
		}
	}
	if spec != event.CloudEventsSpecVersion {
		return nil, fmt.Errorf("%w: ce-specversion %q, want %q", event.ErrCloudEvent, spec, event.CloudEventsSpecVersion)
	}
	if t != "" {
		var err error
		if c.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return nil, fmt.Errorf("%w: ce-time %q is not RFC 3339", event.ErrCloudEvent, t)
		}
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		c.Data = body
	}
	return c.Event()
}
