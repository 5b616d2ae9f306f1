package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/edge/audit"
)

// The control endpoint is a Unix socket, mode 0600, at <data dir>/control.sock:
// one JSON request per connection, one JSON answer.
type controlRequest struct {
	Cmd      string `json:"cmd"` // reset, ack, bypass, maintenance, status, reload
	Name     string `json:"name,omitempty"`
	Duration string `json:"duration,omitempty"`
	// maintenance: on (out of service) or off, why, and whether to take a
	// voting point out of service while its interlock is not bypassed.
	On     bool   `json:"on,omitempty"`
	Reason string `json:"reason,omitempty"`
	Force  bool   `json:"force,omitempty"`
}

type controlAnswer struct {
	OK      bool       `json:"ok"`
	Message string     `json:"message,omitempty"`
	Error   string     `json:"error,omitempty"`
	Status  *statusDoc `json:"status,omitempty"`
}

func socketPath(cfg *config.Config) string {
	return filepath.Join(cfg.Resolve(cfg.Buffer.Dir), "control.sock")
}

type controlServer struct {
	c      *collector
	log    *slog.Logger
	reload func() error
}

// serve listens until ctx ends.
func (s *controlServer) serve(ctx context.Context) error {
	path := socketPath(s.c.cfg)
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s is in use: is another collector running on this data dir?", path)
	}
	os.Remove(path)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	os.Chmod(path, 0o600)
	go func() { <-ctx.Done(); l.Close() }()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				os.Remove(path)
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		go s.handle(ctx, conn)
	}
}

// peer names the user on the other end of the socket.
func peer(conn net.Conn) string {
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

func (s *controlServer) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req controlRequest
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(conn, 1<<16))).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(controlAnswer{Error: "bad request: " + err.Error()})
		return
	}
	who := peer(conn)
	ans := s.do(ctx, req, who)
	json.NewEncoder(conn).Encode(ans)
}

func (s *controlServer) do(ctx context.Context, req controlRequest, who string) controlAnswer {
	c := s.c
	var err error
	msg := ""
	switch req.Cmd {
	case "status":
		st := c.status()
		return controlAnswer{OK: true, Status: &st}
	case "reset":
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err = c.engine.Reset(rctx, req.Name, who)
		cancel()
		msg = "interlock " + req.Name + " reset; outputs stay as they are unless on_reset says otherwise"
	case "ack":
		err = c.engine.Ack(req.Name, who)
		msg = "alarms of " + req.Name + " acknowledged"
	case "bypass":
		var d time.Duration
		if d, err = time.ParseDuration(req.Duration); err == nil {
			err = c.engine.Bypass(req.Name, d, who)
			msg = fmt.Sprintf("interlock %s bypassed for %s", req.Name, d)
		}
	case "maintenance":
		var d time.Duration
		if req.On {
			d, err = time.ParseDuration(req.Duration)
		}
		if err == nil {
			err = c.engine.Maintenance(req.Name, req.On, d, req.Reason, who, req.Force)
		}
		msg = fmt.Sprintf("point %s back in service", req.Name)
		if req.On {
			msg = fmt.Sprintf("point %s out of service for %s: %s", req.Name, d, req.Reason)
		}
		req.Duration = strings.TrimSpace(fmt.Sprintf("on=%v for=%s force=%v reason=%q", req.On, req.Duration, req.Force, req.Reason))
	case "reload":
		err = s.reload()
		msg = "config reloaded"
	default:
		err = fmt.Errorf("unknown command %q", req.Cmd)
	}
	c.auditRecord("control", req.Cmd, req.Name, who, errText(err, req.Duration))
	if err != nil {
		return controlAnswer{Error: err.Error()}
	}
	return controlAnswer{OK: true, Message: msg}
}

func errText(err error, detail string) string {
	if err != nil {
		return "refused: " + err.Error()
	}
	return detail
}

