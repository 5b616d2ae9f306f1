package edge

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDiagnostics: an ADAM-6217 channel reads raw 0 (4.0 mA, "good 0")
// while its status word says open circuit (bit 3); a Midas detector's
// state nibble 2-4 is warm-up/inhibit (maintenance). The most severe
// condition that holds sets the quality and names the fault; interlock
// voting treats it like any fault.
func TestDiagnostics(t *testing.T) {
	pc := PointConf{Code: "GT-1", Unit: "%LEL", Scale: 16.0 / 65535, Offset: 4, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true,
		Alarms: &Limits{HH: f(50)},
		Diagnostics: []DiagConf{
			{Name: "open_circuit", Bit: 3, Quality: SensorFault},
			{Name: "warm_up", Bit: -1, Mask: 0x000F, In: []uint16{2, 3, 4}, Quality: Maintenance},
		}}
	cases := []struct {
		name  string
		raw   Raw
		wantQ Quality
		wantV Value
		fault string
	}{
		{"healthy", Raw{Value: Num(32768), Diag: []uint16{0, 1}}, Good, Num(50.0008), ""},
		{"open circuit", Raw{Value: Num(0), Diag: []uint16{0b1000, 1}}, SensorFault, Value{}, "open_circuit"},
		{"warm-up carries the value", Raw{Value: Num(0), Diag: []uint16{0, 2}}, Maintenance, Num(0), "warm_up"},
		{"both: the worse wins", Raw{Value: Num(0), Diag: []uint16{0b1000, 3}}, SensorFault, Value{}, "open_circuit"},
		{"status word unreadable", Raw{Value: Num(0), DiagErr: errors.New(`diagnostic register holding 106 uint16: exception 2`), DiagQuality: Exception}, Exception, Value{}, "holding 106"},
		{"driver error", Raw{Quality: CommFault, Err: errors.New(`bus "rs485-1" unit 3: read holding 100+8: timeout`)}, CommFault, Value{}, "unit 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, q := pc.Convert(&c.raw, false)
			v, q, fault := pc.diagnose(&c.raw, v, q)
			if q != c.wantQ || (c.wantV.Kind == Number && (v.Kind != Number || v.Num-c.wantV.Num > 0.001 || c.wantV.Num-v.Num > 0.001)) || (c.wantV.IsNull() && !v.IsNull()) {
				t.Fatalf("got %v %s, want %v %s", v, q, c.wantV, c.wantQ)
			}
			if !strings.Contains(fault, c.fault) || (c.fault == "" && fault != "") {
				t.Fatalf("fault %q, want %q", fault, c.fault)
			}
		})
	}
	// In an interlock, the open circuit votes trip (fail-safe) and the
	// fault event names the condition.
	out := &fakeOutput{coils: map[uint16]float64{0: 1}}
	e, err := NewEngine(EngineOpts{Points: []PointConf{pc},
		Interlocks: []InterlockConf{{Name: "ESD", Need: 1, Latch: true, Inputs: []InputConf{{"GT-1", HH}},
			Actions: []ActionConf{{Device: "v", Writer: out, Table: OutputCoil, Value: 0, Verify: true}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rs, evs := e.Tick(context.Background(), nil, time.Now(), []int{0}, []Raw{{Value: Num(0), Diag: []uint16{0b1000, 1}}})
	if rs[0].Quality != SensorFault || rs[0].Fault != "open_circuit" {
		t.Fatalf("reading %+v", rs[0])
	}
	var fault, tripped bool
	for _, ev := range evs {
		fault = fault || ev.Type == EventFault && strings.Contains(ev.Message, "open_circuit")
		tripped = tripped || ev.State == StateTripped
	}
	if !fault || !tripped || out.coils[0] != 0 {
		t.Fatalf("open circuit in an interlock: events %+v", evs)
	}
}

// TestBitFieldStates: a state field maps to its name; an unmapped state
// is reported as its number.
func TestBitFieldStates(t *testing.T) {
	pc := PointConf{Code: "GT-1-STATE", Scale: 1, States: map[float64]string{0: "warm-up", 1: "monitor", 2: "inhibit", 3: "fault"}}
	for raw, want := range map[float64]string{1: "monitor", 3: "fault", 7: "7"} {
		v, q := pc.Convert(&Raw{Value: Num(raw)}, false)
		v, q, _ = pc.diagnose(&Raw{Value: Num(raw)}, v, q)
		if q != Good || v != Str(want) {
			t.Errorf("state %g: %v %s, want %q", raw, v, q, want)
		}
	}
}
