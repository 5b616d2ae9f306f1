package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// ttyBridge joins a TCP connection to the collector side of a socat pty
// pair whose other end a pymodbus RTU slave serves: a serial server / DTU.
type ttyBridge struct {
	tty  *os.File
	mu   sync.Mutex
	conn net.Conn
	wg   sync.WaitGroup
}

func newTTYBridge(t *testing.T, unit string) *ttyBridge {
	t.Helper()
	a, b := testpeer.PtyPair(t)
	slave := testpeer.Start(t, testpeer.Python, testpeer.RepoFile("drivers/modbus/testdata/pyslave.py"), "--rtu", a, "--units", unit,
		"--baud", "19200", "--manifest", filepath.Join(t.TempDir(), "m.json"))
	slave.WaitOutput(t, "pyslave: serving", 15*time.Second)
	f, err := os.OpenFile(b, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	br := &ttyBridge{tty: f}
	br.wg.Add(1)
	go func() {
		defer br.wg.Done()
		buf := make([]byte, 512)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			br.mu.Lock()
			if br.conn != nil {
				br.conn.Write(buf[:n])
			}
			br.mu.Unlock()
		}
	}()
	t.Cleanup(func() { br.hangUp(); f.Close(); br.wg.Wait() })
	return br
}

func (br *ttyBridge) attach(c net.Conn) {
	br.mu.Lock()
	old := br.conn
	br.conn = c
	br.mu.Unlock()
	if old != nil {
		old.Close()
	}
	br.wg.Add(1)
	go func() { defer br.wg.Done(); io.Copy(br.tty, c) }()
}

func (br *ttyBridge) hangUp() {
	br.mu.Lock()
	c := br.conn
	br.conn = nil
	br.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// dialIn connects to the collector's DTU listener (retrying until it
// listens) and registers.
func (br *ttyBridge) dialIn(t *testing.T, addr, reg string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Write([]byte(reg))
			br.attach(c)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DTU listener %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestE2EDTUBuses: the collector binary reads one pymodbus RTU slave
// through a serial server it dials (modbus-rtu-tcp) and another through a
// DTU that dials in and registers (modbus-rtu-dtu); when the DTU hangs up
// its point goes bad, and when it dials in again the point is good again.
func TestE2EDTUBuses(t *testing.T) {
	testpeer.NeedPymodbus(t)
	broker := testpeer.Mosquitto(t, false)
	srv := newTTYBridge(t, "1")
	dtu := newTTYBridge(t, "2")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.attach(c)
		}
	}()
	listen := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-DTU}
buses:
  - {name: server, type: modbus-rtu-tcp, address: %q}
  - {name: dtu, type: modbus-rtu-dtu, listen: %q, register: {text: DTU0002}}
devices:
  - {name: d1, bus: server, unit: 1, timeout: 1s}
  - {name: d2, bus: dtu, unit: 2, timeout: 1s, probe_every: 2}
buffer: {dir: %q}
uplink: {mqtt: {url: %q, heartbeat: 2s}}
points:
  - {code: P-SRV, kind: other, device: d1, interval: 200ms, source: {table: holding, address: 0, type: int16}}
  - {code: P-DTU, kind: other, device: d2, interval: 200ms, source: {table: holding, address: 0, type: int16}}
`, ln.Addr().String(), listen, filepath.Join(dir, "data"), broker.URL())
	path := writeFile(t, dir, "collector.yaml", cfg)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-DTU/#", "platform-dtu", false)
	coll := testpeer.Start(t, collectorBin, "run", "-c", path)
	dtu.dialIn(t, listen, "DTU0002")

	// The pymodbus slaves hold -1234 x unit at holding 0.
	want := map[string]float64{"P-SRV": -1234, "P-DTU": -2468}
	latest := func(ms []received, since time.Time) map[string]map[string]any {
		last := map[string]map[string]any{}
		for _, m := range ms {
			if !topicIs("rt")(m) || m.At.Before(since) {
				continue
			}
			for _, r := range m.Body["readings"].([]any) {
				rr := r.(map[string]any)
				last[rr["point"].(string)] = rr
			}
		}
		return last
	}
	good := func(what string, since time.Time) {
		t.Helper()
		sub.waitFor(what, 20*time.Second, func(ms []received) bool {
			last := latest(ms, since)
			for code, v := range want {
				if r := last[code]; r == nil || r["quality"] != "good" || r["value"] != v {
					return false
				}
			}
			return true
		})
	}
	good("good readings through both serial servers", time.Time{})
	hang := time.Now()
	dtu.hangUp()
	sub.waitFor("P-DTU going bad after the DTU hung up", 20*time.Second, func(ms []received) bool {
		r := latest(ms, hang)["P-DTU"]
		return r != nil && r["quality"] != "good"
	})
	back := time.Now()
	dtu.dialIn(t, listen, "DTU0002")
	good("P-DTU good again after the DTU dialled in again", back)
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v\n%s", err, coll.Output())
	}
}
