package auditlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/auditlog/internal/jsonobj"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/event"
)

// The events whose payload id and username name a user: where the audit
// log learns the usernames (e-mail addresses) a deleted user is erased
// by, when they come from IAM (TrustedIdentitySource).
const (
	UserCreated  = "iam.user.created"
	UserModified = "iam.user.modified"
	// TenantDeleted is followed, in OIH, by iam.user.deleted for each of
	// the tenant's accounts; the audit log erases those users then.
	TenantDeleted = "iam.tenant.deleted"
	// SubjectErased is the entry the audit log records for each erasure
	// (ErasureRecord).
	SubjectErased = "audit-log.subject.erased"
)

// Redacted replaces erased values in the anonymise mode.
const Redacted = "XXXXXXXXXX"

// PseudonymPrefix starts every pseudonym (ErasurePseudonymise).
const PseudonymPrefix = "pseudonym-"

// erasedText reports whether s is, or looks like, what an erasure put in
// place of a value: Redacted or a pseudonym. It is never an identifier to
// look up or erase again (IsReplacement is the strict check Verify makes).
func erasedText(s string) bool {
	return s == Redacted || strings.HasPrefix(s, PseudonymPrefix)
}

// ErasureMode is what replaces an erased value.
type ErasureMode string

// Erasure modes.
const (
	// ErasureAnonymise replaces every erased value with Redacted, as OIH
	// does.
	ErasureAnonymise ErasureMode = "anonymise"
	// ErasurePseudonymise replaces the values of one user with one
	// pseudonym, PseudonymPrefix and 20 hex digits of a keyed HMAC of the
	// user's id: the same for all of their entries, so that an auditor
	// can still tell that one person did these things, and not
	// reversible without the erasure key.
	ErasurePseudonymise ErasureMode = "pseudonymise"
)

// ParseErasureMode reads a mode's name.
func ParseErasureMode(s string) (ErasureMode, error) {
	switch m := ErasureMode(s); m {
	case ErasureAnonymise, ErasurePseudonymise:
		return m, nil
	}
	return "", fmt.Errorf("erasure mode %q: want %s or %s", s, ErasureAnonymise, ErasurePseudonymise)
}

// MinErasureKey is the shortest erasure key accepted, in bytes.
const MinErasureKey = 16

// ErasedValue is one identifier of an erased user, as the store keeps it
// (ErasureState): a keyed digest, never the value.
type ErasedValue struct {
	// Digest is HMAC-SHA256(erasure key, "herald/erasure/v1" NUL value).
	Digest []byte
	// Replacement is what replaces the value in entries: Redacted, or the
	// user's pseudonym.
	Replacement string
}

// ErasureState is implemented by stores that keep the identifiers of
// erased users, so that an entry naming one that is stored after the
// erasure (redelivered, late in another replica's batch, POSTed) is
// erased in turn. Both herald stores implement it.
type ErasureState interface {
	// RecordErased records values durably; recording a digest again
	// keeps the first record.
	RecordErased(ctx context.Context, values []ErasedValue) error
	// Erased returns, of digests, those recorded, with their
	// replacements, keyed by string(digest).
	Erased(ctx context.Context, digests [][]byte) (map[string]string, error)
}

// Scrubber is implemented by stores that can remove the old bytes of
// rewritten entries from their files after an erasure (SQLite: a WAL
// checkpoint that truncates the WAL; secure_delete zeroes freed cells).
type Scrubber interface {
	Scrub(ctx context.Context) error
}

// ErasureConfig configures an Eraser.
type ErasureConfig struct {
	Store Store
	// Catalog says where events hold personal data (x-personal); nil is
	// catalog.Default().
	Catalog *catalog.Catalog
	// Key keys the digests and pseudonyms: at least MinErasureKey bytes,
	// shared by every replica of the log.
	Key  []byte
	Mode ErasureMode // default ErasureAnonymise
	// Metrics, Logger and OnCommit as in IngestConfig: OnCommit is called
	// after an erasure record is stored.
	Metrics  *Metrics
	Logger   *slog.Logger
	OnCommit func()
	// Now is the time of erasure records (default time.Now).
	Now func() time.Time
}

