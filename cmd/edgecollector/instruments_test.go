package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// setHolding writes a holding register of the plant slave with mbpoll, as
// the instrument itself would change its status word.
func (p *plant) setHolding(addr int, v uint16) {
	p.t.Helper()
	out, err := exec.Command("mbpoll", "-m", "tcp", "-p", portOf(p.addr), "-a", "1", "-t", "4", "-r", strconv.Itoa(addr), "-0", "-1", "-o", "2",
		hostOf(p.addr), strconv.Itoa(int(v))).CombinedOutput()
	if err != nil {
		p.t.Fatalf("mbpoll write: %v\n%s", err, out)
	}
}

// pointStatus returns a point's entry of `edgecollector status` (nil while
// the collector does not answer yet).
func pointStatus(t *testing.T, cfg, code string) map[string]any {
	t.Helper()
	out, err := ctl(t, cfg, "status")
	if err != nil {
		return nil
	}
	var st struct {
		Points []map[string]any `json:"points"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, out)
	}
	for _, p := range st.Points {
		if p["point"] == code {
			return p
		}
	}
	t.Fatalf("no point %s in status", code)
	return nil
}

func waitPoint(t *testing.T, cfg, code string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p := pointStatus(t, cfg, code)
		if p != nil && ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("point %s after %s: %v", code, within, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInstrumentDiagnostics, against pymodbus with the registers changed by
// mbpoll: a detector's status word sets its quality (open circuit ->
// sensor_fault named open_circuit; state nibble 2-3 -> maintenance), a state
// field reads by name, and the detector's own relay bit (a coil here) is a
// discrete HH alarm that trips the interlock.
func TestInstrumentDiagnostics(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-DIAG/+", "platform-diag", false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-DIAG}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: midas, bus: plc, unit: 1, timeout: 500ms}]
points:
  - code: GT-1
    kind: gas
    device: midas
    interval: 100ms
    unit: "%%LEL"
    scale: 0.1
    range: [0, 100]
    gas: {type: combustible}
    source: {table: holding, address: 0}
    alarms: {H: 25, HH: 50}
    diagnostics:
      - {name: open_circuit, source: {table: holding, address: 5, bit: 3}, quality: sensor_fault}
      - {name: warm_up, source: {table: holding, address: 5, mask: 0x00F0, in: [0x20, 0x30]}, quality: maintenance}
  - code: GT-1-STATE
    kind: other
    device: midas
    interval: 100ms
    source: {table: holding, address: 6, bits: "4-5"}
    states: [{value: 0, name: warm-up}, {value: 1, name: monitor}, {value: 2, name: inhibit}, {value: 3, name: fault}]
  - code: GT-1-RLY
    kind: other
    device: midas
    interval: 100ms
    source: {table: coil, address: 2}
    alarms: {alarm_when: false, on_delay: 300ms}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-1-RLY, level: HH}]}
    actions: [{device: midas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q}}
`, pl.addr, filepath.Join(dir, "data"), broker.URL()))
	testpeer.Start(t, collectorBin, "run", "-c", cfg)
	quality := func(q string) func(map[string]any) bool {
		return func(p map[string]any) bool { return p["quality"] == q }
	}
	waitPoint(t, cfg, "GT-1", 15*time.Second, quality("good"))

	pl.setHolding(5, 0b1000) // ADAM/Midas status: open circuit
	p := waitPoint(t, cfg, "GT-1", 5*time.Second, quality("sensor_fault"))
	if p["fault"] != "open_circuit" || p["value"] != nil {
		t.Fatalf("open circuit: %v", p)
	}
	sub.waitFor("fault raised naming the condition", 10*time.Second, func(ms []received) bool {
		for _, m := range eventMessages(ms, "fault", "raised", "GT-1") {
			if strings.Contains(m, "open_circuit") {
				return true
			}
		}
		return false
	})
	pl.setHolding(5, 0x0020) // warm-up: maintenance, with the value
	p = waitPoint(t, cfg, "GT-1", 5*time.Second, quality("maintenance"))
	if p["fault"] != "warm_up" || p["value"] != 3.0 {
		t.Fatalf("warm-up: %v", p)
	}
	pl.setHolding(5, 0)
	waitPoint(t, cfg, "GT-1", 5*time.Second, quality("good"))

	pl.setHolding(6, 0x0010|0x0003) // state field bits 4-5 = 1, other bits set
	waitPoint(t, cfg, "GT-1-STATE", 5*time.Second, func(p map[string]any) bool { return p["value"] == "monitor" })
	pl.setHolding(6, 0x0030)
	waitPoint(t, cfg, "GT-1-STATE", 5*time.Second, func(p map[string]any) bool { return p["value"] == "fault" })

	// The detector's relay drops (de-energised on alarm): HH, and the
	// interlock closes the valve.
	pl.setCoil(2, false)
	took := waitCoil(t, pl, 0, 0, 5*time.Second)
	ms := sub.waitFor("discrete alarm and trip", 10*time.Second, func(ms []received) bool {
		return hasEvent(ms, "alarm", "raised", "GT-1-RLY") && hasEvent(ms, "interlock", "tripped", "ESD-1")
	})
	t.Logf("relay bit dropped -> HH -> valve closed %s later (on_delay 300ms)", took.Round(time.Millisecond))
	if len(sub.invalid) > 0 {
		t.Fatalf("messages failing the schema: %v", sub.invalid)
	}
	_ = ms
}
