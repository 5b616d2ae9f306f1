//go:build !linux

package main

import (
	"context"
	"errors"
	"net"

	"github.com/hazwatch/edgecollector/internal/collector"
)

// The control socket is Linux-only (peer credentials, umask): elsewhere the
// collector runs without it.
func listenControl(path string) (net.Listener, error) {
	return nil, errors.New("the control socket is available on Linux only")
}

func controlService(c *collector.Collector, l net.Listener) collector.Service {
	return collector.Service{Name: "control socket", Run: func(ctx context.Context) error { <-ctx.Done(); return nil }}
}
