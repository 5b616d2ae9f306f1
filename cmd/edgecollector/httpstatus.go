package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// statusListenAddr binds a bare ":port" to loopback only.
func statusListenAddr(listen string) string {
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}

// serveStatus runs the optional read-only HTTP listener: /status (the same
// JSON as `edgecollector status`) and /metrics (Prometheus text format).
func (c *collector) serveStatus(ctx context.Context) error {
	if c.cfg.Status.Listen == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.status())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		c.writeMetrics(w)
	})
	l, err := net.Listen("tcp", statusListenAddr(c.cfg.Status.Listen))
	if err != nil {
		return fmt.Errorf("status listener: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	c.log.Info("status listener", "addr", l.Addr().String())
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status listener: %w", err)
	}
	return nil
}

// writeMetrics writes the collector's metrics in the Prometheus text format.
func (c *collector) writeMetrics(w http.ResponseWriter) {
	st := c.store.Stats()
	gauge := func(name, help string, v float64, labels ...string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		fmt.Fprintf(w, "%s%s %g\n", name, labelSet(labels...), v)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge("edgecollector_buffer_durable", "1 when appended messages are synced to disk", b2f(st.Durable))
	gauge("edgecollector_buffer_messages", "messages stored", float64(st.Messages))
	gauge("edgecollector_buffer_bytes", "encoded size of the stored messages", float64(st.Bytes))
	gauge("edgecollector_buffer_memory_queued", "messages held only in memory (disk full)", float64(st.MemoryQueued))
	gauge("edgecollector_last_seq", "highest seq assigned", float64(st.LastSeq))
	fmt.Fprintf(w, "# HELP edgecollector_buffer_dropped_total messages dropped before every uplink had them\n# TYPE edgecollector_buffer_dropped_total counter\nedgecollector_buffer_dropped_total %d\n", st.Dropped)
	fmt.Fprintf(w, "# HELP edgecollector_uplink_backlog messages an uplink has not had acknowledged\n# TYPE edgecollector_uplink_backlog gauge\n")
	names := make([]string, 0, len(st.Uplinks))
	for n := range st.Uplinks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "edgecollector_uplink_backlog%s %d\n", labelSet("uplink", n), st.Uplinks[n].Depth)
	}
	pts, ils := c.engine.Snapshot()
	fmt.Fprintf(w, "# HELP edgecollector_point_good 1 when the point's last reading is good\n# TYPE edgecollector_point_good gauge\n")
	for _, p := range pts {
		fmt.Fprintf(w, "edgecollector_point_good%s %g\n", labelSet("point", p.Code), b2f(!p.Updated.IsZero() && p.Quality == edge.Good))
	}
	fmt.Fprintf(w, "# HELP edgecollector_interlock_tripped 1 while the interlock is tripped\n# TYPE edgecollector_interlock_tripped gauge\n")
	for _, il := range ils {
		fmt.Fprintf(w, "edgecollector_interlock_tripped%s %g\n", labelSet("interlock", il.Name), b2f(il.Tripped))
	}
}

func labelSet(kv ...string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", kv[i], kv[i+1])
	}
	b.WriteByte('}')
	return b.String()
}
