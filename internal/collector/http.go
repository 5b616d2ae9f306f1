package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status listener limits: the most HTTP connections open at once, and the
// timeouts that free a slot held by an idle or slow client.
const (
	MaxHTTPConns      = 32
	httpHeaderTimeout = 5 * time.Second
	httpIdleTimeout   = 30 * time.Second
	httpWriteTimeout  = 30 * time.Second
)

// statusListenAddr binds a bare ":port" to loopback only.
func statusListenAddr(listen string) string {
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}

// listenStatus binds the optional status listener, so that a port in use
// fails the start before anything polls.
func (c *Collector) listenStatus() (*limitListener, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.Status.Listen == "" || c.statusL != nil {
		return c.statusL, nil
	}
	l, err := net.Listen("tcp", statusListenAddr(c.cfg.Status.Listen))
	if err != nil {
		return nil, fmt.Errorf("status listener: %w", err)
	}
	c.statusL = newLimitListener(l, "status", MaxHTTPConns, c.log)
	return c.statusL, nil
}

// StatusAddr is the status listener's address ("" when there is none).
func (c *Collector) StatusAddr() string {
	l, err := c.listenStatus()
	if err != nil || l == nil {
		return ""
	}
	return l.Addr().String()
}

// Handler serves the local page at / (page.go), /status (the same JSON as
// `edgecollector status`) and /metrics (Prometheus exposition by
// client_golang). serveStatus puts the configured authentication in front.
func (c *Collector) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&metrics{c: c}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(c.Status())
	})
	c.pageRoutes(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{c}, MaxRequestsInFlight: 4}))
	return mux
}

type slogPrinter struct{ c *Collector }

func (p slogPrinter) Println(v ...any) { p.c.log.Error("metrics", "err", fmt.Sprint(v...)) }

// serveStatus serves the status listener until ctx ends; the supervisor
// restarts it (binding again) after a failure.
func (c *Collector) serveStatus(ctx context.Context) error {
	l, err := c.listenStatus()
	if err != nil || l == nil {
		return err
	}
	auth, err := loadStatusAuth(c.cfg)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: auth.wrap(c.Handler()), ReadHeaderTimeout: httpHeaderTimeout, ReadTimeout: httpHeaderTimeout,
		WriteTimeout: httpWriteTimeout, IdleTimeout: httpIdleTimeout, MaxHeaderBytes: 16 << 10}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	})
	defer stop()
	c.log.Info("status listener", "addr", l.Addr().String())
	if t := c.cfg.Status.TLS; t != nil {
		err = srv.ServeTLS(l, c.cfg.Resolve(t.Cert), c.cfg.Resolve(t.Key))
	} else {
		err = srv.Serve(l)
	}
	if ctx.Err() != nil {
		return nil
	}
	c.mu.Lock()
	c.statusL = nil // bind again on restart
	c.mu.Unlock()
	l.Close()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status listener: %w", err)
	}
	return err
}
