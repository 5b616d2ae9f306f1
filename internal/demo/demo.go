// Package demo runs the embedded default: the simulated tank farm as Modbus
// TCP slaves (drivers/sim), an in-process MQTT broker, and the collector
// between them, printing every message the platform receives. It is for a
// first look and for tests; it must never be the default of a real
// deployment (the container and the unit run `run -c FILE`).
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/sim"
	"github.com/hazwatch/edgecollector/internal/collector"
)

// Opts are the demo's addresses and switches (the flags of `edgecollector
// demo`).
type Opts struct {
	PLC, Gas, Broker, Status, Data, ModbusServer string
	For                                          time.Duration
	Quiet                                        bool
	Level                                        string
}

// ErrUsage is a bad option.
var ErrUsage = errors.New("usage")

// Serve runs a config the way the binary does (SIGHUP reloads, the control
// socket); the caller passes its own.
type Serve func(ctx context.Context, cfg *config.Config, d collector.Deps) error

// Run runs the demo until ctx ends (or o.For passes).
func Run(ctx context.Context, o Opts, stdout, stderr io.Writer, serve Serve) error {
	if o.Data == "" {
		d, err := os.MkdirTemp("", "edgecollector-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.Data = d
	}
	if o.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.For)
		defer cancel()
	}
	farm := sim.New(sim.Opts{PLCAddr: o.PLC, GasAddr: o.Gas})
	if err := farm.Start(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer farm.Stop()

	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	srv.AddHook(new(auth.AllowHook), nil)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: o.Broker})); err != nil {
		return fmt.Errorf("demo: broker: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("demo: broker: %w", err)
	}
	defer srv.Close()
	p := &printer{w: stdout, quiet: o.Quiet}
	srv.Subscribe("safety/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		p.print(pk.TopicName, pk.Payload)
	})

	r := strings.NewReplacer("${PLC_ADDR}", o.PLC, "${GAS_ADDR}", o.Gas, "${MQTT_URL}", "tcp://"+o.Broker, "${DATA_DIR}", o.Data)
	cfg, err := config.Parse("demo.yaml", []byte(r.Replace(string(config.Demo))))
	if err != nil {
		return fmt.Errorf("demo: the embedded config does not validate (a bug): %w", err)
	}
	if o.ModbusServer != "" {
		unit := config.DefaultModbusUnit
		cfg.ModbusServer = &config.ModbusServer{Listen: o.ModbusServer, Unit: &unit}
	}
	if o.Status != "" && !config.StatusLoopback(o.Status) {
		return fmt.Errorf("%w: --status %s: the demo serves its page on loopback only (it has no authentication)", ErrUsage, o.Status)
	}
	if o.Status != "" {
		// The page is a convenience: a busy port leaves the demo without it.
		if l, err := net.Listen("tcp", o.Status); err != nil {
			fmt.Fprintf(stderr, "demo: no status page: %v (pick another with --status ADDR)\n", err)
			o.Status = ""
		} else {
			l.Close()
		}
	}
	cfg.Status.Listen = o.Status
	var lv slog.Level
	lv.UnmarshalText([]byte(o.Level))
	// Log lines are the collector's own, not messages the platform
	// received: each is marked "log:" so the platform view stays readable.
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: stderr, prefix: []byte("log: ")}, &slog.HandlerOptions{Level: lv}))
	fmt.Fprintf(stdout, "edgecollector demo: %s; broker mqtt://%s; data in %s\n", farm, o.Broker, o.Data)
	if o.Status != "" {
		fmt.Fprintf(stdout, "status page: http://%s/  (JSON at /status, metrics at /metrics)\n", o.Status)
	}
	fmt.Fprintf(stdout, "a gas leak starts at T-101 in %s: watch the alarm, the interlock ESD-101 and valve XV-101. Ctrl-C stops.\n", sim.LeakAt)
	fmt.Fprintf(stdout, "try: mbpoll -m tcp -p %s -a 1 -t 3 -r 0 -c 1 -0 -1 %s   (GT-101 raw counts, 4000 + 160 x %%LEL)\n", portOf(o.Gas), hostOf(o.Gas))
	if o.ModbusServer != "" {
		fmt.Fprintf(stdout, "control room: mbpoll -m tcp -p %s -a 1 -t 4:float -B -r 100 -c 1 -0 -1 %s   (LT-101 level, m; map: point i at 100+10i)\n", portOf(o.ModbusServer), hostOf(o.ModbusServer))
	}
	fmt.Fprintf(stdout, "after the leak: edgecollector reset --socket %s ESD-101   (resets the latch; the valve stays closed)\n", collector.SocketPath(cfg))
	fmt.Fprintln(stdout, "every line below is a message the platform received; lines marked \"log:\" are the collector's own log (stderr)")
	if err := serve(ctx, cfg, collector.Deps{Logger: log}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}

