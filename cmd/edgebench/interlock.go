package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	smodbus "github.com/simonvetter/modbus"
)

// trigger is the in-process slave of the latency bench: unit 1 holds 100
// registers (register 0 is the watched point), unit 2 holds the valve coil.
// It timestamps the register change and each coil write itself.
type trigger struct {
	mu     sync.Mutex
	reg0   uint16
	coil   bool
	writes chan coilWrite
}

type coilWrite struct {
	value bool
	at    time.Time
}

func (s *trigger) set(v uint16) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reg0 = v
	return time.Now()
}

func (s *trigger) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	if req.UnitId != 2 || req.Addr != 0 || req.Quantity != 1 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	if req.IsWrite {
		at := time.Now()
		s.mu.Lock()
		s.coil = req.Args[0]
		s.mu.Unlock()
		select {
		case s.writes <- coilWrite{req.Args[0], at}:
		default:
		}
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return []bool{s.coil}, nil
}

func (s *trigger) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (s *trigger) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}

func (s *trigger) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	if req.UnitId != 1 || int(req.Addr)+int(req.Quantity) > 100 {
		return nil, smodbus.ErrIllegalDataAddress
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint16, req.Quantity)
	for i := range out {
		out[i] = 10
		if int(req.Addr)+i == 0 {
			out[i] = s.reg0
		}
	}
	return out, nil
}

func interlockBench(args []string) int {
	fs := flag.NewFlagSet("interlock", flag.ExitOnError)
	collector := fs.String("collector", "", "path of the edgecollector binary (required)")
	trips := fs.Int("trips", 200, "trips to measure while the backlog drains")
	backlog := fs.Int("backlog", 1000000, "readings in the backlog draining to Mosquitto meanwhile")
	interval := fs.Duration("interval", 100*time.Millisecond, "poll interval")
	drainRate := fs.Float64("backlog-rate", 0, "backlog messages/s (default: spread the backlog over about 300 ms per trip, so it drains during the whole measurement)")
	fs.Parse(args)
	if *collector == "" {
		fmt.Fprintln(os.Stderr, "usage: edgebench interlock -collector PATH [-trips 200] [-backlog 1000000]")
		return 2
	}
	dir, _ := os.MkdirTemp("", "edgebench-interlock-")
	defer os.RemoveAll(dir)
	url, broker, err := startBroker(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer broker.stop()
	data := filepath.Join(dir, "data")
	msgs, err := prefill(data, *backlog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prefill:", err)
		return 1
	}
	if *drainRate == 0 {
		*drainRate = float64(msgs) / (float64(*trips) * 0.3)
	}
	sl := &trigger{reg0: 10, coil: true, writes: make(chan coilWrite, 16)}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 8, Timeout: time.Hour}, sl)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "slave:", err)
		return 1
	}
	defer srv.Stop()

	var cfg strings.Builder
	fmt.Fprintf(&cfg, `gateway: {enterprise: BENCH, code: ILK}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices:
  - {name: sensors, bus: plc, unit: 1, timeout: 1s}
  - {name: valve, bus: plc, unit: 2, timeout: 1s}
buffer: {dir: %q}
uplink: {mqtt: {url: %q, backlog_rate: %g}}
log: {level: warn}
interlocks:
  - name: ILK-1
    when: {inputs: [{point: P000, level: HH}]}
    latch: false
    actions: [{device: valve, table: coil, address: 0, value: 0}]
    on_reset: [{device: valve, table: coil, address: 0, value: 1}]
points:
  - {code: P000, kind: level, device: sensors, interval: %s, unit: m, source: {table: holding, address: 0}, alarms: {HH: 50, hysteresis: 1}}
`, addr, data, url, *drainRate, *interval)
	for i := 1; i < 100; i++ {
		fmt.Fprintf(&cfg, "  - {code: P%03d, kind: other, device: sensors, interval: %s, source: {table: holding, address: %d}}\n", i, *interval, i)
	}
	path := filepath.Join(dir, "c.yaml")
	os.WriteFile(path, []byte(cfg.String()), 0o644)
	k, err := newCounter(url, "safety/BENCH/ILK/rt", "edgebench-interlock")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer k.close()
	c, err := start(*collector, "run", "-c", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.stop()
	time.Sleep(time.Second)

	waitCoil := func(v bool, within time.Duration) (time.Time, error) {
		deadline := time.After(within)
		for {
			select {
			case w := <-sl.writes:
				if w.value == v {
					return w.at, nil
				}
			case <-deadline:
				return time.Time{}, fmt.Errorf("no coil write of %v within %s; collector output:\n%s", v, within, strings.Join(c.lines, "\n"))
			}
		}
	}
	var during, after []time.Duration
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	total := int64(*backlog)
	for len(during) < *trips {
		time.Sleep(time.Duration(rng.IntN(int(*interval/time.Millisecond)+50)) * time.Millisecond)
		t0 := sl.set(90)
		t1, err := waitCoil(false, 10*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if k.readings.Load() < total {
			during = append(during, t1.Sub(t0))
		} else {
			after = append(after, t1.Sub(t0))
			if len(after) > 5*(*trips) {
				fmt.Fprintf(os.Stderr, "the backlog finished draining after %d trips; raise -backlog\n", len(during))
				break
			}
		}
		sl.set(10)
		if _, err := waitCoil(true, 10*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	pct := func(v []time.Duration, p float64) time.Duration {
		if len(v) == 0 {
			return 0
		}
		s := append([]time.Duration(nil), v...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(float64(len(s))*p))]
	}
	fmt.Printf("%d trips while a %d-reading backlog (%d messages, drained at %.0f messages/s) went to Mosquitto (%d readings delivered by the last), poll every %s, 100 points:\n",
		len(during), *backlog, msgs, *drainRate, k.readings.Load(), *interval)
	fmt.Printf("  register change -> coil write, timed in the slave: p50 %s, p99 %s, max %s\n",
		pct(during, 0.50).Round(100*time.Microsecond), pct(during, 0.99).Round(100*time.Microsecond), pct(during, 1).Round(100*time.Microsecond))
	if len(after) > 0 {
		fmt.Printf("  %d trips after the drain: p50 %s, p99 %s\n", len(after), pct(after, 0.5).Round(100*time.Microsecond), pct(after, 0.99).Round(100*time.Microsecond))
	}
	fmt.Printf("target (issue 4): p99 <= poll interval + 30 ms = %s\n", *interval+30*time.Millisecond)
	return 0
}
