package httpapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/iam"
)

// The log's integrity routes:
//
//	GET /checkpoint               the latest signed checkpoint (no auth)
//	GET /checkpoint/key           the log's note verifier key (no auth)
//	GET /checkpoints              every checkpoint, NDJSON (logs.read)
//	GET /logs/{id}/proof          an entry's inclusion proof (its readers)
//	GET /proof/consistency        between two checkpoints (logs.read)
//	GET /export                   every entry with its commitments, NDJSON (admin)

// ReadEvent is the catalogue event that records a read of the log.
const ReadEvent = "audit-log.logs.read"

func (a *api) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp, err := a.cfg.Store.Checkpoint(r.Context(), -1)
	if errors.Is(err, auditlog.ErrNoCheckpoint) {
		writeError(w, http.StatusNotFound, "the log has signed no checkpoint yet", "")
		return
	}
	if err != nil {
		a.internalError(w, r, "read the checkpoint", err)
		return
	}
	writeText(w, cp.Note)
}

func (a *api) checkpointKey(w http.ResponseWriter, r *http.Request) {
	if a.cfg.VerifierKey == "" {
		writeError(w, http.StatusNotFound, "this log has no signing key configured", "")
		return
	}
	writeText(w, []byte(a.cfg.VerifierKey+"\n"))
}

func writeText(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

// sizeParam reads an optional tree size; -1 when absent.
func sizeParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a tree size, a number ≥ 0", name)
	}
	return n, nil
}

// proofBody is the answer of GET /logs/{id}/proof: the entry's leaf, its
// inclusion proof against a checkpoint, and what recomputes the leaf from
// the entry a reader may see (salts of its fields, commitments kept of
// erased ones), never the seed.
type proofBody struct {
	ID         string                         `json:"id"`
	LeafIndex  int64                          `json:"leafIndex"`
	LeafHash   []byte                         `json:"leafHash"`
	TreeSize   int64                          `json:"treeSize"`
	RootHash   []byte                         `json:"rootHash"`
	Checkpoint string                         `json:"checkpoint"`
	Proof      [][]byte                       `json:"proof"`
	Salts      map[string][]byte              `json:"salts,omitempty"`
	Erased     map[string]auditlog.Commitment `json:"erased,omitempty"`
	Pruned     bool                           `json:"pruned"`
	// ContentHash is kept for a pruned entry, whose content is gone.
	ContentHash []byte `json:"contentHash,omitempty"`
}

