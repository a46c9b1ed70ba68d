package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/iam"
)

// DefaultStreamHeartbeat is how often an idle GET /logs/stream sends a
// comment, so that proxies and load balancers keep it open.
const DefaultStreamHeartbeat = 15 * time.Second

// streamCoalesce is the shortest time between two writes of a stream
// while entries keep coming.
const streamCoalesce = 100 * time.Millisecond

// streamRetry is the reconnection delay a stream asks EventSource clients
// for, in milliseconds.
const streamRetry = 2000

// The reasons a stream's close event gives.
const (
	closeTooSlow  = "too-slow"
	closeShutdown = "shutdown"
	closeError    = "error"
)

// streamLogs answers GET /logs/stream: Server-Sent Events of the entries
// GET /logs would show the caller with the same filters, as they are
// stored. Each entry is an "entry" event whose id is its seq; a client
// that reconnects with Last-Event-ID (header, or the lastEventId
// parameter) gets everything stored after it, in order, then the new
// entries. Without it, the stream starts at the last stored entry. The
// first event, "ready", carries the position the stream starts after; a
// "close" event says why the server ends a stream (too-slow, shutdown,
// error) before it does.
func (a *api) streamLogs(w http.ResponseWriter, r *http.Request, u *iam.User) {
	values := r.URL.Query()
	after, resume, err := lastEventID(r.Header.Get("Last-Event-ID"), values)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	values.Del("lastEventId")
	req, err := parseList(values)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	q := req.query
	q.Scope = scopeOf(u)
	ctx := r.Context()
	// The stream is a read of the log like GET /logs: recorded before
	// anything is streamed. It streams, so the record has no count.
	query := readQuery(values)
	if resume {
		query["lastEventId"] = after
	}
	if !a.recordRead(w, r, u, "stream", query, -1) {
		return
	}
	if !resume {
		if after, err = a.feed.Head(ctx); err != nil {
			a.internalError(w, r, "read the audit log's position", err)
			return
		}
	}
	f, err := a.feed.Follow(q, after)
	if err != nil {
		if errors.Is(err, auditlog.ErrInvalidQuery) {
			writeError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
		a.internalError(w, r, "follow the audit log", err)
		return
	}
	defer f.Close()
	a.metrics.streams.Inc()
	defer a.metrics.streams.Dec()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	longAnswer(w, 0)                 // the read deadline; sseWriter sets the write deadline
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w), timeout: 2 * a.heartbeat}
	fmt.Fprintf(&s.buf, "retry: %d\nid: %d\nevent: ready\ndata: {\"position\":%d}\n\n", streamRetry, after, after)
	if s.flush() != nil {
		return
	}
	heartbeat := time.NewTicker(a.heartbeat)
	defer heartbeat.Stop()
	// Entries are written at once after a quiet spell, and at most every
	// streamCoalesce while they keep coming: a hundred streams of a busy
	// log then cost a few writes a second each, not one per commit.
	var lastFlush time.Time
	var flushNow <-chan time.Time
	pending := false
	for {
		entries, err := f.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				if pending && s.flush() != nil {
					return
				}
				a.endStream(s, r, err)
			}
			return
		}
		if len(entries) > 0 {
			for _, e := range entries {
				s.event(e.Seq, "entry", a.render(e))
			}
			pending = true
			if wait := streamCoalesce - time.Since(lastFlush); wait <= 0 {
				if s.flush() != nil {
					return
				}
				pending, lastFlush = false, time.Now()
			} else if flushNow == nil {
				flushNow = time.After(wait)
			}
			continue
		}
		select {
		case <-f.Ready():
		case <-flushNow:
			flushNow = nil
			if pending {
				if s.flush() != nil {
					return
				}
				pending, lastFlush = false, time.Now()
			}
		case <-heartbeat.C:
			if !pending {
				s.buf.WriteString(": heartbeat\n\n")
				if s.flush() != nil {
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// endStream sends the close event that says why the server ends a stream.
func (a *api) endStream(s *sseWriter, r *http.Request, err error) {
	reason, msg := closeError, "the audit log could not read its store; reconnect with Last-Event-ID"
	switch {
	case errors.Is(err, auditlog.ErrFollowerTooSlow):
		reason, msg = closeTooSlow, "the client read too slowly and fell too far behind; reconnect with Last-Event-ID to go on from the last entry received"
	case errors.Is(err, auditlog.ErrFeedClosed):
		reason, msg = closeShutdown, "the server is shutting down; reconnect with Last-Event-ID"
	default:
		a.log.ErrorContext(r.Context(), "live stream ended", "error", err)
	}
	a.metrics.streamEnds.WithLabelValues(reason).Inc()
	data, _ := json.Marshal(struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}{reason, msg})
	s.buf.WriteString("event: close\ndata: ")
	s.buf.Write(data)
	s.buf.WriteString("\n\n")
	s.flush()
}

// lastEventID reads the position a client resumes after: the
// Last-Event-ID header, else the lastEventId parameter (for clients that
// cannot set headers on a reconnection).
func lastEventID(header string, values map[string][]string) (int64, bool, error) {
	v := strings.TrimSpace(header)
	if v == "" {
		if vs := values["lastEventId"]; len(vs) > 0 {
			if len(vs) > 1 {
				return 0, false, badf("lastEventId is given %d times; give it once", len(vs))
			}
			v = vs[0]
		}
	}
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, badf("Last-Event-ID must be the id of an event of this stream (a whole number from 0), not %q", v)
	}
	return n, true, nil
}

// sseWriter collects events and writes them out in one write, each under
// a write deadline: a client that stops reading is let go.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     bytes.Buffer
	timeout time.Duration
}

// event adds an event. data is JSON: a line break in it (a payload
// stored pretty-printed) would end the data line, so it is compacted.
func (s *sseWriter) event(id int64, name string, data []byte) {
	fmt.Fprintf(&s.buf, "id: %d\nevent: %s\ndata: ", id, name)
	if bytes.ContainsAny(data, "\r\n") {
		if err := json.Compact(&s.buf, data); err == nil {
			s.buf.WriteString("\n\n")
			return
		}
	}
	s.buf.Write(data)
	s.buf.WriteString("\n\n")
}

func (s *sseWriter) flush() error {
	// Not every writer has deadlines (a test recorder): then the server's
	// own timeouts apply.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(s.buf.Bytes())
	s.buf.Reset()
	if err != nil {
		return err
	}
	return s.rc.Flush()
}

// renderCache keeps the text of the entries streamed last, so that the
// streams carrying one entry render it once between them. A slot is used
// only for the same seq, leaf index, headers and payload: an entry
// anonymised, pruned or integrated since is rendered anew.
type renderCache struct {
	mu    sync.Mutex
	slots [4096]renderSlot
}

type renderSlot struct {
	seq, leafIndex int64
	headers        []byte
	payload        []byte
	text           []byte
}

// render returns e as GET /logs shows it.
func (a *api) render(e auditlog.Entry) []byte {
	c := a.renders
	i := int(uint64(e.Seq) % uint64(len(c.slots)))
	c.mu.Lock()
	slot := c.slots[i]
	c.mu.Unlock()
	if slot.text != nil && slot.seq == e.Seq && slot.leafIndex == e.LeafIndex &&
		bytes.Equal(slot.headers, e.Headers) && bytes.Equal(slot.payload, e.Payload) {
		return slot.text
	}
	text := renderEntry(e)
	c.mu.Lock()
	c.slots[i] = renderSlot{seq: e.Seq, leafIndex: e.LeafIndex, headers: e.Headers, payload: e.Payload, text: text}
	c.mu.Unlock()
	return text
}
