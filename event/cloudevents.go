package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// herald's CloudEvents 1.0 mapping. An OIH event and a CloudEvent say the
// same things, so each converts to the other and back without loss:
//
//	CloudEvent              OIH envelope
//	specversion "1.0"       –
//	id                      headers.id
//	source                  headers.serviceName (CloudEventsNoService when it has none)
//	type                    headers.name
//	time                    headers.createdAt (absent when it has none)
//	datacontenttype         "application/json" (the payload is a JSON object)
//	data                    payload
//	subject, dataschema     headers.subject, headers.dataschema (a string; a URI for dataschema)
//	oihuser, oihtenant      payload.user, payload.tenant (copies, for routing and filtering)
//	oihheaders              every other header that is no extension of its own, as a JSON object in a string
//	any other extension     the header of that name (traceparent and tracestate, W3C's
//	                        distributed-tracing extension, among them)
//
// A header becomes an extension of its own name when the name is a valid
// CloudEvents attribute name (a–z and 0–9, at most 20 characters) that no
// context attribute uses, and its value is a string, a boolean or an
// integer that fits 32 bits, the types an extension holds; any other
// header (OIH's "type" of flow.execute, a nested object, a camelCase name)
// goes into oihheaders. A CloudEvent herald writes converts back to the
// same CloudEvent; any other converts back to one carrying the same
// information (an extension herald finds in oihheaders comes back as its
// own attribute, absent data as {}).
const (
	// CloudEventsSpecVersion is the specversion herald reads and writes.
	CloudEventsSpecVersion = "1.0"
	// CloudEventsNoService is the source of an event whose publisher sent
	// no serviceName (components publishing through ferryman), and reads
	// back as none.
	CloudEventsNoService = "urn:oih:no-service-name"
	// CloudEventsContentType is the media type of a CloudEvent in the
	// structured JSON format.
	CloudEventsContentType = "application/cloudevents+json"

	// Extension attributes of the mapping.
	CloudEventsUser    = "oihuser"
	CloudEventsTenant  = "oihtenant"
	CloudEventsHeaders = "oihheaders"
)

// ErrCloudEvent is wrapped by every error converting or decoding a
// CloudEvent: it is not a CloudEvent herald can map to an OIH event.
var ErrCloudEvent = errors.New("invalid CloudEvent")

// CloudEvent is a CloudEvents 1.0 event, in the attributes herald's
// mapping uses.
type CloudEvent struct {
	ID              string
	Source          string
	Type            string
	Time            time.Time // zero when absent
	Subject         string
	DataSchema      string
	DataContentType string
	// Extensions are the extension attributes by name; each value is a
	// JSON string, boolean or number.
	Extensions map[string]json.RawMessage
	// Data is the event data, JSON; nil when absent.
	Data json.RawMessage
}

// contextAttributes are the names a header cannot take as an extension.
var contextAttributes = []string{
	"specversion", "id", "source", "type", "time", "subject", "dataschema",
	"datacontenttype", "data", "data_base64",
	CloudEventsUser, CloudEventsTenant, CloudEventsHeaders,
}

// CloudEvent returns e as a CloudEvent. An event without an id (never
// one from Decode) gets the id Decode would derive from its body.
func (e *Event) CloudEvent() (*CloudEvent, error) {
	payload, err := normalizePayload(e.Payload)
	if err != nil {
		return nil, err
	}
	c := &CloudEvent{
		ID:              e.Headers.ID,
		Source:          e.Headers.ServiceName,
		Type:            e.Headers.Name,
		Time:            e.Headers.CreatedAt,
		DataContentType: "application/json",
		Data:            payload,
	}
	if c.ID == "" {
		body, err := e.Encode()
		if err != nil {
			return nil, err
		}
		c.ID = DerivedID(body)
	}
	if c.Source == "" {
		c.Source = CloudEventsNoService
	}
	ext := make(map[string]json.RawMessage, len(e.Headers.Extra)+2)
	user, tenant := e.Reserved()
	if user != "" {
		ext[CloudEventsUser] = jsonQuote(user)
	}
	if tenant != "" {
		ext[CloudEventsTenant] = jsonQuote(tenant)
	}
	var rest map[string]json.RawMessage
	for k, v := range e.Headers.Extra {
		if k == headerName || k == headerServiceName || k == headerCreatedAt || k == headerID {
			continue // Encode writes the fields, not these
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, v); err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		v = compact.Bytes()
		switch s, isString := jsonString(v); {
		case k == "subject" && isString && s != "":
			c.Subject = s
		case k == "dataschema" && isString && isAbsoluteURI(s):
			c.DataSchema = s
		case validExtensionName(k) && !slices.Contains(contextAttributes, k) && extensionValue(v):
			ext[k] = v
		default:
			if rest == nil {
				rest = make(map[string]json.RawMessage)
			}
			rest[k] = v
		}
	}
	if len(rest) > 0 {
		obj, err := json.Marshal(rest) // keys sorted
		if err != nil {
			return nil, err
		}
		ext[CloudEventsHeaders] = jsonQuote(string(obj))
	}
	if len(ext) > 0 {
		c.Extensions = ext
	}
	return c, nil
}

