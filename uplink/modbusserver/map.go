// Package modbusserver is the control room's read-only Modbus TCP server:
// per point the value (float32 and scaled int16), quality code, alarm level
// and status bits; per interlock its tripped and bypassed bits. GB/T 50493
// 5.1.2 wants level-2 alarms and fault signals in the control room; a DCS
// or SCADA reads them here with any Modbus master.
//
// The register map is generated from the config (Map, printed by
// `edgecollector modbus-map`) and documented in docs/modbus-server.md.
// The server answers reads from an image it rebuilds from the engine's
// snapshot a few times a second, so no client can slow the poll path.
// Every write is refused with exception 01 (illegal function).
package modbusserver

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/hazwatch/edgecollector/config"
)

// Layout of the register map (docs/modbus-server.md). Holding and input
// registers hold the same words; discrete inputs and coils the same bits.
const (
	Version = 1 // register 0: layout version

	PointBase      = 100 // point i at PointBase + PointStride*i
	PointStride    = 10
	InterlockBits  = 100  // interlock j: tripped at InterlockBits + 2j, bypassed at +1
	PointBits      = 1000 // point i: bits PointBits + 4i .. +3
	PointBitStride = 4
)

// Register offsets within a point's block.
const (
	OffFloat   = 0 // float32, 2 registers, high word first (ABCD); NaN when the value is null
	OffInt16   = 2 // value x scale, rounded and clamped to ±32767; -32768 (0x8000) when null
	OffQuality = 3 // quality code (QualityCodes)
	OffLevel   = 4 // alarm level: 0 none, 1 LL, 2 L, 3 H, 4 HH
	OffStatus  = 5 // status bits (Status*)
	OffAge     = 6 // seconds since the point's last reading, 65535 when none yet
)

// Status bits of a point's status register (and, for the first four, its
// discrete inputs at PointBits + 4i + n).
const (
	StatusAlarm       = 1 << 0 // any process alarm active
	StatusLevel2      = 1 << 1 // HH or LL active (level-2 alarm)
	StatusFault       = 1 << 2 // quality counts as faulted (comm_fault, exception, sensor_fault, stale, under_range, maintenance)
	StatusMaintenance = 1 << 3 // out of service
	StatusValid       = 1 << 4 // the value registers hold a value
)

// Header registers.
const (
	RegVersion    = 0
	RegPoints     = 1
	RegInterlocks = 2
	RegHeartbeat  = 3 // +1 at every image refresh (wraps)
	RegTimeHi     = 4 // unix seconds of the snapshot, uint32 high word
	RegTimeLo     = 5
	RegTripped    = 6 // interlocks tripped
	RegAlarms     = 7 // points in alarm
	RegFaults     = 8 // points faulted
)

// Summary bits.
const (
	BitAlive       = 0 // always 1 while the server serves
	BitAnyTripped  = 1
	BitAnyLevel2   = 2
	BitAnyFault    = 3
	BitAnyBypassed = 4
)

// QualityCodes are the codes of the quality register, in the design's
// order of qualities.
var QualityCodes = []string{"good", "comm_fault", "exception", "sensor_fault", "over_range", "under_range", "stale", "maintenance"}

// LevelCodes are the codes of the alarm-level register.
var LevelCodes = []string{"none", "LL", "L", "H", "HH"}

// MapPoint is one point of the map.
type MapPoint struct {
	Code, Name, Unit string
	Scale            float64 // of the int16 register
	Base             uint16  // first register
	Bit              uint16  // first discrete input
}

// MapInterlock is one interlock of the map.
type MapInterlock struct {
	Name string
	Bit  uint16 // tripped; Bit+1 bypassed
}

// Map is the register map.
type Map struct {
	Points     []MapPoint
	Interlocks []MapInterlock
}

// Registers is the number of registers the map spans.
func (m *Map) Registers() int { return PointBase + PointStride*len(m.Points) }

// Bits is the number of discrete inputs (and coils) the map spans.
func (m *Map) Bits() int { return PointBits + PointBitStride*len(m.Points) }

// AutoScale is the int16 scale of a point with this range: the largest
// power of ten (10^-3 .. 10^4) that keeps both ends within ±32767; 1 when
// the range is unknown.
func AutoScale(lo, hi float64, known bool) float64 {
	if !known {
		return 1
	}
	m := math.Max(math.Abs(lo), math.Abs(hi))
	for k := 4; k >= -3; k-- {
		if s := math.Pow10(k); m*s <= 32767 {
			return s
		}
	}
	return math.Pow10(-3)
}

// FromConfig builds the map of cfg; cfg need not configure modbus_server
// (then every point and interlock is mapped with automatic scales).
func FromConfig(cfg *config.Config) (*Map, error) {
	var mc config.ModbusMapConf
	if cfg.ModbusServer != nil {
		mc = cfg.ModbusServer.Map
	}
	codes := mc.Points
	if len(codes) == 0 {
		for _, p := range cfg.Points {
			codes = append(codes, p.Code)
		}
	}
	names := mc.Interlocks
	if len(names) == 0 {
		for _, il := range cfg.Interlocks {
			names = append(names, il.Name)
		}
	}
	if len(codes) > config.MaxModbusPoints || len(names) > config.MaxModbusInterlocks {
		return nil, fmt.Errorf("modbus_server.map: %d points and %d interlocks; at most %d and %d fit", len(codes), len(names), config.MaxModbusPoints, config.MaxModbusInterlocks)
	}
	m := &Map{}
	for i, code := range codes {
		p := cfg.Point(code)
		if p == nil {
			return nil, fmt.Errorf("modbus_server.map.points: no point %q", code)
		}
		s, ok := mc.Scale[code]
		if !ok {
			s = AutoScale(rangeOf(p))
		}
		m.Points = append(m.Points, MapPoint{Code: code, Name: p.Name, Unit: p.Unit, Scale: s,
			Base: uint16(PointBase + PointStride*i), Bit: uint16(PointBits + PointBitStride*i)})
	}
	for j, name := range names {
		if cfg.Interlock(name) == nil {
			return nil, fmt.Errorf("modbus_server.map.interlocks: no interlock %q", name)
		}
		m.Interlocks = append(m.Interlocks, MapInterlock{Name: name, Bit: uint16(InterlockBits + 2*j)})
	}
	return m, nil
}

