package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/auditlog/client"
	"github.com/heraldhq/herald/auditlog/httpapi"
)

type verifyOptions struct {
	data       string
	store      string
	url        string
	token      string
	key        string
	signingKey string
	since      string
	output     string
}

func newVerifyCmd() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Prove the audit log was not edited: recompute every leaf, check every signed checkpoint",
		Long: `verify holds the audit log to its signed checkpoints.

Straight from the store (--data, or --store), it recomputes every entry's
leaf from what is stored, rebuilds the Merkle tree, checks every
checkpoint's signature and root and that each names the one before it,
and checks the stored tree hashes. Through the API (--url), an admin does
the same from the admin export; anyone else checks the inclusion proof of
every entry they may read. --since FILE proves the log still extends a
checkpoint saved earlier (curl …/checkpoint > FILE): nothing was rewritten
since.

The log's key is --key (a note verifier key, or @FILE), else the one of
--signing-key or the data folder's signing key, else (with --url) the key
the API serves, which proves only that the log agrees with itself.

Exit 0 when everything holds; 1 naming the first entry (id, leaf index) or
checkpoint that fails and what failed: content changed, entry missing,
order changed, extra entry, bad signature, checkpoint missing, fork,
stored hash changed, access columns changed, pruned without a record.`,
		Example: `  herald verify --data ./herald-data
  herald verify --store postgres://herald@db/herald --key @log.vkey
  herald verify --url http://127.0.0.1:3007 --token "$(cat herald-data/admin-token)" --output json
  curl -s http://127.0.0.1:3007/checkpoint > cp; …; herald verify --url http://127.0.0.1:3007 --since cp`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return verify(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addDataDirFlag(cmd, &o.data)
	f.StringVar(&o.store, "store", os.Getenv(envStoreURL), "audit store: postgres://…[?schema=NAME] or a SQLite file path (env "+envStoreURL+"); empty uses <data>/audit.db")
	f.StringVar(&o.url, "url", "", "verify through the audit log's API at this URL instead of the store")
	f.StringVar(&o.token, "token", os.Getenv(envToken), "bearer token for --url (env "+envToken+"; default: the local serve's admin token)")
	f.StringVar(&o.key, "key", "", "the log's note verifier key, or @FILE holding it")
	f.StringVar(&o.signingKey, "signing-key", os.Getenv(envSigningKey), "the log's signing key file, whose verifier key to use (env "+envSigningKey+")")
	f.StringVar(&o.since, "since", "", "a checkpoint saved earlier (GET /checkpoint): prove the log extends it")
	f.StringVar(&o.output, "output", "text", "text or json")
	return cmd
}

// verifyResult is what verify reports, as --output json writes it.
type verifyResult struct {
	OK          bool                `json:"ok"`
	Mode        string              `json:"mode"`
	Entries     int64               `json:"entries"`
	Integrated  int64               `json:"integrated"`
	Pending     int64               `json:"pending"`
	Erased      int64               `json:"erased"`
	Pruned      int64               `json:"pruned"`
	Fields      map[string][]string `json:"erasedFields,omitempty"`
	Checkpoints int64               `json:"checkpoints"`
	TreeSize    int64               `json:"treeSize"`
	Since       *int64              `json:"since,omitempty"`
	Seconds     float64             `json:"seconds"`
	PerSecond   float64             `json:"entriesPerSecond"`
	Failure     *auditlog.Failure   `json:"failure,omitempty"`
}

func verify(ctx context.Context, o verifyOptions, stdout, stderr io.Writer) error {
	if o.output != "text" && o.output != "json" {
		return usagef("--output %q: want text or json", o.output)
	}
	start := time.Now()
	var res verifyResult
	var err error
	if o.url != "" {
		res, err = verifyURL(ctx, o, stderr)
	} else {
		res, err = verifyStore(ctx, o, stderr)
	}
	if err != nil {
		return err
	}
	res.Seconds = time.Since(start).Seconds()
	if res.Seconds > 0 {
		res.PerSecond = float64(res.Entries) / res.Seconds
	}
	res.OK = res.Failure == nil
	if o.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printVerify(stdout, res)
	}
	if res.Failure != nil {
		return fmt.Errorf("verify failed: %s", res.Failure.Error())
	}
	return nil
}

