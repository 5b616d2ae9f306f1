package config

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// ModbusServer is the optional read-only Modbus TCP server for the control
// room (docs/modbus-server.md). Absent: off.
type ModbusServer struct {
	// Listen: host:port; a bare :port binds 127.0.0.1. Required.
	Listen string `yaml:"listen"`
	// Unit is the unit id the server answers (default 1).
	Unit *int          `yaml:"unit"`
	Map  ModbusMapConf `yaml:"map"`
}

// ModbusMapConf chooses what the server's register map holds.
type ModbusMapConf struct {
	// Points in map order (default: every point, in config order).
	Points []string `yaml:"points"`
	// Interlocks in map order (default: every interlock, in config order).
	Interlocks []string `yaml:"interlocks"`
	// Scale of a point's int16 register (value x scale), by point code;
	// default: the largest power of ten that keeps the range within int16.
	Scale PointScales `yaml:"scale"`
}

// PointScales maps point codes to int16 scales: {GT-1201: 10, PT-1101: 1000}.
type PointScales map[string]float64

// UnmarshalYAML implements yaml.Unmarshaler.
func (ps *PointScales) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("want a mapping of point codes to scales, e.g. {GT-1201: 10}")
	}
	m := PointScales{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		var f float64
		if err := n.Content[i+1].Decode(&f); err != nil {
			return fmt.Errorf("%s: want a number, got %q", n.Content[i].Value, n.Content[i+1].Value)
		}
		m[n.Content[i].Value] = f
	}
	*ps = m
	return nil
}

// DefaultModbusUnit is the unit id the control-room server answers.
const DefaultModbusUnit = 1

func modbusServerDefaults(c *Config) {
	if s := c.ModbusServer; s != nil && s.Unit == nil {
		s.Unit = ptr(DefaultModbusUnit)
	}
}

func (v *validator) modbusServer() {
	s := v.cfg.ModbusServer
	if s == nil {
		return
	}
	const p = "modbus_server"
	if s.Listen == "" {
		v.at(p+".listen", "required: write host:port, e.g. listen: 0.0.0.0:1502 (a bare :1502 binds loopback only); remove modbus_server to turn it off")
	} else if _, port, err := net.SplitHostPort(s.Listen); err != nil || !validPort(port) {
		v.at(p+".listen", "want host:port such as 0.0.0.0:1502, got %q", s.Listen)
	}
	if s.Listen != "" && sameListen(s.Listen, v.cfg.Status.Listen) {
		v.at(p+".listen", "%s is also status.listen; give the Modbus server its own port", s.Listen)
	}
	for _, b := range v.cfg.Buses {
		if b.Type == BusModbusRTUDTU && sameListen(s.Listen, b.Listen) {
			v.at(p+".listen", "%s is also where bus %q listens for DTUs; give the Modbus server its own port", s.Listen, b.Name)
		}
	}
	if s.Unit != nil && (*s.Unit < 1 || *s.Unit > 247) {
		v.at(p+".unit", "want a unit id 1-247, got %d", *s.Unit)
	}
	seen := map[string]bool{}
	for i, code := range s.Map.Points {
		switch {
		case v.cfg.Point(code) == nil:
			v.at(p+".map.points["+strconv.Itoa(i)+"]", "no point %q in points", code)
		case seen[code]:
			v.at(p+".map.points["+strconv.Itoa(i)+"]", "point %q is listed twice", code)
		}
		seen[code] = true
	}
	seen = map[string]bool{}
	for i, name := range s.Map.Interlocks {
		switch {
		case v.cfg.Interlock(name) == nil:
			v.at(p+".map.interlocks["+strconv.Itoa(i)+"]", "no interlock %q in interlocks", name)
		case seen[name]:
			v.at(p+".map.interlocks["+strconv.Itoa(i)+"]", "interlock %q is listed twice", name)
		}
		seen[name] = true
	}
	for _, code := range slices.Sorted(maps.Keys(s.Map.Scale)) {
		f := s.Map.Scale[code]
		if v.cfg.Point(code) == nil {
			v.at(p+".map.scale."+code, "no point %q in points", code)
		} else if !(f > 0) {
			v.at(p+".map.scale."+code, "want a positive scale such as 10 or 0.1, got %v", f)
		}
	}
	if n := len(s.Map.Points); n == 0 && len(v.cfg.Points) > MaxModbusPoints || n > MaxModbusPoints {
		v.at(p+".map.points", "the register map holds at most %d points; list the ones the control room needs", MaxModbusPoints)
	}
	if n := len(s.Map.Interlocks); n == 0 && len(v.cfg.Interlocks) > MaxModbusInterlocks || n > MaxModbusInterlocks {
		v.at(p+".map.interlocks", "the register map holds at most %d interlocks; list the ones the control room needs", MaxModbusInterlocks)
	}
}

// Limits of the control-room register map (docs/modbus-server.md).
const (
	MaxModbusPoints     = 6000
	MaxModbusInterlocks = 450
)

// sameListen reports whether two listen addresses would take the same
// port: equal hosts, or a wildcard on either side. A bare :port is
// loopback.
func sameListen(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	wild := func(h string) bool { return h == "0.0.0.0" || h == "::" || h == "[::]" }
	norm := func(h string) string {
		if h == "" || h == "localhost" {
			return "127.0.0.1"
		}
		return h
	}
	return wild(ha) || wild(hb) || norm(ha) == norm(hb)
}
