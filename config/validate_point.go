package config

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/regs"
)

func (v *validator) point(i int, buses map[string]*Bus, devices map[string]*Device, points map[string]*Point) {
	pt := &v.cfg.Points[i]
	p := fmt.Sprintf("points[%d]", i)
	switch {
	case pt.Code == "":
		v.at(p+".code", "required: write the plant's tag (位号), e.g. code: GT-1201")
	case !codeRE.MatchString(pt.Code):
		v.at(p+".code", "%q: use letters, digits, '_', '-' and '.' only", pt.Code)
	case points[pt.Code] != nil:
		v.at(p+".code", "point code %q is used twice; tags must be unique", pt.Code)
	default:
		points[pt.Code] = pt
	}
	if !slices.Contains(PointKinds, pt.Kind) {
		if pt.Kind == "" {
			v.at(p+".kind", "required: write one of %s", oneOf(PointKinds))
		} else {
			v.at(p+".kind", "unknown kind %q; write one of %s", pt.Kind, oneOf(PointKinds))
		}
	}
	if pt.Interval.D() < 10*time.Millisecond || pt.Interval.D() > time.Hour {
		v.at(p+".interval", "want a poll interval between 10ms and 1h, got %s", pt.Interval)
	}
	d := devices[pt.Device]
	switch {
	case pt.Device == "":
		v.at(p+".device", "required: name the device this point is read from (%s)", v.deviceNames(func(*Device) bool { return true }))
	case d == nil:
		v.at(p+".device", "no device named %q; define it under devices or use one of: %s", pt.Device, v.deviceNames(func(*Device) bool { return true }))
	default:
		if b := buses[d.Bus]; isModbus(b) {
			v.modbusSource(p, pt)
			v.bitField(p, pt)
			v.diagnostics(p, pt)
		} else if b != nil && b.Type == BusI2C {
			v.i2cSource(p, pt, d)
			if len(pt.Diagnostics) > 0 || pt.Source.Bits != "" {
				v.at(p+".diagnostics", "diagnostics and bits apply to Modbus devices only")
			}
		}
	}
	v.states(p, pt)
	if *pt.Scale == 0 {
		v.at(p+".scale", "must not be 0 (every value would read 0); remove it for 1")
	}
	numeric := pt.Source.Type != "bool" && pt.Source.Type != "string"
	if pt.Range != nil {
		if len(pt.Range) != 2 || !(pt.Range[0] < pt.Range[1]) {
			v.at(p+".range", "want [min, max] with min < max, e.g. range: [0, 100]")
		}
	}
	if pt.RawRange != nil {
		switch {
		case len(pt.RawRange) != 2 || pt.RawRange[0] == pt.RawRange[1]:
			v.at(p+".raw_range", "want [raw at range min, raw at range max] with two different values, e.g. raw_range: [4000, 20000]")
		case pt.Range == nil:
			v.at(p+".raw_range", "needs range: raw_range maps raw values onto range, e.g. range: [0, 100]")
		}
	}
	if pt.Loop && pt.RawRange == nil && !v.isADC(pt, devices, buses) {
		v.at(p+".loop", "a 4-20 mA loop needs raw_range: the raw values at 4 mA and 20 mA")
	}
	if pt.Loop && v.isADC(pt, devices, buses) {
		if d := devices[pt.Device]; d.ShuntOhms <= 0 {
			v.at(p+".loop", "a 4-20 mA input on %s %q needs the device's shunt_ohms (e.g. shunt_ohms: 150)", d.Model, d.Name)
		}
		if pt.Range == nil {
			v.at(p+".range", "a 4-20 mA input needs range: the engineering values at 4 and 20 mA, e.g. range: [0, 100]")
		}
	}
	if pt.StuckAfter < 0 {
		v.at(p+".stuck_after", "must be positive")
	}
	switch pt.Report.Mode {
	case ReportEvery:
		if v.has(p+".report.deadband") || v.has(p+".report.max_interval") {
			v.at(p+".report.mode", "deadband and max_interval apply to mode: change; set mode: change or remove them")
		}
	case ReportChange:
		if pt.Report.Deadband < 0 {
			v.at(p+".report.deadband", "must be 0 or more (in %s)", unitOr(pt.Unit))
		}
		if pt.Report.MaxInterval.D() < pt.Interval.D() {
			v.at(p+".report.max_interval", "forced report every %s is shorter than the poll interval %s", pt.Report.MaxInterval, pt.Interval)
		}
	default:
		v.at(p+".report.mode", "want every or change, got %q", pt.Report.Mode)
	}
	if pt.Alarms != nil {
		switch {
		case pt.Alarms.AlarmWhen != nil:
			v.discreteAlarm(p, pt, numeric)
		case !numeric:
			v.at(p+".alarms", "alarm limits need a numeric point; this one is %s (a bool point alarms with alarm_when: true)", pt.Source.Type)
		default:
			v.alarms(p, pt)
		}
	}
	if pt.Kind == "gas" && numeric {
		v.gas(p, pt)
	} else if pt.Gas != nil {
		v.at(p+".gas", "applies to kind: gas only")
	}
	if v.cfg.Uplink.HJ212 != nil && (pt.HJ212 == nil || pt.HJ212.Factor == "") {
		v.at(p+".hj212.factor", "required while uplink.hj212 is on: write the point's HJ 212 factor code, e.g. hj212: {factor: a21026}")
	}
}