// Event returns the OIH event c stands for. It refuses a CloudEvent that
// lacks id, source or type, whose type is no event name, whose data is not
// a JSON object, or whose oihuser or oihtenant disagrees with its data.
func (c *CloudEvent) Event() (*Event, error) {
	switch {
	case c.ID == "":
		return nil, fmt.Errorf("%w: no id", ErrCloudEvent)
	case c.Source == "":
		return nil, fmt.Errorf("%w: no source", ErrCloudEvent)
	}
	if err := ValidateName(c.Type); err != nil {
		return nil, fmt.Errorf("%w: type: %w", ErrCloudEvent, err)
	}
	if c.DataContentType != "" && !isJSONMediaType(c.DataContentType) {
		return nil, fmt.Errorf("%w: datacontenttype %q: herald's events carry JSON", ErrCloudEvent, c.DataContentType)
	}
	payload, err := normalizePayload(c.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: data: %w", ErrCloudEvent, err)
	}
	e := &Event{Headers: Headers{Name: c.Type, ServiceName: c.Source, CreatedAt: c.Time, ID: c.ID}, Payload: payload}
	if c.Source == CloudEventsNoService {
		e.Headers.ServiceName = ""
	}
	extra := make(map[string]json.RawMessage)
	set := func(k string, v json.RawMessage) error {
		if k == headerName || k == headerServiceName || k == headerCreatedAt || k == headerID {
			return fmt.Errorf("%w: header %q is the envelope's own", ErrCloudEvent, k)
		}
		if _, dup := extra[k]; dup {
			return fmt.Errorf("%w: header %q given twice", ErrCloudEvent, k)
		}
		extra[k] = v
		return nil
	}
	if c.Subject != "" {
		extra["subject"] = jsonQuote(c.Subject)
	}
	if c.DataSchema != "" {
		extra["dataschema"] = jsonQuote(c.DataSchema)
	}
	user, tenant := e.Reserved()
	for k, v := range c.Extensions {
		switch k {
		case CloudEventsUser, CloudEventsTenant:
			s, ok := jsonString(v)
			want := user
			if k == CloudEventsTenant {
				want = tenant
			}
			if !ok || s != want {
				return nil, fmt.Errorf("%w: %s %s does not match the data's %q", ErrCloudEvent, k, v, want)
			}
		case CloudEventsHeaders:
			s, ok := jsonString(v)
			var hs map[string]json.RawMessage
			if !ok || json.Unmarshal([]byte(s), &hs) != nil || hs == nil {
				return nil, fmt.Errorf("%w: %s must hold a JSON object in a string", ErrCloudEvent, CloudEventsHeaders)
			}
			for hk, hv := range hs {
				if err := set(hk, hv); err != nil {
					return nil, err
				}
			}
		default:
			if !extensionValue(v) {
				return nil, fmt.Errorf("%w: extension %q must be a string, number or boolean, got %s", ErrCloudEvent, k, v)
			}
			if err := set(k, v); err != nil {
				return nil, err
			}
		}
	}
	if len(extra) > 0 {
		e.Headers.Extra = extra
	}
	return e, nil
}

// EncodeCloudEvent returns e as a CloudEvent in the structured JSON
// format (application/cloudevents+json).
func (e *Event) EncodeCloudEvent() ([]byte, error) {
	c, err := e.CloudEvent()
	if err != nil {
		return nil, err
	}
	return c.MarshalJSON()
}

// DecodeCloudEvent reads a CloudEvent in the structured JSON format and
// returns the OIH event it stands for.
func DecodeCloudEvent(b []byte) (*Event, error) {
	var c CloudEvent
	if err := c.UnmarshalJSON(b); err != nil {
		return nil, err
	}
	return c.Event()
}

