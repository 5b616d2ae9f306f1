// Command loadbench runs the collector under the reference load of issue 3
// and prints what it cost, so it can be compared side by side with another
// collector: 4 unit ids x 250 uint16 holding registers every 100 ms
// (10,000 points/s) from a Modbus TCP slave in its own process, with the
// durable buffer on and every reading published to a local Mosquitto.
// Only the collector process's CPU (utime+stime from /proc) and peak RSS
// (VmHWM) are counted.
//
//	go build -o /tmp/edgecollector ./cmd/edgecollector
//	go run ./cmd/loadbench -collector /tmp/edgecollector -seconds 60 -runs 3
//
// It needs mosquitto on PATH (or -broker URL).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	smodbus "github.com/simonvetter/modbus"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "slave" {
		os.Exit(slave(os.Args[2:]))
	}
	os.Exit(bench())
}

// slave serves units 1..n with registers 0..regs-1 whose values change, and
// prints its request count every 200 ms.
func slave(args []string) int {
	fs := flag.NewFlagSet("slave", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	fs.Parse(args)
	h := &handler{}
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + *addr, MaxClients: 8, Timeout: time.Hour}, h)
	if err == nil {
		err = srv.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "slave:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t := time.NewTicker(200 * time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			srv.Stop()
			fmt.Printf("requests %d\n", h.n.Load())
			return 0
		case <-t.C:
			fmt.Printf("requests %d\n", h.n.Load())
		}
	}
}

type handler struct{ n atomic.Int64 }

func (h *handler) HandleCoils(*smodbus.CoilsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (h *handler) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (h *handler) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (h *handler) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	h.n.Add(1)
	out := make([]uint16, req.Quantity)
	now := uint16(time.Now().UnixMilli() / 100)
	for i := range out {
		out[i] = uint16(req.Addr) + uint16(i) + now
	}
	return out, nil
}

type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
}

func start(name string, args ...string) (*proc, error) {
	p := &proc{cmd: exec.Command(name, args...)}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			if len(p.lines) > 1000 {
				p.lines = p.lines[500:]
			}
			p.mu.Unlock()
		}
	}()
	return p, nil
}

func (p *proc) last(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(p.lines[i], prefix) {
			return p.lines[i]
		}
	}
	return ""
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func freePort() int {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cpuTicks is utime+stime of pid in clock ticks (100/s on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

func statusKB(pid int, key string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key+":") {
			v, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return v
		}
	}
	return 0
}

var profile string

type result struct {
	cpuPct, rssMB, reqPerS, readingsPerS float64
}

func bench() int {
	collector := flag.String("collector", "", "path of the edgecollector binary to measure (required)")
	seconds := flag.Int("seconds", 60, "measured seconds per run (after a 5 s warm-up)")
	runs := flag.Int("runs", 3, "runs; the median is reported")
	units := flag.Int("units", 4, "unit ids")
	regs := flag.Int("registers", 250, "uint16 holding registers per unit")
	interval := flag.Duration("interval", 100*time.Millisecond, "poll interval")
	broker := flag.String("broker", "", "MQTT broker URL (default: start mosquitto on a free port)")
	perPoint := flag.Bool("per-point", false, "one request per point (max_registers: 1), the baseline")
	flag.StringVar(&profile, "cpuprofile", "", "have the collector write a CPU profile here (last run)")
	flag.Parse()
	if *collector == "" {
		fmt.Fprintln(os.Stderr, "usage: loadbench -collector PATH [-seconds 60] [-runs 3]")
		return 2
	}
	dir, _ := os.MkdirTemp("", "loadbench-")
	defer os.RemoveAll(dir)
	if *broker == "" {
		port := freePort()
		conf := filepath.Join(dir, "mosquitto.conf")
		os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)), 0o644)
		m, err := start("mosquitto", "-c", conf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "start mosquitto:", err)
			return 1
		}
		defer m.stop()
		*broker = fmt.Sprintf("tcp://127.0.0.1:%d", port)
		time.Sleep(300 * time.Millisecond)
	}
	fmt.Printf("load: %d units x %d uint16 holding registers every %s (%.0f points/s), durable buffer on, every reading published to %s\n",
		*units, *regs, *interval, float64(*units**regs)/interval.Seconds(), *broker)
	var rs []result
	for run := 1; run <= *runs; run++ {
		r, err := once(*collector, *broker, dir, run, *seconds, *units, *regs, *interval, *perPoint)
		if err != nil {
			fmt.Fprintln(os.Stderr, "run", run, ":", err)
			return 1
		}
		fmt.Printf("run %d: collector CPU %.2f %% of one core, peak RSS %.1f MB, %.1f Modbus requests/s, %.0f readings/s published\n",
			run, r.cpuPct, r.rssMB, r.reqPerS, r.readingsPerS)
		rs = append(rs, r)
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	fmt.Printf("median of %d runs: collector CPU %.2f %% of one core, peak RSS %.1f MB, %.1f requests/s, %.0f readings/s\n",
		len(rs), med(func(r result) float64 { return r.cpuPct }), med(func(r result) float64 { return r.rssMB }),
		med(func(r result) float64 { return r.reqPerS }), med(func(r result) float64 { return r.readingsPerS }))
	fmt.Println("reference (issue 3: Telegraf modbus input, same load, publishing to Mosquitto, no durable buffer): 3.5 % of one core, 34 MB peak RSS")
	return 0
}

