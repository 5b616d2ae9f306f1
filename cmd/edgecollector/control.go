package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge/audit"
	"github.com/hazwatch/edgecollector/internal/collector"
)

// cmdControl is the CLI side of the control socket: reset, ack, bypass,
// maintenance, status, reload. Flags may come before or after the names.
func cmdControl(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flags(cmd, stderr)
	path := fs.String("c", "", "config file of the running collector")
	sock := fs.String("socket", "", "control socket (default <buffer.dir>/control.sock)")
	reason := fs.String("reason", "", "maintenance: why the point goes out of service")
	dur := fs.String("for", "", "maintenance: how long, at most 8h (e.g. 4h)")
	force := fs.Bool("force", false, "maintenance: even though the point votes in an interlock that is not bypassed")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitInvalid
	}
	req := collector.Request{Cmd: cmd}
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
		*sock = collector.SocketPath(cfg)
	}
	ans, err := collector.Call(*sock, req)
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

// cmdAudit: audit verify -c FILE [--head "N HASH"].
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: edgecollector audit verify -c FILE [--head \"N HASH\"]")
		return exitInvalid
	}
	fs := flags("audit verify", stderr)
	path := fs.String("c", "", "config file")
	head := fs.String("head", "", "a head published in a status heartbeat: it must be in the chain (default: the chain must end at the kept head file)")
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
	files := fmt.Sprintf("%d files", r.Files)
	if r.Files == 1 {
		files = "1 file"
	}
	fmt.Fprintf(stdout, "audit log %s: intact, %d entries (%d-%d) in %s, head %s\n", cfg.AuditFile(), r.Entries, r.First, r.Last, files, r.Head)
	if r.Note != "" {
		fmt.Fprintf(stdout, "note: %s\n", r.Note)
	}
	return exitOK
}

// cmdRead is the commissioning probe (collector.Probe): read a device's
// configured points or raw registers through the collector's own config,
// drivers and conversion.
func cmdRead(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flags("read", stderr)
	path := fs.String("c", "", "config file")
	var o collector.ProbeOpts
	fs.StringVar(&o.Device, "device", "", "device name from the config")
	point := fs.String("point", "", "comma-separated point codes (default: all points of the device)")
	fs.StringVar(&o.Table, "table", "", "raw read: coil, discrete, holding or input")
	fs.IntVar(&o.Address, "address", 0, "raw read: 0-based start address")
	fs.IntVar(&o.Count, "count", 1, "raw read: how many registers or bits")
	fs.StringVar(&o.Type, "type", "uint16", "raw read: decode as this data type")
	fs.StringVar(&o.Order, "order", "", "raw read: word order (default: the device's)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	if *point != "" {
		o.Points = strings.Split(*point, ",")
	}
	switch err := collector.Probe(ctx, cfg, o, stdout); {
	case err == nil:
		return exitOK
	case errors.Is(err, collector.ErrUsage):
		fmt.Fprintln(stderr, "read:", err)
		return exitInvalid
	case errors.Is(err, collector.ErrReadFailed):
		return exitFail
	default:
		fmt.Fprintln(stderr, "read:", err)
		return exitFail
	}
}

// cmdConfig is `edgecollector config history|diff|rollback`.
func cmdConfig(args []string, stdout, stderr io.Writer) int {
	usage := "usage: edgecollector config history -c FILE | config diff -c FILE A B | config rollback -c FILE N"
	fs := flags("config", stderr)
	path := fs.String("c", "", "config file of the collector")
	sock := fs.String("socket", "", "control socket (default <buffer.dir>/control.sock)")
	data := fs.String("data", "", "the collector's data dir (buffer.dir), when the config file itself does not load")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitInvalid
	}
	need := map[string]int{"history": 1, "diff": 3, "rollback": 2}
	sub := ""
	if len(pos) > 0 {
		sub, pos = pos[0], pos[1:]
	}
	if n, ok := need[sub]; !ok || len(pos) != n-1 {
		fmt.Fprintln(stderr, usage)
		return exitInvalid
	}
	var cfg *config.Config
	if *data != "" && *path != "" {
		// Rolling back from a broken file is what rollback is for: the
		// data dir says where the versions and the socket are.
		abs, _ := filepath.Abs(*path)
		cfg = &config.Config{File: abs, Buffer: config.Buffer{Dir: *data}}
	} else {
		var code int
		if cfg, code = loadConfig(*path, stderr); cfg == nil {
			fmt.Fprintln(stderr, "(when the config file does not load, give the data dir: --data /var/lib/edgecollector)")
			return code
		}
	}
	if *sock == "" {
		*sock = collector.SocketPath(cfg)
	}
	err = collector.ConfigCommand(cfg, sub, pos, *sock, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "config %s: %v\n", sub, err)
		return exitFail
	}
	return exitOK
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}
