// Package console is the audit log's web console, served by herald serve
// at GET /: a page to sign in with a bearer token, read the audit log
// (filters, paging, a chart of events per minute, the live stream, each
// entry's detail and inclusion proof) and browse the event catalogue.
//
// It is plain HTML, CSS and JavaScript modules embedded in the binary: no
// build step, no framework, nothing fetched from elsewhere. The page talks
// to the API it is served beside (GET /logs, GET /logs/stream, and the
// integrity routes when they exist) with the token the user pasted, kept
// in the tab's sessionStorage and sent as a header, never in a URL.
package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"slices"

	"github.com/heraldhq/herald/auditlog"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/catalog/export"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every answer of the console: scripts,
// styles and connections from the console's own origin only, no inline
// script or style, no plugins, and no framing (clickjacking).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config configures the console.
type Config struct {
	// Catalog is the catalogue the console shows and offers event names
	// from (default catalog.Default()).
	Catalog *catalog.Catalog
}

// New returns the console's handler:
//
//	GET /                the page
//	GET /console/…       its scripts, styles and images
//	GET /catalog.json    the event catalogue, with each event's personal-data fields
//	GET /asyncapi.json   the catalogue as an AsyncAPI 3 document
//
// Any other path is 404. It panics when the catalogue cannot be exported,
// which the catalogue's own tests rule out.
func New(cfg Config) http.Handler {
	if cfg.Catalog == nil {
		cfg.Catalog = catalog.Default()
	}
	cat, err := catalogJSON(cfg.Catalog)
	if err != nil {
		panic(fmt.Sprintf("console: %v", err))
	}
	async, err := export.AsyncAPI(cfg.Catalog)
	if err != nil {
		panic(fmt.Sprintf("console: %v", err))
	}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.Handle("GET /console/", http.StripPrefix("/console", files))
	mux.HandleFunc("GET /catalog.json", serveJSON(cat))
	mux.HandleFunc("GET /asyncapi.json", serveJSON(async))
	return secure(mux)
}

func serveJSON(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(b)
	}
}

// secure adds the headers that keep the page from running anything but
// its own scripts, from being framed, and the browser from guessing types.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// catalogJSON is the catalogue as catalog/export writes it, each event
// with personalData: the payload fields that name a person, which the
// audit log anonymises when that person is deleted.
func catalogJSON(c *catalog.Catalog) ([]byte, error) {
	b, err := export.JSON(c)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Services json.RawMessage  `json:"services"`
		Events   []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("read the exported catalogue: %w", err)
	}
	for _, e := range doc.Events {
		name, _ := e["name"].(string)
		var keys []string
		if s, ok := e["schema"].(map[string]any); ok {
			if props, ok := s["properties"].(map[string]any); ok {
				for k := range props {
					keys = append(keys, k)
				}
			}
		}
		slices.Sort(keys)
		personal := auditlog.PersonalFields(name, keys)
		if personal == nil {
			personal = []string{}
		}
		e["personalData"] = personal
	}
	return json.Marshal(doc)
}
