package collector

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
	"github.com/hazwatch/edgecollector/internal/uplinkschema"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*Cache[...]).processItems"),
		goleak.IgnoreAnyFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/simonvetter/modbus.(*ModbusServer).handleTransport"),
	)
}

// events records the events of every appended message.
type events struct {
	mu  sync.Mutex
	evs []edge.Event
}

func (e *events) batch(ms []*edge.Message, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range ms {
		e.evs = append(e.evs, m.Events...)
	}
}

func (e *events) count(typ edge.EventType, state string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Type == typ && ev.State == state {
			n++
		}
	}
	return n
}

// TestHeartbeat: the heartbeat names the running config by the SHA-256 of
// its file, the tripped interlock and the buffer's state, and validates
// against the published schema.
func TestHeartbeat(t *testing.T) {
	path := plantConfig(t, startSlave(t, &plantSlave{gas: 600}), "50", "")
	r := runCollector(t, path, Deps{})
	tripped(t, r.Collector)
	hb := r.heartbeat("mqtt")
	raw, _ := os.ReadFile(path)
	sum := sha256.Sum256(raw)
	if want := hex.EncodeToString(sum[:]); hb.ConfigSHA256 != want {
		t.Errorf("heartbeat config_sha256 %q, the file's is %q", hb.ConfigSHA256, want)
	}
	if len(hb.Tripped) != 1 || hb.Tripped[0] != "ESD-1" || len(hb.Bypassed) != 0 {
		t.Errorf("heartbeat tripped %v bypassed %v, want [ESD-1] []", hb.Tripped, hb.Bypassed)
	}
	if hb.LastSeq == 0 || !hb.Durable || hb.Backlog == 0 {
		t.Errorf("heartbeat buffer: last_seq %d durable %v backlog %d (the broker is down: the backlog grows)", hb.LastSeq, hb.Durable, hb.Backlog)
	}
	if hb.AuditHead == "" {
		t.Error("heartbeat without the audit head")
	}
	body := r.enc.Online(time.Now(), hb)
	if err := uplinkschema.Validate("status", body); err != nil {
		t.Errorf("heartbeat does not validate: %v\n%s", err, body)
	}
	if err := r.Bypass("ESD-1", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	if hb := r.heartbeat("hj212"); len(hb.Bypassed) != 1 || hb.Bypassed[0] != "ESD-1" {
		t.Errorf("bypassed %v, want [ESD-1]", hb.Bypassed)
	}
}

// TestReload: a broken file is rejected (config_rejected event) and the
// running config stays; a reload that would change a tripped interlock is
// refused naming it; a good one ends Run with the next config, and a
// collector built on it adopts the interlock's latch.
func TestReload(t *testing.T) {
	slave := &plantSlave{gas: 100}
	addr := startSlave(t, slave)
	path := plantConfig(t, addr, "50", "")
	good, _ := os.ReadFile(path)
	var evs events
	r := runCollector(t, path, Deps{OnAppendBatch: evs.batch})
	testpeer.Eventually(t, 10*time.Second, "config_loaded", func() bool { return evs.count(edge.EventSystem, edge.StateConfigLoaded) == 1 })

	os.WriteFile(path, []byte(strings.Replace(string(good), "interval: 100ms", "intervall: 100ms", 1)), 0o644)
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("broken config: %v, want a rejection naming the bad key", err)
	}
	testpeer.Eventually(t, 10*time.Second, "config_rejected", func() bool { return evs.count(edge.EventSystem, edge.StateConfigRejected) == 1 })
	if r.Next() != nil {
		t.Fatal("a rejected config was taken")
	}

	slave.set(600) // trip
	testpeer.Eventually(t, 10*time.Second, "the trip", func() bool { st := r.Status(); return st.Interlocks[0].Tripped })
	os.WriteFile(path, []byte(strings.Replace(string(good), "value: 0}", "value: 0, retries: 3}", 1)), 0o644)
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), `interlock "ESD-1" is tripped`) {
		t.Fatalf("reload changing a tripped interlock: %v", err)
	}
	ans := r.Control(context.Background(), Request{Cmd: "reload"}, "test")
	if ans.OK || !strings.Contains(ans.Error, "ESD-1") {
		t.Fatalf("control reload while tripped: %+v", ans)
	}
	select {
	case err := <-r.done:
		t.Fatalf("a refused reload ended Run: %v", err)
	default:
	}

	// One more point, the interlock unchanged: taken.
	os.WriteFile(path, []byte(strings.Replace(string(good), "interlocks:", "  - {code: GT-3, kind: gas, device: gas, interval: 100ms, unit: \"%LEL\", gas: {type: combustible}, source: {table: holding, address: 1}, hj212: {factor: a99003}}\ninterlocks:", 1)), 0o644)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		close(r.done)
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an accepted reload did not end Run")
	}
	next := r.Next()
	if next == nil || next.Point("GT-3") == nil {
		t.Fatalf("Next: %v", next)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c2, err := New(ctx, next, Deps{Prev: r.Collector, Logger: r.log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c2.Run(ctx) }()
	st := c2.Status()
	if !st.Interlocks[0].Tripped || len(st.Points) != 3 {
		t.Errorf("after the reload: tripped %v, %d points; want the latch kept and 3 points", st.Interlocks[0].Tripped, len(st.Points))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func (s *plantSlave) set(gas uint16) {
	s.mu.Lock()
	s.gas = gas
	s.mu.Unlock()
}

// TestMetrics: /metrics is Prometheus text that Debian's
// python3-prometheus-client parses, with the series each component reports
// on itself and the labels DESIGN.md names.
func TestMetrics(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import prometheus_client.parser").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and python3-prometheus-client is missing")
		}
		t.Skip("python3-prometheus-client is not installed (apt-get install -y python3-prometheus-client)")
	}
	r := runCollector(t, plantConfig(t, startSlave(t, &plantSlave{gas: 600}), "50", ""), Deps{})
	tripped(t, r.Collector)
	testpeer.Eventually(t, 10*time.Second, "a few ticks", func() bool { return r.Status().Groups[0].Ticks >= 3 })
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command(py, "-c", `import sys, json
from prometheus_client.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        print(json.dumps({"family": f.name, "type": f.type, "name": s.name, "labels": s.labels, "value": s.value}))
`)
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Prometheus parser refuses /metrics: %v\n%s\n%s", err, out, body)
	}
	type sample struct {
		Family, Type, Name string
		Labels             map[string]string
		Value              float64
	}
	var samples []sample
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s sample
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		samples = append(samples, s)
	}
	find := func(name string, labels map[string]string) *sample {
		for i, s := range samples {
			if s.Name != name {
				continue
			}
			ok := true
			for k, v := range labels {
				if s.Labels[k] != v {
					ok = false
				}
			}
			if ok && len(s.Labels) == len(labels) {
				return &samples[i]
			}
		}
		return nil
	}
	g := map[string]string{"group": "plc@100ms"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		check  func(float64) bool
	}{
		{"edgecollector_interlock_tripped", map[string]string{"interlock": "ESD-1"}, func(v float64) bool { return v == 1 }},
		{"edgecollector_point_good", map[string]string{"point": "GT-1"}, func(v float64) bool { return v == 1 }},
		{"edgecollector_point_good", map[string]string{"point": "GT-2"}, func(v float64) bool { return v == 0 }},
		{"edgecollector_buffer_durable", nil, func(v float64) bool { return v == 1 }},
		{"edgecollector_buffer_dropped_total", nil, func(v float64) bool { return v == 0 }},
		{"edgecollector_last_seq", nil, func(v float64) bool { return v > 0 }},
		{"edgecollector_uplink_backlog", map[string]string{"uplink": "mqtt"}, func(v float64) bool { return v > 0 }},
		{"edgecollector_uplink_connected", map[string]string{"uplink": "hj212"}, func(v float64) bool { return v == 0 }},
		{"edgecollector_group_ticks_total", g, func(v float64) bool { return v >= 3 }},
		{"edgecollector_group_overruns_total", g, func(v float64) bool { return v >= 0 }},
		{"edgecollector_group_tick_seconds_count", g, func(v float64) bool { return v >= 3 }},
		{"edgecollector_group_tick_seconds_sum", g, func(v float64) bool { return v > 0 }},
		{"edgecollector_device_reads_total", map[string]string{"device": "gas", "group": "plc@100ms"}, func(v float64) bool { return v >= 3 }},
		{"edgecollector_device_read_failures_total", map[string]string{"device": "gas", "group": "plc@100ms"}, func(v float64) bool { return v == 0 }},
		{"edgecollector_device_read_failures_total", map[string]string{"device": "lost", "group": "gone@100ms"}, func(v float64) bool { return v >= 1 }},
		{"edgecollector_device_last_success_timestamp_seconds", map[string]string{"device": "gas", "group": "plc@100ms"}, func(v float64) bool {
			return v > float64(time.Now().Add(-time.Minute).Unix())
		}},
		{"edgecollector_device_last_success_timestamp_seconds", map[string]string{"device": "lost", "group": "gone@100ms"}, func(v float64) bool { return v == 0 }},
		{"edgecollector_device_requests_total", map[string]string{"device": "gas"}, func(v float64) bool { return v >= 3 }},
		{"edgecollector_listener_rejected_total", map[string]string{"listener": "status"}, nil},
	} {
		s := find(c.name, c.labels)
		if s == nil {
			if c.check != nil {
				t.Errorf("no sample %s%v", c.name, c.labels)
			}
			continue
		}
		if c.check == nil {
			t.Errorf("sample %s%v exists without a status listener", c.name, c.labels)
		} else if !c.check(s.Value) {
			t.Errorf("%s%v = %v", c.name, c.labels, s.Value)
		}
	}
	if find("go_goroutines", nil) == nil {
		t.Error("no Go runtime metrics")
	}
	t.Logf("%d samples parsed", len(samples))
}

