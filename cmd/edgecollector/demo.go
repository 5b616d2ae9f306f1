package main

import (
	"context"
	"encoding/json"
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

// cmdDemo runs the embedded default: the simulated tank farm as Modbus TCP
// slaves, an in-process MQTT broker, and the collector between them.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flags("demo", stderr)
	plc := fs.String("plc", "127.0.0.1:15020", "address of the simulated tank PLC (Modbus TCP: units 1, 2, 10)")
	gas := fs.String("gas", "127.0.0.1:15021", "address of the simulated gas controller (Modbus TCP: units 1, 2, 3)")
	broker := fs.String("mqtt", "127.0.0.1:11883", "address of the in-process MQTT broker")
	status := fs.String("status", "127.0.0.1:15080", "loopback address of the local status page (/, /status, /metrics); empty: off")
	data := fs.String("data", "", "data dir (default: a temporary one, removed at exit)")
	dur := fs.Duration("for", 0, "stop after this long (default: until Ctrl-C)")
	quiet := fs.Bool("quiet", false, "print events and status only, not every reading")
	level := fs.String("log", "warn", "log level: debug, info, warn, error")
	mbs := fs.String("modbus-server", "127.0.0.1:15022", "address of the control room's read-only Modbus TCP server (\"\" turns it off; map: edgecollector modbus-map)")
	if err := fs.Parse(args); err != nil {
		return exitInvalid
	}
	if *data == "" {
		d, err := os.MkdirTemp("", "edgecollector-demo-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		defer os.RemoveAll(d)
		*data = d
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	farm := sim.New(sim.Opts{PLCAddr: *plc, GasAddr: *gas})
	if err := farm.Start(); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return exitFail
	}
	defer farm.Stop()

	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	srv.AddHook(new(auth.AllowHook), nil)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: *broker})); err != nil {
		fmt.Fprintln(stderr, "demo: broker:", err)
		return exitFail
	}
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(stderr, "demo: broker:", err)
		return exitFail
	}
	defer srv.Close()
	p := &printer{w: stdout, quiet: *quiet}
	srv.Subscribe("safety/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		p.print(pk.TopicName, pk.Payload)
	})

	r := strings.NewReplacer("${PLC_ADDR}", *plc, "${GAS_ADDR}", *gas, "${MQTT_URL}", "tcp://"+*broker, "${DATA_DIR}", *data)
	cfg, err := config.Parse("demo.yaml", []byte(r.Replace(string(config.Demo))))
	if err != nil {
		fmt.Fprintln(stderr, "demo: the embedded config does not validate (a bug):", err)
		return exitFail
	}
	if *mbs != "" {
		unit := config.DefaultModbusUnit
		cfg.ModbusServer = &config.ModbusServer{Listen: *mbs, Unit: &unit}
	}
	if *status != "" && !config.StatusLoopback(*status) {
		fmt.Fprintf(stderr, "demo: --status %s: the demo serves its page on loopback only (it has no authentication)\n", *status)
		return exitInvalid
	}
	if *status != "" {
		// The page is a convenience: a busy port leaves the demo without it.
		if l, err := net.Listen("tcp", *status); err != nil {
			fmt.Fprintf(stderr, "demo: no status page: %v (pick another with --status ADDR)\n", err)
			*status = ""
		} else {
			l.Close()
		}
	}
	cfg.Status.Listen = *status
	var lv slog.Level
	lv.UnmarshalText([]byte(*level))
	// Log lines are the collector's own, not messages the platform
	// received: each is marked "log:" so the platform view stays readable.
	log := slog.New(slog.NewTextHandler(&prefixWriter{w: stderr, prefix: []byte("log: ")}, &slog.HandlerOptions{Level: lv}))
	fmt.Fprintf(stdout, "edgecollector demo: %s; broker mqtt://%s; data in %s\n", farm, *broker, *data)
	if *status != "" {
		fmt.Fprintf(stdout, "status page: http://%s/  (JSON at /status, metrics at /metrics)\n", *status)
	}
	fmt.Fprintf(stdout, "a gas leak starts at T-101 in %s: watch the alarm, the interlock ESD-101 and valve XV-101. Ctrl-C stops.\n", sim.LeakAt)
	fmt.Fprintf(stdout, "try: mbpoll -m tcp -p %s -a 1 -t 3 -r 0 -c 1 -0 -1 %s   (GT-101 raw counts, 4000 + 160 x %%LEL)\n", portOf(*gas), hostOf(*gas))
	if *mbs != "" {
		fmt.Fprintf(stdout, "control room: mbpoll -m tcp -p %s -a 1 -t 4:float -B -r 100 -c 1 -0 -1 %s   (LT-101 level, m; map: point i at 100+10i)\n", portOf(*mbs), hostOf(*mbs))
	}
	fmt.Fprintf(stdout, "after the leak: edgecollector reset --socket %s ESD-101   (resets the latch; the valve stays closed)\n", collector.SocketPath(cfg))
	fmt.Fprintln(stdout, "every line below is a message the platform received; lines marked \"log:\" are the collector's own log (stderr)")
	if err := serve(ctx, cfg, collector.Deps{Logger: log}); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return exitFail
	}
	return exitOK
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
