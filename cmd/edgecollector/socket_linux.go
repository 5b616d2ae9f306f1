//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/hazwatch/edgecollector/internal/collector"
)

// listenControl binds the control socket, mode 0600, refusing one that
// another collector still answers on.
func listenControl(path string) (net.Listener, error) {
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s is in use: is another collector running on this data dir?", path)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	return l, nil
}

// controlService serves the control socket for c: at most
// collector.MaxControlConns at once, each closed after
// collector.ControlTimeout.
func controlService(c *collector.Collector, l net.Listener) collector.Service {
	return collector.Service{Name: "control socket", Run: func(ctx context.Context) error {
		return c.ServeConns(ctx, l, "control", collector.MaxControlConns, collector.ControlTimeout, func(ctx context.Context, conn net.Conn) {
			var req collector.Request
			if err := json.NewDecoder(bufio.NewReader(io.LimitReader(conn, collector.MaxControlRequest))).Decode(&req); err != nil {
				json.NewEncoder(conn).Encode(collector.Answer{Error: "bad request: " + err.Error()})
				return
			}
			json.NewEncoder(conn).Encode(c.Control(ctx, req, peer(conn)))
		})
	}}
}

// peer names the user on the other end of the socket.
func peer(conn net.Conn) string {
	if lc, ok := conn.(interface{ Unwrap() net.Conn }); ok {
		conn = lc.Unwrap()
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return "unknown"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown"
	}
	who := "unknown"
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			who = fmt.Sprintf("uid %d (pid %d) via control socket", cred.Uid, cred.Pid)
		}
	})
	return who
}