// TestServicesAreSupervised: a service that fails and one that panics are
// restarted with back-off; polling and the interlock go on meanwhile and
// Run ends only when asked.
func TestServicesAreSupervised(t *testing.T) {
	var fails, panics atomic.Int64
	svcs := []Service{
		{Name: "failing", Run: func(ctx context.Context) error { fails.Add(1); return errors.New("boom") }},
		{Name: "panicking", Run: func(ctx context.Context) error { panics.Add(1); panic("bad") }},
	}
	slave := &plantSlave{gas: 100}
	r := runCollector(t, plantConfig(t, startSlave(t, slave), "50", ""), Deps{}, svcs...)
	testpeer.Eventually(t, 30*time.Second, "three restarts of each", func() bool { return fails.Load() >= 3 && panics.Load() >= 3 })
	before := r.Status().Groups[0].Ticks
	slave.set(600)
	testpeer.Eventually(t, 10*time.Second, "the trip while services fail", func() bool { return r.Status().Interlocks[0].Tripped })
	testpeer.Eventually(t, 10*time.Second, "polling goes on", func() bool { return r.Status().Groups[0].Ticks > before+5 })
	st := r.Status()
	for _, s := range st.Services {
		if (s.Service == "failing" && !strings.Contains(s.LastError, "boom")) || (s.Service == "panicking" && !strings.Contains(s.LastError, "panic: bad")) {
			t.Errorf("service status %+v", s)
		}
	}
	if len(st.Services) != 2 {
		t.Errorf("services in status: %+v", st.Services)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// flakyListener fails Accept with a temporary error (as when the process
// has no file descriptor left) a number of times, then accepts.
type flakyListener struct {
	net.Listener
	fails atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeConnsSurvivesAcceptErrors: EMFILE on accept is retried after a
// back-off, never fatal, and connections beyond the cap are closed at once
// while the ones within it are served.
func TestServeConnsSurvivesAcceptErrors(t *testing.T) {
	r := runCollector(t, plantConfig(t, startSlave(t, &plantSlave{gas: 100}), "50", ""), Deps{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner}
	fl.fails.Store(10) // about 3 s of back-off
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	served := make(chan error, 1)
	var handled atomic.Int64
	go func() {
		served <- r.ServeConns(ctx, fl, "test", 4, time.Minute, func(ctx context.Context, c net.Conn) {
			handled.Add(1)
			c.Write([]byte("hi\n"))
			select {
			case <-release:
			case <-ctx.Done():
			}
		})
	}()
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		buf := make([]byte, 3)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatalf("a connection within the cap was not served: %v", err)
		}
	}
	// The fifth is closed at once.
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 3)); err == nil {
		t.Fatalf("a connection beyond the cap was served (%d bytes)", n)
	}
	c.Close()
	var ls ListenerStatus
	for _, l := range r.Status().Listeners {
		if l.Listener == "test" {
			ls = l
		}
	}
	if ls.AcceptErrors != 10 || ls.Rejected != 1 || ls.Active != 4 || ls.Accepted != 4 {
		t.Errorf("listener status %+v, want 10 accept errors, 1 rejected, 4 active", ls)
	}
	close(release)
	for _, c := range conns {
		c.Close()
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("ServeConns: %v", err)
	}
	if handled.Load() != 4 {
		t.Errorf("%d handled", handled.Load())
	}
}

// TestReloadAnswerGoesOut: a reload asked over a served connection ends
// Run, and the answer still reaches the client (connections get a second
// to finish when the collector stops).
func TestReloadAnswerGoesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var r *running
	svc := Service{Name: "test", Run: func(ctx context.Context) error {
		return r.ServeConns(ctx, l, "test", 4, time.Minute, func(ctx context.Context, c net.Conn) {
			err := r.Reload()
			time.Sleep(200 * time.Millisecond) // the collector is shutting down meanwhile
			fmt.Fprintf(c, "reload: %v\n", err)
		})
	}}
	path := plantConfig(t, startSlave(t, &plantSlave{gas: 100}), "50", "")
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := New(ctx, cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	r = &running{Collector: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, svc) }()
	// A change of a section the collector is built on (log) restarts it: the
	// answer must still go out while it stops.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("log: {level: debug}\n")
	f.Close()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(conn)
	if string(b) != "reload: <nil>\n" {
		t.Fatalf("answer %q (%v), want the reload's", b, err)
	}
	if err := <-r.done; err != nil || c.Next() == nil {
		t.Fatalf("Run: %v, next %v", err, c.Next())
	}
}
