package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stream timings. A stream that stays silent longer than streamIdle (the
// server sends a heartbeat every 15 s) is taken for dead and opened again;
// a stream that cannot be opened again is tried for streamRetryWindow
// before Follow gives up.
const (
	streamIdle        = time.Minute
	streamRetryWindow = time.Minute
	streamRetryMax    = 5 * time.Second
)

// errNoStream says the server has no GET /logs/stream (OIH's audit log,
// an older herald): Follow polls instead.
var errNoStream = errors.New("the audit log serves no live stream")

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id, name, data string
}

// streamConn is an open GET /logs/stream.
type streamConn struct {
	body   io.ReadCloser
	events chan sseEvent
	err    error // why events closed; read after it is closed
}

// openStream opens GET /logs/stream for q after position after (none when
// resume is false). A server without the route answers errNoStream.
func (c *Client) openStream(ctx context.Context, q Query, after int64, resume bool) (*streamConn, error) {
	v, err := q.values(0)
	if err != nil {
		return nil, err
	}
	v.Del("sort")
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/logs/stream"
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u.Path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if resume {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// The stream lasts: no timeout for the whole answer. The idle timer
	// below notices a dead connection.
	hc := *c.http
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("GET %s: %w", u.Path, ctx.Err())
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.URL(), err)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch {
	case resp.StatusCode == http.StatusOK && ct == "text/event-stream":
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return nil, errNoStream
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, answerError(http.MethodGet, u.Path, resp.StatusCode, b)
	}
	s := &streamConn{body: resp.Body, events: make(chan sseEvent, 256)}
	go s.read()
	return s, nil
}

// read parses the stream into events until it ends or stays silent for
// streamIdle.
func (s *streamConn) read() {
	defer close(s.events)
	idle := time.AfterFunc(streamIdle, func() { s.body.Close() })
	defer idle.Stop()
	sc := bufio.NewScanner(s.body)
	sc.Buffer(make([]byte, 64<<10), maxBody)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		idle.Reset(streamIdle)
		line := sc.Text()
		if line == "" {
			if ev.name != "" || len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				if ev.name == "" {
					ev.name = "message"
				}
				s.events <- ev
			}
			ev, data = sseEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment: the heartbeat
		case "id":
			ev.id = value
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		}
	}
	s.err = sc.Err()
	if s.err == nil {
		s.err = io.ErrUnexpectedEOF
	}
}

func (s *streamConn) close() {
	if s != nil {
		s.body.Close()
	}
}

// followStream is Follow over GET /logs/stream. It opens the stream
// first, so that the position it starts after is known, then hands on the
// newest q.Limit entries stored up to that position (GET /logs) and then
// each entry the stream carries. A stream that ends is opened again after
// the last position received, which the server resumes from with no gap
// and no repeat. It returns errNoStream, having emitted nothing, when the
// server has no stream.
func (c *Client) followStream(ctx context.Context, q Query, emit func([]Entry) bool) error {
	s, err := c.openStream(ctx, q, 0, false)
	if err != nil {
		return err
	}
	defer func() { s.close() }()
	var pos int64
	select {
	case ev, ok := <-s.events:
		if !ok || ev.name != "ready" {
			return fmt.Errorf("GET /logs/stream: the stream did not start with its position")
		}
		if pos, err = strconv.ParseInt(ev.id, 10, 64); err != nil {
			return fmt.Errorf("GET /logs/stream: position %q: %w", ev.id, err)
		}
	case <-ctx.Done():
		return nil
	}
	if done, err := c.backlog(ctx, q, pos, emit); done || err != nil {
		return err
	}
	for {
		batch, err := s.batch(ctx, &pos)
		if len(batch) > 0 && !emit(batch) {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			continue
		}
		s.close()
		if s, err = c.reopen(ctx, q, pos); err != nil || s == nil {
			return err
		}
	}
}

// backlog hands on the newest q.Limit entries at or before position pos,
// oldest first; later ones come from the stream. It reports whether emit
// asked to stop.
func (c *Client) backlog(ctx context.Context, q Query, pos int64, emit func([]Entry) bool) (bool, error) {
	q.Order, q.Page, q.Cursor = NewestFirst, 0, ""
	var es []Entry
	for e, err := range c.All(ctx, q) {
		if err != nil {
			return true, err
		}
		if e.Seq <= pos {
			es = append(es, e)
		}
	}
	slices.Reverse(es)
	return len(es) > 0 && !emit(es), nil
}

// batch returns the entries that arrived together: it waits for one
// event, then takes those already waiting. pos follows the last entry. An
// error says the stream ended (its close event, or the connection).
func (s *streamConn) batch(ctx context.Context, pos *int64) ([]Entry, error) {
	var out []Entry
	take := func(ev sseEvent) error {
		switch ev.name {
		case "entry":
			var e Entry
			if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
				return fmt.Errorf("GET /logs/stream: entry %s: %w", ev.id, err)
			}
			out = append(out, e)
			if n, err := strconv.ParseInt(ev.id, 10, 64); err == nil {
				*pos = n
			}
		case "close":
			return fmt.Errorf("GET /logs/stream closed: %s", ev.data)
		}
		return nil
	}
	select {
	case ev, ok := <-s.events:
		if !ok {
			return nil, s.err
		}
		if err := take(ev); err != nil {
			return out, err
		}
	case <-ctx.Done():
		return nil, nil
	}
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return out, s.err
			}
			if err := take(ev); err != nil {
				return out, err
			}
		default:
			return out, nil
		}
	}
}

// reopen opens the stream again after pos, retrying with backoff while the
// server cannot be reached (a restart), for up to streamRetryWindow. It
// returns nil, nil when ctx ends first.
func (c *Client) reopen(ctx context.Context, q Query, pos int64) (*streamConn, error) {
	deadline := time.Now().Add(streamRetryWindow)
	wait := 100 * time.Millisecond
	for {
		s, err := c.openStream(ctx, q, pos, true)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if !errors.Is(err, ErrUnreachable) && !isUnavailable(err) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, nil
		}
		wait = min(2*wait, streamRetryMax)
	}
}

// isUnavailable reports an answer a restarting server or its proxy gives.
func isUnavailable(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusGatewayTimeout)
}