func once(collector, broker, dir string, run, seconds, units, regs int, interval time.Duration, perPoint bool) (result, error) {
	self, _ := os.Executable()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	sl, err := start(self, "slave", "-addr", addr)
	if err != nil {
		return result{}, err
	}
	defer sl.stop()
	data := filepath.Join(dir, fmt.Sprintf("data-%d", run))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "gateway: {enterprise: BENCH, code: GW%d}\nbuses: [{name: slave, type: modbus-tcp, address: %q}]\ndevices:\n", run, addr)
	maxRegs := ""
	if perPoint {
		maxRegs = ", max_registers: 1, max_gap: 0"
	}
	for u := 1; u <= units; u++ {
		fmt.Fprintf(&cfg, "  - {name: u%d, bus: slave, unit: %d, timeout: 1s%s}\n", u, u, maxRegs)
	}
	fmt.Fprintf(&cfg, "buffer: {dir: %q}\nuplink: {mqtt: {url: %q}}\nlog: {level: warn}\npoints:\n", data, broker)
	for u := 1; u <= units; u++ {
		for a := 0; a < regs; a++ {
			fmt.Fprintf(&cfg, "  - {code: U%d-R%03d, kind: other, device: u%d, interval: %s, source: {table: holding, address: %d}}\n", u, a, u, interval, a)
		}
	}
	path := filepath.Join(dir, fmt.Sprintf("collector-%d.yaml", run))
	os.WriteFile(path, []byte(cfg.String()), 0o644)

	var readings atomic.Int64
	o := paho.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("loadbench-sub-%d", run))
	sub := paho.NewClient(o)
	if t := sub.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return result{}, fmt.Errorf("subscriber: %v", t.Error())
	}
	defer sub.Disconnect(100)
	sub.Subscribe(fmt.Sprintf("safety/BENCH/GW%d/rt", run), 1, func(_ paho.Client, m paho.Message) {
		var body struct {
			Readings []json.RawMessage `json:"readings"`
		}
		json.Unmarshal(m.Payload(), &body)
		readings.Add(int64(len(body.Readings)))
	}).Wait()

	cargs := []string{"run", "-c", path}
	if profile != "" {
		cargs = append(cargs, "-cpuprofile", profile)
	}
	c, err := start(collector, cargs...)
	if err != nil {
		return result{}, err
	}
	defer c.stop()
	time.Sleep(5 * time.Second) // warm-up
	pid := c.cmd.Process.Pid
	t0, err := cpuTicks(pid)
	if err != nil {
		return result{}, fmt.Errorf("collector died: %v\n%s", err, strings.Join(c.lines, "\n"))
	}
	req0 := reqs(sl)
	r0 := readings.Load()
	w0 := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	t1, err := cpuTicks(pid)
	if err != nil {
		return result{}, fmt.Errorf("collector died: %v", err)
	}
	el := time.Since(w0).Seconds()
	res := result{
		cpuPct:       float64(t1-t0) / 100 / el * 100,
		rssMB:        statusKB(pid, "VmHWM") / 1024,
		reqPerS:      float64(reqs(sl)-req0) / el,
		readingsPerS: float64(readings.Load()-r0) / el,
	}
	return res, nil
}

func reqs(p *proc) int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(p.last("requests "), "requests "), 10, 64)
	return n
}
