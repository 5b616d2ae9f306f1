package config

import (
	"encoding/pem"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/regs"
)

type validator struct {
	*decoder
	cfg   *Config
	dir   string
	warns Problems
}

// at reports a problem at path, placed at the closest position known: the
// field itself or, when it is missing, its nearest parent.
func (v *validator) at(path, format string, args ...any) {
	v.probs = append(v.probs, v.place(path, fmt.Sprintf(format, args...)))
}

// warn notes what the config may hold but should not; the config still
// loads, with the warning in Config.Warnings.
func (v *validator) warn(path, format string, args ...any) {
	w := v.place(path, fmt.Sprintf(format, args...))
	w.Warning = true
	v.warns = append(v.warns, w)
}

func (v *validator) place(path, msg string) Problem {
	p := path
	for {
		if ps, ok := v.pos[p]; ok {
			return Problem{File: v.file, Line: ps.line, Column: ps.col, Path: path, Msg: msg}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			if p == "" {
				return Problem{File: v.file, Line: 1, Column: 1, Path: path, Msg: msg}
			}
			p = ""
			continue
		}
		p = p[:i]
	}
}

func (v *validator) has(path string) bool { _, ok := v.pos[path]; return ok }

var (
	codeRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)
	offsetRE = regexp.MustCompile(`^[+-](0\d|1[0-4]):[0-5]\d$`)
	mooNRE   = regexp.MustCompile(`^([1-9])oo([1-9])$`)
)

func oneOf(list []string) string { return strings.Join(list, ", ") }

func (v *validator) validate() {
	c := v.cfg
	v.gateway()
	buses := map[string]*Bus{}
	for i := range c.Buses {
		v.bus(i, buses)
	}
	devices := map[string]*Device{}
	for i := range c.Devices {
		v.device(i, buses, devices)
	}
	points := map[string]*Point{}
	for i := range c.Points {
		v.point(i, buses, devices, points)
	}
	names := map[string]bool{}
	for i := range c.Interlocks {
		v.interlock(i, buses, devices, points, names)
	}
	v.buffer()
	v.uplink()
	if c.Status.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Status.Listen); err != nil || !validPort(port) {
			v.at("status.listen", "want host:port such as 127.0.0.1:9108 (a bare :9108 binds loopback only), got %q", c.Status.Listen)
		}
	}
	if c.Audit.KeyFile != "" {
		v.readable("audit.key_file", c.Audit.KeyFile, false)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		v.at("log.level", "want one of debug, info, warn, error, got %q", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		v.at("log.format", "want text or json, got %q", c.Log.Format)
	}
}

