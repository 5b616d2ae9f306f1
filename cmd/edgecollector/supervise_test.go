package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// eventMessages returns the message texts of matching events.
func eventMessages(ms []received, typ, state, subject string) []string {
	var out []string
	for _, m := range ms {
		if !topicIs("event")(m) {
			continue
		}
		for _, e := range m.Body["events"].([]any) {
			ev := e.(map[string]any)
			if ev["type"] == typ && ev["state"] == state && (ev["point"] == subject || ev["interlock"] == subject) {
				msg, _ := ev["message"].(string)
				out = append(out, msg)
			}
		}
	}
	return out
}

// statusOf runs `edgecollector status` and decodes it.
func statusOf(t *testing.T, cfg string) map[string]any {
	t.Helper()
	out, err := ctl(t, cfg, "status")
	if err != nil {
		t.Fatalf("status: %v %s", err, out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status is not JSON: %v\n%s", err, out)
	}
	return st
}

// TestInterlockOutputSupervision, with real pymodbus slaves, a real broker
// and the real binary: the valve module is down when the gas trips the
// interlock (action_failed once); it comes back and the coil is written
// without any operator action; the valve's limit switch never moves
// (action_failed "valve did not reach closed"), then does (action_verified);
// someone re-opens the valve by hand while latched and it is closed again
// (action_mismatch). Status shows each step.
func TestInterlockOutputSupervision(t *testing.T) {
	gas := startPlant(t)
	valvePort := testpeer.FreePort(t) // the valve module: down at first
	valves := &plant{t, fmt.Sprintf("127.0.0.1:%d", valvePort)}
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-SUP/+", "platform-sup", false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-SUP}
buses:
  - {name: gas-line, type: modbus-tcp, address: %q}
  - {name: valve-line, type: modbus-tcp, address: %q, connect_timeout: 300ms}
devices:
  - {name: gas, bus: gas-line, unit: 1, timeout: 500ms}
  - {name: valves, bus: valve-line, unit: 1, timeout: 300ms, retries: 0, probe_every: 2}
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50, hysteresis: 2}}
  - {code: XV-1-ZSO, name: "inlet valve open limit switch", kind: other, device: valves, interval: 200ms, source: {table: coil, address: 1}}
interlocks:
  - name: ESD-1
    readback_every: 2s
    when: {inputs: [{point: GT-1, level: HH}]}
    actions:
      - {device: valves, table: coil, address: 0, value: 0, retries: 0, feedback: {point: XV-1-ZSO, value: false, within: 3s}}
