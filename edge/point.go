package edge

import (
	"math"
	"strconv"
	"time"
)

// PointConf is a point's conversion, quality and report settings, compiled
// from the config.
type PointConf struct {
	Code, Name, Kind, Unit string
	Interval               time.Duration
	// Device is the device the point is read from: a good poll of it tells
	// the supervisors of interlock outputs on it that it answers again.
	Device string
	// RTD: the point is in the HJ 212 real-time snapshot (it has a factor).
	RTD bool

	Scale, Offset float64
	// Linear map from raw (after scale and offset) to engineering units;
	// used when RawLo != RawHi.
	RawLo, RawHi, EngLo, EngHi float64
	// Range of the instrument; checked when RangeLo < RangeHi.
	RangeLo, RangeHi float64
	// Loop: the raw value is a 4-20 mA signal with RawLo at 4 mA and RawHi
	// at 20 mA; below 3.6 mA or above 21 mA is a sensor fault (NAMUR NE43).
	Loop bool
	// Current: the raw value is the loop current in mA itself (ADC inputs).
	Current     bool
	StuckAfter  time.Duration
	Maintenance bool
	Gas         bool // over_range counts as HH

	// Report on change: Deadband in the point's unit, MaxInterval forced.
	OnChange    bool
	Deadband    float64
	MaxInterval time.Duration

	Alarms *Limits
	// Diagnostics are the instrument's own status conditions, evaluated on
	// Raw.Diag (one word each, in order): a condition that holds sets the
	// reading's quality and names the fault.
	Diagnostics []DiagConf
	// States maps a numeric value (a bit field such as a detector's state)
	// to the string reported.
	States map[float64]string
}

// DiagConf is one diagnostic condition on a status word: bit Bit is 1
// (Bit >= 0), or word&Mask is one of In.
type DiagConf struct {
	Name    string
	Bit     int
	Mask    uint16
	In      []uint16
	Quality Quality
}

func (d *DiagConf) holds(w uint16) bool {
	if d.Bit >= 0 {
		return w>>uint(d.Bit)&1 == 1
	}
	for _, x := range d.In {
		if w&d.Mask == x {
			return true
		}
	}
	return false
}

// diagnose applies the instrument's own diagnostics to a converted value:
// the most severe condition that holds wins and names the fault. It also
// maps States. It returns the fault text for a reading that is not good:
// the condition's name, or the driver's error.
func (p *PointConf) diagnose(r *Raw, v Value, q Quality) (Value, Quality, string) {
	fault := ""
	if q == Good && len(p.Diagnostics) > 0 {
		switch {
		case r.DiagErr != nil:
			v, q, fault = Value{}, r.DiagQuality, r.DiagErr.Error()
		case len(r.Diag) == len(p.Diagnostics):
			for i := range p.Diagnostics {
				d := &p.Diagnostics[i]
				if d.holds(r.Diag[i]) && (fault == "" || d.Quality.Worse(q)) {
					q, fault = d.Quality, d.Name
				}
			}
			if !q.HasValue() {
				v = Value{}
			}
		}
	}
	if len(p.States) > 0 && v.Kind == Number {
		if name, ok := p.States[v.Num]; ok {
			v = Str(name)
		} else {
			v = Str(strconv.FormatFloat(v.Num, 'g', -1, 64))
		}
	}
	if q != Good && fault == "" && r.Err != nil {
		fault = r.Err.Error()
	}
	return v, q, fault
}

// NAMUR NE43 limits of a 4-20 mA loop.
const (
	LoopFaultLow  = 3.6
	LoopFaultHigh = 21.0
)

func (p *PointConf) hasRange() bool { return p.RangeLo < p.RangeHi }

// mA is the loop current of x (the value after scale and offset), for
// loop points.
func (p *PointConf) mA(x float64) float64 {
	if p.Current {
		return x
	}
	return 4 + (x-p.RawLo)*16/(p.RawHi-p.RawLo)
}

// Convert turns a driver's raw value into the reading's value and quality.
// stuck reports whether the value has not changed for StuckAfter.
func (p *PointConf) Convert(r *Raw, stuck bool) (Value, Quality) {
	if r.Quality != Good {
		return Value{}, r.Quality
	}
	if r.Value.Kind != Number {
		if p.Maintenance {
			return r.Value, Maintenance
		}
		return r.Value, Good
	}
	// raw -> scale/offset -> (loop) NE43 on the mA that gives -> raw_range
	// onto range: raw_range holds the values of 4 and 20 mA after scale and
	// offset, whichever way the engineer wrote the input (counts, mA, 0-20
	// mA mode, an ADC's millivolts over a shunt).
	raw := r.Value.Num
	v := raw*p.Scale + p.Offset
	if p.Loop {
		if ma := p.mA(v); ma < LoopFaultLow || ma > LoopFaultHigh || math.IsNaN(ma) {
			return Value{}, SensorFault
		}
	}
	if p.RawLo != p.RawHi {
		v = p.EngLo + (v-p.RawLo)*(p.EngHi-p.EngLo)/(p.RawHi-p.RawLo)
	}
	if v != raw {
		v = round12(v)
	}
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return Value{}, SensorFault
	case stuck:
		return Value{}, SensorFault
	case p.Maintenance:
		return Num(v), Maintenance
	case p.hasRange() && v > p.RangeHi:
		return Num(v), OverRange
	case p.hasRange() && v < p.RangeLo:
		return Num(v), UnderRange
	}
	return Num(v), Good
}

// round12 rounds to 12 significant digits: the scale arithmetic's binary
// noise (1013 x 0.1 = 101.30000000000001) goes, every instrument's
// resolution stays.
func round12(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// reportFilter decides which polls become readings in the uplink.
type reportFilter struct {
	last     Value
	lastQ    Quality
	lastA    Level
	lastTime time.Time
	sent     bool
}

func (f *reportFilter) keep(p *PointConf, now time.Time, v Value, q Quality, a Level) bool {
	if !p.OnChange {
		return true
	}
	send := !f.sent || q != f.lastQ || a != f.lastA || now.Sub(f.lastTime) >= p.MaxInterval
	if !send {
		if v.Kind == Number && f.last.Kind == Number {
			send = math.Abs(v.Num-f.last.Num) > p.Deadband
		} else {
			send = v != f.last
		}
	}
	if send {
		f.last, f.lastQ, f.lastA, f.lastTime, f.sent = v, q, a, now, true
	}
	return send
}

// stuckTracker notices a value that does not change.
type stuckTracker struct {
	last    float64
	since   time.Time
	started bool
}

func (s *stuckTracker) stuck(p *PointConf, now time.Time, r *Raw) bool {
	if p.StuckAfter <= 0 || r.Quality != Good || r.Value.Kind != Number {
		s.started = false
		return false
	}
	if !s.started || r.Value.Num != s.last {
		s.last, s.since, s.started = r.Value.Num, now, true
		return false
	}
	return now.Sub(s.since) >= p.StuckAfter
}