func (v *validator) gateway() {
	g := v.cfg.Gateway
	if g.Enterprise == "" {
		v.at("gateway.enterprise", "required: write the enterprise code the platform assigned, e.g. enterprise: \"91320500MA1W2X3Y4Z\"")
	} else if !codeRE.MatchString(g.Enterprise) {
		v.at("gateway.enterprise", "%q: use letters, digits, '_', '-' and '.' only (it is part of MQTT topics)", g.Enterprise)
	}
	if g.Code == "" {
		v.at("gateway.code", "required: write this gateway's code, e.g. code: GW01")
	} else if !codeRE.MatchString(g.Code) {
		v.at("gateway.code", "%q: use letters, digits, '_', '-' and '.' only (it is part of MQTT topics)", g.Code)
	}
	if !offsetRE.MatchString(g.UTCOffset) {
		v.at("gateway.utc_offset", "want an offset like +08:00, got %q", g.UTCOffset)
	}
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

func (v *validator) bus(i int, buses map[string]*Bus) {
	b := &v.cfg.Buses[i]
	p := fmt.Sprintf("buses[%d]", i)
	switch {
	case b.Name == "":
		v.at(p+".name", "required: give the bus a name that devices refer to, e.g. name: rs485-1")
	case buses[b.Name] != nil:
		v.at(p+".name", "bus %q is defined twice; bus names must be unique", b.Name)
	default:
		buses[b.Name] = b
	}
	notFor := func(field string, set bool, kinds string) {
		if set {
			v.at(p+"."+field, "applies to %s buses only; remove it from this %s bus", kinds, b.Type)
		}
	}
	switch b.Type {
	case BusModbusTCP:
		if b.Address == "" {
			v.at(p+".address", "required for modbus-tcp: write host:port, e.g. address: 192.168.1.10:502")
		} else if _, port, err := net.SplitHostPort(b.Address); err != nil || !validPort(port) {
			v.at(p+".address", "want host:port such as 192.168.1.10:502, got %q", b.Address)
		}
		notFor("device", b.Device != "", "modbus-rtu and i2c")
		v.serialFieldsAbsent(p, notFor)
		if b.ConnectTimeout < 0 {
			v.at(p+".connect_timeout", "must be positive")
		}
	case BusModbusRTU:
		if b.Device == "" {
			v.at(p+".device", "required for modbus-rtu: write the serial device, e.g. device: /dev/ttyS1")
		}
		notFor("address", b.Address != "", "modbus-tcp")
		notFor("connect_timeout", v.has(p+".connect_timeout"), "modbus-tcp")
		if !slices.Contains([]int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}, b.Baud) {
			v.at(p+".baud", "want a standard rate (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200), got %d", b.Baud)
		}
		if b.DataBits != 7 && b.DataBits != 8 {
			v.at(p+".data_bits", "want 7 or 8, got %d", b.DataBits)
		}
		if !slices.Contains([]string{"none", "even", "odd"}, b.Parity) {
			v.at(p+".parity", "want none, even or odd, got %q", b.Parity)
		}
		if b.StopBits != 1 && b.StopBits != 2 {
			v.at(p+".stop_bits", "want 1 or 2, got %d", b.StopBits)
		}
		if b.FrameGap < 0 || b.FrameGap.D() > time.Second {
			v.at(p+".frame_gap", "want a gap between 0s and 1s, got %s", b.FrameGap)
		}
	case BusI2C:
		if b.Device == "" {
			v.at(p+".device", "required for i2c: write the bus name, e.g. device: /dev/i2c-1 or device: \"1\"")
		}
		notFor("address", b.Address != "", "modbus-tcp")
		notFor("connect_timeout", v.has(p+".connect_timeout"), "modbus-tcp")
		v.serialFieldsAbsent(p, notFor)
	case "":
		v.at(p+".type", "required: write one of modbus-tcp, modbus-rtu, i2c")
	default:
		v.at(p+".type", "unknown bus type %q; write one of modbus-tcp, modbus-rtu, i2c", b.Type)
	}
}

func (v *validator) serialFieldsAbsent(p string, notFor func(string, bool, string)) {
	for _, f := range []string{"baud", "data_bits", "parity", "stop_bits", "frame_gap"} {
		notFor(f, v.has(p+"."+f), "modbus-rtu")
	}
}

func isModbus(b *Bus) bool { return b != nil && (b.Type == BusModbusTCP || b.Type == BusModbusRTU) }