func unitOr(u string) string {
	if u == "" {
		return "the point's unit"
	}
	return u
}

func (v *validator) isADC(pt *Point, devices map[string]*Device, buses map[string]*Bus) bool {
	d := devices[pt.Device]
	return d != nil && chip.IsADC(d.Model)
}

func (v *validator) modbusSource(p string, pt *Point) {
	s := pt.Source
	sp := p + ".source"
	if _, err := regs.ParseTable(s.Table); err != nil {
		if s.Table == "" {
			v.at(sp+".table", "required: write one of %s", oneOf(regs.TableNames))
		} else {
			v.at(sp+".table", "unknown table %q; write one of %s (0-based addresses, no 40001 numbering)", s.Table, oneOf(regs.TableNames))
		}
		return
	}
	typ, err := regs.ParseType(s.Type)
	if err != nil {
		v.at(sp+".type", "unknown data type %q; write one of %s", s.Type, oneOf(regs.TypeNames))
		return
	}
	bits := s.Table == TableCoil || s.Table == TableDiscrete
	if bits && s.Type != "bool" {
		v.at(sp+".type", "a %s is one bit: write type: bool", s.Table)
	}
	if s.Address == nil {
		v.at(sp+".address", "required: write the 0-based protocol address (register 40001 is holding address 0)")
	} else {
		n := max(typ.Registers(s.Length), 1)
		if *s.Address < 0 || *s.Address+n > 65536 {
			v.at(sp+".address", "address %d is out of range; write 0-%d", *s.Address, 65536-n)
		}
	}
	if s.Bit != nil {
		if bits || s.Type != "bool" {
			v.at(sp+".bit", "bit picks one bit of a holding or input register for type: bool")
		} else if *s.Bit < 0 || *s.Bit > 15 {
			v.at(sp+".bit", "want 0-15, got %d", *s.Bit)
		}
	} else if !bits && s.Type == "bool" {
		v.at(sp+".bit", "a bool from a register needs bit: 0-15")
	}
	if s.Type == "string" {
		if s.Length < 1 || s.Length > regs.MaxStringRegisters {
			v.at(sp+".length", "a string needs length: 1-%d registers (2 characters each)", regs.MaxStringRegisters)
		}
	} else if s.Length != 0 {
		v.at(sp+".length", "length applies to type: string only")
	}
	v.pointOrder(sp, s)
	for _, f := range []string{"channel", "measure", "register"} {
		if v.has(sp + "." + f) {
			v.at(sp+"."+f, "applies to I2C devices only; remove it")
		}
	}
}

