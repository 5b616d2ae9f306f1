package main

import (
	"encoding/json"
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

	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// socketStatus asks the running collector for its status through the CLI
// (with --socket: the config file may be broken meanwhile).
func socketStatus(t *testing.T, sock string) (collector.Status, error) {
	t.Helper()
	out, err := exec.Command(collectorBin, "status", "--socket", sock).Output()
	if err != nil {
		return collector.Status{}, fmt.Errorf("%v: %s", err, out)
	}
	var st collector.Status
	return st, json.Unmarshal(out, &st)
}

// waitCLIStatus polls `edgecollector status` until f holds.
func waitCLIStatus(t *testing.T, sock, what string, within time.Duration, f func(collector.Status) bool) collector.Status {
	t.Helper()
	var st collector.Status
	testpeer.Eventually(t, within, what, func() bool {
		var err error
		st, err = socketStatus(t, sock)
		return err == nil && f(st)
	})
	return st
}

func pointPolled(st collector.Status, code string) bool {
	for _, p := range st.Points {
		if p.Point == code && p.Updated != "" {
			return true
		}
	}
	return false
}

// TestSIGHUPReload: the binary's SIGHUP loop. A broken config is rejected
// (logged, naming the bad key) and the running one stays; a good one with
// one more point is taken. (Reload policy, the interlock-held refusal and
// the heartbeat are proven in-process in internal/collector.) The
// read-only HTTP listener serves /status and /metrics.
func TestSIGHUPReload(t *testing.T) {
	slave := startFastSlave(t)
	dir := t.TempDir()
	statusPort := testpeer.FreePort(t)
	base := func(extraPoint string) string {
		return fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-RL}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: u1, bus: plc, unit: 1}]
points:
  - {code: P-1, kind: other, device: u1, interval: 100ms, source: {table: holding, address: 0}}
%s
buffer: {dir: %q}
uplink: {mqtt: {url: "tcp://127.0.0.1:%d"}}
status: {listen: ":%d"}
`, slave, extraPoint, filepath.Join(dir, "data"), testpeer.FreePort(t), statusPort)
	}
	cfg := writeFile(t, dir, "c.yaml", base(""))
	sock := filepath.Join(dir, "data", "control.sock")
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	waitCLIStatus(t, sock, "P-1 polled", 15*time.Second, func(st collector.Status) bool { return pointPolled(st, "P-1") })

	os.WriteFile(cfg, []byte(strings.Replace(base(""), "interval: 100ms", "intervall: 100ms", 1)), 0o644)
	coll.Signal(syscall.SIGHUP)
	coll.WaitOutput(t, "intervall", 10*time.Second)
	if st, err := socketStatus(t, sock); err != nil || len(st.Points) != 1 {
		t.Fatalf("after a rejected reload: %v %+v", err, st.Points)
	}
	os.WriteFile(cfg, []byte(base(`  - {code: P-2, kind: other, device: u1, interval: 100ms, source: {table: holding, address: 1}}`)), 0o644)
	coll.Signal(syscall.SIGHUP)
	waitCLIStatus(t, sock, "the new point polled", 15*time.Second, func(st collector.Status) bool { return pointPolled(st, "P-2") })

	for _, path := range []string{"/metrics", "/status"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", statusPort, path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), "P-2") {
			t.Errorf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
	}
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
}

// TestReadProbe: the commissioning probe reads a pymodbus slave's points
// with their conversion, and raw registers.
func TestReadProbe(t *testing.T) {
	pl := startPlant(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-RP}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: gas, bus: plc, unit: 1}]
points:
  - {code: GT-1, kind: gas, device: gas, interval: 100ms, unit: "%%LEL", scale: 0.1, gas: {type: combustible}, source: {table: holding, address: 0}}
buffer: {dir: %q}
uplink: {mqtt: {url: "tcp://127.0.0.1:1"}}
`, pl.addr, filepath.Join(dir, "data")))
	pl.setGas(0, 60)
	out, err := exec.Command(collectorBin, "read", "-c", cfg, "--device", "gas").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GT-1") || !strings.Contains(string(out), "60 %LEL") || !strings.Contains(string(out), "good") {
		t.Fatalf("read probe: %v\n%s", err, out)
	}
	out, err = exec.Command(collectorBin, "read", "-c", cfg, "--device", "gas", "--table", "holding", "--address", "0", "--count", "3").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "holding 0: 600") || !strings.Contains(string(out), "holding 2: 30") {
		t.Fatalf("raw read probe: %v\n%s", err, out)
	}
	out, err = exec.Command(collectorBin, "read", "-c", cfg, "--device", "nope").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInvalid || !strings.Contains(string(out), `no device "nope"`) {
		t.Fatalf("read of an unknown device: %v\n%s", err, out)
	}
}

// TestHelpListsEveryCommand: every command run dispatches is in help.
func TestHelpListsEveryCommand(t *testing.T) {
	out, err := exec.Command(collectorBin, "help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"demo", "validate", "run", "read", "reset", "ack", "bypass", "maintenance", "status", "reload", "audit verify", "modbus-map", "points import", "points export", "version", "help"} {
		if !strings.Contains(string(out), "\n  "+c+" ") {
			t.Errorf("help does not list %q:\n%s", c, out)
		}
	}
}
