package modbusserver

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	smodbus "github.com/simonvetter/modbus"
	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEngine is a snapshot source whose state the test sets.
type fakeEngine struct {
	mu   sync.Mutex
	ps   []edge.PointStatus
	is   []edge.InterlockStatus
	n    int
	gate chan struct{} // when set, Snapshot blocks until it is closed
}

func (f *fakeEngine) Snapshot() ([]edge.PointStatus, []edge.InterlockStatus) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return append([]edge.PointStatus(nil), f.ps...), append([]edge.InterlockStatus(nil), f.is...)
}

func (f *fakeEngine) set(ps []edge.PointStatus, is []edge.InterlockStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ps, f.is = ps, is
}

const testConfig = `
gateway: {enterprise: E1, code: GW1}
buffer: {dir: /tmp/x}
uplink: {mqtt: {url: "tcp://127.0.0.1:1883"}}
buses: [{name: plc, type: modbus-tcp, address: "127.0.0.1:502"}]
devices: [{name: d, bus: plc, unit: 1}]
points:
  - {code: GT-1, kind: gas, device: d, source: {table: input, address: 0}, unit: "%LEL", range: [0, 100], gas: {type: combustible}, alarms: {H: 25, HH: 50}}
  - {code: PT-1, kind: pressure, device: d, source: {table: input, address: 1}, unit: MPa, range: [0, 1.6]}
  - {code: XV-1, kind: other, device: d, source: {table: coil, address: 0}}
  - {code: FT-1, kind: other, device: d, source: {table: input, address: 2}, unit: "m3/h", range: [-500, 500]}
interlocks:
  - {name: ESD-1, when: {inputs: [{point: GT-1, level: HH}]}, actions: [{device: d, table: coil, address: 0, value: 0}]}
  - {name: ESD-2, when: {inputs: [{point: GT-1, level: H}]}, actions: [{device: d, table: coil, address: 1, value: 0}]}
modbus_server: {listen: "127.0.0.1:1502", map: {scale: {FT-1: 10}}}
`

func testMap(t *testing.T) (*config.Config, *Map) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	m, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, m
}

