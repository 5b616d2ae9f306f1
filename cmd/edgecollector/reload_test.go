package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestReloadAndReadProbe: SIGHUP with a broken config is rejected (event and
// log) and the running config stays; a good one is taken; a reload that
// would change a tripped interlock is refused. And the commissioning probe
// reads the same device.
func TestReloadAndReadProbe(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, false)
	dir := t.TempDir()
	statusPort := testpeer.FreePort(t)
	base := func(extraPoint string, hh float64) string {
		return fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-RL}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, gas: {type: combustible}, source: {table: holding, address: 0}, alarms: {HH: %g}}
%s
interlocks:
  - {name: ESD-1, when: {inputs: [{point: GT-1, level: HH}]}, actions: [{device: gas, table: coil, address: 0, value: 0}]}
buffer: {dir: %q}
uplink: {mqtt: {url: %q}}
status: {listen: ":%d"}
`, pl.addr, hh, extraPoint, filepath.Join(dir, "data"), broker.URL(), statusPort)
	}
	cfg := writeFile(t, dir, "c.yaml", base("", 50))
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-RL/+", "platform-rl", false)
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	sub.waitFor("config_loaded", 10*time.Second, func(ms []received) bool { return hasSystem(ms, "config_loaded") >= 1 })

	// A broken file: rejected, the collector goes on.
	os.WriteFile(cfg, []byte(strings.Replace(base("", 50), "interval: 100ms", "intervall: 100ms", 1)), 0o644)
	coll.Signal(syscall.SIGHUP)
	sub.waitFor("config_rejected", 10*time.Second, func(ms []received) bool { return hasSystem(ms, "config_rejected") >= 1 })
	if !strings.Contains(coll.Output(), "intervall") {
		t.Fatalf("the rejection does not name the bad key:\n%s", coll.Output())
	}
	// A good one with one more point: taken.
	os.WriteFile(cfg, []byte(base(`  - {code: GT-2, kind: gas, device: gas, interval: 100ms, unit: "%LEL", scale: 0.1, gas: {type: combustible}, source: {table: holding, address: 1}}`, 50)), 0o644)
	coll.Signal(syscall.SIGHUP)
	sub.waitFor("readings of the new point", 15*time.Second, func(ms []received) bool {
		for _, m := range ms {
			if topicIs("rt")(m) && strings.Contains(string(m.Raw), `"GT-2"`) {
				return true
			}
		}
		return false
	})
	// Trip the interlock; a reload changing it is refused while it is tripped.
	pl.setGas(0, 60)
	waitCoil(t, pl, 0, 0, 5*time.Second)
	os.WriteFile(cfg, []byte(strings.Replace(base("", 40), "value: 0}", "value: 0, retries: 3}", 1)), 0o644)
	out, err := exec.Command(collectorBin, "reload", "-c", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ESD-1") {
		t.Fatalf("reload changing a tripped interlock: %v %s", err, out)
	}
	t.Logf("refused: %s", strings.TrimSpace(string(out)))

	// The probe reads the device's points with their conversion.
	os.WriteFile(cfg, []byte(base("", 50)), 0o644)
	out, err = exec.Command(collectorBin, "read", "-c", cfg, "--device", "gas").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GT-1") || !strings.Contains(string(out), "60 %LEL") || !strings.Contains(string(out), "good") {
		t.Fatalf("read probe: %v\n%s", err, out)
	}
	out, err = exec.Command(collectorBin, "read", "-c", cfg, "--device", "gas", "--table", "holding", "--address", "0", "--count", "3").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "holding 0: 600") || !strings.Contains(string(out), "holding 2: 30") {
		t.Fatalf("raw read probe: %v\n%s", err, out)
	}
	// The read-only HTTP listener, on loopback: status and metrics.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", statusPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`edgecollector_interlock_tripped{interlock="ESD-1"} 1`, `edgecollector_point_good{point="GT-1"} 1`, "edgecollector_buffer_durable 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", statusPort)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
}

func hasSystem(ms []received, state string) int {
	n := 0
	for _, m := range ms {
		if !topicIs("event")(m) {
			continue
		}
		for _, e := range m.Body["events"].([]any) {
			if ev := e.(map[string]any); ev["type"] == "system" && ev["state"] == state {
				n++
			}
		}
	}
	return n
}
