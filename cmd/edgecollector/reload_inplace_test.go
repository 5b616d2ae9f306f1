package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// readingTimes are the timestamps of a point's readings, in order.
func readingTimes(t *testing.T, ms []received, point string) []time.Time {
	t.Helper()
	var ts []time.Time
	for _, m := range ms {
		if !topicIs("rt")(m) {
			continue
		}
		for _, r := range m.Body["readings"].([]any) {
			rm := r.(map[string]any)
			if rm["point"] == point {
				at, err := time.Parse(time.RFC3339Nano, rm["ts"].(string))
				if err != nil {
					t.Fatal(err)
				}
				ts = append(ts, at)
			}
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

func maxGap(ts []time.Time, from, to time.Time) time.Duration {
	var g time.Duration
	for i := 1; i < len(ts); i++ {
		if ts[i].Before(from) || ts[i-1].After(to) {
			continue
		}
		g = max(g, ts[i].Sub(ts[i-1]))
	}
	return g
}

// TestReloadWithoutAPause, with pymodbus, Mosquitto and the real binary:
// two poll groups at 100 ms (group A on line plc-a with the gas detector
// that tripped ESD-1, group B on line plc-b); a SIGHUP reload changes one
// point of group B. Group A keeps polling across the reload without a gap
// longer than 1.5x its interval (measured against its own jitter before
// the reload on this machine), group B picks up the change, and the tripped
// interlock stays tripped with its output untouched (no new action event).
func TestReloadWithoutAPause(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-RIP/+", "platform-rip", false)
	dir := t.TempDir()
	conf := func(scaleB string) string {
		return fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-RIP}
buses:
  - {name: plc-a, type: modbus-tcp, address: %q}
  - {name: plc-b, type: modbus-tcp, address: %q}
devices:
  - {name: gas-a, bus: plc-a, unit: 1, timeout: 500ms}
  - {name: gas-b, bus: plc-b, unit: 1, timeout: 500ms}
points:
  - {code: GT-A, kind: gas, device: gas-a, interval: 100ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: 50}, report: {mode: every}}
  - {code: PT-B, kind: pressure, device: gas-b, interval: 100ms, unit: kPa, scale: %s, source: {table: holding, address: 1}, report: {mode: every}}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-A, level: HH}]}
    actions: [{device: gas-a, table: coil, address: 0, value: 0}]
