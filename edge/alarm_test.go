package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func f(x float64) *float64 { return &x }

type step struct {
	at   time.Duration // since start
	v    float64
	q    Quality
	want string // events, "type:state:level" joined by ","
	act  Level  // active level after the step
}

func runSteps(t *testing.T, p *PointConf, steps []step) {
	t.Helper()
	var a alarmState
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, s := range steps {
		v := Num(s.v)
		if !s.q.HasValue() {
			v = Value{}
		}
		evs := a.eval(p, t0.Add(s.at), v, s.q, "")
		var got []string
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%s:%s:%s", e.Type, e.State, e.Level))
		}
		if g := strings.Join(got, ","); g != s.want {
			t.Fatalf("step %d (%v at %s, %s): events %q, want %q", i, s.v, s.at, s.q, g, s.want)
		}
		if a.active() != s.act {
			t.Fatalf("step %d: active %q, want %q", i, a.active(), s.act)
		}
	}
}

func TestAlarmStateMachine(t *testing.T) {
	level := &PointConf{Code: "LT", Unit: "m", Alarms: &Limits{LL: f(1), L: f(2), H: f(8), HH: f(9), Hysteresis: 0.5}}
	delayed := &PointConf{Code: "PT", Alarms: &Limits{H: f(10), OnDelay: 2 * time.Second, OffDelay: time.Second}}
	gas := &PointConf{Code: "GT", Gas: true, Alarms: &Limits{H: f(25), HH: f(50), Hysteresis: 2}}
	cases := []struct {
		name  string
		p     *PointConf
		steps []step
	}{
		{"levels and hysteresis", level, []step{
			{0, 5, Good, "", NoLevel},
			{1 * time.Second, 8, Good, "alarm:raised:H", H},
			{2 * time.Second, 9.2, Good, "alarm:raised:HH", HH},
			{3 * time.Second, 8.7, Good, "", HH},                // inside HH hysteresis
			{4 * time.Second, 8.4, Good, "alarm:cleared:HH", H}, // below 9-0.5
			{5 * time.Second, 7.6, Good, "", H},                 // inside H hysteresis
			{6 * time.Second, 7.4, Good, "alarm:cleared:H", NoLevel},
			{7 * time.Second, 0.5, Good, "alarm:raised:LL,alarm:raised:L", LL},
			{8 * time.Second, 2.6, Good, "alarm:cleared:LL,alarm:cleared:L", NoLevel},
		}},
		{"flapping around H does not chatter", level, []step{
			{0, 8.0, Good, "alarm:raised:H", H},
			{1 * time.Second, 7.9, Good, "", H},
			{2 * time.Second, 8.1, Good, "", H},
			{3 * time.Second, 7.8, Good, "", H},
			{4 * time.Second, 8.0, Good, "", H},
		}},
		{"on and off delays", delayed, []step{
			{0, 11, Good, "", NoLevel},
			{1 * time.Second, 9, Good, "", NoLevel}, // dropped before the delay: restarts
			{2 * time.Second, 11, Good, "", NoLevel},
			{3 * time.Second, 12, Good, "", NoLevel},
			{4 * time.Second, 12, Good, "alarm:raised:H", H},
			{5 * time.Second, 9, Good, "", H},
			{6 * time.Second, 9, Good, "alarm:cleared:H", NoLevel},
		}},
		{"faults hold process alarms and are alarms of their own", level, []step{
			{0, 9.5, Good, "alarm:raised:H,alarm:raised:HH", HH},
			{1 * time.Second, 0, CommFault, "fault:raised:comm", HH},
			{2 * time.Second, 0, Stale, "", HH},
			{3 * time.Second, 0, SensorFault, "fault:cleared:comm,fault:raised:sensor", HH},
			{4 * time.Second, 5, Good, "fault:cleared:sensor,alarm:cleared:H,alarm:cleared:HH", NoLevel},
		}},
		{"gas over range counts as HH", gas, []step{
			{0, 10, Good, "", NoLevel},
			{1 * time.Second, 40, OverRange, "fault:raised:range,alarm:raised:H,alarm:raised:HH", HH},
			{2 * time.Second, 20, Good, "fault:cleared:range,alarm:cleared:H,alarm:cleared:HH", NoLevel},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runSteps(t, c.p, c.steps) })
	}
}