func (v *validator) device(i int, buses map[string]*Bus, devices map[string]*Device) {
	d := &v.cfg.Devices[i]
	p := fmt.Sprintf("devices[%d]", i)
	switch {
	case d.Name == "":
		v.at(p+".name", "required: give the device a name that points refer to, e.g. name: gas-detector-1")
	case devices[d.Name] != nil:
		v.at(p+".name", "device %q is defined twice; device names must be unique", d.Name)
	default:
		devices[d.Name] = d
	}
	b := buses[d.Bus]
	switch {
	case d.Bus == "":
		v.at(p+".bus", "required: name one of the buses (%s)", v.busNames())
		return
	case b == nil:
		v.at(p+".bus", "no bus named %q; define it under buses or use one of: %s", d.Bus, v.busNames())
		return
	}
	if isModbus(b) {
		lo, hi := 1, 247
		if b.Type == BusModbusTCP {
			lo, hi = 0, 255
		}
		if d.Unit == nil {
			v.at(p+".unit", "required on %s bus %q: write the slave's unit id (%d-%d), e.g. unit: 1", b.Type, b.Name, lo, hi)
		} else if *d.Unit < lo || *d.Unit > hi {
			v.at(p+".unit", "unit id %d is out of range; on a %s bus write %d-%d", *d.Unit, b.Type, lo, hi)
		} else if b.Type == BusModbusRTU {
			for _, o := range v.cfg.Devices[:i] {
				if o.Bus == d.Bus && o.Unit != nil && *o.Unit == *d.Unit {
					v.at(p+".unit", "unit id %d is already used by device %q on bus %q; each slave on an RS-485 line needs its own id", *d.Unit, o.Name, d.Bus)
					break
				}
			}
		}
		if d.Address != nil {
			v.at(p+".address", "an I2C address on Modbus bus %q; use unit for the Modbus unit id", b.Name)
		}
		if d.Model != "" {
			v.at(p+".model", "model applies to I2C devices only; remove it")
		}
		v.deviceOrder(p, d)
		if *d.Retries < 0 || *d.Retries > 10 {
			v.at(p+".retries", "want 0-10, got %d", *d.Retries)
		}
		if *d.MaxGap < 0 || *d.MaxGap > regs.MaxReadRegisters-1 {
			v.at(p+".max_gap", "want 0-%d registers, got %d", regs.MaxReadRegisters-1, *d.MaxGap)
		}
		if d.MaxRegisters < 1 || d.MaxRegisters > regs.MaxReadRegisters {
			v.at(p+".max_registers", "want 1-%d (the protocol's limit for one read), got %d", regs.MaxReadRegisters, d.MaxRegisters)
		}
		if d.MaxBits < 1 || d.MaxBits > regs.MaxReadBits {
			v.at(p+".max_bits", "want 1-%d (the protocol's limit for one read), got %d", regs.MaxReadBits, d.MaxBits)
		}
	}
	if b.Type == BusI2C {
		if d.Address == nil {
			v.at(p+".address", "required on i2c bus %q: write the 7-bit address, e.g. address: 0x76", b.Name)
		} else if *d.Address < 0x08 || *d.Address > 0x77 {
			v.at(p+".address", "I2C address %#x is out of range; write 0x08-0x77 (7-bit, not shifted)", *d.Address)
		} else {
			for _, o := range v.cfg.Devices[:i] {
				if o.Bus == d.Bus && o.Address != nil && *o.Address == *d.Address {
					v.at(p+".address", "address %#x is already used by device %q on bus %q", *d.Address, o.Name, d.Bus)
					break
				}
			}
		}
		if d.Unit != nil {
			v.at(p+".unit", "a Modbus unit id on I2C bus %q; use address for the I2C address", b.Name)
		}
		if !slices.Contains(chip.Models, d.Model) {
			v.at(p+".model", "want one of %s, got %q", oneOf(chip.Models), d.Model)
		}
		if d.Model == chip.Generic {
			v.deviceOrder(p, d)
		} else if v.has(p + ".word_order") {
			v.at(p+".word_order", "applies to Modbus and generic I2C devices only; remove it from this %s", d.Model)
		}
		if lo, hi := chip.Addresses(d.Model); d.Address != nil && *d.Address >= 0x08 && *d.Address <= 0x77 &&
			(*d.Address < int(lo) || *d.Address > int(hi)) && slices.Contains(chip.Models, d.Model) {
			v.at(p+".address", "a %s answers at %#x-%#x only (set by its address pin), got %#x", d.Model, lo, hi, *d.Address)
		}
		if chip.IsADC(d.Model) && (d.ShuntOhms < 0 || d.ShuntOhms > chip.MaxShuntOhms) {
			v.at(p+".shunt_ohms", "want 0 (read volts) or a shunt up to %g Ω (%d mA stays within ±%g V), e.g. 150 for 4-20 mA into 0.6-3 V, got %g",
				chip.MaxShuntOhms, chip.LoopMaxMilliamps, chip.ADCMaxVolts, d.ShuntOhms)
		}
		for j, c := range d.Command {
			if c < 0 || c > 255 {
				v.at(fmt.Sprintf("%s.command[%d]", p, j), "want a byte 0-255, got %d", c)
			}
		}
	}
	if d.Timeout <= 0 || d.Timeout.D() > 30*time.Second {
		v.at(p+".timeout", "want a timeout between 1ms and 30s, got %s", d.Timeout)
	}
	if d.ProbeEvery < 1 {
		v.at(p+".probe_every", "want at least 1 tick, got %d", d.ProbeEvery)
	}
}

