package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// plant is a pymodbus slave with three gas detectors (holding 0-2, in
// 0.1 %LEL) and four valve coils (1 = open).
type plant struct {
	t    *testing.T
	addr string
}

func startPlant(t *testing.T) *plant {
	t.Helper()
	testpeer.NeedPymodbus(t)
	testpeer.Need(t, "mbpoll")
	port := testpeer.FreePort(t)
	p := testpeer.Start(t, testpeer.Python, testpeer.RepoFile("drivers/modbus/testdata/pyslave.py"), "--tcp", strconv.Itoa(port), "--plant")
	p.WaitOutput(t, "pyslave: serving", 15*time.Second)
	testpeer.WaitPort(t, fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second) // "serving" comes before the port accepts
	return &plant{t, fmt.Sprintf("127.0.0.1:%d", port)}
}

// setGas writes detector i's value (%LEL) into the slave, as the plant would.
func (p *plant) setGas(i int, pct float64) {
	p.t.Helper()
	out, err := exec.Command("mbpoll", "-m", "tcp", "-p", portOf(p.addr), "-a", "1", "-t", "4", "-r", strconv.Itoa(i), "-0", "-1", "-o", "2",
		hostOf(p.addr), strconv.Itoa(int(pct*10))).CombinedOutput()
	if err != nil {
		p.t.Fatalf("mbpoll write: %v\n%s", err, out)
	}
}

func (p *plant) setCoil(i int, on bool) {
	p.t.Helper()
	v := "0"
	if on {
		v = "1"
	}
	out, err := exec.Command("mbpoll", "-m", "tcp", "-p", portOf(p.addr), "-a", "1", "-t", "0", "-r", strconv.Itoa(i), "-0", "-1", "-o", "2",
		hostOf(p.addr), v).CombinedOutput()
	if err != nil {
		p.t.Fatalf("mbpoll write coil: %v\n%s", err, out)
	}
}

func (p *plant) coil(i int) float64 {
	return mbpoll(p.t, p.addr, "-a", "1", "-t", "0", "-r", strconv.Itoa(i), "-c", "1")
}

func waitCoil(t *testing.T, p *plant, i int, want float64, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for p.coil(i) != want {
		if time.Since(start) > within {
			t.Fatalf("valve coil %d is not %v after %s", i, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func ctl(t *testing.T, cfg string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(collectorBin, append([]string{args[0], "-c", cfg}, args[1:]...)...).CombinedOutput()
	return string(out), err
}

// TestInterlockWithBrokerDown: gas raised through a pymodbus slave trips the
// interlock and its coil is written on the slave while the MQTT broker is
// down the whole time; once the broker starts, the alarm and interlock
// events arrive. Then the control commands: a reset refused while the gas
// is still high, an alarm acknowledgement, a reset that leaves the valve
// closed, a bypass that stops the next trip, and an intact audit log.
func TestInterlockWithBrokerDown(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, true)
	// The platform's persistent session exists before the outage, so the
	// check cannot miss what the collector sends the moment the broker is
	// back.
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-IL/+", "platform-il", true)
	broker.Stop() // down before the collector starts, the whole time of the trip
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-IL}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1, timeout: 500ms}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50, hysteresis: 2}}
  - {code: GT-2, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 1}, alarms: {H: 25, HH: 50, hysteresis: 2}}
  - {code: XV-1, kind: other, device: gas, interval: 100ms, source: {table: coil, address: 0}}
interlocks:
  - name: ESD-1
    when: {vote: any, inputs: [{point: GT-1, level: HH}, {point: GT-2, level: HH}]}
    actions: [{device: gas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q, reconnect_min: 200ms, reconnect_max: 1s}}
`, pl.addr, filepath.Join(dir, "data"), broker.URL()))
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	time.Sleep(500 * time.Millisecond)
	if pl.coil(0) != 1 {
		t.Fatal("valve closed before any gas")
	}
	pl.setGas(0, 60)
	took := waitCoil(t, pl, 0, 0, 3*time.Second)
	t.Logf("broker down: GT-1 60 %%LEL -> valve coil closed on the slave %s after the write", took.Round(time.Millisecond))

	out, err := ctl(t, cfg, "reset", "ESD-1")
	if err == nil || !strings.Contains(out, "still present") {
		t.Fatalf("reset while GT-1 is at HH: %v %s", err, out)
	}
	if out, err := ctl(t, cfg, "ack", "GT-1"); err != nil {
		t.Fatalf("ack: %v %s", err, out)
	}
	st, err := ctl(t, cfg, "status")
	if err != nil || !strings.Contains(st, `"tripped": true`) {
		t.Fatalf("status: %v %s", err, st)
	}

	// Now the platform comes back: the events of the outage arrive.
	broker.Start()
	sub.waitFor("the outage's alarm and interlock events", 20*time.Second, func(ms []received) bool {
		return hasEvent(ms, "alarm", "raised", "GT-1") && hasEvent(ms, "interlock", "tripped", "ESD-1") &&
			hasEvent(ms, "interlock", "action_verified", "ESD-1") && hasEvent(ms, "alarm", "acked", "GT-1")
	})

	pl.setGas(0, 3)
	sub.waitFor("HH cleared", 10*time.Second, func(ms []received) bool { return hasEvent(ms, "alarm", "cleared", "GT-1") })
	if out, err := ctl(t, cfg, "reset", "ESD-1"); err != nil {
		t.Fatalf("reset after the gas cleared: %v %s", err, out)
	}
	sub.waitFor("reset event", 10*time.Second, func(ms []received) bool { return hasEvent(ms, "interlock", "reset", "ESD-1") })
	if pl.coil(0) != 0 {
		t.Fatal("a reset re-opened the valve although no on_reset action is configured")
	}

	// A bypass stops the next trip: the operator re-opens the valve by hand
	// and GT-2 goes to HH.
	if out, err := ctl(t, cfg, "bypass", "ESD-1", "10m"); err != nil {
		t.Fatalf("bypass: %v %s", err, out)
	}
	pl.setCoil(0, true)
	pl.setGas(1, 70)
	sub.waitFor("GT-2 HH during the bypass", 10*time.Second, func(ms []received) bool {
		return hasEvent(ms, "alarm", "raised", "GT-2") && hasEvent(ms, "interlock", "bypassed", "ESD-1")
	})
	time.Sleep(500 * time.Millisecond)
	if pl.coil(0) != 1 {
		t.Fatal("the bypassed interlock wrote its output")
	}
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	aout, err := exec.Command(collectorBin, "audit", "verify", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(aout), "intact") {
		t.Fatalf("audit verify: %v %s", err, aout)
	}
	t.Log(strings.TrimSpace(string(aout)))
}
