// Command edgecollector is the edge collector for work-safety monitoring: it
// polls instruments over Modbus and I2C, raises alarms and trips local
// interlocks, keeps every reading and event in a durable buffer, and sends
// them to the authorities' platform over MQTT or HJ 212.
//
//	edgecollector demo                  the embedded default: a simulated tank farm
//	edgecollector validate -c FILE      check a config, every problem at once (exit 2)
//	edgecollector run -c FILE           run the collector
//	edgecollector read -c FILE ...      read points or registers, for commissioning
//	edgecollector reset|ack|bypass|status|reload -c FILE ...   talk to the running collector
//	edgecollector audit verify -c FILE  check the audit log's hash chain
//
// Go code runs on one thread unless the GOMAXPROCS environment variable
// says otherwise (procs.go). A GOMAXPROCS the operator sets is taken once at
// start, not updated from the cgroup's CPU quota: that update re-reads the
// cgroup's files from sysmon every second, about 1 % of a quiet collector's
// CPU, for a quota that a gateway never changes while it runs.
//
//go:debug updatemaxprocs=0
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/config/pointtable"
	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/uplink/modbusserver"
)

// Exit codes.
const (
	exitOK      = 0
	exitFail    = 1
	exitInvalid = 2 // bad config or bad usage
)

func main() {
	setProcs(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, deps{})
	stop()
	os.Exit(code)
}

// deps are what tests inject in place of the machine's hardware.
type deps struct {
	// openI2C opens an I2C bus by name (default: periph.io's host drivers).
	openI2C edgei2c.Opener
}

