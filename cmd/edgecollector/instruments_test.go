package main

import (
	"encoding/json"
	"fmt"
	"os"
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

// TestPointOutOfService with the real binary: `maintenance GT-1 on` is
// refused while GT-1 votes in an interlock that is not bypassed; with the
// interlock bypassed it is taken out of service (readings maintenance with
// their value, an event naming reason and user, status saying so), then
// put back; every step is in the audit log.
func TestPointOutOfService(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-OOS/+", "platform-oos", false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-OOS}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1, timeout: 500ms}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50}, report: {mode: every}}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-1, level: HH}]}
    actions: [{device: gas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q}}
`, pl.addr, filepath.Join(dir, "data"), broker.URL()))
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	waitPoint(t, cfg, "GT-1", 15*time.Second, func(p map[string]any) bool { return p["quality"] == "good" })
	out, err := ctl(t, cfg, "maintenance", "GT-1", "on", "--reason", "calibration", "--for", "1h")
	if err == nil || !strings.Contains(out, "ESD-1") || !strings.Contains(out, "bypass") {
		t.Fatalf("out of service while voting in ESD-1: %v %s", err, out)
	}
	if out, err := ctl(t, cfg, "bypass", "ESD-1", "2h"); err != nil {
		t.Fatalf("bypass: %v %s", err, out)
	}
	if out, err := ctl(t, cfg, "maintenance", "GT-1", "on", "--reason", "calibration with 50 %LEL test gas", "--for", "1h"); err != nil {
		t.Fatalf("maintenance on: %v %s", err, out)
	}
	p := waitPoint(t, cfg, "GT-1", 5*time.Second, func(p map[string]any) bool { return p["quality"] == "maintenance" })
	if p["maintenance"] == nil || p["value"] != 3.0 {
		t.Fatalf("status out of service: %v", p)
	}
	pl.setGas(0, 50) // the test gas: no alarm, no trip
	ms := sub.waitFor("maintenance started and readings in maintenance", 10*time.Second, func(ms []received) bool {
		n := 0
		for _, m := range ms {
			if topicIs("rt")(m) && strings.Contains(string(m.Raw), `"value":50,"unit":"%LEL","quality":"maintenance"`) {
				n++
			}
		}
		return hasEvent(ms, "maintenance", "started", "GT-1") && n > 3
	})
	if hasEvent(ms, "alarm", "raised", "GT-1") || hasEvent(ms, "interlock", "tripped", "ESD-1") {
		t.Fatal("test gas on a point out of service raised an alarm or tripped")
	}
	var started map[string]any
	for _, m := range ms {
		if topicIs("event")(m) {
			for _, e := range m.Body["events"].([]any) {
				if ev := e.(map[string]any); ev["type"] == "maintenance" {
					started = ev
				}
			}
		}
	}
	if started["reason"] != "calibration with 50 %LEL test gas" || !strings.Contains(fmt.Sprint(started["by"]), "uid") {
		t.Fatalf("maintenance event: %v", started)
	}
	pl.setGas(0, 3)
	if out, err := ctl(t, cfg, "maintenance", "GT-1", "off"); err != nil {
		t.Fatalf("maintenance off: %v %s", err, out)
	}
	sub.waitFor("back in service", 10*time.Second, func(ms []received) bool { return hasEvent(ms, "maintenance", "ended", "GT-1") })
	waitPoint(t, cfg, "GT-1", 5*time.Second, func(p map[string]any) bool { return p["quality"] == "good" })
	if len(sub.invalid) > 0 {
		t.Fatalf("messages failing the schema: %v", sub.invalid)
	}
	if err := coll.Stop(); err != nil {
		t.Fatal(err)
	}
	aout, err := exec.Command(collectorBin, "audit", "verify", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(aout), "intact") {
		t.Fatalf("audit verify: %v %s", err, aout)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "data", "audit.log"))
	if !strings.Contains(string(log), "maintenance") || !strings.Contains(string(log), "calibration with 50") {
		t.Fatalf("audit log lacks the maintenance commands:\n%s", log)
	}
}
