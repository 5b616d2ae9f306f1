package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// plantSlave is an in-process gas detector: holding 0 is the gas in
// tenths of %LEL, coil 0 the shut-off valve.
type plantSlave struct {
	mu   sync.Mutex
	gas  uint16
	coil bool
}

func (s *plantSlave) HandleCoils(req *smodbus.CoilsRequest) ([]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.IsWrite {
		s.coil = req.Args[0]
		return nil, nil
	}
	return make([]bool, req.Quantity), nil
}
func (s *plantSlave) HandleDiscreteInputs(*smodbus.DiscreteInputsRequest) ([]bool, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s *plantSlave) HandleInputRegisters(*smodbus.InputRegistersRequest) ([]uint16, error) {
	return nil, smodbus.ErrIllegalFunction
}
func (s *plantSlave) HandleHoldingRegisters(req *smodbus.HoldingRegistersRequest) ([]uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint16, req.Quantity)
	out[0] = s.gas
	return out, nil
}

// statusShape flattens a JSON document into "path type" pairs; array
// elements share the path "name[]".
func statusShape(v any, path string, out map[string]map[string]bool) {
	add := func(typ string) {
		if out[path] == nil {
			out[path] = map[string]bool{}
		}
		out[path][typ] = true
	}
	switch x := v.(type) {
	case map[string]any:
		add("object")
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			statusShape(e, p, out)
		}
	case []any:
		add("array")
		for _, e := range x {
			statusShape(e, path+"[]", out)
		}
	case string:
		add("string")
	case float64:
		add("number")
	case bool:
		add("bool")
	case nil:
		add("null")
	}
}

// checkStatusShape compares a status document with the golden list of
// today's keys (testdata/status_keys.golden): every key listed there must
// be present (unless marked optional with "?") and have one of the listed
// types. Keys may be added, never renamed or retyped.
func checkStatusShape(t *testing.T, doc []byte, golden string) {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, doc)
	}
	got := map[string]map[string]bool{}
	statusShape(v, "", got)
	f, err := os.Open(golden)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		path, types, _ := strings.Cut(line, " ")
		path, optional := strings.CutSuffix(path, "?")
		if path == "." {
			path = "" // the document itself
		}
		allowed := map[string]bool{}
		for _, ty := range strings.Split(types, "|") {
			allowed[ty] = true
		}
		have, ok := got[path]
		if !ok {
			if !optional {
				t.Errorf("status key %s (%s) is gone: keys are an interface (DESIGN.md)", path, types)
			}
			continue
		}
		for ty := range have {
			if !allowed[ty] {
				t.Errorf("status key %s is %s, the interface says %s", path, ty, types)
			}
		}
	}
	if t.Failed() {
		var keys []string
		for k, ts := range got {
			var tl []string
			for ty := range ts {
				tl = append(tl, ty)
			}
			sort.Strings(tl)
			keys = append(keys, k+" "+strings.Join(tl, "|"))
		}
		sort.Strings(keys)
		t.Logf("status shape now:\n%s", strings.Join(keys, "\n"))
	}
	if n < 20 {
		t.Fatalf("golden %s lists only %d keys", golden, n)
	}
}

// startSlave serves slave on a free loopback port.
func startSlave(t *testing.T, slave *plantSlave) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	srv, err := smodbus.NewServer(&smodbus.ServerConfiguration{URL: "tcp://" + addr, MaxClients: 8, Timeout: time.Minute}, slave)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	return addr
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// running is a collector run in-process by a test.
type running struct {
	*Collector
	cancel context.CancelFunc
	done   chan error
}

// runCollector loads path and runs it until the test ends (or stop).
func runCollector(t *testing.T, path string, d Deps, services ...Service) *running {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, cfg, d)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{Collector: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, services...) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and waits for its ordered shutdown.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(60 * time.Second):
		t.Fatal("the collector did not stop within 60 s")
		return nil
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// plantConfig is a collector on one live gas detector (and one lost one),
// an ESD interlock, both uplinks pointed at a dead port.
func plantConfig(t *testing.T, slave, hh string, extra string) string {
	dir := t.TempDir()
	dead := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	return writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-SK}
buses: [{name: plc, type: modbus-tcp, address: %q}, {name: gone, type: modbus-tcp, address: %q, connect_timeout: 200ms}]
devices: [{name: gas, bus: plc, unit: 1}, {name: lost, bus: gone, unit: 1, timeout: 200ms, retries: 0}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, gas: {type: combustible}, source: {table: holding, address: 0}, alarms: {HH: %s}, hj212: {factor: a99001}}
  - {code: GT-2, kind: gas, device: lost, interval: 100ms, unit: "%%LEL", gas: {type: combustible}, source: {table: holding, address: 0}, hj212: {factor: a99002}}
interlocks:
  - {name: ESD-1, when: {inputs: [{point: GT-1, level: HH}]}, actions: [{device: gas, table: coil, address: 0, value: 0}]}
buffer: {dir: %q}
uplink:
  mqtt: {url: "tcp://%s"}
  hj212: {address: %q, st: "32", pw: "123456", mn: "010000A8900016F000169DC0"}
%s`, slave, dead, hh, filepath.Join(dir, "data"), dead, dead, extra))
}

// tripped waits until the plant is tripped and alarmed, both points polled.
func tripped(t *testing.T, c *Collector) Status {
	var st Status
	testpeer.Eventually(t, 30*time.Second, "a tripped, alarmed state", func() bool {
		st = c.Status()
		return len(st.Interlocks) == 1 && st.Interlocks[0].Tripped && len(st.Points) == 2 && st.Points[0].Alarm != "" &&
			st.Points[1].Fault != "" && st.Buffer.LastSeq > 0
	})
	return st
}

// TestStatusKeys pins the status document's keys and types (DESIGN.md:
// "Status JSON is an interface") on a collector with both uplinks, a
// tripped interlock and an alarm.
func TestStatusKeys(t *testing.T) {
	slave := &plantSlave{gas: 600}
	r := runCollector(t, plantConfig(t, startSlave(t, slave), "50", ""), Deps{})
	st := tripped(t, r.Collector)
	doc, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	checkStatusShape(t, doc, filepath.Join("testdata", "status_keys.golden"))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}