// cmdControl is the CLI side: reset, ack, bypass, maintenance, status,
// reload. Flags may come before or after the names.
func cmdControl(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flags(cmd, stderr)
	path := fs.String("c", "", "config file of the running collector")
	sock := fs.String("socket", "", "control socket (default <buffer.dir>/control.sock)")
	reason := fs.String("reason", "", "maintenance: why the point goes out of service")
	dur := fs.String("for", "", "maintenance: how long, at most 8h (e.g. 4h)")
	force := fs.Bool("force", false, "maintenance: even though the point votes in an interlock that is not bypassed")
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return exitInvalid
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	req := controlRequest{Cmd: cmd}
	need := map[string]int{"reset": 1, "ack": 1, "bypass": 2, "maintenance": 2, "status": 0, "reload": 0}[cmd]
	usage := map[string]string{"reset": " INTERLOCK", "ack": " POINT", "bypass": " INTERLOCK DURATION",
		"maintenance": " POINT on --reason TEXT --for DURATION [--force] | POINT off"}[cmd]
	if len(pos) != need || cmd == "maintenance" && pos[1] != "on" && pos[1] != "off" {
		fmt.Fprintf(stderr, "usage: edgecollector %s -c FILE%s\n", cmd, usage)
		return exitInvalid
	}
	if need >= 1 {
		req.Name = pos[0]
	}
	if need == 2 {
		req.Duration = pos[1]
	}
	if cmd == "maintenance" {
		req.On, req.Duration, req.Reason, req.Force = pos[1] == "on", *dur, *reason, *force
		if req.On && (*dur == "" || *reason == "") {
			fmt.Fprintf(stderr, "maintenance %s on needs --reason and --for (at most 8h)\n", req.Name)
			return exitInvalid
		}
	}
	if *sock == "" {
		cfg, code := loadConfig(*path, stderr)
		if cfg == nil {
			return code
		}
		*sock = socketPath(cfg)
	}
	ans, err := callControl(*sock, req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return exitFail
	}
	if !ans.OK {
		fmt.Fprintf(stderr, "%s refused: %s\n", cmd, ans.Error)
		return exitFail
	}
	if ans.Status != nil {
		b, _ := json.MarshalIndent(ans.Status, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintln(stdout, ans.Message)
	return exitOK
}

func callControl(sock string, req controlRequest) (controlAnswer, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return controlAnswer{}, fmt.Errorf("cannot reach the collector at %s (is it running, and may this user open the socket?): %w", sock, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return controlAnswer{}, err
	}
	var ans controlAnswer
	if err := json.NewDecoder(conn).Decode(&ans); err != nil {
		return controlAnswer{}, fmt.Errorf("bad answer: %w", err)
	}
	return ans, nil
}

// statusDoc is the collector's status, for the CLI and the HTTP listener.
type statusDoc struct {
	Enterprise string                 `json:"enterprise"`
	Gateway    string                 `json:"gateway"`
	UptimeS    int64                  `json:"uptime_s"`
	Buffer     map[string]any         `json:"buffer"`
	Uplinks    map[string]any         `json:"uplinks"`
	Interlocks []edge.InterlockStatus `json:"interlocks"`
	Points     []pointDoc             `json:"points"`
	AuditHead  string                 `json:"audit_head"`
}

type pointDoc struct {
	Point   string `json:"point"`
	Value   any    `json:"value"`
	Quality string `json:"quality"`
	Alarm   string `json:"alarm,omitempty"`
	Fault   string `json:"fault,omitempty"`
	Updated string `json:"updated,omitempty"`
	// Maintenance is set while the point is out of service.
	Maintenance *edge.MaintenanceStatus `json:"maintenance,omitempty"`
}

func (c *collector) status() statusDoc {
	st := c.store.Stats()
	pts, ils := c.engine.Snapshot()
	d := statusDoc{Enterprise: c.cfg.Gateway.Enterprise, Gateway: c.cfg.Gateway.Code, UptimeS: int64(time.Since(c.start).Seconds()),
		Interlocks: ils, Uplinks: map[string]any{}}
	d.Buffer = map[string]any{"durable": st.Durable, "degraded": st.Degraded, "messages": st.Messages, "bytes": st.Bytes,
		"last_seq": st.LastSeq, "dropped": st.Dropped, "dropped_ranges": st.DroppedRanges, "memory_queued": st.MemoryQueued,
		"oldest": c.enc.TimePtr(st.Oldest), "queue": c.queue.Len()}
	for name, u := range st.Uplinks {
		m := map[string]any{"backlog": u.Depth, "oldest_unacked": c.enc.TimePtr(u.OldestUnacked)}
		if name == "mqtt" && c.mqtt != nil {
			s := c.mqtt.Stats()
			m["connected"], m["published"], m["resent"], m["acked"], m["last_error"] = s.Connected, s.Published, s.Resent, s.Acked, s.LastError
		}
		if name == "hj212" && c.hj212 != nil {
			s := c.hj212.Stats()
			m["connected"], m["sent"], m["resent"], m["acked"], m["timeouts"], m["last_error"] = s.Connected, s.Sent, s.Resent, s.Acked, s.Timeouts, s.LastError
		}
		d.Uplinks[name] = m
	}
	for _, p := range pts {
		pd := pointDoc{Point: p.Code, Quality: p.Quality.String(), Alarm: p.Alarm.String(), Fault: p.Fault, Maintenance: p.Maintenance}
		if p.Updated.IsZero() {
			pd.Quality = "not polled"
		} else {
			pd.Updated = p.Updated.In(c.loc).Format(time.RFC3339)
		}
		switch p.Value.Kind {
		case edge.Number:
			pd.Value = p.Value.Num
		case edge.Bool:
			pd.Value = p.Value.Bool
		case edge.String:
			pd.Value = p.Value.Str
		}
		d.Points = append(d.Points, pd)
	}
	if c.audit != nil {
		_, d.AuditHead = c.audit.Head()
	}
	return d
}

// cmdAudit: audit verify -c FILE [--head "N HASH"].
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: edgecollector audit verify -c FILE [--head \"N HASH\"]")
		return exitInvalid
	}
	fs := flags("audit verify", stderr)
	path := fs.String("c", "", "config file")
	head := fs.String("head", "", "a head published in a status heartbeat (default: the kept head file)")
	if err := fs.Parse(args[1:]); err != nil {
		return exitInvalid
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	key, err := audit.ReadKey(cfg.Resolve(cfg.Audit.KeyFile))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	r, err := audit.Verify(cfg.AuditFile(), key, *head)
	if err != nil {
		fmt.Fprintf(stderr, "audit log %s: NOT intact: %v\n", cfg.AuditFile(), err)
		return exitFail
	}
	fmt.Fprintf(stdout, "audit log %s: intact, %d entries, head %s\n", cfg.AuditFile(), r.Entries, r.Head)
	return exitOK
}

var _ = errors.New
