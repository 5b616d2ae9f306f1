package config

import (
	"encoding/hex"
	"net"
	"regexp"
	"strings"
	"time"
)

// BusTypes are the bus types, in the order error messages list them.
var BusTypes = []string{BusModbusTCP, BusModbusRTU, BusModbusRTUTCP, BusModbusRTUDTU, BusI2C}

// DTURegister says how a DTU that dials in is recognised: by its
// registration packet (the first bytes it sends, given as hex, as text or
// as a regular expression over them), by the IP address it dials from, or
// by both.
type DTURegister struct {
	Hex    string `yaml:"hex"`    // e.g. "AA55000286 91" (spaces allowed)
	Text   string `yaml:"text"`   // e.g. "DTU0001"
	Regex  string `yaml:"regex"`  // e.g. "^DTU0001" (RE2 syntax, over the first bytes)
	Source string `yaml:"source"` // IP address, e.g. 10.20.0.7
}

// Bytes is the registration packet of Hex or Text (nil if neither is set).
func (r *DTURegister) Bytes() ([]byte, error) {
	switch {
	case r.Hex != "":
		return hex.DecodeString(strings.Join(strings.Fields(r.Hex), ""))
	case r.Text != "":
		return []byte(r.Text), nil
	}
	return nil, nil
}

// Pattern is the compiled Regex (nil if unset).
func (r *DTURegister) Pattern() (*regexp.Regexp, error) {
	if r.Regex == "" {
		return nil, nil
	}
	return regexp.Compile(r.Regex)
}

// rtuFraming reports whether the bus carries RTU frames over TCP.
func rtuFraming(b *Bus) bool {
	return b != nil && (b.Type == BusModbusRTUTCP || b.Type == BusModbusRTUDTU)
}

// dtuBus validates a modbus-rtu-tcp or modbus-rtu-dtu bus.
func (v *validator) dtuBus(p string, b *Bus, notFor func(string, bool, string)) {
	for _, f := range []string{"baud", "data_bits", "parity", "stop_bits"} {
		if v.has(p + "." + f) {
			v.at(p+"."+f, "the serial server keeps the line's serial settings; set them in the DTU and remove %s here", f)
		}
	}
	if b.FrameGap < 0 || b.FrameGap.D() > time.Second {
		v.at(p+".frame_gap", "want a gap between 0s and 1s, got %s", b.FrameGap)
	}
	notFor("device", b.Device != "", "modbus-rtu and i2c")
	if b.Type == BusModbusRTUTCP {
		if b.Address == "" {
			v.at(p+".address", "required for modbus-rtu-tcp: write the serial server's host:port, e.g. address: 192.168.1.50:8899")
		} else if _, port, err := net.SplitHostPort(b.Address); err != nil || !validPort(port) {
			v.at(p+".address", "want host:port such as 192.168.1.50:8899, got %q", b.Address)
		}
		if b.ConnectTimeout < 0 {
			v.at(p+".connect_timeout", "must be positive")
		}
		return
	}
	notFor("address", b.Address != "", "modbus-tcp and modbus-rtu-tcp")
	notFor("connect_timeout", v.has(p+".connect_timeout"), "modbus-tcp and modbus-rtu-tcp")
	if b.Listen == "" {
		v.at(p+".listen", "required for modbus-rtu-dtu: write the host:port DTUs dial in to, e.g. listen: 0.0.0.0:9000")
	} else if _, port, err := net.SplitHostPort(b.Listen); err != nil || !validPort(port) {
		v.at(p+".listen", "want host:port such as 0.0.0.0:9000, got %q", b.Listen)
	} else if sameListen(b.Listen, v.cfg.Status.Listen) {
		v.at(p+".listen", "%s is also status.listen; DTUs need their own port", b.Listen)
	}
	r := b.Register
	if r == nil {
		v.at(p+".register", "required for modbus-rtu-dtu: say how its DTU is recognised, e.g. register: {text: DTU0001}, {hex: \"AA5501\"}, {regex: \"^DTU0001\"} or {source: 10.20.0.7}")
		return
	}
	rp := p + ".register"
	n := 0
	for _, s := range []string{r.Hex, r.Text, r.Regex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		v.at(rp, "give one of hex, text and regex, not %d", n)
	}
	if n == 0 && r.Source == "" {
		v.at(rp, "empty: give the registration packet (hex, text or regex) or the DTU's source address")
	}
	if r.Hex != "" {
		if bs, err := r.Bytes(); err != nil || len(bs) == 0 {
			v.at(rp+".hex", "want hex digits such as \"AA55 0001\", got %q", r.Hex)
		}
	}
	if _, err := r.Pattern(); err != nil {
		v.at(rp+".regex", "%v", err)
	}
	if r.Source != "" && net.ParseIP(r.Source) == nil {
		v.at(rp+".source", "want the IP address the DTU dials from, e.g. 10.20.0.7, got %q", r.Source)
	}
	for i := range v.cfg.Buses {
		o := &v.cfg.Buses[i]
		if o == b {
			break
		}
		if o.Type == BusModbusRTUDTU && o.Listen == b.Listen && o.Register != nil && *o.Register == *r {
			v.at(rp, "bus %q on listen %s already recognises its DTU this way; each DTU needs its own registration or source", o.Name, b.Listen)
		}
	}
}
