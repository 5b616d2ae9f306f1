package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/uplink/hj212"
)

// TestHJ212AndMQTTTogether runs the binary with both uplinks: the HJ 212
// platform (a TCP server in the test) receives CN 2011 packets with the
// configured factor codes and acknowledges them with 9014, while the MQTT
// platform receives the same readings; each uplink keeps its own
// acknowledgements.
func TestHJ212AndMQTTTogether(t *testing.T) {
	broker := testpeer.Mosquitto(t, false)
	slave := startFastSlave(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []hj212.Packet
	var wg sync.WaitGroup
	defer wg.Wait() // after the listener is closed (defers run last first)
	defer l.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fo := hj212.FrameOpts{}
				r := hj212.NewReader(c, fo)
				for {
					p, _, err := r.Next()
					if err != nil {
						return
					}
					mu.Lock()
					got = append(got, p)
					mu.Unlock()
					if p.CN == "2011" || p.CN == "2051" || p.CN == "2061" {
						a := hj212.Packet{QN: p.QN, ST: hj212.STInteraction, CN: hj212.CNDataAck, PW: p.PW, MN: p.MN, Flag: hj212.MakeFlag(hj212.V2017, false, false)}
						b, _ := hj212.Encode(a, fo)
						c.Write(b)
					}
				}
			}()
		}
	}()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-HJ}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: d1, bus: plc, unit: 1}]
points:
  - {code: GT-1, kind: other, device: d1, interval: 300ms, unit: "%%LEL", source: {table: holding, address: 0}, hj212: {factor: a99001}}
  - {code: PT-1, kind: other, device: d1, interval: 500ms, unit: kPa, scale: 0.1, source: {table: holding, address: 1}, hj212: {factor: a99002}}
buffer: {dir: %q}
uplink:
  mqtt: {url: %q}
  hj212: {address: %q, mn: "010000A8900016F000169DC0", overtime: 2s}
`, slave, filepath.Join(dir, "data"), broker.URL(), l.Addr().String())
	path := writeFile(t, dir, "c.yaml", cfg)
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-HJ/rt", "platform-hj-mqtt", false)
	coll := testpeer.Start(t, collectorBin, "run", "-c", path)
	// One 2011 per rtd_interval (30 s, the shortest allowed), aligned to
	// the boundary, with every factor: two boundaries take at most 60 s.
	deadline := time.Now().Add(75 * time.Second)
	for {
		mu.Lock()
		n := 0
		for _, p := range got {
			if p.CN == "2011" {
				n++
			}
		}
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the HJ 212 platform received %d real-time packets in 75 s\n%s", n, coll.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	sub.waitFor("MQTT readings", 10*time.Second, func(ms []received) bool { return len(ms) >= 5 })
	mu.Lock()
	p := got[len(got)-1]
	for _, q := range got {
		if q.CN == "2011" {
			p = q
		}
	}
	mu.Unlock()
	if p.MN != "010000A8900016F000169DC0" || p.ST != "32" || !strings.Contains(p.CP, "a99001-Rtd=") || !strings.Contains(p.CP, "a99002-Flag=N") || !strings.Contains(p.CP, "DataTime=") {
		t.Fatalf("real-time packet: %+v", p)
	}
	// DataTime is the boundary: hh:mm:00 or hh:mm:30; and both factors are
	// in the one packet (the two points are in different poll groups).
	mu.Lock()
	var times []string
	for _, q := range got {
		if q.CN == "2011" {
			i := strings.Index(q.CP, "DataTime=")
			dt := q.CP[i+9 : i+23]
			if s := dt[12:]; s != "00" && s != "30" {
				t.Errorf("2011 DataTime %s is not on a 30 s boundary", dt)
			}
			if !strings.Contains(q.CP, "a99001-") || !strings.Contains(q.CP, "a99002-") {
				t.Errorf("2011 packet without every factor: %s", q.CP)
			}
			for _, x := range times {
				if x == dt {
					t.Errorf("two 2011 packets for DataTime %s", dt)
				}
			}
			times = append(times, dt)
		}
	}
	mu.Unlock()
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	t.Logf("CN 2011 CP: %s", p.CP)
}