func TestAutoScale(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		known  bool
		want   float64
	}{{0, 100, true, 100}, {0, 1.6, true, 10000}, {0, 25, true, 1000}, {-40, 120, true, 100}, {0, 100000, true, 0.1}, {0, 0, false, 1}, {0, 3.2767, true, 10000}} {
		if got := AutoScale(c.lo, c.hi, c.known); got != c.want {
			t.Errorf("AutoScale(%v, %v) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

// TestImage checks the words and bits the server builds for each state,
// against values written out by hand from the documented layout.
func TestImage(t *testing.T) {
	_, m := testMap(t)
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	s, err := New(Opts{Listen: ":0", Map: m, Source: &fakeEngine{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	img := s.build([]edge.PointStatus{
		{Code: "GT-1", Value: edge.Num(55.5), Quality: edge.Good, Alarm: edge.HH, Updated: now.Add(-3 * time.Second)},
		{Code: "PT-1", Quality: edge.CommFault, Updated: now.Add(-10 * time.Second)},
		{Code: "XV-1", Value: edge.BoolValue(true), Quality: edge.Maintenance, Updated: now.Add(-100000 * time.Second)},
		{Code: "FT-1", Value: edge.Num(-12345.6), Quality: edge.UnderRange, Alarm: edge.NoLevel, Updated: now},
	}, []edge.InterlockStatus{{Name: "ESD-1", Tripped: true}, {Name: "ESD-2", BypassUntil: now.Add(time.Hour)}})
	r := img.regs
	want := map[int]uint16{
		RegVersion: 1, RegPoints: 4, RegInterlocks: 2, RegHeartbeat: 1, RegTripped: 1, RegAlarms: 1, RegFaults: 3,
		RegTimeHi: uint16(now.Unix() >> 16), RegTimeLo: uint16(now.Unix()),
		// GT-1: 55.5 = 0x425E0000; x100 = 5550; good; HH (4); alarm|level2|valid; 3 s old
		100: 0x425E, 101: 0x0000, 102: 5550, 103: 0, 104: 4, 105: 0b10011, 106: 3,
		// PT-1: null: NaN 0x7FC00000, 0x8000; comm_fault (1); fault; 10 s
		110: 0x7FC0, 111: 0, 112: 0x8000, 113: 1, 114: 0, 115: 0b00100, 116: 10,
		// XV-1: true = 1.0 = 0x3F800000; int16 1; maintenance (7); fault|maintenance|valid; age capped
		120: 0x3F80, 121: 0, 122: 1, 123: 7, 124: 0, 125: 0b11100, 126: 65534,
		// FT-1: -12345.6 x 10 clamps to -32767 = 0x8001; under_range (5): fault|valid
		122 + 10: 0x8001, 133: 5, 135: 0b10100, 136: 0,
	}
	for a, w := range want {
		if r[a] != w {
			t.Errorf("register %d = %#04x, want %#04x", a, r[a], w)
		}
	}
	if f := math.Float32frombits(uint32(r[130])<<16 | uint32(r[131])); f != float32(-12345.6) {
		t.Errorf("FT-1 float %v", f)
	}
	bits := map[int]bool{BitAlive: true, BitAnyTripped: true, BitAnyLevel2: true, BitAnyFault: true, BitAnyBypassed: true,
		100: true, 101: false, 102: false, 103: true, // ESD-1 tripped, ESD-2 bypassed
		1000: true, 1001: true, 1002: false, 1003: false, // GT-1
		1004: false, 1006: true, // PT-1 fault
		1010: true, 1011: true, // XV-1 fault, maintenance
	}
	for a, w := range bits {
		if img.bits[a] != w {
			t.Errorf("bit %d = %v, want %v", a, img.bits[a], w)
		}
	}
	// A point not read yet is stale with no value, never "good".
	img2 := s.build([]edge.PointStatus{{Code: "GT-1", Quality: edge.Good}}, nil)
	if q, st, age := img2.regs[103], img2.regs[105], img2.regs[106]; q != 6 || st != StatusFault || age != 65535 || img2.regs[102] != 0x8000 {
		t.Errorf("GT-1 before its first reading: quality %d status %#x age %d int16 %#x", q, st, age, img2.regs[102])
	}
	if len(r) != 140 || len(img.bits) != 1016 {
		t.Errorf("image spans %d registers and %d bits, want 140 and 1016", len(r), len(img.bits))
	}
}

func startServer(t *testing.T, eng *fakeEngine) (*Server, string) {
	t.Helper()
	_, m := testMap(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	o := DefaultOpts()
	o.Listen, o.Map, o.Source, o.Refresh = addr, m, eng, 50*time.Millisecond
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testpeer.WaitPort(t, addr, 5*time.Second)
	return s, addr
}

// mbpoll runs mbpoll with args before the host and writes (values to
// write) after it.
func mbpoll(t *testing.T, addr string, args []string, writes ...string) (string, error) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	all := append([]string{"-m", "tcp", "-p", addr[i+1:], "-0", "-1", "-o", "2"}, args...)
	all = append(append(all, addr[:i]), writes...)
	out, err := exec.Command("mbpoll", all...).CombinedOutput()
	return string(out), err
}

var mbpollValues = regexp.MustCompile(`\[(\d+)\]:\s+(-?[0-9.eE+-]+|nan|-nan)`)

func mbpollRead(t *testing.T, addr string, args ...string) map[int]float64 {
	t.Helper()
	out, err := mbpoll(t, addr, args)
	ms := mbpollValues.FindAllStringSubmatch(out, -1)
	if err != nil || ms == nil {
		t.Fatalf("mbpoll %v: %v\n%s", args, err, out)
	}
	v := map[int]float64{}
	for _, m := range ms {
		a, _ := strconv.Atoi(m[1])
		f, _ := strconv.ParseFloat(strings.TrimPrefix(m[2], "-"), 64)
		if strings.HasPrefix(m[2], "-") && !strings.Contains(m[2], "nan") {
			f = -f
		}
		v[a] = f
	}
	return v
}

// TestMbpollReadsTheMap: the independent master reads the map as the docs
// describe it, sees a change within a refresh, and its writes are refused
// with exception 01.
func TestMbpollReadsTheMap(t *testing.T) {
	testpeer.Need(t, "mbpoll")
	eng := &fakeEngine{}
	now := time.Now()
	eng.set([]edge.PointStatus{
		{Code: "GT-1", Value: edge.Num(12.5), Quality: edge.Good, Updated: now},
		{Code: "PT-1", Value: edge.Num(0.8125), Quality: edge.Good, Updated: now},
	}, []edge.InterlockStatus{{Name: "ESD-1"}, {Name: "ESD-2"}})
	s, addr := startServer(t, eng)

	// float32 (ABCD: mbpoll -B), holding and input tables alike
	for _, tab := range []string{"4:float", "3:float"} {
		v := mbpollRead(t, addr, "-a", "1", "-t", tab, "-B", "-r", "100", "-c", "1")
		if v[100] != 12.5 {
			t.Fatalf("table %s: GT-1 float reads %v, want 12.5", tab, v)
		}
	}
	v := mbpollRead(t, addr, "-a", "1", "-t", "4", "-r", "112", "-c", "5")
	if v[112] != 8125 || v[113] != 0 || v[114] != 0 || v[115] != StatusValid {
		t.Fatalf("PT-1 int16/quality/level/status: %v", v)
	}
	v = mbpollRead(t, addr, "-a", "1", "-t", "1", "-r", "100", "-c", "4")
	if v[100] != 0 || v[102] != 0 {
		t.Fatalf("interlock bits before the trip: %v", v)
	}
	// The leak: GT-1 in HH, ESD-1 tripped.
	eng.set([]edge.PointStatus{
		{Code: "GT-1", Value: edge.Num(62), Quality: edge.Good, Alarm: edge.HH, Updated: time.Now()},
		{Code: "PT-1", Quality: edge.CommFault, Updated: time.Now()},
	}, []edge.InterlockStatus{{Name: "ESD-1", Tripped: true}, {Name: "ESD-2", Tripped: true}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		v = mbpollRead(t, addr, "-a", "1", "-t", "3", "-r", "102", "-c", "3")
		if v[104] == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GT-1's HH never showed: %v", v)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v[102] != 6200 || v[103] != 0 {
		t.Fatalf("GT-1 in HH: %v", v)
	}
	v = mbpollRead(t, addr, "-a", "1", "-t", "1", "-r", "100", "-c", "4")
	if v[100] != 1 || v[101] != 0 || v[102] != 1 {
		t.Fatalf("interlock bits after the trip: %v", v)
	}
	v = mbpollRead(t, addr, "-a", "1", "-t", "0", "-r", "1004", "-c", "4")
	if v[1004] != 0 || v[1006] != 1 {
		t.Fatalf("PT-1 bits (coils mirror the discrete inputs): %v", v)
	}
	v = mbpollRead(t, addr, "-a", "1", "-t", "4", "-r", "112", "-c", "2")
	if v[112] != 0x8000 || v[113] != 1 { // mbpoll shows registers unsigned: 32768 is int16 -32768
		t.Fatalf("PT-1 comm_fault: %v", v)
	}

	// Writes: a holding register and a coil, each refused with exception 01.
	for _, w := range [][]string{{"-t", "4", "-r", "112"}, {"-t", "0", "-r", "100"}} {
		out, err := mbpoll(t, addr, append([]string{"-a", "1"}, w...), "0")
		if err == nil || !strings.Contains(strings.ToLower(out), "illegal function") {
			t.Fatalf("mbpoll write %v: err %v, output:\n%s", w, err, out)
		}
	}
	if _, refused := s.Stats(); refused != 2 {
		t.Fatalf("%d writes refused, want 2", refused)
	}
	// Beyond the map: illegal data address; another unit: 0B.
	if out, err := mbpoll(t, addr, []string{"-a", "1", "-t", "4", "-r", "139", "-c", "2"}); err == nil || !strings.Contains(strings.ToLower(out), "illegal data address") {
		t.Fatalf("read past the map: %v\n%s", err, out)
	}
	if out, err := mbpoll(t, addr, []string{"-a", "7", "-t", "4", "-r", "0", "-c", "1"}); err == nil {
		t.Fatalf("unit 7 answered:\n%s", out)
	}
}

// TestRequestsNeverWaitOnTheEngine: while the engine's snapshot is held
// (its lock busy in the poll path), requests are still answered from the
// last image at once.
func TestRequestsNeverWaitOnTheEngine(t *testing.T) {
	testpeer.Need(t, "mbpoll")
	eng := &fakeEngine{}
	eng.set([]edge.PointStatus{{Code: "GT-1", Value: edge.Num(12.5), Quality: edge.Good, Updated: time.Now()}}, nil)
	_, addr := startServer(t, eng)
	gate := make(chan struct{})
	eng.mu.Lock()
	eng.gate = gate
	eng.mu.Unlock()
	defer close(gate)
	start := time.Now()
	v := mbpollRead(t, addr, "-a", "1", "-t", "4:float", "-B", "-r", "100", "-c", "1")
	if v[100] != 12.5 {
		t.Fatalf("GT-1 reads %v while the engine is busy", v)
	}
	t.Logf("answered in %s with the engine's snapshot blocked", time.Since(start))
}

// TestCommand: modbus-map prints the map of a config's points, with the
// configured scale, and refuses a bad config with exit 2.
func TestCommand(t *testing.T) {
	dir := t.TempDir()
	good := dir + "/c.yaml"
	if err := os.WriteFile(good, []byte(testConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := Command([]string{"-c", good}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"holding+input  130      2      float32 ABCD  FT-1     value in m3/h (NaN when null)",
		"holding+input  132      1      int16         FT-1     value x 10 in m3/h (-32768 when null)",
		"holding+input  112      1      int16         PT-1     value x 10000 in MPa",
		"discrete+coil  102      1      bool          ESD-2    tripped",
		"discrete+coil  1006     1      bool          PT-1     fault",
		"# modbus_server on 127.0.0.1:1502, unit 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("map lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := Command([]string{"-c", good, "-format", "csv"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "holding+input,100,2,float32 ABCD,GT-1,\"value in %LEL (NaN when null)\"") {
		t.Fatalf("csv: exit %d\n%s", code, out.String())
	}
	bad := dir + "/bad.yaml"
	os.WriteFile(bad, []byte(strings.Replace(testConfig, "scale: {FT-1: 10}", "points: [NOPE]", 1)), 0o644)
	errb.Reset()
	if code := Command([]string{"-c", bad}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `modbus_server.map.points[0]: no point "NOPE"`) {
		t.Fatalf("bad config: exit %d: %s", code, errb.String())
	}
}

// TestHandlerBounds: requests at the end of the address space, past the
// map or for another unit get exceptions, never a panic or a short answer.
func TestHandlerBounds(t *testing.T) {
	_, m := testMap(t)
	s, err := New(Opts{Listen: ":0", Map: m, Source: &fakeEngine{}})
	if err != nil {
		t.Fatal(err)
	}
	s.refresh()
	h := &handler{s}
	for _, c := range []struct {
		unit      uint8
		addr, qty uint16
		ok        bool
	}{{1, 0, 140, true}, {1, 139, 1, true}, {1, 139, 2, false}, {1, 65535, 125, false}, {1, 65535, 1, false}, {2, 0, 1, false}} {
		regs, err := h.HandleInputRegisters(&smodbus.InputRegistersRequest{UnitId: c.unit, Addr: c.addr, Quantity: c.qty})
		if (err == nil) != c.ok || (c.ok && len(regs) != int(c.qty)) {
			t.Errorf("registers unit %d %d+%d: %d words, %v", c.unit, c.addr, c.qty, len(regs), err)
		}
		ba := c.addr + 900 // wraps at the end of the address space
		bits, err := h.HandleDiscreteInputs(&smodbus.DiscreteInputsRequest{UnitId: c.unit, Addr: ba, Quantity: c.qty})
		if want := c.unit == 1 && int(ba)+int(c.qty) <= 1016; (err == nil) != want || (want && len(bits) != int(c.qty)) {
			t.Errorf("bits unit %d %d+%d: %d bits, %v", c.unit, ba, c.qty, len(bits), err)
		}
	}
	if _, err := h.HandleHoldingRegisters(&smodbus.HoldingRegistersRequest{UnitId: 1, Addr: 100, Quantity: 1, IsWrite: true, Args: []uint16{1}}); err != smodbus.ErrIllegalFunction {
		t.Errorf("write: %v", err)
	}
}
