package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
)

// scopeOf is what u may see: nil (everything) for an admin; else the
// entries whose payload user is u, or whose payload tenant is u's tenant
// when u has one. A user without a tenant sees only their own entries,
// never every tenant-less one (OIH's null-tenant bug).
func scopeOf(u *iam.User) *auditlog.Scope {
	if u.Admin() {
		return nil
	}
	return &auditlog.Scope{User: u.Sub, Tenant: u.Tenant}
}

// listLogs answers GET /logs:
// {data:[…], meta:{page, perPage, total, totalPages}, nextCursor?}.
func (a *api) listLogs(w http.ResponseWriter, r *http.Request, u *iam.User) {
	req, err := parseList(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	q := req.query
	q.Scope = scopeOf(u)
	if q.Scope != nil && q.Scope.User == "" && q.Scope.Tenant == "" {
		// An identity with neither id nor tenant owns nothing. The Store
		// contract does not say what an empty Scope selects, so it is
		// not asked.
		a.writePage(w, req, auditlog.Page{})
		return
	}
	release, ok := acquire(w, r, a.pages, "too many pages are being read; retry")
	if !ok {
		return
	}
	defer release()
	q.MaxBytes = a.cfg.MaxPageBytes
	page, err := a.cfg.Store.Query(r.Context(), q)
	if err != nil {
		if errors.Is(err, auditlog.ErrInvalidQuery) {
			writeError(w, http.StatusBadRequest, err.Error(), "")
			return
		}
		a.internalError(w, r, "query the audit log", err)
		return
	}
	if !a.recordRead(w, r, u, "logs", readQuery(r.URL.Query()), len(page.Entries)) {
		return
	}
	a.writePage(w, req, page)
}

// writePage writes the page as it renders it, entry by entry, so that
// the answer is never held whole beside the page.
func (a *api) writePage(w http.ResponseWriter, req listRequest, page auditlog.Page) {
	b := make([]byte, 0, 512)
	b = append(b, `{"data":[`...)
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(b)
	for i, e := range page.Entries {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(renderEntry(e))
	}
	b = append(b[:0], `],"meta":{"page":`...)
	b = strconv.AppendInt(b, int64(req.page), 10)
	b = append(b, `,"perPage":`...)
	b = strconv.AppendInt(b, int64(req.pageSize), 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, page.Total, 10)
	b = append(b, `,"totalPages":`...)
	b = strconv.AppendInt(b, (page.Total+int64(req.pageSize)-1)/int64(req.pageSize), 10)
	if page.Next != nil && len(page.Entries) < req.pageSize {
		b = append(b, `,"cut":true`...)
	}
	b = append(b, '}')
	if page.Next != nil {
		b = append(b, `,"nextCursor":`...)
		b = appendString(b, cursor{
			order:     req.query.Order,
			seq:       page.Next.Seq,
			filters:   filtersDigest(req.filters),
			page:      req.page + 1,
			createdAt: page.Next.CreatedAt,
		}.encode())
	}
	b = append(b, "}\n"...)
	bw.Write(b)
	bw.Flush()
}

// appendISOTime appends t as JavaScript's toISOString writes it (what
// OIH's MongoDB dates became in JSON), or null for the zero time.
func appendISOTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, '"')
}