// Eraser erases deleted users from the log (GDPR): it records them in the
// store (ErasureState) and rewrites every entry that names them, before or
// after the deletion. See docs/privacy.md.
type Eraser struct {
	cfg ErasureConfig
	// keys are searchKeys, computed once; nested holds, by name, each
	// event with a personal field below the payload's top level and the
	// tokens of every personal field it has.
	keys   []string
	nested map[string][][]string
	// nestedPaths are the catalogue's nested personal fields, each with
	// the events that have it.
	nestedPaths []nestedPath

	// mu guards pending, the deletions waiting for an erasure, and
	// running, whether an EraseUser is erasing them (EraseUser).
	mu      sync.Mutex
	pending []*eraseReq
	running bool
}

type nestedPath struct {
	path  []string
	names []string
}

// NewEraser checks cfg and returns an Eraser.
func NewEraser(cfg ErasureConfig) (*Eraser, error) {
	if len(cfg.Key) < MinErasureKey {
		return nil, fmt.Errorf("erasure key: %d bytes, want at least %d", len(cfg.Key), MinErasureKey)
	}
	if cfg.Mode == "" {
		cfg.Mode = ErasureAnonymise
	}
	if _, err := ParseErasureMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.Catalog == nil {
		cfg.Catalog = catalog.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return newEraser(cfg), nil
}

func newEraser(cfg ErasureConfig) *Eraser {
	x := &Eraser{cfg: cfg, keys: searchKeys(cfg.Catalog), nested: map[string][][]string{}}
	byPath := map[string]*nestedPath{}
	for _, n := range cfg.Catalog.NestedPersonal() {
		e, _ := cfg.Catalog.Lookup(n)
		for _, f := range e.Personal {
			ts := f.Tokens()
			x.nested[n] = append(x.nested[n], ts)
			if len(ts) > 1 {
				if byPath[f.Path] == nil {
					byPath[f.Path] = &nestedPath{path: ts}
				}
				byPath[f.Path].names = append(byPath[f.Path].names, n)
			}
		}
	}
	for _, p := range byPath {
		x.nestedPaths = append(x.nestedPaths, *p)
	}
	slices.SortFunc(x.nestedPaths, func(a, b nestedPath) int {
		return strings.Compare(strings.Join(a.path, "/"), strings.Join(b.path, "/"))
	})
	return x
}

// Mode is the eraser's mode.
func (x *Eraser) Mode() ErasureMode { return x.cfg.Mode }

func (x *Eraser) mac(domain, value string) []byte {
	m := hmac.New(sha256.New, x.cfg.Key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

// digest is what the store keeps of an erased value.
func (x *Eraser) digest(value string) []byte { return x.mac("herald/erasure/v1", value) }

// SubjectRef is how the log names an erased user without naming them:
// "subject-" and 32 hex digits of HMAC-SHA256(key, "herald/subject/v1" NUL
// id). Whoever holds the key can compute it for an id and find the
// user's erasure record; nobody else can tell whose it is.
func (x *Eraser) SubjectRef(userID string) string {
	return "subject-" + hex.EncodeToString(x.mac("herald/subject/v1", userID)[:16])
}

// replacement is what replaces userID's values.
func (x *Eraser) replacement(userID string) string {
	if x.cfg.Mode == ErasurePseudonymise {
		return PseudonymPrefix + hex.EncodeToString(x.mac("herald/pseudonym/v1", userID)[:10])
	}
	return Redacted
}

// TrustedIdentitySource reports whether e may teach the audit log a
// user's identity or have a user erased: an iam.user.created, modified or
// deleted, or iam.tenant.deleted, whose serviceName is its owning
// service's (IAM writes "accounts"; the catalogue's service id "iam" is
// accepted too). A non-admin's POST /logs has their own name as
// serviceName, so it never is; the bus and an admin's POST may be.
func TrustedIdentitySource(e Entry, cat *catalog.Catalog) bool {
	switch e.Name {
	case UserCreated, UserModified, UserDeleted, TenantDeleted:
	default:
		return false
	}
	if cat == nil {
		cat = catalog.Default()
	}
	c, ok := cat.Lookup(e.Name)
	if !ok {
		return false
	}
	return e.ServiceName != "" && (e.ServiceName == c.Service || slices.Contains(c.ServiceNames, e.ServiceName))
}

// topKeys are the top-level payload keys an entry names a user under when
// its event is not catalogued: user, id, account and username, as OIH's
// IAM writes them.
var topKeys = []string{"user", "id", "account", "username"}

// searchKeys are the payload keys Rewrite looks erased values up by:
// topKeys and every catalogued top-level personal field.
func searchKeys(cat *catalog.Catalog) []string {
	keys := append(slices.Clone(topKeys), cat.PersonalKeys()...)
	slices.Sort(keys)
	return slices.Compact(keys)
}

// references returns the values by which e may name a user: its user
// column, its top-level strings under searchKeys, and the string values of
// its event's catalogued personal fields, nested ones too. An entry names
// an erased user when one of these is an identifier of theirs; both the
// erasure (through Rewrite) and the check of later entries (Check) use
// this one rule, so that order does not matter.
func (x *Eraser) references(e Entry) []string {
	var out []string
	add := func(s string) {
		if s != "" && !erasedText(s) {
			out = append(out, s)
		}
	}
	add(e.User)
	fs, err := jsonobj.Fields(e.Payload)
	if err == nil {
		for _, f := range fs {
			if v, ok := jsonobj.String(f.Raw); ok && slices.Contains(x.keys, f.Key) {
				add(v)
			}
		}
	}
	// Top-level personal fields are among the keys above; only the events
	// with nested ones need their payload walked.
	if c, ok := x.cfg.Catalog.Lookup(e.Name); ok && x.nested[c.Name] != nil {
		if doc, err := parseDocument(e.Payload); err == nil {
			for _, ts := range x.nested[c.Name] {
				at(doc, ts, func(n *node) {
					if n.kind == KindString {
						add(string(n.value))
					}
				})
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// at calls f with every node of doc at path, "*" standing for every item
// of an array: a walk along the path, not over the document.
func at(doc *node, path []string, f func(*node)) {
	if len(path) == 0 {
		f(doc)
		return
	}
	switch {
	case path[0] == "*" && doc.kind == KindArray:
		for _, k := range doc.kids {
			at(k, path[1:], f)
		}
	case doc.kind == KindObject:
		for i, k := range doc.keys {
			if k == path[0] {
				at(doc.kids[i], path[1:], f)
			}
		}
	}
}

// personalAt returns the kind of the personal field at payload pointer p,
// or "".
func personalAt(fs []catalog.PersonalField, p string) string {
	if p == "" {
		return ""
	}
	toks := strings.Split(p[1:], "/")
	for i, t := range toks {
		toks[i] = catalog.UnescapeToken(t)
	}
	for _, f := range fs {
		if f.Matches(toks) {
			return f.Kind
		}
	}
	return ""
}

// redact is the Edit of an erasure of the identifiers in values (value:
// replacement). An entry that references one of them (references) has
// every string of its content equal to one replaced, at any depth, its
// user column too, and, as it concerns that user, every catalogued
// personal field that is not a user id and every set top-level username
// (OIH redacts a username whenever it is truthy). Values are replaced
// through Erase, so the leaf hash and every proof stay valid. noted, when
// set, is called with the references of each entry it changes, as they
// were before.
func (x *Eraser) redact(values map[string]string, noted func(refs []string)) Edit {
	return func(e *Entry) (bool, error) {
		var hit string
		refs := x.references(*e)
		for _, v := range refs {
			if r, ok := values[v]; ok {
				hit = r
				break
			}
		}
		if hit == "" || e.ContentHash != nil {
			// Not theirs; or pruned, with no content left to erase.
			return false, nil
		}
		doc, err := document(e, &parser{})
		if err != nil {
			return false, fmt.Errorf("entry %s: %w", e.ID, err)
		}
		var personal []catalog.PersonalField
		if c, ok := x.cfg.Catalog.Lookup(e.Name); ok {
			personal = c.Personal
		}
		groups := map[string][]string{} // replacement: pointers
		doc.walk("", func(p string, n *node) error {
			if !n.kind.scalar() {
				return nil
			}
			v := string(n.value)
			if n.kind == KindString {
				if erasedText(v) {
					return nil
				}
				if r, ok := values[v]; ok {
					groups[r] = append(groups[r], p)
					return nil
				}
			}
			pp, inPayload := strings.CutPrefix(p, "/payload")
			if !inPayload {
				return nil
			}
			if k := personalAt(personal, pp); k != "" && k != catalog.PersonalUserID && isSetNode(n) {
				groups[hit] = append(groups[hit], p)
			} else if pp == "/username" && isSetNode(n) {
				groups[hit] = append(groups[hit], p)
			}
			return nil
		})
		changed := false
		for r, ps := range groups {
			if e.Seed == nil && e.Salts == nil {
				// Appended before entries had seeds, and not yet sealed:
				// the integrator seals the redacted content.
				for _, p := range ps {
					*doc.find(p) = node{kind: KindString, value: []byte(r)}
				}
				setContent(e, doc)
			} else if err := Erase(e, ps, r); err != nil {
				return false, err
			}
			changed = true
		}
		if r, ok := values[e.User]; ok && e.User != "" {
			e.User = r
			changed = true
		}
		if changed && noted != nil {
			noted(refs)
		}
		return changed, nil
	}
}

// isSetNode reports whether a scalar is truthy in JavaScript's sense:
// not null, false, "" or zero.
func isSetNode(n *node) bool {
	switch n.kind {
	case KindNull:
		return false
	case KindBool:
		return string(n.value) == "true"
	case KindString:
		return len(n.value) > 0
	case KindNumber:
		return string(n.value) != "0"
	}
	return true
}

// Usernames returns the usernames in the payloads of userID's
// iam.user.created and iam.user.modified entries (those whose payload id
// is userID) that came from IAM (TrustedIdentitySource), sorted, without
// repeats and without erased ones.
func Usernames(ctx context.Context, s Store, cat *catalog.Catalog, userID string) ([]string, error) {
	if userID == "" {
		return nil, nil
	}
	var out []string
	for _, name := range []string{UserCreated, UserModified} {
		q := Query{Name: name, Payload: map[string]string{"id": userID}, Order: BySeq, Limit: 1000, SkipTotal: true}
		for {
			p, err := s.Query(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("usernames of %s: %w", userID, err)
			}
			for _, e := range p.Entries {
				if u := usernameOf(e, cat); u != "" {
					out = append(out, u)
				}
			}
			if p.Next == nil {
				break
			}
			q.After = p.Next
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// usernameOf returns the username a trusted user event teaches, or "".
func usernameOf(e Entry, cat *catalog.Catalog) string {
	if (e.Name != UserCreated && e.Name != UserModified) || !TrustedIdentitySource(e, cat) {
		return ""
	}
	var p struct {
		Username json.RawMessage `json:"username"`
	}
	if json.Unmarshal(e.Payload, &p) != nil {
		return ""
	}
	var u string
	if json.Unmarshal(p.Username, &u) != nil || u == "" || erasedText(u) {
		return ""
	}
	return u
}

// payloadID returns the string id of e's payload, or "".
func payloadID(e Entry) string {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	var id string
	if json.Unmarshal(e.Payload, &p) != nil || json.Unmarshal(p.ID, &id) != nil {
		return ""
	}
	return id
}

// record records values in the store's erasure state, when it keeps one.
func (x *Eraser) record(ctx context.Context, values map[string]string) error {
	st, ok := x.cfg.Store.(ErasureState)
	if !ok || len(values) == 0 {
		return nil
	}
	out := make([]ErasedValue, 0, len(values))
	for v, r := range values {
		out = append(out, ErasedValue{Digest: x.digest(v), Replacement: r})
	}
	// In one order, so that two replicas recording the same user at once
	// wait for each other rather than deadlock.
	slices.SortFunc(out, func(a, b ErasedValue) int { return bytes.Compare(a.Digest, b.Digest) })
	return st.RecordErased(ctx, out)
}

// rewrite erases values from every stored entry that references one:
// found by their top-level terms, or by name for the events whose
// catalogued personal fields are nested. noted, when set, is called as
// redact calls it.
func (x *Eraser) rewrite(ctx context.Context, values map[string]string, noted func(refs []string)) (int64, error) {
	var sel Selection
	for _, k := range x.keys {
		for v := range values {
			sel.Terms = append(sel.Terms, Term{k, v})
		}
	}
	// Nested personal fields, by path, with the events that have them.
	for _, n := range x.nestedPaths {
		for v := range values {
			sel.Nested = append(sel.Nested, NestedTerm{Names: n.names, Path: n.path, Value: v})
		}
	}
	if len(sel.Terms) == 0 {
		return 0, nil
	}
	return x.cfg.Store.Rewrite(ctx, sel, x.redact(values, noted))
}

// EraseUser erases userID from the log, for the deletion entry trigger
// (an iam.user.deleted the caller has checked it may act on): it
// records the id, learns the user's usernames from IAM's entries,
// records them, then rewrites every entry that references any of them,
// in that order, so that an entry committed meanwhile is either seen by
// the rewrite or, through Check, sees the record. Then it scrubs the
// store's files and appends the erasure's record (ErasureRecord). It
// returns the number of entries changed. Running it again changes
// nothing.
//
// Deletions that arrive while another erasure runs (the deliveries of
// one ingest batch) are erased together, once that one is done: one
// record of their identifiers, one rewrite, one scrub and one append of
// their records, each record counting the entries of its own user.
func (x *Eraser) EraseUser(ctx context.Context, userID string, trigger Entry) (int64, error) {
	if userID == "" {
		return 0, nil
	}
	req := &eraseReq{userID: userID, trigger: trigger, done: make(chan struct{})}
	x.mu.Lock()
	x.pending = append(x.pending, req)
	lead := !x.running
	x.running = true
	x.mu.Unlock()
	if lead {
		// Erase what is waiting, again and again, until nothing is.
		for {
			x.mu.Lock()
			group := x.pending
			x.pending = nil
			if len(group) == 0 {
				x.running = false
				x.mu.Unlock()
				break
			}
			x.mu.Unlock()
			x.eraseGroup(group)
		}
	}
	// Once queued, the deletion is in a group that will be erased or fail:
	// wait for the answer even if ctx ends, so an ack never precedes it.
	<-req.done
	return req.n, req.err
}

// eraseReq is one deletion waiting in EraseUser.
type eraseReq struct {
	userID  string
	trigger Entry
	done    chan struct{}
	n       int64
	err     error
}

// eraseGroup erases the users of reqs in one pass (EraseUser) and answers
// each. It runs whatever happens to the callers' contexts.
func (x *Eraser) eraseGroup(reqs []*eraseReq) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	counts, err := x.eraseUsers(ctx, reqs)
	for i, r := range reqs {
		if err != nil {
			r.err = err
		} else {
			r.n = counts[i]
		}
		close(r.done)
	}
}

// eraseUsers is the work of EraseUser for several deletions, returning the
// entries changed for each. Users named twice (a redelivered deletion) are
// erased once; each trigger gets its record.
func (x *Eraser) eraseUsers(ctx context.Context, reqs []*eraseReq) ([]int64, error) {
	values := map[string]string{} // value: replacement
	owner := map[string]string{}  // value: user id
	ids := map[string]string{}
	for _, r := range reqs {
		rep := x.replacement(r.userID)
		ids[r.userID], values[r.userID], owner[r.userID] = rep, rep, r.userID
	}
	if err := x.record(ctx, ids); err != nil {
		return nil, fmt.Errorf("erase a user: record the erasure: %w", err)
	}
	learned := map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		names, err := Usernames(ctx, x.cfg.Store, x.cfg.Catalog, id)
		if err != nil {
			return nil, fmt.Errorf("erase a user: %w", err)
		}
		for _, u := range names {
			if _, ok := values[u]; !ok {
				values[u], learned[u], owner[u] = ids[id], ids[id], id
			}
		}
	}
	if err := x.record(ctx, learned); err != nil {
		return nil, fmt.Errorf("erase a user: record the erasure: %w", err)
	}
	perUser := map[string]int64{}
	n, err := x.rewrite(ctx, values, func(refs []string) {
		// The entry counts for every user it referenced.
		seen := map[string]bool{}
		for _, v := range refs {
			if u, ok := owner[v]; ok && !seen[u] {
				seen[u] = true
				perUser[u]++
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("erase a user: %w", err)
	}
	x.scrub(ctx, n)
	counts := make([]int64, len(reqs))
	for i, r := range reqs {
		counts[i] = perUser[r.userID]
	}
	if err := x.appendRecords(ctx, reqs, counts); err != nil {
		return counts, err
	}
	x.count(n)
	for i, r := range reqs {
		x.cfg.Logger.Info("erased a deleted user's entries", "subject", x.SubjectRef(r.userID), "entries", counts[i], "mode", x.cfg.Mode, "trigger", r.trigger.ID)
	}
	return counts, nil
}

// scrub has the store remove the old bytes of the n entries rewritten.
func (x *Eraser) scrub(ctx context.Context, n int64) {
	s, ok := x.cfg.Store.(Scrubber)
	if !ok || n == 0 {
		return
	}
	if err := s.Scrub(ctx); err != nil {
		// The values are erased from every entry; old bytes stay in the
		// store's files until its next checkpoint.
		x.cfg.Logger.Warn("erasure: scrubbing the store's files failed; old bytes remain until the next checkpoint", "error", err)
	}
}

// ErasureRecord is the payload of the audit-log.subject.erased entry
// each erasure appends: which user (by SubjectRef, never in clear), how
// many entries were changed, and which event asked for it.
type ErasureRecord struct {
	Subject string      `json:"subject"`
	Entries int64       `json:"entries"`
	Trigger string      `json:"trigger"`
	Mode    ErasureMode `json:"mode"`
}

// appendRecords appends the erasures' records, each with an id derived
// from its trigger's, in one Append: a redelivered deletion adds no
// second record.
func (x *Eraser) appendRecords(ctx context.Context, reqs []*eraseReq, counts []int64) error {
	now := x.cfg.Now()
	var entries []Entry
	for i, r := range reqs {
		rec := ErasureRecord{Subject: x.SubjectRef(r.userID), Entries: counts[i], Trigger: r.trigger.ID, Mode: x.cfg.Mode}
		payload, _ := json.Marshal(rec)
		ev, err := event.New(SubjectErased, payload)
		if err != nil {
			return err
		}
		ev.Headers.ServiceName = QueueName
		ev.Headers.ID = "erasure-" + hex.EncodeToString(x.mac("herald/erasure-record/v1", r.trigger.ID+"\x00"+r.userID)[:16])
		ev.Headers.CreatedAt = now
		e, err := EntryFromEvent(ev, now, x.cfg.Catalog)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(entries, func(o Entry) bool { return o.ID == e.ID }) {
			entries = append(entries, e)
		}
	}
	added, err := x.cfg.Store.Append(ctx, entries)
	if err != nil {
		return fmt.Errorf("erase a user: record the erasure in the log: %w", err)
	}
	if added > 0 && x.cfg.OnCommit != nil {
		x.cfg.OnCommit()
	}
	return nil
}

// lookup finds, among entries, those that reference an erased user
// (ErasureState): it returns the erased values they hold (value:
// replacement), the indexes of the entries, and the usernames identity
// events among them teach of erased users (TrustedIdentitySource), which
// it records, for the caller to erase from the entries stored before.
// A username recorded already is returned too: the lookup that recorded
// it may have stopped before that rewrite (its replica killed, the
// rewrite failed), and the retry of its delivery must do it. Nothing
// found is nil, nil, nil.
func (x *Eraser) lookup(ctx context.Context, entries []Entry, seen *looked) (values, learned map[string]string, hits []int, err error) {
	st, ok := x.cfg.Store.(ErasureState)
	if !ok {
		return nil, nil, nil, nil
	}
	var refs map[string]string // string(digest): value
	var per [][]string
	if seen != nil && len(seen.per) == len(entries) {
		// The same entries as Prepare's: only the values not found then
		// can have been recorded since.
		per, refs = seen.per, map[string]string{}
		for d, v := range seen.refs {
			if !seen.found[d] {
				refs[d] = v
			}
		}
	} else {
		refs, per = map[string]string{}, make([][]string, len(entries))
		for i, e := range entries {
			if e.Name == SubjectErased {
				continue
			}
			per[i] = x.references(e)
			for _, v := range per[i] {
				refs[string(x.digest(v))] = v
			}
		}
	}
	if seen != nil && seen.per == nil {
		seen.per, seen.refs, seen.found = per, refs, map[string]bool{}
	}
	if len(refs) == 0 {
		return nil, nil, nil, nil
	}
	digests := make([][]byte, 0, len(refs))
	for d := range refs {
		digests = append(digests, []byte(d))
	}
	found, err := st.Erased(ctx, digests)
	if err != nil || len(found) == 0 {
		return nil, nil, nil, err
	}
	if seen != nil && seen.found != nil {
		for d := range found {
			seen.found[d] = true
		}
	}
	values = map[string]string{}
	for d, r := range found {
		values[refs[d]] = r
	}
	learned = map[string]string{}
	fresh := map[string]string{} // of learned, those not recorded yet
	for i, e := range entries {
		if !slices.ContainsFunc(per[i], func(v string) bool { _, ok := values[v]; return ok }) {
			continue
		}
		hits = append(hits, i)
		if r, ok := values[payloadID(e)]; ok {
			if u := usernameOf(e, x.cfg.Catalog); u != "" {
				if known, ok := values[u]; ok {
					learned[u] = known
				} else {
					learned[u], fresh[u] = r, r
				}
			}
		}
	}
	if err := x.record(ctx, fresh); err != nil {
		return nil, nil, nil, err
	}
	for u, r := range fresh {
		values[u] = r
	}
	return values, learned, hits, nil
}

// looked is what prepare computed of a batch, for the Check after its
// commit: the values each entry references, their digests, and those
// found erased.
type looked struct {
	per   [][]string
	refs  map[string]string
	found map[string]bool
}

// Prepare erases, in entries about to be appended, the values of users
// erased before: so that an entry redelivered after a user's erasure, or
// late in another replica's batch, is never stored in clear. A username
// learned from them is erased from the entries stored before. Check,
// after the commit, catches an erasure that committed meanwhile.
func (x *Eraser) Prepare(ctx context.Context, entries []Entry) error {
	_, err := x.prepare(ctx, entries)
	return err
}

// prepare is Prepare, returning what it looked up for Check.
func (x *Eraser) prepare(ctx context.Context, entries []Entry) (*looked, error) {
	seen := &looked{}
	values, learned, hits, err := x.lookup(ctx, entries, seen)
	if err != nil {
		return nil, fmt.Errorf("erase values of erased users in new entries: %w", err)
	}
	if len(learned) > 0 {
		n, err := x.rewrite(ctx, learned, nil)
		if err != nil {
			return nil, fmt.Errorf("erase values of erased users: %w", err)
		}
		x.count(n)
	}
	redact := x.redact(values, nil)
	var n int64
	for _, i := range hits {
		changed, err := redact(&entries[i])
		if err != nil {
			return nil, fmt.Errorf("erase values of erased users in new entries: %w", err)
		}
		if changed {
			n++
		}
	}
	x.count(n)
	return seen, nil
}

// count adds n to the entries anonymised.
func (x *Eraser) count(n int64) {
	if x.cfg.Metrics != nil && n > 0 {
		x.cfg.Metrics.Anonymised.Add(float64(n))
	}
}

// Check erases, in entries just committed, the values of users erased
// before (ErasureState), and, as Prepare does, the usernames that
// identity events among them teach. It is what makes the order of an
// erasure and a commit irrelevant: an entry committed before an erasure
// recorded its user is found by the erasure's rewrite; one committed
// after, finds the record here. It returns the number of entries
// changed.
func (x *Eraser) Check(ctx context.Context, entries []Entry) (int64, error) {
	return x.check(ctx, entries, nil)
}

// check is Check, given what Prepare looked up of the same entries.
func (x *Eraser) check(ctx context.Context, entries []Entry, seen *looked) (int64, error) {
	values, learned, hits, err := x.lookup(ctx, entries, seen)
	if err != nil || len(hits) == 0 {
		return 0, err
	}
	var n int64
	if len(learned) > 0 {
		// Entries stored before with the usernames learned, recorded now
		// or by an earlier delivery that stopped before its rewrite.
		if n, err = x.rewrite(ctx, learned, nil); err != nil {
			return 0, fmt.Errorf("erase entries of erased users: %w", err)
		}
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = entries[h].ID
	}
	m, err := x.cfg.Store.Rewrite(ctx, Selection{IDs: ids}, x.redact(values, nil))
	if err != nil {
		return n, fmt.Errorf("erase entries of erased users: %w", err)
	}
	n += m
	if n > 0 {
		x.scrub(ctx, n)
		x.count(n)
		x.cfg.Logger.Info("erased entries of erased users stored after the erasure", "entries", n)
	}
	return n, nil
}

// Posted erases what an entry stored through POST /logs calls for: the
// values of users erased before (Check), and, when an admin posted an
// iam.user.deleted from IAM (TrustedIdentitySource), that user. A
// non-admin's POST never erases anyone.
func (x *Eraser) Posted(ctx context.Context, e Entry, admin bool) error {
	if _, err := x.Check(ctx, []Entry{e}); err != nil {
		return err
	}
	if !admin || e.Name != UserDeleted || !TrustedIdentitySource(e, x.cfg.Catalog) {
		return nil
	}
	_, err := x.EraseUser(ctx, payloadID(e), e)
	return err
}

// LoadOrCreateErasureKey reads the erasure key from path (its content,
// surrounding space trimmed), creating a random one (32 bytes, in hex,
// mode 0600) when the file does not exist. It reports whether it created
// it.
func LoadOrCreateErasureKey(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k := bytes.TrimSpace(b)
		if len(k) < MinErasureKey {
			return nil, false, fmt.Errorf("erasure key %s: %d bytes, want at least %d", path, len(k), MinErasureKey)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("erasure key: %w", err)
	}
	raw := make([]byte, 32)
	rand.Read(raw) // never fails (crypto/rand)
	k := []byte(hex.EncodeToString(raw))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("create erasure key: %w", err)
	}
	if _, err := f.Write(append(k, '\n')); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write erasure key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write erasure key: %w", err)
	}
	return k, true, nil
}
