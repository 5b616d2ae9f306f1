package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/hazwatch/edgecollector/config"
)

// The control endpoint is a Unix socket, mode 0600, at
// <data dir>/control.sock: one JSON request per connection, one JSON
// answer. The socket itself (a transport) belongs to the command; the
// protocol is here.

// Request is one control command.
type Request struct {
	Cmd      string `json:"cmd"` // reset, ack, bypass, maintenance, status, reload
	Name     string `json:"name,omitempty"`
	Duration string `json:"duration,omitempty"`
	// maintenance: on (out of service) or off, why, and whether to take a
	// voting point out of service while its interlock is not bypassed.
	On     bool   `json:"on,omitempty"`
	Reason string `json:"reason,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

// Answer is the collector's reply.
type Answer struct {
	OK      bool    `json:"ok"`
	Message string  `json:"message,omitempty"`
	Error   string  `json:"error,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// Control limits: the most control connections served at once, and how
// long one may take (it is closed after that, idle or not).
const (
	MaxControlConns = 16
	ControlTimeout  = 30 * time.Second
	// MaxControlRequest bounds a request's size.
	MaxControlRequest = 1 << 16
)

// SocketPath is where the control socket of a config's collector is.
func SocketPath(cfg *config.Config) string {
	return filepath.Join(cfg.Resolve(cfg.Buffer.Dir), "control.sock")
}

// Control carries out one request from who (the peer, for the audit log).
// Every command but status is written to the audit log before it is
// carried out, and its result after: when the first entry cannot be
// written the command is refused (fail closed).
func (c *Collector) Control(ctx context.Context, req Request, who string) Answer {
	if req.Cmd == "status" {
		st := c.Status()
		return Answer{OK: true, Status: &st}
	}
	detail := req.Duration
	if req.Cmd == "maintenance" {
		detail = strings.TrimSpace(fmt.Sprintf("on=%v for=%s force=%v reason=%q", req.On, req.Duration, req.Force, req.Reason))
	}
	id, err := c.auditRequest(req, who, detail)
	if err != nil {
		c.log.Error("control command refused: its audit entry cannot be written", "cmd", req.Cmd, "name", req.Name, "who", who, "err", err)
		return Answer{Error: fmt.Sprintf("%s %s not carried out: the audit log cannot record it, and no command runs without its audit entry (fail closed): %v",
			req.Cmd, req.Name, err)}
	}
	msg := ""
	switch req.Cmd {
	case "reset":
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = c.Reset(rctx, req.Name, who)
		cancel()
		msg = "interlock " + req.Name + " reset; outputs stay as they are unless on_reset says otherwise"
	case "ack":
		err = c.Ack(req.Name, who)
		msg = "alarms of " + req.Name + " acknowledged"
	case "bypass":
		var d time.Duration
		if d, err = time.ParseDuration(req.Duration); err == nil {
			err = c.Bypass(req.Name, d, who)
			msg = fmt.Sprintf("interlock %s bypassed for %s", req.Name, d)
		}
	case "maintenance":
		var d time.Duration
		if req.On {
			d, err = time.ParseDuration(req.Duration)
		}
		if err == nil {
			err = c.Maintenance(req.Name, req.On, d, req.Reason, who, req.Force)
		}
		msg = fmt.Sprintf("point %s back in service", req.Name)
		if req.On {
			msg = fmt.Sprintf("point %s out of service for %s: %s", req.Name, d, req.Reason)
		}
	case "reload":
		how := "reload"
		if strings.HasPrefix(req.Reason, "rollback") {
			how = "rollback"
		}
		err = c.ReloadAs(who, how)
		msg = "config reloaded"
	default:
		err = fmt.Errorf("unknown command %q", req.Cmd)
	}
	aerr := c.auditResult(id, req, who, detail, err)
	if err != nil {
		return Answer{Error: err.Error()}
	}
	if aerr != nil {
		msg += fmt.Sprintf(" (done, but its result could not be written to the audit log: %v)", aerr)
	}
	return Answer{OK: true, Message: msg}
}

// Call sends one request to the collector listening on sock.
func Call(sock string, req Request) (Answer, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return Answer{}, fmt.Errorf("cannot reach the collector at %s (is it running, and may this user open the socket?): %w", sock, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ControlTimeout))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Answer{}, err
	}
	var ans Answer
	if err := json.NewDecoder(conn).Decode(&ans); err != nil {
		return Answer{}, fmt.Errorf("bad answer: %w", err)
	}
	return ans, nil
}
