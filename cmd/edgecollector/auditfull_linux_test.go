//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestUnwritableAuditLogRefusesAReset: the audit log sits on a small
// tmpfs that fills up (the disk is full). An interlock tripped by gas
// through a pymodbus slave, the gas cleared: a reset is refused and says
// why, the interlock stays tripped and its valve closed. Once space is
// freed the same reset goes through, and the audit log verifies intact
// (the entries that could not be written left nothing behind).
func TestUnwritableAuditLogRefusesAReset(t *testing.T) {
	pl := startPlant(t)
	disk := smallDisk(t, 1<<20)
	dir := t.TempDir()
	dead := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-AU}
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
audit: {file: %q}
uplink: {mqtt: {url: "tcp://%s"}}
`, pl.addr, filepath.Join(dir, "data"), filepath.Join(disk, "audit.log"), dead))
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	sock := filepath.Join(dir, "data", "control.sock")
	waitStatus(t, sock, "the collector up", 15*time.Second, func(s collector.Status) bool { return ticks(s) > 0 })
	pl.setGas(0, 60)
	waitCoil(t, pl, 0, 0, 5*time.Second)
	pl.setGas(0, 3)
	waitStatus(t, sock, "GT-1 back at 3 %LEL", 10*time.Second, func(s collector.Status) bool {
		return len(s.Points) == 1 && fmt.Sprint(s.Points[0].Value) == "3" && s.Interlocks[0].Tripped
	})

	filler := fillTo(t, disk, 0)
	// The last page of the audit file may still take a few entries: refused
	// acks (GT-1 has no alarm left to acknowledge) are written until the
	// log cannot take another one.
	var out string
	for i := 0; ; i++ {
		o, err := ctl(t, cfg, "ack", "GT-1")
		if err == nil {
			t.Fatalf("ack of a point without an alarm: %s", o)
		}
		if strings.Contains(o, "audit log cannot record it") {
			break
		}
		if i > 100 {
			t.Fatalf("100 acks on a full disk were all written to the audit log: %s", o)
		}
	}
	out, err := ctl(t, cfg, "reset", "ESD-1")
	t.Logf("reset on a full audit disk: %s", strings.TrimSpace(out))
	if err == nil || !strings.Contains(out, "audit log cannot record it") || !strings.Contains(out, "no space left on device") {
		t.Fatalf("reset with an unwritable audit log: %v %s, want a refusal naming the audit log and the full disk", err, out)
	}
	if st := waitStatus(t, sock, "status", 5*time.Second, func(collector.Status) bool { return true }); !st.Interlocks[0].Tripped {
		t.Fatal("the refused reset was carried out: ESD-1 is no longer tripped")
	}
	if pl.coil(0) != 0 {
		t.Fatal("the valve moved")
	}

	os.Remove(filler)
	if out, err := ctl(t, cfg, "reset", "ESD-1"); err != nil {
		t.Fatalf("reset once the disk has room: %v %s", err, out)
	}
	waitStatus(t, sock, "ESD-1 reset", 10*time.Second, func(s collector.Status) bool { return !s.Interlocks[0].Tripped })
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	aout, err := exec.Command(collectorBin, "audit", "verify", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(aout), "intact") {
		t.Fatalf("audit verify after the full disk: %v %s", err, aout)
	}
	log, _ := os.ReadFile(filepath.Join(disk, "audit.log"))
	if n := strings.Count(string(log), `"category":"control","type":"reset","subject":"ESD-1","result":"ok"`); n != 1 {
		t.Fatalf("%d successful resets in the audit log, want 1:\n%s", n, log)
	}
	t.Logf("%s", strings.TrimSpace(string(aout)))
}

// TestAuditVerifyAcrossRotatedFiles: the real binary with 4 KiB audit
// files: refused acks fill several files; `audit verify` checks them all,
// also against the head the status published, and a removed middle file
// makes it fail and say what is missing.
func TestAuditVerifyAcrossRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	dead := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	cfg := writeFile(t, dir, "c.yaml", pointsConfig(startFastSlave(t), data, dead, 1, 1, 100*time.Millisecond, "")+
		"audit: {max_file_bytes: 4KiB, max_total_bytes: 1MiB}\n")
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	sock := filepath.Join(data, "control.sock")
	waitStatus(t, sock, "the collector up", 15*time.Second, func(s collector.Status) bool { return ticks(s) > 0 })
	for range 25 {
		if out, err := ctl(t, cfg, "ack", "U1-P000"); err == nil || !strings.Contains(out, "no unacknowledged alarm") {
			t.Fatalf("ack of a point without an alarm: %v %s", err, out)
		}
	}
	st := waitStatus(t, sock, "status", 5*time.Second, func(collector.Status) bool { return true })
	if st.Audit.Files < 3 || st.AuditHead == "" {
		t.Fatalf("status audit %+v head %q: want several files", st.Audit, st.AuditHead)
	}
	if err := coll.Stop(); err != nil {
		t.Fatal(err)
	}
	verify := func(args ...string) (string, error) {
		out, err := exec.Command(collectorBin, append([]string{"audit", "verify", "-c", cfg}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	out, err := verify()
	var files int
	if i := strings.Index(out, " in "); i > 0 {
		fmt.Sscanf(out[i:], " in %d files", &files)
	}
	if err != nil || !strings.Contains(out, "intact") || files < st.Audit.Files {
		t.Fatalf("audit verify: %v %s", err, out)
	}
	t.Log(out)
	if out, err := verify("--head", st.AuditHead); err != nil {
		t.Fatalf("audit verify against the published head: %v %s", err, out)
	}
	if out, err := verify("--head", strings.Repeat("0f", 32)); err == nil {
		t.Fatalf("a head that is not in the chain verified: %s", out)
	}
	rotated, _ := filepath.Glob(filepath.Join(data, "audit.log.0*"))
	os.Remove(rotated[len(rotated)/2])
	out, err = verify()
	if err == nil || !strings.Contains(out, "NOT intact") || !strings.Contains(out, "missing") {
		t.Fatalf("a removed middle file: %v %s", err, out)
	}
	t.Log(out)
}
