//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestIdleConnectionsCannotStopPolling: a local user opens far more idle
// connections to the control socket and to the loopback status port than
// the collector has file descriptors (RLIMIT_NOFILE 256 on the real
// binary). The collector keeps running and polling throughout (messages
// keep being appended), caps both listeners, and answers status on both
// once the connections close.
func TestIdleConnectionsCannotStopPolling(t *testing.T) {
	const limit, flood = 256, 600
	slave := startFastSlave(t)
	dir := t.TempDir()
	statusPort := testpeer.FreePort(t)
	cfg := writeFile(t, dir, "c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-FD}
buses: [{name: plc, type: modbus-tcp, address: %q}]
devices: [{name: u1, bus: plc, unit: 1}]
points:
  - {code: P-1, kind: other, device: u1, interval: 100ms, source: {table: holding, address: 0}}
buffer: {dir: %q}
uplink: {mqtt: {url: "tcp://127.0.0.1:%d"}}
status: {listen: ":%d"}
log: {level: warn}
`, slave, filepath.Join(dir, "data"), testpeer.FreePort(t), statusPort))
	sock := filepath.Join(dir, "data", "control.sock")
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg, "--print-appended")
	pid := coll.Cmd.Process.Pid
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Fatalf("prlimit the collector to %d file descriptors: %v", limit, err)
	}
	waitCLIStatus(t, sock, "P-1 polled", 15*time.Second, func(st collector.Status) bool { return pointPolled(st, "P-1") })
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	t.Logf("collector running with %d file descriptors open, limit %d", len(fds), limit)

	appended := func() int { return len(appendedSeqs(coll.Output())) }
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialErrs := 0
	for i := 0; i < flood; i++ {
		for _, target := range [][2]string{{"unix", sock}, {"tcp", fmt.Sprintf("127.0.0.1:%d", statusPort)}} {
			c, err := net.DialTimeout(target[0], target[1], 5*time.Second)
			if err != nil {
				dialErrs++
				continue
			}
			conns = append(conns, c)
		}
		if coll.Exited() {
			t.Fatalf("the collector exited after %d connections:\n%s", len(conns), coll.Output())
		}
	}
	t.Logf("%d idle connections held (%d dials failed)", len(conns), dialErrs)
	// Polling goes on while they are held: more messages are appended.
	before := appended()
	deadline := time.Now().Add(20 * time.Second)
	for appended() < before+10 {
		if coll.Exited() {
			t.Fatalf("the collector exited while the connections were held:\n%s", coll.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("polling stopped while %d idle connections were held: %d messages appended before, %d after 20 s", len(conns), before, appended())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	st := waitCLIStatus(t, sock, "status over the control socket after the flood", 30*time.Second, func(collector.Status) bool { return true })
	var rejected uint64
	for _, l := range st.Listeners {
		t.Logf("listener %+v", l)
		rejected += l.Rejected
	}
	if rejected == 0 {
		t.Errorf("no connection was refused beyond the caps: %+v", st.Listeners)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/status", statusPort))
	if err != nil {
		t.Fatalf("the status port does not answer after the flood: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /status: %d", resp.StatusCode)
	}
	after := appended()
	waitCLIStatus(t, sock, "polling after the flood", 20*time.Second, func(collector.Status) bool { return appended() > after+5 })
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
}
