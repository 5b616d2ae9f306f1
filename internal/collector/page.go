package collector

import (
	"embed"
	"io/fs"
	"net/http"
	"time"
)

// The local page: static HTML, CSS and JavaScript embedded in the binary
// (no CDN, works offline). The script polls ./status (the same typed
// Status as `edgecollector status`, the heartbeat and /metrics) every
// PageRefresh and renders it; it never writes anything (read-only: the
// listener serves GET only). No SSE or WebSocket: headless browsers used
// in checks wait on open streams.
//
//go:embed page
var pageFiles embed.FS

// PageRefresh is how often the page polls /status (also written in the
// page's script as REFRESH_MS).
const PageRefresh = 2 * time.Second

func (c *Collector) pageRoutes(mux *http.ServeMux) {
	var files http.Handler = http.NotFoundHandler()
	if sub, err := fs.Sub(pageFiles, "page"); err == nil { // the embed pattern guarantees it
		files = http.FileServerFS(sub)
	}
	secure := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.Header().Set("Referrer-Policy", "no-referrer")
			h.ServeHTTP(w, r)
		})
	}
	mux.Handle("GET /{$}", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := pageFiles.ReadFile("page/index.html")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})))
	mux.Handle("GET /page/", secure(http.StripPrefix("/page/", files)))
}
