// Command edgebench prints the performance figures of the collector, each
// measured against real peers and reported as a median of runs:
//
//	edgebench load      -collector PATH   issue 3's reference load: 4 units x 250
//	                                      registers every 100 ms, durable buffer on,
//	                                      published to Mosquitto; the collector's CPU
//	                                      and peak RSS
//	edgebench buffer    -collector PATH   durable append rate, drain rate to
//	                                      Mosquitto, peak RSS draining a 1,000,000-
//	                                      reading backlog
//	edgebench interlock -collector PATH   interlock latency from a register change to
//	                                      the coil write, while a large backlog drains
//
// Build the collector first: go build -o /tmp/edgecollector ./cmd/edgecollector.
// It needs mosquitto on PATH. The figures are recorded in docs/performance.md.
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
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: edgebench load|buffer|interlock -collector PATH [flags]")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "slave":
		os.Exit(slave(args))
	case "load":
		os.Exit(load(args))
	case "buffer":
		os.Exit(bufferBench(args))
	case "interlock":
		os.Exit(interlockBench(args))
	}
	fmt.Fprintln(os.Stderr, "usage: edgebench load|buffer|interlock -collector PATH [flags]")
	os.Exit(2)
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
	p.cmd.SysProcAttr = procAttr()
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

// startBroker starts mosquitto on a free port; it returns its URL.
func startBroker(dir string) (string, *proc, error) {
	port := freePort()
	conf := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.conf", port))
	os.WriteFile(conf, []byte(fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n", port)), 0o644)
	m, err := start("mosquitto", "-c", conf)
	if err != nil {
		return "", nil, fmt.Errorf("start mosquitto: %w", err)
	}
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	for i := 0; i < 50; i++ {
		if c, err := net.Dial("tcp", url[len("tcp://"):]); err == nil {
			c.Close()
			return url, m, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.stop()
	return "", nil, fmt.Errorf("mosquitto did not listen on %s", url)
}

// counter subscribes to a gateway's rt topic and counts readings and seqs.
type counter struct {
	c        paho.Client
	readings atomic.Int64
	msgs     atomic.Int64
	lastAt   atomic.Int64 // unix nanos of the last message
}

func newCounter(url, topic, id string) (*counter, error) {
	k := &counter{}
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetOrderMatters(false)
	k.c = paho.NewClient(o)
	if t := k.c.Connect(); !t.WaitTimeout(5*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("subscriber: %v", t.Error())
	}
	t := k.c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		var body struct {
			Readings []json.RawMessage `json:"readings"`
		}
		json.Unmarshal(m.Payload(), &body)
		k.readings.Add(int64(len(body.Readings)))
		k.msgs.Add(1)
		k.lastAt.Store(time.Now().UnixNano())
	})
	t.Wait()
	return k, t.Error()
}

func (k *counter) close() { k.c.Disconnect(100) }

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
