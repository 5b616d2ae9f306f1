package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestE2EMosquittoPymodbus: the collector started as a process with a
// config file polls a pymodbus slave and publishes to Mosquitto; a platform
// subscriber sees the slave's register values, converted.
func TestE2EMosquittoPymodbus(t *testing.T) {
	testpeer.NeedPymodbus(t)
	broker := testpeer.Mosquitto(t, false)
	port := testpeer.FreePort(t)
	dir := t.TempDir()
	man := filepath.Join(dir, "manifest.json")
	slave := testpeer.Start(t, testpeer.Python, testpeer.RepoFile("drivers/modbus/testdata/pyslave.py"), "--tcp", strconv.Itoa(port), "--units", "1", "--manifest", man)
	slave.WaitOutput(t, "pyslave: serving", 15*time.Second)
	var entries []struct {
		Table   string `json:"table"`
		Address int    `json:"address"`
		Type    string `json:"type"`
		Order   string `json:"order"`
		Bit     int    `json:"bit"`
		Value   any    `json:"value"`
	}
	b, _ := os.ReadFile(man)
	json.Unmarshal(b, &entries)
	// Pick one point of several types; expected values are the slave's own.
	type pick struct {
		code, typ, order, table string
		addr                    int
		scale, offset           float64
		want                    float64
	}
	var picks []pick
	seen := map[string]bool{}
	for _, e := range entries {
		key := e.Type + e.Order
		if seen[key] || e.Table != "holding" || e.Type == "string" || e.Type == "bool" || e.Type == "uint64" || e.Type == "int64" {
			continue
		}
		if e.Order != "ABCD" && e.Order != "CDAB" {
			continue
		}
		seen[key] = true
		v := e.Value.(float64)
		picks = append(picks, pick{fmt.Sprintf("P-%s-%s", e.Type, e.Order), e.Type, e.Order, e.Table, e.Address, 0.5, 10, v*0.5 + 10})
	}
	if len(picks) < 10 {
		t.Fatalf("only %d points picked from the slave's manifest", len(picks))
	}
	cfg := fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-E2E}
buses: [{name: plc, type: modbus-tcp, address: "127.0.0.1:%d"}]
devices: [{name: d1, bus: plc, unit: 1, timeout: 1s}]
buffer: {dir: %q}
uplink: {mqtt: {url: %q, heartbeat: 2s}}
points:
`, port, filepath.Join(dir, "data"), broker.URL())
	for _, p := range picks {
		cfg += fmt.Sprintf("  - {code: %s, kind: other, device: d1, interval: 200ms, scale: %g, offset: %g, unit: u, source: {table: %s, address: %d, type: %s, word_order: %s}}\n",
			p.code, p.scale, p.offset, p.table, p.addr, p.typ, p.order)
	}
	path := writeFile(t, dir, "collector.yaml", cfg)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-E2E/#", "platform-e2e", false)
	coll := testpeer.Start(t, collectorBin, "run", "-c", path)
	ms := sub.waitFor("readings of every point", 20*time.Second, func(ms []received) bool {
		got := map[string]bool{}
		for _, m := range ms {
			if topicIs("rt")(m) {
				for _, r := range m.Body["readings"].([]any) {
					got[r.(map[string]any)["point"].(string)] = true
				}
			}
		}
		return len(got) == len(picks)
	})
	last := map[string]map[string]any{}
	for _, m := range ms {
		if topicIs("rt")(m) {
			for _, r := range m.Body["readings"].([]any) {
				rr := r.(map[string]any)
				last[rr["point"].(string)] = rr
			}
		}
	}
	for _, p := range picks {
		r := last[p.code]
		if r["quality"] != "good" {
			t.Errorf("%s: quality %v", p.code, r["quality"])
			continue
		}
		got := r["value"].(float64)
		tol := 1e-9 * math.Max(1, math.Abs(p.want))
		if p.typ == "float32" {
			tol = 1e-6 * math.Max(1, math.Abs(p.want))
		}
		if math.Abs(got-p.want) > tol {
			t.Errorf("%s (%s %s at %d): published %v, slave holds raw %v -> want %v", p.code, p.typ, p.order, p.addr, got, (p.want-10)/0.5, p.want)
		}
	}
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly on SIGTERM: %v\n%s", err, coll.Output())
	}
	types := map[string]bool{}
	for _, p := range picks {
		types[p.typ] = true
	}
	t.Logf("%d points of %d data types in word orders ABCD and CDAB published with the slave's values", len(picks), len(types))
}