func (a *api) proof(w http.ResponseWriter, r *http.Request, u *iam.User) {
	id := r.PathValue("id")
	size, err := sizeParam(r, "size")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	q := auditlog.Query{ID: id, Limit: 1, Scope: scopeOf(u)}
	var page auditlog.Page
	if q.Scope == nil || q.Scope.User != "" || q.Scope.Tenant != "" {
		page, err = a.cfg.Store.Query(r.Context(), q)
		if err != nil && !errors.Is(err, auditlog.ErrInvalidQuery) {
			a.internalError(w, r, "read the entry", err)
			return
		}
		// An id no entry can have (NUL, invalid UTF-8) has none.
	}
	if len(page.Entries) == 0 {
		// The same answer whether the id exists or not.
		writeError(w, http.StatusNotFound, "no entry with id "+strconv.QuoteToASCII(id), "")
		return
	}
	e := page.Entries[0]
	in, err := auditlog.ProveInclusion(r.Context(), a.cfg.Store, e, size)
	switch {
	case errors.Is(err, auditlog.ErrNoCheckpoint):
		writeError(w, http.StatusNotFound, err.Error(), "")
		return
	case errors.Is(err, auditlog.ErrNotIntegrated):
		writeError(w, http.StatusConflict, fmt.Sprintf("entry %s is not in the tree of that size yet: ask again after the next checkpoint", id), "")
		return
	case err != nil:
		a.internalError(w, r, "prove the entry", err)
		return
	}
	body := proofBody{
		ID: e.ID, LeafIndex: in.LeafIndex, LeafHash: in.LeafHash[:], TreeSize: in.Checkpoint.Size,
		RootHash: in.Checkpoint.Root[:], Checkpoint: string(in.Checkpoint.Note), Proof: hashes(in.Proof),
		Erased: e.Erased, Pruned: e.Pruned(), ContentHash: e.ContentHash,
	}
	if !e.Pruned() {
		if body.Salts, err = auditlog.Salts(e); err != nil {
			a.internalError(w, r, "derive the entry's salts", err)
			return
		}
	}
	if !a.recordRead(w, r, u, "proof", map[string]any{"id": id, "size": in.Checkpoint.Size}, 1) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

func hashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

func (a *api) consistency(w http.ResponseWriter, r *http.Request, u *iam.User) {
	from, err := sizeParam(r, "from")
	if err == nil && from < 0 {
		err = errors.New("from: a tree size is required")
	}
	var to int64
	if err == nil {
		to, err = sizeParam(r, "to")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	c, err := auditlog.ProveConsistency(r.Context(), a.cfg.Store, from, to)
	if errors.Is(err, auditlog.ErrNoCheckpoint) {
		writeError(w, http.StatusNotFound, err.Error(), "")
		return
	}
	if err != nil {
		a.internalError(w, r, "prove consistency", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, struct {
		From           int64    `json:"from"`
		To             int64    `json:"to"`
		FromRoot       []byte   `json:"fromRoot"`
		ToRoot         []byte   `json:"toRoot"`
		FromCheckpoint string   `json:"fromCheckpoint"`
		ToCheckpoint   string   `json:"toCheckpoint"`
		Proof          [][]byte `json:"proof"`
	}{c.From.Size, c.To.Size, c.From.Root[:], c.To.Root[:], string(c.From.Note), string(c.To.Note), hashes(c.Proof)})
}

// checkpoints streams every checkpoint above size after, in size order,
// one JSON object {size, note} per line.
func (a *api) checkpoints(w http.ResponseWriter, r *http.Request, u *iam.User) {
	after, err := sizeParam(r, "after")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	extend := longAnswer(w, DefaultTimeouts.Write)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for {
		extend()
		cps, err := a.cfg.Store.Checkpoints(r.Context(), after, exportPage)
		if err != nil {
			a.log.ErrorContext(r.Context(), "stream checkpoints", "error", err)
			break // the stream ends without its last line: the client sees a short read
		}
		for _, cp := range cps {
			enc.Encode(struct {
				Size int64  `json:"size"`
				Note string `json:"note"`
			}{cp.Size, string(cp.Note)})
			after = cp.Size
		}
		if len(cps) < exportPage {
			break
		}
	}
	bw.Flush()
}

// exportPage is how many rows the streaming routes read at a time.
const exportPage = 5000

// ExportedEntry is one line of GET /export: an entry with everything that
// recomputes its leaf. Times are milliseconds since the epoch (createdAt
// null when the publisher sent none).
type ExportedEntry struct {
	Seq         int64                          `json:"seq"`
	ID          string                         `json:"id"`
	Name        string                         `json:"name"`
	ServiceName string                         `json:"serviceName"`
	CreatedAt   *int64                         `json:"createdAt"`
	ReceivedAt  int64                          `json:"receivedAt"`
	User        string                         `json:"user"`
	Tenant      string                         `json:"tenant"`
	Headers     json.RawMessage                `json:"headers,omitempty"`
	Payload     json.RawMessage                `json:"payload"`
	Unknown     bool                           `json:"unknown"`
	LeafIndex   *int64                         `json:"leafIndex"`
	LeafHash    []byte                         `json:"leafHash"`
	Seed        []byte                         `json:"seed,omitempty"`
	Salts       map[string][]byte              `json:"salts,omitempty"`
	Erased      map[string]auditlog.Commitment `json:"erased,omitempty"`
	ContentHash []byte                         `json:"contentHash,omitempty"`
}

// Export turns an entry into its exported form.
func Export(e auditlog.Entry) ExportedEntry {
	x := ExportedEntry{
		Seq: e.Seq, ID: e.ID, Name: e.Name, ServiceName: e.ServiceName, ReceivedAt: e.ReceivedAt.UnixMilli(),
		User: e.User, Tenant: e.Tenant, Headers: e.Headers, Payload: e.Payload, Unknown: e.Unknown,
		LeafHash: e.LeafHash, Seed: e.Seed, Salts: e.Salts, Erased: e.Erased, ContentHash: e.ContentHash,
	}
	if !e.CreatedAt.IsZero() {
		ms := e.CreatedAt.UnixMilli()
		x.CreatedAt = &ms
	}
	if e.LeafIndex >= 0 {
		li := e.LeafIndex
		x.LeafIndex = &li
	}
	return x
}

// Entry turns an exported entry back into an entry.
func (x ExportedEntry) Entry() auditlog.Entry {
	e := auditlog.Entry{
		Seq: x.Seq, ID: x.ID, Name: x.Name, ServiceName: x.ServiceName, ReceivedAt: time.UnixMilli(x.ReceivedAt).UTC(),
		User: x.User, Tenant: x.Tenant, Headers: x.Headers, Payload: x.Payload, Unknown: x.Unknown,
		LeafIndex: auditlog.NotIntegrated, LeafHash: x.LeafHash, Seed: x.Seed, Salts: x.Salts, Erased: x.Erased, ContentHash: x.ContentHash,
	}
	if x.CreatedAt != nil {
		e.CreatedAt = time.UnixMilli(*x.CreatedAt).UTC()
	}
	if x.LeafIndex != nil {
		e.LeafIndex = *x.LeafIndex
	}
	return e
}

// export streams every entry with seq above after, in seq order, with its
// seed or salts: what `herald verify --url` recomputes each leaf from. Only
// an admin may: it is every entry of the log.
func (a *api) export(w http.ResponseWriter, r *http.Request, u *iam.User) {
	if !u.Admin() {
		writeError(w, http.StatusForbidden, iam.ErrMissingPermission.Message, `["all"]`)
		return
	}
	after, err := sizeParam(r, "after")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	after = max(after, 0)
	limit := int64(-1)
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 1 {
			writeError(w, http.StatusBadRequest, "limit: want a number ≥ 1", "")
			return
		}
	}
	if !a.recordRead(w, r, u, "export", map[string]any{"after": after, "limit": limit}, -1) {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	extend := longAnswer(w, DefaultTimeouts.Write)
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	for limit != 0 {
		extend()
		page := exportPage
		if limit > 0 {
			page = int(min(limit, exportPage))
		}
		es, err := a.cfg.Store.Leaves(r.Context(), after, page)
		if err != nil {
			a.log.ErrorContext(r.Context(), "export", "error", err)
			break // the client sees the stream end early
		}
		for _, e := range es {
			enc.Encode(Export(e))
			after = e.Seq
		}
		if limit > 0 {
			limit -= int64(len(es))
		}
		if len(es) < page {
			break
		}
	}
	bw.Flush()
}

// readQuery is the query of a read as its record holds it: each
// parameter's first value.
func readQuery(values url.Values) map[string]any {
	query := make(map[string]any, len(values))
	for k, v := range values {
		query[k] = v[0]
	}
	return query
}

// recordRead records a read of the log as an audit-log.logs.read entry,
// durably, before the answer is written; when it cannot, it answers 500
// and returns false. Without Config.RecordRead it records nothing.
func (a *api) recordRead(w http.ResponseWriter, r *http.Request, u *iam.User, route string, query map[string]any, count int) bool {
	if a.cfg.RecordRead == nil {
		return true
	}
	payload := map[string]any{"user": u.Sub, "route": route, "query": query}
	if u.Tenant != "" {
		payload["tenant"] = u.Tenant
	}
	if count >= 0 {
		payload["count"] = count
	}
	ev, err := event.New(ReadEvent, payload)
	if err == nil {
		ev.Headers.ServiceName = auditlog.QueueName
		err = a.cfg.RecordRead(r.Context(), ev)
	}
	if err != nil {
		a.internalError(w, r, "record the read in the audit log", err)
		return false
	}
	return true
}
