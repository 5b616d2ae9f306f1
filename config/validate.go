package config

import (
	"fmt"
	"net"
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
		if n := v.node(p); n != nil {
			return Problem{File: v.file, Line: n.Line, Column: n.Column, Path: path, Msg: msg}
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

func (v *validator) has(path string) bool { return v.node(path) != nil }

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
	v.modbusServer()
	if c.Status.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Status.Listen); err != nil || !validPort(port) {
			v.at("status.listen", "want host:port such as 127.0.0.1:9108 (a bare :9108 binds loopback only), got %q", c.Status.Listen)
		}
	}
	v.audit()
	v.statusAuth()
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
	case BusModbusRTUTCP, BusModbusRTUDTU:
		v.dtuBus(p, b, notFor)
	case "":
		v.at(p+".type", "required: write one of %s", oneOf(BusTypes))
	default:
		v.at(p+".type", "unknown bus type %q; write one of %s", b.Type, oneOf(BusTypes))
	}
	if b.Type != BusModbusRTUDTU {
		notFor("listen", b.Listen != "", BusModbusRTUDTU)
		notFor("register", b.Register != nil, BusModbusRTUDTU)
	}
}

func (v *validator) serialFieldsAbsent(p string, notFor func(string, bool, string)) {
	for _, f := range []string{"baud", "data_bits", "parity", "stop_bits", "frame_gap"} {
		notFor(f, v.has(p+"."+f), "modbus-rtu")
	}
}

func isModbus(b *Bus) bool {
	return b != nil && (b.Type == BusModbusTCP || b.Type == BusModbusRTU || rtuFraming(b))
}

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
		} else if b.Type == BusModbusRTU || rtuFraming(b) {
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
