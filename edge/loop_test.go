package edge

import (
	"math"
	"testing"
)

// TestFourWaysToWriteALoop: the four ways engineers write a 4-20 mA input
// of a 0-100 %LEL detector give the same readings and the same NAMUR NE43
// faults: raw -> scale/offset -> NE43 on the mA -> raw_range onto range.
func TestFourWaysToWriteALoop(t *testing.T) {
	ways := []struct {
		name string
		conf PointConf
		raw  func(mA float64) float64 // what the instrument's register holds
	}{
		{"raw counts 4000-20000 with raw_range", PointConf{Scale: 1, RawLo: 4000, RawHi: 20000, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true},
			func(mA float64) float64 { return mA * 1000 }},
		// ADAM-6217 4-20 mA mode, its manual's formula mA = 4 + 16*raw/65535.
		{"scale/offset to mA (ADAM 4-20 mA mode)", PointConf{Scale: 16.0 / 65535, Offset: 4, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true},
			func(mA float64) float64 { return math.Round((mA - 4) * 65535 / 16) }},
		// ADAM 0-20 mA mode: raw 0..65535 is 0..20 mA.
		{"0-20 mA mode", PointConf{Scale: 20.0 / 65535, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true},
			func(mA float64) float64 { return math.Round(mA * 65535 / 20) }},
		// ADS1115: the driver gives the loop current in mA from the shunt.
		{"ADC millivolts over a 150 ohm shunt", PointConf{Scale: 1, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Loop: true, Current: true},
			func(mA float64) float64 { return mA }},
	}
	cases := []struct {
		mA    float64
		want  float64
		wantQ Quality
	}{
		{12, 50, Good},
		{4, 0, Good},
		{20, 100, Good},
		{3.8, -1.25, UnderRange}, // under range, not yet a fault
		{3.5, 0, SensorFault},    // NE43: below 3.6 mA
		{20.8, 105, OverRange},
		{21.2, 0, SensorFault}, // NE43: above 21 mA
		{0, 0, SensorFault},    // open loop
	}
	for _, w := range ways {
		t.Run(w.name, func(t *testing.T) {
			for _, c := range cases {
				if w.name == "scale/offset to mA (ADAM 4-20 mA mode)" && c.mA < 4 {
					continue // that mode cannot express below 4 mA (raw 0 is 4 mA); its open circuit is a status bit
				}
				v, q := w.conf.Convert(&Raw{Value: Num(w.raw(c.mA))}, false)
				if q != c.wantQ || (q.HasValue() && math.Abs(v.Num-c.want) > 0.01) {
					t.Errorf("%g mA: got %v %s, want %g %s", c.mA, v, q, c.want, c.wantQ)
				}
			}
		})
	}
}
