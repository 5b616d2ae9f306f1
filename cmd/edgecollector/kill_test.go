package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// startFastSlave is a slave whose holding registers change every
// millisecond.
func startFastSlave(t *testing.T) string { return testpeer.StartMovingSlave(t, 16, time.Millisecond) }

// pointsConfig is a collector config polling units x n points every interval.
func pointsConfig(slave, dataDir, mqttURL string, units, n int, interval time.Duration, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {enterprise: \"91320500TEST\", code: GW-T}\nbuses: [{name: plc, type: modbus-tcp, address: %q}]\ndevices:\n", slave)
	for u := 1; u <= units; u++ {
		fmt.Fprintf(&b, "  - {name: u%d, bus: plc, unit: %d, timeout: 1s}\n", u, u)
	}
	fmt.Fprintf(&b, "buffer: {dir: %q}\nuplink:\n  mqtt: {url: %q, heartbeat: 2s%s}\nlog: {level: warn}\npoints:\n", dataDir, mqttURL, extra)
	for u := 1; u <= units; u++ {
		for a := 0; a < n; a++ {
			fmt.Fprintf(&b, "  - {code: U%d-P%03d, kind: other, device: u%d, interval: %s, source: {table: holding, address: %d}}\n", u, a, u, interval, a)
		}
	}
	return b.String()
}

func appendedSeqs(out string) []uint64 {
	var seqs []uint64
	for _, l := range testpeer.Lines(out) {
		if s, ok := strings.CutPrefix(l, "appended "); ok {
			if n, err := strconv.ParseUint(s, 10, 64); err == nil {
				seqs = append(seqs, n)
			}
		}
	}
	return seqs
}

// TestKill9DuringAppends kills the collector with SIGKILL at random moments
// of heavy appending, 24 times. Every seq it reported as appended must be in
// the buffer afterwards, and every run's seqs must continue above all
// earlier ones.
func TestKill9DuringAppends(t *testing.T) {
	slave := startFastSlave(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// The uplink points at a closed port: nothing is ever acknowledged, so
	// every appended message must still be there.
	closed := testpeer.FreePort(t)
	cfg := writeFile(t, dir, "c.yaml", pointsConfig(slave, data, fmt.Sprintf("tcp://127.0.0.1:%d", closed), 4, 100, 20*time.Millisecond, ""))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	reported := map[uint64]bool{}
	var highest uint64
	const kills = 24
	for run := 1; run <= kills; run++ {
		p := testpeer.Start(t, collectorBin, "run", "-c", cfg, "--print-appended")
		p.WaitOutput(t, "appended ", 20*time.Second)
		time.Sleep(time.Duration(100+rng.IntN(900)) * time.Millisecond)
		p.Signal(syscall.SIGKILL)
		p.Wait(10 * time.Second)
		seqs := appendedSeqs(p.Output())
		if len(seqs) == 0 {
			t.Fatalf("run %d reported nothing:\n%s", run, p.Output())
		}
		if seqs[0] <= highest {
			t.Fatalf("run %d: first seq %d is not above the highest before the kill, %d", run, seqs[0], highest)
		}
		for i, s := range seqs {
			if i > 0 && s <= seqs[i-1] {
				t.Fatalf("run %d: seq %d after %d: not strictly increasing", run, s, seqs[i-1])
			}
			reported[s] = true
		}
		highest = seqs[len(seqs)-1]
		t.Logf("run %d: killed after %d appended messages (seq %d-%d)", run, len(seqs), seqs[0], highest)
	}
	store, err := buffer.OpenBadger(context.Background(), buffer.BadgerOpts{Dir: data, Opts: buffer.Opts{Uplinks: []string{"mqtt"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	present := map[uint64]bool{}
	var from uint64
	for {
		ms, err := store.Unacked("mqtt", from, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			break
		}
		for _, m := range ms {
			present[m.Seq] = true
		}
		from = ms[len(ms)-1].Seq + 1
	}
	var lost []uint64
	for s := range reported {
		if !present[s] {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d of %d appended seqs are missing after %d kills, e.g. %v", len(lost), len(reported), kills, lost[:min(10, len(lost))])
	}
	if store.LastSeq() < highest {
		t.Fatalf("the buffer's last seq %d is below the highest reported %d", store.LastSeq(), highest)
	}
	t.Logf("%d kills: all %d reported seqs present (%d messages stored, last seq %d)", kills, len(reported), len(present), store.LastSeq())
}