func (v *validator) i2cSource(p string, pt *Point, d *Device) {
	s := pt.Source
	sp := p + ".source"
	for _, f := range []string{"table", "address"} {
		if v.has(sp + "." + f) {
			v.at(sp+"."+f, "applies to Modbus devices only; remove it")
		}
	}
	if s.Bit != nil {
		switch {
		case d.Model != chip.Generic:
			v.at(sp+".bit", "applies to Modbus registers and generic I2C devices only; remove it")
		case s.Type != "bool":
			v.at(sp+".bit", "bit picks one bit of the byte read for type: bool")
		case *s.Bit < 0 || *s.Bit > chip.MaxBit:
			v.at(sp+".bit", "want 0-%d (a bit of the byte read), got %d", chip.MaxBit, *s.Bit)
		}
	}
	switch {
	case chip.Measures(d.Model) != nil:
		if ms := chip.Measures(d.Model); !slices.Contains(ms, s.Measure) {
			v.at(sp+".measure", "a %s measures %s; write one of them", d.Model, oneOf(ms))
		}
	case chip.IsADC(d.Model):
		if n := chip.Channels(d.Model); s.Channel == nil || *s.Channel < 0 || *s.Channel >= n {
			v.at(sp+".channel", "an %s has inputs 0-%d; write channel: 0-%d", d.Model, n-1, n-1)
		}
	case d.Model == chip.Generic:
		if s.Register == nil || *s.Register < 0 || *s.Register > chip.MaxRegister {
			v.at(sp+".register", "a generic I2C device needs register: 0-%d to read from", chip.MaxRegister)
		}
		if s.Type == "" {
			v.at(sp+".type", "required: write one of %s", oneOf(regs.TypeNames))
		} else if _, err := regs.ParseType(s.Type); err != nil {
			v.at(sp+".type", "unknown data type %q; write one of %s", s.Type, oneOf(regs.TypeNames))
		}
		v.pointOrder(sp, s)
		if s.Type == "string" {
			if s.Length < 1 || s.Length > chip.MaxString {
				v.at(sp+".length", "a string needs length: 1-%d bytes", chip.MaxString)
			} else if o := v.effectiveOrder(d, s); s.Length%2 == 1 && o.SwapBytes() {
				v.at(sp+".length", "a string of %d bytes in word order %s: byte-swapped strings need an even length", s.Length, o)
			}
		} else if s.Length != 0 {
			v.at(sp+".length", "length applies to type: string only")
		}
	}
}

// effectiveOrder is the order a point is decoded in: its own, else its
// device's (ABCD when neither parses; those are reported on their own).
func (v *validator) effectiveOrder(d *Device, s Source) regs.Order {
	name := d.WordOrder
	if s.WordOrder != "" {
		name = s.WordOrder
	}
	o, _ := regs.ParseOrder(name)
	return o
}

func (v *validator) alarms(p string, pt *Point) {
	a := pt.Alarms
	ap := p + ".alarms"
	if a.LL == nil && a.L == nil && a.H == nil && a.HH == nil {
		v.at(ap, "no limits: write at least one of LL, L, H, HH")
	}
	f := func(x *float64) string { return strconv.FormatFloat(*x, 'g', -1, 64) }
	if a.LL != nil && a.L != nil && *a.LL > *a.L {
		v.at(ap+".LL", "LL %s is above L %s; limits must satisfy LL <= L < H <= HH", f(a.LL), f(a.L))
	}
	lowTop := a.L
	if lowTop == nil {
		lowTop = a.LL
	}
	highBottom := a.H
	if highBottom == nil {
		highBottom = a.HH
	}
	if lowTop != nil && highBottom != nil && *highBottom <= *lowTop {
		name := "H"
		if a.H == nil {
			name = "HH"
		}
		low := "L"
		if a.L == nil {
			low = "LL"
		}
		v.at(ap+"."+name, "%s %s is not above %s %s; limits must satisfy LL <= L < H <= HH", name, f(highBottom), low, f(lowTop))
	}
	if a.H != nil && a.HH != nil && *a.HH < *a.H {
		v.at(ap+".HH", "HH %s is below H %s; limits must satisfy LL <= L < H <= HH", f(a.HH), f(a.H))
	}
	if a.Hysteresis < 0 {
		v.at(ap+".hysteresis", "must be 0 or more (in %s)", unitOr(pt.Unit))
	}
	if a.OnDelay < 0 || a.OffDelay < 0 {
		v.at(ap, "delays must be 0 or more")
	}
}