const usage = `usage: edgecollector COMMAND [flags]

commands:
  demo                    run on the embedded default: simulated tank farm, in-process broker
  validate -c FILE        check a config and report every problem (exit 2 if any)
  run -c FILE             run the collector (SIGINT/SIGTERM stop it, SIGHUP reloads)
  read -c FILE ...        read a device's points or raw registers (commissioning probe)
  reset -c FILE NAME      reset a tripped interlock's latch
  ack -c FILE POINT       acknowledge a point's alarms
  bypass -c FILE NAME DUR bypass an interlock for DUR (at most 8h)
  maintenance -c FILE POINT on --reason TEXT --for DUR [--force] | POINT off
                          take a point out of service (quality maintenance, alarms held) or back
  status -c FILE          print the running collector's status
  reload -c FILE          reload the config (a bad one is rejected, the running one stays)
  audit verify -c FILE    verify the audit log's hash chain
  config history -c FILE  the configurations the collector accepted (sha256, time, who)
  config diff -c FILE A B what changed between versions (numbers, last or file)
  config rollback -c FILE N
                          put version N back (validated, reloaded under the same rules)
  modbus-map -c FILE      print the control room's Modbus register map (modbus_server)
  points import FILE      read a point table (.xlsx/.csv) into points: YAML (-c FILE checks it)
  points export -c FILE -o OUT.xlsx   write the point table and the platform's sensor table
  version                 print the version
  help                    print this list
  buffer-probe DBDIR      (internal) open and verify a buffer database (run in a child process by run)
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer, d deps) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitInvalid
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "validate":
		return cmdValidate(rest, stdout, stderr, d)
	case "run":
		return cmdRun(ctx, rest, stderr, d)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "read":
		return cmdRead(ctx, rest, stdout, stderr)
	case "reset", "ack", "bypass", "maintenance", "status", "reload":
		return cmdControl(cmd, rest, stdout, stderr)
	case "audit":
		return cmdAudit(rest, stdout, stderr)
	case "config":
		return cmdConfig(rest, stdout, stderr)
	case "modbus-map":
		return modbusserver.Command(rest, stdout, stderr)
	case "points":
		return pointtable.Command(rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return exitOK
	case "buffer-probe":
		return buffer.ProbeMain(rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
	return exitInvalid
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v += " " + s.Value
			}
		}
		return "edgecollector " + v + " " + bi.GoVersion
	}
	return "edgecollector"
}

func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// loadConfig loads and validates a config, printing every problem.
func loadConfig(path string, stderr io.Writer) (*config.Config, int) {
	if path == "" {
		fmt.Fprintln(stderr, "missing -c FILE: the config to use (see the sample in the README)")
		return nil, exitInvalid
	}
	cfg, err := config.Load(path)
	if err != nil {
		if ps, ok := config.AsProblems(err); ok {
			fmt.Fprintln(stderr, ps.Error())
			fmt.Fprintf(stderr, "%s: %d problem(s); nothing was started\n", path, len(ps))
			return nil, exitInvalid
		}
		fmt.Fprintln(stderr, err)
		return nil, exitInvalid
	}
	return cfg, exitOK
}

func cmdValidate(args []string, stdout, stderr io.Writer, d deps) int {
	fs := flags("validate", stderr)
	path := fs.String("c", "", "config file")
	hw := fs.Bool("hardware", false, "also open the serial ports and I2C buses the config names")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	if *hw {
		if err := collector.CheckHardware(cfg, d.openI2C); err != nil {
			fmt.Fprintf(stderr, "%s: hardware: %v\n", *path, err)
			return exitFail
		}
	}
	// Warnings go to stderr like problems, each marked "warning:"; the
	// config is valid, so the exit status stays 0.
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w.Error())
	}
	warned := ""
	if n := len(cfg.Warnings); n > 0 {
		warned = fmt.Sprintf(", %d warning(s)", n)
	}
	fmt.Fprintf(stdout, "%s: ok: %d buses, %d devices, %d points, %d interlocks%s\n", *path, len(cfg.Buses), len(cfg.Devices), len(cfg.Points), len(cfg.Interlocks), warned)
	return exitOK
}

// logWarnings logs each warning of a config being started, once.
func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("config: "+w.Msg, "file", w.File, "line", w.Line, "path", w.Path)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.Log.Level))
	ho := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func cmdRun(ctx context.Context, args []string, stderr io.Writer, d deps) int {
	fs := flags("run", stderr)
	path := fs.String("c", "", "config file")
	prof := fs.String("cpuprofile", "", "write a CPU profile to this file (diagnostics)")
	memprof := fs.String("memprofile", "", "write a heap profile to this file at exit (diagnostics)")
	printAppended := fs.Bool("print-appended", false, "print \"appended SEQ\" on stdout once each message is durably appended (tests)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	resumeGC := pauseGC()
	cfg, code := loadConfig(*path, stderr)
	if cfg == nil {
		return code
	}
	log := newLogger(cfg, stderr)
	if err := collector.CheckHardware(cfg, d.openI2C); err != nil {
		log.Error("hardware named in the config is not usable; fix it or the config", "err", err)
		return exitFail
	}
	if *memprof != "" {
		defer func() {
			if f, err := os.Create(*memprof); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		}()
	}
	cd := collector.Deps{OpenI2C: d.openI2C, Logger: log, BufferProbe: buffer.SelfProbe("buffer-probe")}
	if *printAppended {
		var mu sync.Mutex
		out := bufio.NewWriterSize(os.Stdout, 1<<16)
		cd.OnAppendBatch = func(ms []*edge.Message, err error) {
			if err != nil {
				return // not durable: never reported as appended
			}
			mu.Lock()
			for _, m := range ms {
				fmt.Fprintf(out, "appended %d\n", m.Seq)
			}
			out.Flush()
			mu.Unlock()
		}
	}
	resumeGC()
	if err := serve(ctx, cfg, cd); err != nil {
		log.Error("collector failed", "err", err)
		return exitFail
	}
	return exitOK
}

// serve runs a validated config until ctx ends. SIGHUP and the control
// socket's reload load the file again (collector.Reload): a bad config, or
// one that would change a tripped or bypassed interlock, is rejected and
// the running one stays; a good one replaces it, keeping the state of
// unchanged points and interlocks.
func serve(ctx context.Context, cfg *config.Config, d collector.Deps) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := d.Logger
	for {
		logWarnings(log, cfg)
		c, err := collector.New(ctx, cfg, d)
		if err != nil {
			return err
		}
		var services []collector.Service
		sock := collector.SocketPath(cfg)
		l, err := listenControl(sock)
		switch {
		case err == nil:
			services = append(services, controlService(c, l))
		case runtime.GOOS == "linux":
			c.Close()
			return err
		default:
			log.Warn("running without a control socket", "err", err)
		}
		// Under systemd (Type=notify, WatchdogSec=): READY=1, then the
		// watchdog is fed only while every poll group ticks.
		if sock, period := collector.WatchdogFromEnv(os.Getenv); sock != "" {
			services = append(services, c.WatchdogService(collector.SdNotify(sock), period))
		}
		rctx, stop := context.WithCancel(ctx)
		go func() {
			for {
				select {
				case <-hup:
					if err := c.Reload(); err != nil {
						log.Error("reload rejected; the running config stays", "err", firstLine(err.Error()))
					}
				case <-rctx.Done():
					return
				}
			}
		}()
		err = c.Run(rctx, services...)
		stop()
		if l != nil {
			l.Close() // already closed unless Run failed before serving it
			os.Remove(sock)
		}
		n := c.Next()
		if err != nil || ctx.Err() != nil || n == nil {
			return err
		}
		log.Info("config reloaded", "file", n.File)
		cfg, d.Prev = n, c
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