buffer: {dir: %q}
uplink: {mqtt: {url: %q, heartbeat: 1s, reconnect_min: 200ms, reconnect_max: 1s}}
`, gas.addr, valves.addr, filepath.Join(dir, "data"), broker.URL()))
	testpeer.Start(t, collectorBin, "run", "-c", cfg)
	sub.waitFor("first readings", 20*time.Second, func(ms []received) bool { return len(ms) > 0 })

	gas.setGas(0, 60)
	sub.waitFor("trip with the valve module down", 20*time.Second, func(ms []received) bool {
		return hasEvent(ms, "interlock", "tripped", "ESD-1") && hasEvent(ms, "interlock", "action_failed", "ESD-1")
	})
	trip := eventMessages(sub.all(), "interlock", "tripped", "ESD-1")[0]
	if !strings.Contains(trip, "GT-1 HH=HH") {
		t.Fatalf("trip event does not name its votes: %q", trip)
	}
	st := statusOf(t, cfg)
	act := st["interlocks"].([]any)[0].(map[string]any)["actions"].([]any)[0].(map[string]any)
	if act["state"] != "failed" || act["error"] == "" {
		t.Fatalf("status while the valve module is down: %v", act)
	}

	// The module comes back (its coils start at 1, open): the supervisor
	// writes the coil by itself.
	p := testpeer.Start(t, testpeer.Python, testpeer.RepoFile("drivers/modbus/testdata/pyslave.py"), "--tcp", strconv.Itoa(valvePort), "--plant")
	p.WaitOutput(t, "pyslave: serving", 15*time.Second)
	back := time.Now()
	took := waitCoil(t, valves, 0, 0, 20*time.Second)
	t.Logf("valve module back: coil closed %s later, without an operator", took.Round(time.Millisecond))
	if n := len(eventMessages(sub.all(), "interlock", "action_failed", "ESD-1")); n != 1 {
		t.Fatalf("action_failed %d times during one outage of the valve module, want once", n)
	}

	// The open limit switch never moves: not verified, failed after 3 s.
	ms := sub.waitFor("feedback failure", 20*time.Second, func(ms []received) bool {
		for _, m := range eventMessages(ms, "interlock", "action_failed", "ESD-1") {
			if strings.Contains(m, "valve did not reach closed") {
				return true
			}
		}
		return false
	})
	if hasEvent(ms, "interlock", "action_verified", "ESD-1") {
		t.Fatal("action_verified although the limit switch never moved")
	}
	t.Logf("feedback: %q (%s after the module came back)", eventMessages(ms, "interlock", "action_failed", "ESD-1")[1], time.Since(back).Round(time.Millisecond))

	valves.setCoil(1, false) // the limit switch reads closed at last
	sub.waitFor("verified by feedback", 20*time.Second, func(ms []received) bool { return hasEvent(ms, "interlock", "action_verified", "ESD-1") })

	// Someone re-opens the valve while the interlock is latched.
	valves.setCoil(0, true)
	took = waitCoil(t, valves, 0, 0, 15*time.Second)
	sub.waitFor("mismatch reported", 10*time.Second, func(ms []received) bool { return hasEvent(ms, "interlock", "action_mismatch", "ESD-1") })
	t.Logf("valve re-opened by hand while latched: closed again %s later", took.Round(time.Millisecond))
	hb := sub.waitFor("a heartbeat with the interlock's action", 10*time.Second, func(ms []received) bool {
		for _, m := range ms {
			if topicIs("status")(m) && strings.Contains(string(m.Raw), `"interlocks":[{"name":"ESD-1","tripped":true`) {
				return true
			}
		}
		return false
	})
	_ = hb
	if len(sub.invalid) > 0 {
		t.Fatalf("messages failing the schema: %v", sub.invalid)
	}
}

// TestLatchSurvivesKill9RightAfterTheTrip: a trip followed within 1 s by
// kill -9 is restored as tripped (and the audit log's crash traces do not
// stop the restart); the valve re-opened while the collector was down is
// found at start (read back) and closed again.
func TestLatchSurvivesKill9RightAfterTheTrip(t *testing.T) {
	pl := startPlant(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-K9}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1, timeout: 500ms}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50, hysteresis: 2}}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-1, level: HH}]}
    actions: [{device: gas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: "tcp://127.0.0.1:%d"}}
`, pl.addr, filepath.Join(dir, "data"), testpeer.FreePort(t)))
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	time.Sleep(500 * time.Millisecond)
	pl.setGas(0, 60)
	took := waitCoil(t, pl, 0, 0, 5*time.Second)
	// Within a second of the trip (the coil seen closed, then 300 ms).
	time.Sleep(300 * time.Millisecond)
	killedAt := time.Now()
	coll.Signal(syscall.SIGKILL)
	coll.Wait(10 * time.Second)
	t.Logf("kill -9 %s after the coil was seen closed", (took + 300*time.Millisecond).Round(time.Millisecond))
	pl.setGas(0, 3)     // the gas is gone while the collector is down
	pl.setCoil(0, true) // and someone re-opened the valve
	testpeer.Start(t, collectorBin, "run", "-c", cfg)
	waitCoil(t, pl, 0, 0, 15*time.Second)
	var il map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; {
		out, err := ctl(t, cfg, "status")
		if err == nil {
			var st map[string]any
			json.Unmarshal([]byte(out), &st)
			il = st["interlocks"].([]any)[0].(map[string]any)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after restart: %v %s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if il["tripped"] != true {
		t.Fatalf("latch lost by kill -9 right after the trip: %v", il)
	}
	t.Logf("restored as tripped; the re-opened valve was closed again %s after the kill", time.Since(killedAt).Round(time.Millisecond))
}

// TestLateAnswerDoesNotTrip: the gas detector's slave answers one request
// 1.5 s late (device timeout 1 s, retries 1) and is otherwise healthy. The
// fail-safe 1oo1 interlock must not trip, and no reading goes comm_fault or
// stale (the first wave closed the inlet valve for it).
func TestLateAnswerDoesNotTrip(t *testing.T) {
	pl := startPlant(t)
	proxy := testpeer.StartDelayProxy(t, pl.addr)
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-LATE/+", "platform-late", false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-LATE}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1, timeout: 1s, retries: 1}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 200ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50}, report: {mode: every}}
  - {code: XV-1, kind: other, device: gas, interval: 200ms, source: {table: coil, address: 0}, report: {mode: every}}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-1, level: HH}]}
    actions: [{device: gas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q}}
`, proxy.Addr(), filepath.Join(dir, "data"), broker.URL()))
	testpeer.Start(t, collectorBin, "run", "-c", cfg)
	readings := func(ms []received) (good, bad int) {
		for _, m := range ms {
			if !topicIs("rt")(m) {
				continue
			}
			for _, r := range m.Body["readings"].([]any) {
				if r.(map[string]any)["quality"] == "good" {
					good++
				} else {
					bad++
				}
			}
		}
		return
	}
	sub.waitFor("good readings", 20*time.Second, func(ms []received) bool { g, _ := readings(ms); return g >= 10 })
	proxy.Delay(1500 * time.Millisecond)
	before, _ := readings(sub.all())
	ms := sub.waitFor("readings well after the late answer", 30*time.Second, func(ms []received) bool {
		g, _ := readings(ms)
		return g >= before+40
	})
	if _, bad := readings(ms); bad > 0 || hasEvent(ms, "interlock", "tripped", "ESD-1") || hasEvent(ms, "fault", "raised", "GT-1") {
		t.Fatalf("one late answer: %d readings not good, tripped %v, fault %v", bad,
			hasEvent(ms, "interlock", "tripped", "ESD-1"), hasEvent(ms, "fault", "raised", "GT-1"))
	}
	if pl.coil(0) != 1 {
		t.Fatal("the inlet valve was closed by one late answer")
	}
}