func rangeOf(p *config.Point) (float64, float64, bool) {
	if len(p.Range) == 2 {
		return p.Range[0], p.Range[1], true
	}
	return 0, 0, false
}

// Row is one line of the printed map.
type Row struct {
	Table   string // "holding+input", "discrete+coil"
	Address uint16 // 0-based protocol address
	Count   int
	Type    string
	Subject string // point code, interlock name or "gateway"
	Meaning string
}

// Rows lists the whole map, in address order within each table.
func (m *Map) Rows() []Row {
	const reg, bit = "holding+input", "discrete+coil"
	rows := []Row{
		{reg, RegVersion, 1, "uint16", "gateway", fmt.Sprintf("map layout version (%d)", Version)},
		{reg, RegPoints, 1, "uint16", "gateway", fmt.Sprintf("points in the map (%d)", len(m.Points))},
		{reg, RegInterlocks, 1, "uint16", "gateway", fmt.Sprintf("interlocks in the map (%d)", len(m.Interlocks))},
		{reg, RegHeartbeat, 1, "uint16", "gateway", "heartbeat: +1 at every refresh (a frozen value means stale data)"},
		{reg, RegTimeHi, 2, "uint32", "gateway", "unix time of the snapshot, seconds"},
		{reg, RegTripped, 1, "uint16", "gateway", "interlocks tripped"},
		{reg, RegAlarms, 1, "uint16", "gateway", "points in alarm"},
		{reg, RegFaults, 1, "uint16", "gateway", "points faulted"},
	}
	for _, p := range m.Points {
		unit := p.Unit
		if unit == "" {
			unit = "-"
		}
		rows = append(rows,
			Row{reg, p.Base + OffFloat, 2, "float32 ABCD", p.Code, fmt.Sprintf("value in %s (NaN when null)", unit)},
			Row{reg, p.Base + OffInt16, 1, "int16", p.Code, fmt.Sprintf("value x %s in %s (-32768 when null)", fmtScale(p.Scale), unit)},
			Row{reg, p.Base + OffQuality, 1, "uint16", p.Code, "quality: " + codes(QualityCodes)},
			Row{reg, p.Base + OffLevel, 1, "uint16", p.Code, "alarm level: " + codes(LevelCodes)},
			Row{reg, p.Base + OffStatus, 1, "uint16", p.Code, "status bits: 0 alarm, 1 level-2 (HH/LL), 2 fault, 3 maintenance, 4 value valid"},
			Row{reg, p.Base + OffAge, 1, "uint16", p.Code, "seconds since the last reading (65535: none yet)"},
		)
	}
	rows = append(rows,
		Row{bit, BitAlive, 1, "bool", "gateway", "server alive (always 1)"},
		Row{bit, BitAnyTripped, 1, "bool", "gateway", "any interlock tripped"},
		Row{bit, BitAnyLevel2, 1, "bool", "gateway", "any point in level-2 alarm (HH/LL)"},
		Row{bit, BitAnyFault, 1, "bool", "gateway", "any point faulted"},
		Row{bit, BitAnyBypassed, 1, "bool", "gateway", "any interlock bypassed"},
	)
	for _, il := range m.Interlocks {
		rows = append(rows,
			Row{bit, il.Bit, 1, "bool", il.Name, "tripped"},
			Row{bit, il.Bit + 1, 1, "bool", il.Name, "bypassed"})
	}
	for _, p := range m.Points {
		rows = append(rows,
			Row{bit, p.Bit, 1, "bool", p.Code, "alarm active"},
			Row{bit, p.Bit + 1, 1, "bool", p.Code, "level-2 alarm (HH/LL)"},
			Row{bit, p.Bit + 2, 1, "bool", p.Code, "fault"},
			Row{bit, p.Bit + 3, 1, "bool", p.Code, "maintenance"})
	}
	return rows
}

func codes(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", i, n)
	}
	return b.String()
}

func fmtScale(s float64) string { return fmt.Sprintf("%g", s) }

// WriteText prints the map as an aligned table (format "text") or CSV
// ("csv").
func (m *Map) WriteText(w io.Writer, format string) error {
	rows := m.Rows()
	switch format {
	case "csv":
		fmt.Fprintln(w, "table,address,count,type,subject,meaning")
		for _, r := range rows {
			fmt.Fprintf(w, "%s,%d,%d,%s,%s,%q\n", r.Table, r.Address, r.Count, r.Type, csvField(r.Subject), r.Meaning)
		}
		return nil
	case "", "text":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tADDRESS\tCOUNT\tTYPE\tSUBJECT\tMEANING")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", r.Table, r.Address, r.Count, r.Type, r.Subject, r.Meaning)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown format %q: want text or csv", format)
}

func csvField(s string) string {
	if strings.ContainsAny(s, ",\"\n") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