func TestConvert(t *testing.T) {
	gas := &PointConf{Scale: 1, RawLo: 4000, RawHi: 20000, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true}
	cases := []struct {
		raw   float64
		wantV float64
		wantQ Quality
	}{
		{12000, 50, Good},
		{4000, 0, Good},
		{3800, -1.25, UnderRange}, // 3.8 mA: under range, not yet a fault
		{3500, 0, SensorFault},    // 3.5 mA: NAMUR fault
		{20800, 105, OverRange},   // 20.8 mA
		{21200, 0, SensorFault},   // 21.2 mA
	}
	for _, c := range cases {
		v, q := gas.Convert(&Raw{Value: Num(c.raw)}, false)
		if q != c.wantQ || (q.HasValue() && v.Num != c.wantV) || (!q.HasValue() && !v.IsNull()) {
			t.Errorf("raw %v: got %v %s, want %v %s", c.raw, v, q, c.wantV, c.wantQ)
		}
	}
	temp := &PointConf{Scale: 0.1, Offset: -40}
	if v, q := temp.Convert(&Raw{Value: Num(655)}, false); q != Good || v.Num != 25.5 {
		t.Errorf("scale/offset: %v %s", v, q)
	}
	if _, q := temp.Convert(&Raw{Value: Num(655)}, true); q != SensorFault {
		t.Errorf("stuck value: %s", q)
	}
	if v, q := temp.Convert(&Raw{Quality: CommFault}, false); q != CommFault || !v.IsNull() {
		t.Errorf("comm fault: %v %s", v, q)
	}
}

func TestSplitReadings(t *testing.T) {
	rs := make([]Reading, 1000)
	for i := range rs {
		rs[i] = Reading{Point: fmt.Sprintf("P-%04d", i), Unit: "kPa", Value: Num(float64(i))}
	}
	for _, max := range []int{1024, 4096, 65536, 1 << 20} {
		ms := SplitReadings(rs, time.Time{}, max)
		n := 0
		for _, m := range ms {
			size := messageOverhead
			for i := range m.Readings {
				if m.Readings[i] != rs[n] {
					t.Fatalf("max %d: reading %d out of order", max, n)
				}
				size += MaxReadingBytes(&m.Readings[i])
				n++
			}
			if size > max && len(m.Readings) > 1 {
				t.Fatalf("max %d: a message of %d bytes", max, size)
			}
		}
		if n != len(rs) {
			t.Fatalf("max %d: %d readings in %d messages, want %d", max, n, len(ms), len(rs))
		}
	}
	if ms := SplitReadings(nil, time.Time{}, 100); len(ms) != 0 {
		t.Fatalf("no readings gave %d messages", len(ms))
	}
}

// TestDiscreteAlarmVotes: a bool point (a detector's own relay bit) with
// alarm_when raises HH after its on delay, clears when it drops, and votes
// in an interlock like a numeric HH.
func TestDiscreteAlarmVotes(t *testing.T) {
	yes := true
	out := &fakeOutput{coils: map[uint16]float64{0: 1}}
	e, err := NewEngine(EngineOpts{
		Points: []PointConf{{Code: "GT-1-RLY", Alarms: &Limits{When: &yes, WhenLevel: HH, OnDelay: 2 * time.Second}}},
		Interlocks: []InterlockConf{{Name: "ESD", Need: 1, Latch: true, Inputs: []InputConf{{"GT-1-RLY", HH}},
			Actions: []ActionConf{{Device: "valve", Writer: out, Table: OutputCoil, Value: 0, Verify: true}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	tick := func(at time.Duration, v bool) []Event {
		_, evs := e.Tick(context.Background(), nil, t0.Add(at), []int{0}, []Raw{{Value: BoolValue(v)}})
		return evs
	}
	if evs := tick(0, true); len(evs) != 0 {
		t.Fatalf("raised before its on delay: %v", evs)
	}
	evs := tick(2*time.Second, true)
	if len(evs) < 2 || evs[0].State != StateRaised || evs[0].Level != "HH" || evs[0].Threshold != BoolValue(true) || evs[1].State != StateTripped {
		t.Fatalf("after the on delay: %+v", evs)
	}
	if out.coils[0] != 0 {
		t.Fatal("the relay bit did not close the valve")
	}
	if evs := tick(3*time.Second, false); len(evs) != 1 || evs[0].State != StateCleared {
		t.Fatalf("relay dropped: %+v", evs)
	}
}