func printVerify(w io.Writer, r verifyResult) {
	state := "verified"
	if r.Failure != nil {
		state = "FAILED after"
	}
	fmt.Fprintf(w, "%s %d entries (%d integrated, %d not yet, %d erased, %d pruned) and %d checkpoints up to tree size %d in %.1fs (%.0f entries/s, %s)\n",
		state, r.Entries, r.Integrated, r.Pending, r.Erased, r.Pruned, r.Checkpoints, r.TreeSize, r.Seconds, r.PerSecond, r.Mode)
	for id, fs := range r.Fields {
		fmt.Fprintf(w, "  erased: entry %s: %s\n", id, strings.Join(fs, ", "))
	}
	if r.Since != nil && r.Failure == nil {
		fmt.Fprintf(w, "the log extends the saved checkpoint of size %d\n", *r.Since)
	}
	if r.Failure != nil {
		fmt.Fprintf(w, "FAIL: %s\n", r.Failure.Error())
	}
}

// verifierKey finds the log's key: --key, --signing-key, or the data
// folder's signing key; "" when there is none.
func (o verifyOptions) verifierKey() (string, error) {
	if o.key != "" {
		k := o.key
		if path, ok := strings.CutPrefix(k, "@"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("--key: %w", err)
			}
			k = string(b)
		}
		return strings.TrimSpace(k), nil
	}
	path := o.signingKey
	if path == "" {
		path = filepath.Join(o.data, signingKeyFileName)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && o.signingKey == "" {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	s, err := auditlog.NewSigner(string(b))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return s.VerifierKey(), nil
}

func verifyStore(ctx context.Context, o verifyOptions, stderr io.Writer) (verifyResult, error) {
	vkey, err := o.verifierKey()
	if err != nil {
		return verifyResult{}, err
	}
	if vkey == "" {
		return verifyResult{}, usagef("no key to verify with: give --key, or --signing-key, or a --data folder holding signing-key")
	}
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		return verifyResult{}, usagef("%v", err)
	}
	storeAt, err := parseStore(o.store, o.data)
	if err != nil {
		return verifyResult{}, err
	}
	if storeAt.postgres == "" {
		// Opening a SQLite path creates it: verify reads an existing log.
		if _, err := os.Stat(storeAt.path); err != nil {
			return verifyResult{}, fmt.Errorf("no audit store to verify: %w (give --data or --store)", err)
		}
	}
	store, err := storeAt.open(ctx)
	if err != nil {
		return verifyResult{}, err
	}
	desc := storeAt.describe()
	defer store.Close()
	var total int64
	if p, err := store.Query(ctx, auditlog.Query{Limit: 1}); err == nil {
		total = p.Total
	}
	since, err := readSince(o.since, v)
	if err != nil {
		return verifyResult{}, err
	}
	bar := newBar(int(total), stderr, "verifying", "entries")
	opts := auditlog.VerifyOptions{Progress: func(n int64) { bar.set(int(n)) }}
	if since != nil {
		opts.RootsAt = []int64{since.Size}
	}
	r, err := auditlog.Verify(ctx, store, v, opts)
	bar.finish()
	if err != nil {
		return verifyResult{}, err
	}
	res := fromReport(r, "store "+desc)
	if since != nil && res.Failure == nil {
		res.Since = &since.Size
		if root, ok := r.Roots[since.Size]; !ok || root != since.Root {
			res.Failure = &auditlog.Failure{What: auditlog.Fork, LeafIndex: -1, Checkpoint: since.Size,
				Detail: "the log's tree of that size is not the one the saved checkpoint signed"}
		}
	}
	return res, nil
}

func fromReport(r *auditlog.Report, mode string) verifyResult {
	return verifyResult{
		Mode: mode, Entries: r.Entries, Integrated: r.Integrated, Pending: r.Pending, Erased: r.Erased, Pruned: r.Pruned,
		Fields: r.ErasedFields, Checkpoints: r.Checkpoints, TreeSize: r.TreeSize, Failure: r.Failure,
	}
}

// readSince reads and checks a saved checkpoint.
func readSince(path string, v note.Verifier) (*auditlog.Checkpoint, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--since: %w", err)
	}
	cp, err := auditlog.OpenCheckpoint(b, v)
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	return &cp, nil
}

// api is the few requests verify makes of the API.
type api struct {
	base  *url.URL
	token string
	http  *http.Client
}

func (a api) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := *a.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", client.ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, &httpStatusError{path: path, status: resp.StatusCode, body: strings.TrimSpace(string(body))}
	}
	return resp, nil
}

type httpStatusError struct {
	path   string
	status int
	body   string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.path, e.status, e.body)
}