buffer: {dir: %q, commit_interval: 100ms}
uplink: {mqtt: {url: %q}}
`, pl.addr, pl.addr, scaleB, filepath.Join(dir, "data"), broker.URL())
	}
	cfg := writeFile(t, dir, "c.yaml", conf("0.1"))
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	pl.setGas(0, 60)
	waitCoil(t, pl, 0, 0, 10*time.Second)
	sub.waitFor("the trip's events", 15*time.Second, func(ms []received) bool { return hasEvent(ms, "interlock", "action_verified", "ESD-1") })
	time.Sleep(3 * time.Second) // a baseline of group A's ticks on this machine
	actionsBefore := len(eventMessages(sub.all(), "interlock", "action_verified", "ESD-1")) + len(eventMessages(sub.all(), "interlock", "action_done", "ESD-1"))
	reloadAt := time.Now()
	os.WriteFile(cfg, []byte(conf("1")), 0o644) // PT-B's scale: 0.1 -> 1
	coll.Signal(syscall.SIGHUP)
	sub.waitFor("config_loaded in place and PT-B rescaled", 20*time.Second, func(ms []received) bool {
		loaded, rescaled := false, false
		for _, m := range ms {
			loaded = loaded || topicIs("event")(m) && strings.Contains(string(m.Raw), "applied in place")
			rescaled = rescaled || topicIs("rt")(m) && strings.Contains(string(m.Raw), `"point":"PT-B","ts"`) && strings.Contains(string(m.Raw), `"value":30,`)
		}
		return loaded && rescaled
	})
	time.Sleep(2 * time.Second) // ticks well after the reload
	ms := sub.all()
	ts := readingTimes(t, ms, "GT-A")
	base := maxGap(ts, reloadAt.Add(-3*time.Second), reloadAt.Add(-200*time.Millisecond))
	across := maxGap(ts, reloadAt.Add(-200*time.Millisecond), reloadAt.Add(3*time.Second))
	t.Logf("group A (100 ms): longest gap %s across the reload, %s in the 3 s before it", across.Round(time.Millisecond), base.Round(time.Millisecond))
	if bound := max(150*time.Millisecond, base*3/2); across > bound {
		t.Fatalf("group A paused %s across the reload (bound %s)", across, bound)
	}
	applied := false
	for _, m := range ms {
		if topicIs("event")(m) && strings.Contains(string(m.Raw), "applied in place") && strings.Contains(string(m.Raw), "kept 1") {
			applied = true
		}
	}
	if !applied {
		t.Fatal("no config_loaded event saying the reload was applied in place keeping group A")
	}
	after := len(eventMessages(ms, "interlock", "action_verified", "ESD-1")) + len(eventMessages(ms, "interlock", "action_done", "ESD-1"))
	if after != actionsBefore || hasEvent(ms, "interlock", "reset", "ESD-1") {
		t.Fatalf("the tripped interlock's output was touched by the reload: %d action events before, %d after", actionsBefore, after)
	}
	st := statusOf(t, cfg)
	if il := st["interlocks"].([]any)[0].(map[string]any); il["tripped"] != true {
		t.Fatalf("ESD-1 after the reload: %v", il)
	}
	if pl.coil(0) != 0 {
		t.Fatal("the valve was re-opened by the reload")
	}
	if len(sub.invalid) > 0 {
		t.Fatalf("messages failing the schema: %v", sub.invalid)
	}
}

// TestConfigVersions with the real binary: every accepted config is kept
// with its hash, time and who asked; `config diff` names what changed;
// `config rollback` puts a version back through the reload rules (refused,
// with the file left as it was, while it would change a tripped
// interlock); the heartbeat carries the running config's hash.
func TestConfigVersions(t *testing.T) {
	pl := startPlant(t)
	broker := testpeer.Mosquitto(t, false)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-CV/status", "platform-cv", false)
	dir := t.TempDir()
	conf := func(hh string) string {
		return fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-CV}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1, timeout: 500ms}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 200ms, unit: "%%LEL", scale: 0.1, range: [0, 100], gas: {type: combustible},
     source: {table: holding, address: 0}, alarms: {H: 25, HH: %s}}
interlocks:
  - name: ESD-1
    when: {inputs: [{point: GT-1, level: HH}]}
    actions: [{device: gas, table: coil, address: 0, value: 0}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q, heartbeat: 1s}}
`, pl.addr, hh, filepath.Join(dir, "data"), broker.URL())
	}
	v1 := conf("50")
	cfg := writeFile(t, dir, "c.yaml", v1)
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	history := func(want int) string {
		t.Helper()
		var out string
		testpeer.Eventually(t, 15*time.Second, fmt.Sprintf("%d config versions", want), func() bool {
			o, err := ctl(t, cfg, "config", "history")
			out = o
			n := 0
			for _, l := range strings.Split(o, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == strconv.Itoa(n+1) {
					n++
				}
			}
			return err == nil && n == want // "no config versions yet" is not one
		})
		return out
	}
	history(1)
	os.WriteFile(cfg, []byte(conf("40")), 0o644)
	coll.Signal(syscall.SIGHUP)
	if h := history(2); !strings.Contains(h, "reload   SIGHUP") || !strings.Contains(h, "start") {
		t.Fatalf("history after a SIGHUP reload:\n%s", h)
	}
	out, err := ctl(t, cfg, "config", "diff", "1", "2")
	if err != nil || !strings.Contains(out, "~ point GT-1: alarms.HH: 50 -> 40") {
		t.Fatalf("config diff 1 2: %v\n%s", err, out)
	}
	os.WriteFile(cfg, []byte(strings.Replace(conf("40"), "interval: 200ms", "intervall: 200ms", 1)), 0o644)
	coll.Signal(syscall.SIGHUP)
	coll.WaitOutput(t, "intervall", 10*time.Second)
	out, err = ctl(t, cfg, "config", "rollback", "1", "--data", filepath.Join(dir, "data"))
	if err != nil || !strings.Contains(out, "rolled back to version 1") {
		t.Fatalf("rollback from a broken file: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != v1 {
		t.Fatal("rollback did not put version 1 back into the file")
	}
	h := history(3)
	if !strings.Contains(h, "rollback uid") {
		t.Fatalf("history after the rollback:\n%s", h)
	}
	sha1 := strings.Fields(strings.Split(h, "\n")[0])[4]
	sub.waitFor("a heartbeat naming version 1's hash", 15*time.Second, func(ms []received) bool {
		for _, m := range ms {
			if strings.Contains(string(m.Raw), `"config_sha256":"`+sha1) {
				return true
			}
		}
		return false
	})
	// A version whose interlock differs (latch off), then back (4, 5).
	noLatch := strings.Replace(v1, "    actions:", "    latch: false\n    actions:", 1)
	os.WriteFile(cfg, []byte(noLatch), 0o644)
	coll.Signal(syscall.SIGHUP)
	history(4)
	os.WriteFile(cfg, []byte(v1), 0o644)
	coll.Signal(syscall.SIGHUP)
	history(5)
	pl.setGas(0, 60)
	waitCoil(t, pl, 0, 0, 10*time.Second)
	// Tripped: rolling back to version 4 would change ESD-1: refused, and
	// the file is left as it was.
	out, err = ctl(t, cfg, "config", "rollback", "4")
	if err == nil || !strings.Contains(out, "tripped or bypassed") {
		t.Fatalf("rollback changing a tripped interlock: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(cfg); string(b) != v1 {
		t.Fatal("a refused rollback left its version in the config file")
	}
	// Version 2 changes only GT-1's alarm, not ESD-1: accepted while tripped.
	if out, err := ctl(t, cfg, "config", "rollback", "2"); err != nil {
		t.Fatalf("rollback to 2 while tripped (the interlock unchanged): %v\n%s", err, out)
	}
	history(6)
	if out, err := ctl(t, cfg, "status"); err != nil || !strings.Contains(out, `"tripped": true`) {
		t.Fatalf("ESD-1 after the rollbacks: %v %s", err, out)
	}
}