func (v *validator) busNames() string {
	var n []string
	for _, b := range v.cfg.Buses {
		if b.Name != "" {
			n = append(n, b.Name)
		}
	}
	if len(n) == 0 {
		return "none defined yet"
	}
	return strings.Join(n, ", ")
}

func (v *validator) deviceNames(filter func(*Device) bool) string {
	var n []string
	for i := range v.cfg.Devices {
		d := &v.cfg.Devices[i]
		if d.Name != "" && filter(d) {
			n = append(n, d.Name)
		}
	}
	if len(n) == 0 {
		return "none defined"
	}
	return strings.Join(n, ", ")
}

// deviceOrder checks a device's word order, the default of all its points:
// either spelling, 32- or 64-bit, is taken (see regs.ParseOrder).
func (v *validator) deviceOrder(p string, d *Device) {
	if _, err := regs.ParseOrder(d.WordOrder); err != nil {
		v.at(p+".word_order", "%s", err)
	}
}

// pointOrder checks a point's own word order against its type.
func (v *validator) pointOrder(sp string, s Source) {
	if s.WordOrder == "" {
		return
	}
	t, err := regs.ParseType(s.Type)
	if err != nil {
		return // reported on the type
	}
	if _, err := regs.OrderFor(s.WordOrder, t); err != nil {
		v.at(sp+".word_order", "%s", err)
	}
}

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
	for _, f := range []string{"table", "address", "bit"} {
		if v.has(sp + "." + f) {
			v.at(sp+"."+f, "applies to Modbus devices only; remove it")
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

// MooN parses a vote: any, all or MooN (e.g. 2oo3) over n inputs; it
// returns how many inputs must be true.
func MooN(vote string, n int) (int, error) {
	switch vote {
	case "any":
		return 1, nil
	case "all":
		return n, nil
	}
	m := mooNRE.FindStringSubmatch(vote)
	if m == nil {
		return 0, fmt.Errorf("want any, all, or MooN such as 2oo3, got %q", vote)
	}
	need, of := int(m[1][0]-'0'), int(m[2][0]-'0')
	if need > of {
		return 0, fmt.Errorf("%s: M cannot exceed N; write e.g. 2oo3", vote)
	}
	if of != n {
		return 0, fmt.Errorf("%s votes over %d inputs but this interlock lists %d; list %d inputs or write %doo%d", vote, of, n, of, min(need, n), n)
	}
	return need, nil
}

func (v *validator) interlock(i int, buses map[string]*Bus, devices map[string]*Device, points map[string]*Point, names map[string]bool) {
	il := &v.cfg.Interlocks[i]
	p := fmt.Sprintf("interlocks[%d]", i)
	switch {
	case il.Name == "":
		v.at(p+".name", "required: name the interlock, e.g. name: ESD-T101-inlet")
	case !codeRE.MatchString(il.Name):
		v.at(p+".name", "%q: use letters, digits, '_', '-' and '.' only", il.Name)
	case names[il.Name]:
		v.at(p+".name", "interlock %q is defined twice; names must be unique", il.Name)
	default:
		names[il.Name] = true
	}
	if len(il.When.Inputs) == 0 {
		v.at(p+".when.inputs", "required: list the inputs, e.g. - {point: GT-1201, level: HH}")
	} else if _, err := MooN(il.When.Vote, len(il.When.Inputs)); err != nil {
		v.at(p+".when.vote", "%s", err)
	}
	for j, in := range il.When.Inputs {
		ip := fmt.Sprintf("%s.when.inputs[%d]", p, j)
		pt := points[in.Point]
		if pt == nil {
			v.at(ip+".point", "no point %q; an interlock input must name a configured point", in.Point)
			continue
		}
		if !slices.Contains([]string{"LL", "L", "H", "HH"}, in.Level) {
			v.at(ip+".level", "want LL, L, H or HH, got %q", in.Level)
			continue
		}
		if !hasLimit(pt.Alarms, in.Level) {
			v.at(ip+".level", "point %q has no %s limit; add alarms.%s to it", in.Point, in.Level, in.Level)
		}
		if pt.Maintenance && il.OnFault != OnFaultHold {
			v.at(ip+".point", "point %q is configured maintenance: true, which votes trip in this fail-safe interlock; take it out of service with `edgecollector maintenance` while the interlock is bypassed instead", in.Point)
		}
	}
	if il.OnFault != OnFaultTrip && il.OnFault != OnFaultHold {
		v.at(p+".on_fault", "want trip (fail-safe: a faulted detector votes trip) or hold, got %q", il.OnFault)
	}
	if il.OnDelay < 0 {
		v.at(p+".on_delay", "must be 0 or more")
	}
	if len(il.Actions) == 0 {
		v.at(p+".actions", "required: list the outputs to write when it trips, e.g. - {device: esd-valve, table: coil, address: 0, value: 0}")
	}
	for j := range il.Actions {
		v.output(fmt.Sprintf("%s.actions[%d]", p, j), &il.Actions[j], buses, devices)
		if fb := il.Actions[j].Feedback; fb != nil {
			v.feedback(fmt.Sprintf("%s.actions[%d].feedback", p, j), fb, points)
		}
	}
	if d := il.ReadbackEvery.D(); d < time.Second || d > 10*time.Minute {
		v.at(p+".readback_every", "want 1s to 10m, got %s", il.ReadbackEvery)
	}
	for j := range il.OnReset {
		v.output(fmt.Sprintf("%s.on_reset[%d]", p, j), &il.OnReset[j], buses, devices)
	}
}

func (v *validator) feedback(p string, fb *Feedback, points map[string]*Point) {
	if fb.Point == "" {
		v.at(p+".point", "required: name the point that proves the plant moved (a valve's limit switch), e.g. point: XV-1101-ZSC")
	} else if points[fb.Point] == nil {
		v.at(p+".point", "no point %q; feedback must name a configured point", fb.Point)
	}
	if !fb.Value.Set {
		v.at(p+".value", "required: the value the feedback point reads in the safe state, e.g. value: false")
	}
	if d := fb.Within.D(); d <= 0 || d > 10*time.Minute {
		v.at(p+".within", "want the valve's travel time, more than 0 and at most 10m (e.g. within: 15s), got %s", fb.Within)
	}
}

func hasLimit(a *Alarms, level string) bool {
	if a == nil {
		return false
	}
	if a.AlarmWhen != nil {
		// A discrete alarm raises HH (or H); an input at H is true at HH too.
		return level == "H" || level == a.DiscreteLevel()
	}
	switch level {
	case "LL":
		return a.LL != nil
	case "L":
		return a.L != nil
	case "H":
		return a.H != nil
	case "HH":
		return a.HH != nil
	}
	return false
}

func (v *validator) output(p string, o *Output, buses map[string]*Bus, devices map[string]*Device) {
	d := devices[o.Device]
	modbusDev := func(d *Device) bool { return isModbus(buses[d.Bus]) }
	switch {
	case o.Device == "":
		v.at(p+".device", "required: name the Modbus device to write (%s)", v.deviceNames(modbusDev))
	case d == nil:
		v.at(p+".device", "no device %q is configured; an interlock can only write to a configured device (%s)", o.Device, v.deviceNames(modbusDev))
	case !modbusDev(d):
		v.at(p+".device", "device %q is not on a Modbus bus; outputs are Modbus coils or registers", o.Device)
	}
	switch o.Table {
	case TableCoil, TableHolding:
	case "":
		v.at(p+".table", "required: write coil or holding")
	default:
		v.at(p+".table", "cannot write to %q; write coil or holding", o.Table)
	}
	if o.Address == nil {
		v.at(p+".address", "required: write the 0-based protocol address of the output")
	} else if *o.Address < 0 || *o.Address > 65535 {
		v.at(p+".address", "address %d is out of range; write 0-65535", *o.Address)
	}
	if o.Value == nil {
		v.at(p+".value", "required: write the value to write (coil: 0 or 1)")
	} else if o.Table == TableCoil && *o.Value != 0 && *o.Value != 1 {
		v.at(p+".value", "a coil takes 0 or 1, got %g", *o.Value)
	} else if o.Table == TableHolding && (*o.Value != math.Trunc(*o.Value) || *o.Value < -32768 || *o.Value > 65535) {
		v.at(p+".value", "a holding register takes a whole number from -32768 to 65535, got %g", *o.Value)
	}
	if *o.Retries < 0 || *o.Retries > 10 {
		v.at(p+".retries", "want 0-10, got %d", *o.Retries)
	}
}

func (v *validator) buffer() {
	b := v.cfg.Buffer
	if b.MaxBytes < 16<<20 {
		v.at("buffer.max_bytes", "want at least 16MiB, got %d bytes", int64(b.MaxBytes))
	}
	if b.MinFree < 0 {
		v.at("buffer.min_free", "must be 0 or more")
	}
	if b.Retention.D() < 30*24*time.Hour {
		v.at("buffer.retention", "records must be kept at least 30 days (720h) by the major-hazard regulation, got %s", b.Retention)
	}
	if b.MemoryQueue < 1 {
		v.at("buffer.memory_queue", "want at least 1 message")
	}
	if b.Queue < 1 {
		v.at("buffer.queue", "want at least 1 message")
	}
	if b.MaxMessageBytes < 1024 || b.MaxMessageBytes > 1<<20 {
		v.at("buffer.max_message_bytes", "want 1024 to 1048576, got %d", b.MaxMessageBytes)
	}
	if ci := b.CommitInterval; ci != nil && (ci.D() < 0 || ci.D() > 10*time.Second) {
		v.at("buffer.commit_interval", "want 0s (sync every tick) to 10s, got %s", *ci)
	}
	if b.Profile != "small" && b.Profile != "default" {
		v.at("buffer.profile", "want small or default, got %q", b.Profile)
	}
}

func (v *validator) uplink() {
	u := v.cfg.Uplink
	if u.MQTT == nil && u.HJ212 == nil {
		v.at("uplink", "required: configure uplink.mqtt or uplink.hj212 (or both); the platform must receive the data")
		return
	}
	if m := u.MQTT; m != nil {
		v.mqtt(m)
	}
	if h := u.HJ212; h != nil {
		v.hj212(h)
	}
}

func (v *validator) mqtt(m *MQTT) {
	p := "uplink.mqtt"
	tlsURL := false
	if m.URL == "" {
		v.at(p+".url", "required: write the broker's URL, e.g. url: ssl://platform.example.cn:8883")
	} else if u, err := url.Parse(m.URL); err != nil || u.Host == "" {
		if strings.Contains(m.URL, "@") { // may hold a password: not echoed
			v.at(p+".url", "want a URL like tcp://host:1883 or ssl://host:8883, without user:password@; give credentials in username and password_env/password_file")
		} else {
			v.at(p+".url", "want a URL like tcp://host:1883 or ssl://host:8883, got %q", m.URL)
		}
	} else {
		if u.User != nil {
			// Never echo it: the point is that the password must not be printed.
			v.at(p+".url", "the URL carries credentials (user:password@ before the host), which would be logged with the URL; write %s and give them in username and password_env/password_file", userinfoFree(u))
		}
		switch u.Scheme {
		case "tcp", "mqtt", "ws":
		case "ssl", "tls", "mqtts", "wss":
			tlsURL = true
		default:
			v.at(p+".url", "unknown scheme %q; write tcp://, ssl://, ws:// or wss://", u.Scheme)
		}
	}
	if strings.ContainsAny(m.TopicPrefix, "+#") || strings.HasPrefix(m.TopicPrefix, "/") || strings.HasSuffix(m.TopicPrefix, "/") {
		v.at(p+".topic_prefix", "%q: no wildcards (+, #) and no leading or trailing '/'", m.TopicPrefix)
	}
	if m.PasswordFile != "" {
		v.readable(p+".password_file", m.PasswordFile, false)
	}
	if m.PasswordFile != "" && m.PasswordEnv != "" {
		v.at(p+".password_env", "give the password in password_file or password_env, not both")
	}
	if (m.PasswordFile != "" || m.PasswordEnv != "") && m.Username == "" {
		v.at(p+".username", "a password is set but no username")
	}
	if t := m.TLS; t != nil {
		if !tlsURL && m.URL != "" {
			v.at(p+".tls", "TLS is configured but the URL is not a TLS one; write ssl://host:8883")
		}
		if t.CA != "" {
			v.readable(p+".tls.ca", t.CA, true)
		}
		if t.Cert != "" {
			v.readable(p+".tls.cert", t.Cert, true)
		}
		if t.Key != "" {
			v.readable(p+".tls.key", t.Key, true)
		}
		if (t.Cert == "") != (t.Key == "") {
			v.at(p+".tls", "mutual TLS needs both cert and key")
		}
		if t.InsecureSkipVerify {
			v.warn(p+".tls.insecure_skip_verify", "the broker's certificate is not checked: anyone on the network path can pose as the platform and read or drop the data; remove it (the system's CAs are then used) or set tls.ca to the platform's CA; skip checks only while commissioning")
		}
	}
	if m.KeepAlive.D() < time.Second {
		v.at(p+".keepalive", "want at least 1s, got %s", m.KeepAlive)
	}
	if m.Inflight < 1 || m.Inflight > 1000 {
		v.at(p+".inflight", "want 1-1000, got %d", m.Inflight)
	}
	if m.BacklogRate < 0 {
		v.at(p+".backlog_rate", "want messages per second, 0 for unlimited")
	}
	if m.Heartbeat.D() < time.Second {
		v.at(p+".heartbeat", "want at least 1s, got %s", m.Heartbeat)
	}
	if m.ReconnectMin <= 0 || m.ReconnectMax < m.ReconnectMin {
		v.at(p+".reconnect_max", "want 0 < reconnect_min <= reconnect_max")
	}
	if m.PlatformAck != nil && m.PlatformAck.Timeout.D() < time.Second {
		v.at(p+".platform_ack.timeout", "want at least 1s, got %s", m.PlatformAck.Timeout)
	}
}

// userinfoFree is u without its credentials.
func userinfoFree(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

var digitsRE = regexp.MustCompile(`^\d{1,5}$`)

func (v *validator) hj212(h *HJ212) {
	p := "uplink.hj212"
	if h.Address == "" {
		v.at(p+".address", "required: write the platform's host:port")
	} else if _, port, err := net.SplitHostPort(h.Address); err != nil || !validPort(port) {
		v.at(p+".address", "want host:port, got %q", h.Address)
	}
	if h.Version != "2017" && h.Version != "2025" {
		v.at(p+".version", "want \"2017\" or \"2025\", got %q", h.Version)
	}
	if h.MN == "" || len(h.MN) > 24 {
		v.at(p+".mn", "required: the device id (MN) the platform assigned, at most 24 characters")
	}
	if !digitsRE.MatchString(h.ST) {
		v.at(p+".st", "want the system code as digits, e.g. st: \"32\", got %q", h.ST)
	}
	if len(h.PW) > 9 || strings.ContainsAny(h.PW, ";=&,") {
		v.at(p+".pw", "at most 9 characters without ; = & ,")
	}
	if h.OverTime.D() < time.Second || h.ReCount < 1 {
		v.at(p+".overtime", "want overtime >= 1s and recount >= 1")
	}
	if e := h.Encryption; e != nil {
		if h.Version != "2025" {
			v.at(p+".encryption", "SM4 encryption is an HJ 212-2025 feature; set version: \"2025\"")
		}
		if e.KeyFile == "" {
			v.at(p+".encryption.key_file", "required: a file with the 16-byte SM4 key (raw, or 32 hex digits)")
		} else {
			v.readable(p+".encryption.key_file", e.KeyFile, false)
		}
		if e.Encoding != "raw" && e.Encoding != "hex" {
			v.at(p+".encryption.encoding", "want raw or hex, got %q", e.Encoding)
		}
	}
}

// readable checks that a file named in the config can be read (and, for
// TLS files, holds PEM).
func (v *validator) readable(path, name string, wantPEM bool) {
	full := v.cfg.Resolve(name)
	data, err := os.ReadFile(full)
	if err != nil {
		v.at(path, "cannot read %s: %s; check the path and that the collector's user may read it", full, unwrapPathErr(err))
		return
	}
	if wantPEM {
		if b, _ := pem.Decode(data); b == nil {
			v.at(path, "%s holds no PEM block; want a PEM certificate or key", full)
		}
	}
}

func unwrapPathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