func (a api) getJSON(ctx context.Context, path string, q url.Values, out any) error {
	resp, err := a.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

func (a api) text(ctx context.Context, path string) ([]byte, error) {
	resp, err := a.get(ctx, path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// Checkpoints, Leaves and ReadHashes make the API an auditlog.VerifySource.
func (a api) Checkpoints(ctx context.Context, after int64, limit int) ([]auditlog.Checkpoint, error) {
	q := url.Values{}
	if after >= 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	resp, err := a.get(ctx, "/checkpoints", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []auditlog.Checkpoint
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Size int64  `json:"size"`
			Note string `json:"note"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("GET /checkpoints: %w", err)
		}
		out = append(out, auditlog.Checkpoint{Size: line.Size, Note: []byte(line.Note)})
	}
	return out, sc.Err()
}

func (a api) Leaves(ctx context.Context, afterSeq int64, limit int) ([]auditlog.Entry, error) {
	resp, err := a.get(ctx, "/export", url.Values{"after": {strconv.FormatInt(afterSeq, 10)}, "limit": {strconv.Itoa(limit)}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out []auditlog.Entry
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var x httpapi.ExportedEntry
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return nil, fmt.Errorf("GET /export: %w", err)
		}
		out = append(out, x.Entry())
	}
	return out, sc.Err()
}

func (a api) ReadHashes(context.Context, []int64) ([]tlog.Hash, error) {
	return nil, auditlog.ErrNoStoredHashes
}

func verifyURL(ctx context.Context, o verifyOptions, stderr io.Writer) (verifyResult, error) {
	base, err := url.Parse(o.url)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return verifyResult{}, usagef("--url %q: want http(s)://host:port", o.url)
	}
	token := o.token
	if token == "" {
		if b, err := os.ReadFile(tokenPath(o.data)); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	a := api{base: base, token: token, http: &http.Client{}}
	vkey, err := o.verifierKey()
	if err != nil {
		return verifyResult{}, err
	}
	mode := "API " + base.Redacted()
	if vkey == "" {
		b, err := a.text(ctx, "/checkpoint/key")
		if err != nil {
			return verifyResult{}, fmt.Errorf("the log's key: %w", err)
		}
		vkey = strings.TrimSpace(string(b))
		mode += ", with the key it serves"
	}
	v, err := auditlog.NewVerifier(vkey)
	if err != nil {
		return verifyResult{}, err
	}
	since, err := readSince(o.since, v)
	if err != nil {
		return verifyResult{}, err
	}
	// An admin may export; anyone else checks their own entries' proofs.
	var res verifyResult
	_, err = a.Leaves(ctx, 0, 1)
	var se *httpStatusError
	switch {
	case err == nil:
		bar := newBar(-1, stderr, "verifying", "entries")
		r, err := auditlog.Verify(ctx, a, v, auditlog.VerifyOptions{Progress: func(n int64) { bar.set(int(n)) }})
		bar.finish()
		if err != nil {
			return verifyResult{}, err
		}
		res = fromReport(r, mode+", admin export")
	case errors.As(err, &se) && se.status == http.StatusForbidden:
		if res, err = verifyInclusions(ctx, a, v, mode, stderr); err != nil {
			return verifyResult{}, err
		}
	default:
		return verifyResult{}, err
	}
	if since != nil && res.Failure == nil {
		res.Since = &since.Size
		if f, err := checkSince(ctx, a, v, *since); err != nil {
			return verifyResult{}, err
		} else if f != nil {
			res.Failure = f
		}
	}
	return res, nil
}

// checkSince checks the consistency proof from a saved checkpoint to the
// latest.
func checkSince(ctx context.Context, a api, v note.Verifier, saved auditlog.Checkpoint) (*auditlog.Failure, error) {
	var c struct {
		To           int64    `json:"to"`
		ToCheckpoint string   `json:"toCheckpoint"`
		Proof        [][]byte `json:"proof"`
	}
	err := a.getJSON(ctx, "/proof/consistency", url.Values{"from": {strconv.FormatInt(saved.Size, 10)}}, &c)
	if err != nil {
		return nil, err
	}
	latest, err := auditlog.OpenCheckpoint([]byte(c.ToCheckpoint), v)
	if err != nil {
		return &auditlog.Failure{What: auditlog.BadSignature, LeafIndex: -1, Checkpoint: c.To, Detail: err.Error()}, nil
	}
	proof := make(tlog.TreeProof, len(c.Proof))
	for i, h := range c.Proof {
		copy(proof[i][:], h)
	}
	if err := tlog.CheckTree(proof, latest.Size, latest.Root, saved.Size, saved.Root); err != nil {
		return &auditlog.Failure{What: auditlog.Fork, LeafIndex: -1, Checkpoint: saved.Size,
			Detail: fmt.Sprintf("the log's checkpoint of size %d does not extend the saved one: %v", latest.Size, err)}, nil
	}
	return nil, nil
}

// verifyInclusions checks, for a caller who is not an admin, the inclusion
// of every entry they may read: its leaf recomputed from the entry as
// served, and its proof against a checkpoint signed by the log's key.
func verifyInclusions(ctx context.Context, a api, v note.Verifier, mode string, stderr io.Writer) (verifyResult, error) {
	c, err := client.New(a.base.String(), client.WithToken(a.token))
	if err != nil {
		return verifyResult{}, err
	}
	res := verifyResult{Mode: mode + ", inclusion of the caller's entries"}
	checked := map[int64]auditlog.Checkpoint{}
	bar := newBar(-1, stderr, "verifying", "entries")
	defer bar.finish()
	for e, err := range c.All(ctx, client.Query{Order: client.OldestFirst}) {
		if err != nil {
			return verifyResult{}, err
		}
		res.Entries++
		bar.set(int(res.Entries))
		var p struct {
			LeafIndex   int64                          `json:"leafIndex"`
			LeafHash    []byte                         `json:"leafHash"`
			TreeSize    int64                          `json:"treeSize"`
			Checkpoint  string                         `json:"checkpoint"`
			Proof       [][]byte                       `json:"proof"`
			Salts       map[string][]byte              `json:"salts"`
			Erased      map[string]auditlog.Commitment `json:"erased"`
			ContentHash []byte                         `json:"contentHash"`
		}
		err := a.getJSON(ctx, "/logs/"+url.PathEscape(e.ID)+"/proof", nil, &p)
		var se *httpStatusError
		if errors.As(err, &se) && se.status == http.StatusConflict {
			res.Pending++
			continue
		}
		if err != nil {
			return verifyResult{}, err
		}
		res.Integrated++
		cp, ok := checked[p.TreeSize]
		if !ok {
			if cp, err = auditlog.OpenCheckpoint([]byte(p.Checkpoint), v); err != nil {
				res.Failure = &auditlog.Failure{What: auditlog.BadSignature, LeafIndex: -1, Checkpoint: p.TreeSize, Detail: err.Error()}
				return res, nil
			}
			checked[p.TreeSize] = cp
			res.Checkpoints = int64(len(checked))
			res.TreeSize = max(res.TreeSize, cp.Size)
		}
		entry := auditlog.Entry{ID: e.ID, Name: e.Name, ServiceName: e.ServiceName, CreatedAt: e.CreatedAt, ReceivedAt: e.ReceivedAt,
			Headers: extraHeaders(e.Headers), Payload: e.Payload, Salts: p.Salts, Erased: p.Erased, ContentHash: p.ContentHash}
		if len(p.Erased) > 0 {
			res.Erased++
		}
		if p.ContentHash != nil {
			res.Pruned++
		}
		h, err := auditlog.LeafHash(entry)
		if err != nil || string(h[:]) != string(p.LeafHash) {
			res.Failure = &auditlog.Failure{What: auditlog.ContentChanged, EntryID: e.ID, LeafIndex: p.LeafIndex, Checkpoint: -1,
				Detail: "the entry as served does not recompute to its leaf hash"}
			return res, nil
		}
		proof := make(tlog.RecordProof, len(p.Proof))
		for i, x := range p.Proof {
			copy(proof[i][:], x)
		}
		if err := tlog.CheckRecord(proof, cp.Size, cp.Root, p.LeafIndex, h); err != nil {
			res.Failure = &auditlog.Failure{What: auditlog.ContentChanged, EntryID: e.ID, LeafIndex: p.LeafIndex, Checkpoint: cp.Size,
				Detail: "its inclusion proof does not verify against the signed checkpoint: " + err.Error()}
			return res, nil
		}
	}
	return res, nil
}

// extraHeaders are the headers of a served entry beyond name,
// serviceName, createdAt and id: what its content commits to.
func extraHeaders(h json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(h, &m) != nil {
		return nil
	}
	for _, k := range []string{"name", "serviceName", "createdAt", "id"} {
		delete(m, k)
	}
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}