// MarshalJSON writes c in the structured JSON format: the context
// attributes, the extensions in name order, then data.
func (c *CloudEvent) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"specversion":"` + CloudEventsSpecVersion + `","id":`)
	writeString(&b, c.ID)
	b.WriteString(`,"source":`)
	writeString(&b, c.Source)
	b.WriteString(`,"type":`)
	writeString(&b, c.Type)
	for _, a := range []struct{ k, v string }{{"subject", c.Subject}, {"dataschema", c.DataSchema}, {"datacontenttype", c.DataContentType}} {
		if a.v != "" {
			b.WriteString(`,"` + a.k + `":`)
			writeString(&b, a.v)
		}
	}
	if !c.Time.IsZero() {
		b.WriteString(`,"time":"`)
		b.WriteString(c.Time.UTC().Format(time.RFC3339Nano))
		b.WriteByte('"')
	}
	keys := make([]string, 0, len(c.Extensions))
	for k := range c.Extensions {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(contextAttributes[:10], k) {
			return nil, fmt.Errorf("%w: extension %q is a context attribute", ErrCloudEvent, k)
		}
		b.WriteByte(',')
		writeString(&b, k)
		b.WriteByte(':')
		if err := json.Compact(&b, c.Extensions[k]); err != nil {
			return nil, fmt.Errorf("%w: extension %q: %v", ErrCloudEvent, k, err)
		}
	}
	if len(c.Data) > 0 {
		b.WriteString(`,"data":`)
		if err := json.Compact(&b, c.Data); err != nil {
			return nil, fmt.Errorf("%w: data: %v", ErrCloudEvent, err)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the structured JSON format. Every attribute that is
// not a context attribute is an extension; data_base64 is refused, since
// herald's events carry JSON.
func (c *CloudEvent) UnmarshalJSON(body []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("%w: %v", ErrCloudEvent, err)
	}
	if m == nil {
		return fmt.Errorf("%w: not a JSON object", ErrCloudEvent)
	}
	*c = CloudEvent{}
	str := func(k string) (string, error) {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			return "", nil
		}
		s, isString := jsonString(v)
		if !isString {
			return "", fmt.Errorf("%w: %s must be a string", ErrCloudEvent, k)
		}
		return s, nil
	}
	var spec, t string
	var err error
	for _, f := range []struct {
		k string
		p *string
	}{{"specversion", &spec}, {"id", &c.ID}, {"source", &c.Source}, {"type", &c.Type}, {"time", &t},
		{"subject", &c.Subject}, {"dataschema", &c.DataSchema}, {"datacontenttype", &c.DataContentType}} {
		if *f.p, err = str(f.k); err != nil {
			return err
		}
	}
	if spec != CloudEventsSpecVersion {
		return fmt.Errorf("%w: specversion %q, want %q", ErrCloudEvent, spec, CloudEventsSpecVersion)
	}
	if t != "" {
		if c.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return fmt.Errorf("%w: time %q is not RFC 3339", ErrCloudEvent, t)
		}
	}
	if _, ok := m["data_base64"]; ok {
		return fmt.Errorf("%w: data_base64: herald's events carry JSON data", ErrCloudEvent)
	}
	if d, ok := m["data"]; ok && string(d) != "null" {
		c.Data = d
	}
	for k, v := range m {
		if slices.Contains(contextAttributes[:10], k) {
			continue
		}
		if c.Extensions == nil {
			c.Extensions = make(map[string]json.RawMessage)
		}
		c.Extensions[k] = v
	}
	return nil
}

// jsonQuote returns s as a JSON string, as encoding/json writes it
// (invalid UTF-8 becomes U+FFFD). strconv.Quote is Go's syntax, not JSON's:
// it writes \x escapes no JSON reader takes.
func jsonQuote(s string) json.RawMessage {
	var b bytes.Buffer
	writeString(&b, s)
	return b.Bytes()
}

// jsonString returns v's string when v is a JSON string.
func jsonString(v json.RawMessage) (string, bool) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}

// validExtensionName reports whether k is a CloudEvents attribute name:
// lower-case ASCII letters and digits, at most the 20 characters the
// specification recommends.
func validExtensionName(k string) bool {
	if k == "" || len(k) > 20 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// extensionValue reports whether v is what an extension attribute holds in
// JSON: a string, a boolean, or an integer of 32 bits (CloudEvents'
// Integer).
func extensionValue(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	switch {
	case len(v) == 0:
		return false
	case v[0] == '"':
		_, ok := jsonString(v)
		return ok
	case string(v) == "true" || string(v) == "false":
		return true
	}
	n, err := strconv.ParseInt(string(v), 10, 32)
	return err == nil && strconv.FormatInt(n, 10) == string(v)
}

func isAbsoluteURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.IsAbs()
}

// isJSONMediaType reports whether t is application/json or a +json type.
func isJSONMediaType(t string) bool {
	mt, _, err := mime.ParseMediaType(t)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