// prefixWriter marks each write (one slog record) with prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.w.Write(append(append([]byte(nil), p.prefix...), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func hostOf(a string) string { return a[:strings.LastIndexByte(a, ':')] }
func portOf(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }

// printer shows what the platform receives, one readable line a message.
type printer struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
}

type wire struct {
	Seq      uint64 `json:"seq"`
	Resend   bool   `json:"resend"`
	SentAt   string `json:"sent_at"`
	State    string `json:"state"`
	Readings []struct {
		Point   string  `json:"point"`
		Value   any     `json:"value"`
		Unit    string  `json:"unit"`
		Quality string  `json:"quality"`
		Alarm   *string `json:"alarm"`
	} `json:"readings"`
	Events []struct {
		Type      string `json:"type"`
		State     string `json:"state"`
		Point     string `json:"point"`
		Interlock string `json:"interlock"`
		Subject   string `json:"subject"`
		Level     string `json:"level"`
		Value     any    `json:"value"`
		Threshold any    `json:"threshold"`
		Unit      string `json:"unit"`
		Message   string `json:"message"`
	} `json:"events"`
	Heartbeat *struct {
		Backlog uint64   `json:"backlog"`
		LastSeq uint64   `json:"last_seq"`
		Dropped uint64   `json:"dropped"`
		Tripped []string `json:"tripped"`
	} `json:"heartbeat"`
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

func (p *printer) print(topic string, payload []byte) {
	var m wire
	if json.Unmarshal(payload, &m) != nil {
		return
	}
	leaf := topic[strings.LastIndexByte(topic, '/')+1:]
	now := time.Now().Format("15:04:05")
	p.mu.Lock()
	defer p.mu.Unlock()
	resend := ""
	if m.Resend {
		resend = " (resent)"
	}
	switch leaf {
	case "rt":
		if p.quiet {
			return
		}
		var parts []string
		for _, r := range m.Readings {
			s := r.Point + " " + fmtValue(r.Value) + " " + r.Unit
			if r.Quality != "good" {
				s += " [" + r.Quality + "]"
			}
			if r.Alarm != nil {
				s += " " + *r.Alarm + "!"
			}
			parts = append(parts, strings.TrimSpace(s))
		}
		fmt.Fprintf(p.w, "%s  rt     seq=%-5d %s%s\n", now, m.Seq, strings.Join(parts, " | "), resend)
	case "event":
		for _, e := range m.Events {
			who := e.Point + e.Interlock + e.Subject
			s := fmt.Sprintf("%s %s %s", e.Type, e.State, who)
			if e.Level != "" {
				s += " " + e.Level
			}
			if e.Value != nil {
				s += " value " + fmtValue(e.Value) + " " + e.Unit
			}
			if e.Threshold != nil {
				s += " (threshold " + fmtValue(e.Threshold) + ")"
			}
			if e.Message != "" {
				s += ": " + e.Message
			}
			fmt.Fprintf(p.w, "%s  EVENT  seq=%-5d %s%s\n", now, m.Seq, s, resend)
		}
	case "status":
		if m.Heartbeat != nil {
			fmt.Fprintf(p.w, "%s  status %s: last seq %d, backlog %d, dropped %d, tripped %v\n", now, m.State, m.Heartbeat.LastSeq, m.Heartbeat.Backlog, m.Heartbeat.Dropped, m.Heartbeat.Tripped)
		} else {
			fmt.Fprintf(p.w, "%s  status %s\n", now, m.State)
		}
	case "meta":
		fmt.Fprintf(p.w, "%s  meta   point catalogue published (retained)\n", now)
	}
}
