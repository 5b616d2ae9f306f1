package main

import (
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestModbusServerDuringDemoLeak runs `edgecollector demo` with its control
// room server and reads the generated map with mbpoll while the scripted
// leak plays: GT-101's value agrees with the gas controller's raw register,
// then GT-101 shows HH, ESD-101 shows tripped, and a write is refused with
// exception 01. The map is the one `modbus-map` prints for the demo's points
// (GT-101 is point 6: registers 160-166, bits 1024-1027; ESD-101 bit 100).
func TestModbusServerDuringDemoLeak(t *testing.T) {
	testpeer.Need(t, "mbpoll")
	plc := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	gas := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	brk := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	mbs := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	demo := testpeer.Start(t, collectorBin, "demo", "--plc", plc, "--gas", gas, "--mqtt", brk, "--modbus-server", mbs,
		"--data", t.TempDir(), "--for", "90s", "--quiet")
	demo.WaitOutput(t, "control room: mbpoll", 10*time.Second)
	testpeer.WaitPort(t, mbs, 10*time.Second)

	if v := mbpoll(t, mbs, "-a", "1", "-t", "4", "-r", "1", "-c", "1"); v != 11 {
		t.Fatalf("register 1 (points in the map) = %v, want the demo's 11", v)
	}
	// Until the first poll the map holds no values (stale, not valid).
	deadline := time.Now().Add(15 * time.Second)
	for int(mbpoll(t, mbs, "-a", "1", "-t", "3", "-r", "165", "-c", "1"))&16 == 0 {
		if time.Now().After(deadline) {
			t.Fatal("GT-101's value-valid bit (register 165 bit 4) never set")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// GT-101 as the server gives it, against the gas controller's raw
	// counts (4000 + 160 x %LEL), read with mbpoll from the slave itself.
	// The demo holds values 5 s: a pair that straddles a step is retried.
	agreed := false
	for try := 0; try < 5 && !agreed; try++ {
		a := mbpoll(t, mbs, "-a", "1", "-t", "3:float", "-B", "-r", "160", "-c", "1")
		raw := mbpoll(t, gas, "-a", "1", "-t", "3", "-r", "0", "-c", "1")
		b := mbpoll(t, mbs, "-a", "1", "-t", "3:float", "-B", "-r", "160", "-c", "1")
		want := (raw - 4000) * 100 / 16000
		if a == b && math.Abs(a-want) < 1e-4 {
			t.Logf("GT-101: server %v %%LEL, slave raw %v = %v %%LEL", a, raw, want)
			agreed = true
		}
		time.Sleep(time.Second)
	}
	if !agreed {
		t.Fatal("GT-101's float32 in the map never agreed with the gas controller's raw register")
	}
	if q := mbpoll(t, mbs, "-a", "1", "-t", "3", "-r", "163", "-c", "1"); q != 0 {
		t.Fatalf("GT-101 quality code %v before the leak, want 0 (good)", q)
	}
	// The leak: GT-101 reaches HH, ESD-101 trips.
	deadline = time.Now().Add(75 * time.Second)
	for mbpoll(t, mbs, "-a", "1", "-t", "3", "-r", "164", "-c", "1") != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("GT-101's alarm level never read 4 (HH) during the leak; demo output:\n%s", demo.Output())
		}
		time.Sleep(500 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for mbpoll(t, mbs, "-a", "1", "-t", "1", "-r", "100", "-c", "1") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("ESD-101's tripped bit (discrete input 100) never read 1")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v := mbpoll(t, mbs, "-a", "1", "-t", "1", "-r", "1025", "-c", "1"); v != 1 {
		t.Fatalf("GT-101's level-2 bit (1025) = %v during HH", v)
	}
	if v := mbpoll(t, mbs, "-a", "1", "-t", "3", "-r", "6", "-c", "1"); v < 1 {
		t.Fatalf("register 6 (interlocks tripped) = %v after the trip", v)
	}
	// A write is refused with exception 01.
	i := strings.LastIndexByte(mbs, ':')
	out, err := exec.Command("mbpoll", "-m", "tcp", "-p", mbs[i+1:], "-0", "-1", "-o", "2", "-a", "1", "-t", "0", "-r", "100", mbs[:i], "0").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "illegal function") {
		t.Fatalf("mbpoll write to the control room server: %v\n%s", err, out)
	}
	if err := demo.Stop(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
}