// discreteAlarm checks alarm_when, the alarm of a bool point.
func (v *validator) discreteAlarm(p string, pt *Point, numeric bool) {
	a, ap := pt.Alarms, p+".alarms"
	if numeric {
		v.at(ap+".alarm_when", "alarm_when is for bool points (coil, discrete, or a register bit); this one is numeric: use LL, L, H, HH")
	}
	if a.LL != nil || a.L != nil || a.H != nil || a.HH != nil || a.Hysteresis != 0 {
		v.at(ap, "alarm_when and limits (LL, L, H, HH, hysteresis) exclude each other")
	}
	if a.Level != "" && a.Level != "H" && a.Level != "HH" {
		v.at(ap+".level", "a discrete alarm raises H or HH (default HH), got %q", a.Level)
	}
	if a.OnDelay < 0 || a.OffDelay < 0 {
		v.at(ap, "delays must be 0 or more")
	}
}

// gas enforces the GB/T 50493-2019 upper bounds on alarm settings.
func (v *validator) gas(p string, pt *Point) {
	gp := p + ".gas"
	if pt.Gas == nil {
		v.at(gp, "a gas point needs gas: {type: combustible|toxic|oxygen} for the GB/T 50493 checks")
		return
	}
	g := pt.Gas
	a := pt.Alarms
	if a == nil {
		a = &Alarms{}
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	bound := func(name string, lim *float64, max float64, why string) {
		if lim != nil && *lim > max {
			v.at(p+".alarms."+name, "%s %s %s is above %s %s (%s); write %s <= %s", name, f(*lim), pt.Unit, why, f(max), "GB/T 50493-2019", name, f(max))
		}
	}
	switch g.Type {
	case GasCombustible:
		if pt.Unit != "%LEL" {
			v.at(p+".unit", "a combustible gas detector reads in %%LEL; write unit: \"%%LEL\"")
			return
		}
		bound("H", a.H, 25, "the level 1 limit")
		bound("HH", a.HH, 50, "the level 2 limit")
	case GasToxic:
		switch {
		case g.OEL != nil && *g.OEL > 0:
			bound("H", a.H, *g.OEL, "100 % OEL")
			bound("HH", a.HH, 2**g.OEL, "200 % OEL")
		case g.IDLH != nil && *g.IDLH > 0:
			bound("H", a.H, 0.05**g.IDLH, "5 % IDLH")
			bound("HH", a.HH, 0.10**g.IDLH, "10 % IDLH")
		default:
			v.at(gp+".oel", "a toxic gas point needs oel (or idlh) in %s, e.g. oel: 10 for H2S in ppm", unitOr(pt.Unit))
		}
	case GasOxygen:
		if pt.Unit != "%VOL" {
			v.at(p+".unit", "an oxygen detector reads in %%VOL; write unit: \"%%VOL\"")
			return
		}
		if a.L != nil && *a.L < 19.5 {
			v.at(p+".alarms.L", "L %s %%VOL is below the oxygen-deficiency limit 19.5 (GB/T 50493-2019); write L >= 19.5", f(*a.L))
		}
		bound("H", a.H, 23.5, "the oxygen-enrichment limit")
	case "":
		v.at(gp+".type", "required: write combustible, toxic or oxygen")
	default:
		v.at(gp+".type", "unknown gas type %q; write combustible, toxic or oxygen", g.Type)
	}
	if g.Type != GasToxic && (g.OEL != nil || g.IDLH != nil) {
		v.at(gp, "oel and idlh apply to toxic gas only")
	}
}