// appendString appends s as encoding/json writes it. Names, services and
// ids are plain ASCII and are copied; anything else goes through
// encoding/json, so the text is the same either way.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			v, _ := json.Marshal(s)
			return append(b, v...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// renderEntry writes an entry in OIH's shape, {_id, headers, payload}, plus
// herald's id, seq, receivedAt and unknown. headers holds name,
// serviceName, createdAt, id, then every other header the publisher sent.
// Every entry of GET /logs and of the live stream passes here.
func renderEntry(e auditlog.Entry) json.RawMessage {
	b := make([]byte, 0, 256+len(e.Payload)+len(e.Headers))
	b = append(b, `{"_id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	if e.LeafIndex >= 0 && e.LeafHash != nil {
		b = append(b, `,"leafIndex":`...)
		b = strconv.AppendInt(b, e.LeafIndex, 10)
	}
	b = append(b, `,"headers":{"name":`...)
	b = appendString(b, e.Name)
	b = append(b, `,"serviceName":`...)
	b = appendString(b, e.ServiceName)
	b = append(b, `,"createdAt":`...)
	b = appendISOTime(b, e.CreatedAt)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	var extra map[string]json.RawMessage
	if len(e.Headers) > 0 && json.Unmarshal(validUTF8(e.Headers), &extra) == nil {
		keys := make([]string, 0, len(extra))
		for k := range extra {
			switch k {
			case "name", "serviceName", "createdAt", "id":
			default:
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = append(b, ',')
			b = appendString(b, k)
			b = append(b, ':')
			b = append(b, extra[k]...)
		}
	}
	b = append(b, `},"payload":`...)
	if p := bytes.TrimSpace(validUTF8(e.Payload)); len(p) > 0 && p[0] == '{' {
		b = append(b, p...)
	} else {
		b = append(b, "{}"...)
	}
	b = append(b, `,"receivedAt":`...)
	b = appendISOTime(b, e.ReceivedAt)
	b = append(b, `,"unknown":`...)
	b = strconv.AppendBool(b, e.Unknown)
	return append(b, '}')
}

// validUTF8 returns doc as it is when it is valid UTF-8, else re-encoded
// with every invalid byte replaced by U+FFFD (what encoding/json
// decodes it as): entries stored before invalid UTF-8 was refused at the
// door must not make a whole page invalid JSON for strict clients.
func validUTF8(doc json.RawMessage) json.RawMessage {
	if utf8.Valid(doc) {
		return doc
	}
	var v any
	if json.Unmarshal(doc, &v) != nil {
		return json.RawMessage("{}")
	}
	out, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("{}")
	}
	return out
}

// postLog answers POST /logs: it stores one event in OIH's shape,
// {headers:{name, serviceName, createdAt}, payload}, and answers 201 with
// the stored entry.
//
//   - Attribution comes from the token. A caller who is not an admin
//     writes as themselves: serviceName becomes their username (their IAM
//     id when they have none), whatever the body says. Unless they hold
//     PushAnyPermission, payload user becomes their IAM id and payload
//     tenant their tenant, when absent; a payload naming another user or
//     tenant is refused with 403, never stored rewritten.
//   - Such a caller's entries live in an id space of their own: the
//     stored id is derived, under the server's IDKey, from the caller's
//     IAM id and the headers.id they gave (a new id when they gave
//     none). A POST can therefore never take the id of an event the bus
//     will deliver, nor of anyone else's entry. An admin's (or
//     PushAnyPermission holder's) headers.id is stored as given, a new
//     one when absent.
//   - A missing createdAt is the receive time, as OIH's model defaults
//     it; a given one is kept.
//   - Storing is idempotent by headers.id: posting an id already stored
//     answers 200 with the entry as first stored, unchanged, or 409 when
//     the entry stored under it differs in name, createdAt or payload,
//     with one text whatever the reason.
func (a *api) postLog(w http.ResponseWriter, r *http.Request, u *iam.User) {
	// Room for a pretty-printed body; the encoded event is checked after.
	body, ok := a.takeBody(w, r)
	if !ok {
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeError(w, http.StatusBadRequest, `request body is empty: want an event {"headers":{"name":…,"serviceName":…,"createdAt":…},"payload":{…}}`, "")
		return
	}
	ev, err := event.Decode(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	now := a.cfg.Now()
	identity := u.Username
	if identity == "" {
		identity = u.Sub
	}
	givenID := ev.Headers.ID
	if givenID == event.DerivedID(body) {
		givenID = "" // Decode derived it: the caller gave none
	}
	if !u.Admin() || ev.Headers.ServiceName == "" {
		ev.Headers.ServiceName = identity
	}
	if !u.Admin() && !u.Can(a.cfg.PushAnyPermission) {
		if msg := attribute(ev, u); msg != "" {
			details, _ := json.Marshal([]string{a.cfg.PushAnyPermission})
			writeError(w, http.StatusForbidden, msg+"; posting for another user or tenant needs the permission "+a.cfg.PushAnyPermission, string(details))
			return
		}
		if givenID == "" {
			givenID = event.NewID()
		}
		ev.Headers.ID = event.KeyedID(a.cfg.IDKey, []byte("post"), []byte(u.Sub), []byte(givenID))
	} else if givenID == "" {
		ev.Headers.ID = event.NewID()
	}
	createdAtGiven := !ev.Headers.CreatedAt.IsZero()
	if !createdAtGiven {
		ev.Headers.CreatedAt = now
	}
	if err := ev.Validate(a.cfg.MaxEventSize); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	// EntryFromEvent refuses content the stores would not keep alike.
	entry, err := auditlog.EntryFromEvent(ev, now, a.cfg.Catalog)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	batch := []auditlog.Entry{entry}
	if a.cfg.Eraser != nil {
		if err := a.cfg.Eraser.Prepare(r.Context(), batch); err != nil {
			a.internalError(w, r, "erase deleted users' values", err)
			return
		}
		entry = batch[0]
	}
	n, err := a.cfg.Store.Append(r.Context(), batch)
	if err != nil {
		a.internalError(w, r, "store the event", err)
		return
	}
	if n == 1 && a.cfg.Eraser != nil {
		if err := a.cfg.Eraser.Posted(r.Context(), entry, u.Admin()); err != nil {
			a.internalError(w, r, "erase deleted users' values", err)
			return
		}
	}
	stored, found, err := a.findStored(r, entry.ID)
	if err != nil {
		a.internalError(w, r, "read the stored event back", err)
		return
	}
	if n == 1 {
		a.feed.Notify()
		if !found {
			a.internalError(w, r, "read the stored event back", fmt.Errorf("entry %s stored but not found", entry.ID))
			return
		}
		writeJSON(w, http.StatusCreated, renderEntry(stored))
		return
	}
	// Already stored: the same event again is answered with what is
	// stored; another event under the same id is a conflict. A
	// non-admin's id space holds only their own entries; an admin sees
	// everything: the answer tells nobody of an entry they cannot see.
	sameTime := !createdAtGiven || stored.CreatedAt.UnixMilli() == entry.CreatedAt.UnixMilli()
	if !found || stored.Name != entry.Name || !sameTime || !auditlog.SamePayload(stored, entry.Payload) ||
		(!u.Admin() && !visible(u, stored)) {
		writeError(w, http.StatusConflict, fmt.Sprintf("an entry with id %s is already stored with another name, createdAt or payload", entry.ID), "")
		return
	}
	writeJSON(w, http.StatusOK, renderEntry(stored))
}

// attribute makes ev's payload name u as its user and tenant: absent
// keys are added; present ones must already name u. It returns why not
// when they name someone else ("" when attributed).
func attribute(ev *event.Event, u *iam.User) string {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return "payload is not a JSON object that names you" // never stored unattributed
	}
	user, tenant := ev.Reserved()
	if _, ok := p["user"]; ok && user != u.Sub {
		return fmt.Sprintf("payload.user must be your IAM id %q", u.Sub)
	}
	if _, ok := p["tenant"]; ok && tenant != u.Tenant {
		if u.Tenant == "" {
			return "payload.tenant must be absent: you belong to no tenant"
		}
		return fmt.Sprintf("payload.tenant must be your tenant %q", u.Tenant)
	}
	var add []byte
	if _, ok := p["user"]; !ok {
		add = appendMember(add, "user", u.Sub)
	}
	if _, ok := p["tenant"]; !ok && u.Tenant != "" {
		add = appendMember(add, "tenant", u.Tenant)
	}
	if len(add) > 0 {
		rest := bytes.TrimSpace(ev.Payload)
		if len(rest) == 0 {
			rest = []byte("{}")
		}
		rest = bytes.TrimSpace(rest[1:]) // after '{'
		out := append([]byte{'{'}, add...)
		if rest[0] == '}' {
			out = append(out[:len(out)-1], '}') // drop the last comma
		} else {
			out = append(out, rest...)
		}
		ev.Payload = out
	}
	return ""
}

// appendMember appends "key":"value", (with its comma).
func appendMember(b []byte, key, value string) []byte {
	b = appendString(b, key)
	b = append(b, ':')
	b = appendString(b, value)
	return append(b, ',')
}

// visible reports whether u's scope shows e.
func visible(u *iam.User, e auditlog.Entry) bool {
	s := scopeOf(u)
	return s == nil || (s.User != "" && e.User == s.User) || (s.Tenant != "" && e.Tenant == s.Tenant)
}

// findStored reads back the entry stored under id.
func (a *api) findStored(r *http.Request, id string) (auditlog.Entry, bool, error) {
	page, err := a.cfg.Store.Query(r.Context(), auditlog.Query{ID: id, Limit: 1})
	if err != nil || len(page.Entries) == 0 {
		return auditlog.Entry{}, false, err
	}
	return page.Entries[0], true, nil
}
