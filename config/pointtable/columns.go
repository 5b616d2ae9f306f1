// Package pointtable reads and writes point tables (点表): the spreadsheet
// of points that engineers keep in Excel. Import turns a table (.xlsx or
// .csv) into the config's `points:` YAML, naming the sheet, row and column
// of every problem; export writes a config's points back as the same table,
// and a platform sensor table (code, name, unit, range, LL/L/H/HH) in a
// chosen layout (generic, or Jiangsu's TARGET_CODE / LOW_VALUE_01 ...).
//
// The columns are documented in docs/points.md; docs/points-template.csv is
// a template. A round trip (import, validate, export) gives identical cells,
// in the canonical spelling of each value (e.g. durations as 1m, not 60s).
package pointtable

import (
	"strconv"
	"strings"
)

// kind is how a column's cells are read and written.
type kind uint8

const (
	kStr kind = iota
	kInt
	kNum
	kBool
	kDur
)

// Column is one column of the point table.
type Column struct {
	Key  string   // header, and the name in error messages
	ZH   string   // Chinese header accepted on import
	Path []string // YAML path under the point; a last element "0" or "1" is an index in a pair
	kind kind
	Doc  string
}

// Columns of the point table, in export order.
var Columns = []Column{
	{"code", "位号", []string{"code"}, kStr, "the plant's tag, unique (required)"},
	{"name", "名称", []string{"name"}, kStr, "description"},
	{"kind", "类别", []string{"kind"}, kStr, "gas, level, temperature, pressure, other (required)"},
	{"device", "设备", []string{"device"}, kStr, "device name from devices: (required)"},
	{"interval", "采集周期", []string{"interval"}, kDur, "poll interval, e.g. 1s (default 1s)"},
	{"table", "寄存器类型", []string{"source", "table"}, kStr, "coil, discrete, holding, input"},
	{"address", "地址", []string{"source", "address"}, kInt, "0-based protocol address (not 40001-style)"},
	{"type", "数据类型", []string{"source", "type"}, kStr, "uint16 (default), int16, uint32, int32, float32, ... bool, string"},
	{"word_order", "字节序", []string{"source", "word_order"}, kStr, "ABCD, CDAB, BADC, DCBA (default: the device's)"},
	{"bit", "位", []string{"source", "bit"}, kInt, "bool from one bit 0-15 of a register"},
	{"bits", "位段", []string{"source", "bits"}, kStr, "an unsigned field of a register, e.g. 4-5"},
	{"length", "长度", []string{"source", "length"}, kInt, "string: registers"},
	{"channel", "通道", []string{"source", "channel"}, kInt, "ADS1115/ADS1015 input 0-3"},
	{"measure", "测量", []string{"source", "measure"}, kStr, "BME280/BMP280: temperature, pressure, humidity"},
	{"scale", "系数", []string{"scale"}, kNum, "raw x scale + offset (default 1)"},
	{"offset", "偏移", []string{"offset"}, kNum, "added after scale"},
	{"raw_lo", "原始下限", []string{"raw_range", "0"}, kNum, "raw value at range_lo (4 mA on a loop)"},
	{"raw_hi", "原始上限", []string{"raw_range", "1"}, kNum, "raw value at range_hi (20 mA on a loop)"},
	{"unit", "单位", []string{"unit"}, kStr, "engineering unit, e.g. %LEL, MPa, m"},
	{"range_lo", "量程下限", []string{"range", "0"}, kNum, "measuring range, low end"},
	{"range_hi", "量程上限", []string{"range", "1"}, kNum, "measuring range, high end"},
	{"loop", "4-20mA", []string{"loop"}, kBool, "true for a 4-20 mA signal (NAMUR NE43 check)"},
	{"stuck_after", "冻结判定", []string{"stuck_after"}, kDur, "an unchanged value for this long is a sensor fault"},
	{"LL", "低低报", []string{"alarms", "LL"}, kNum, "low-low alarm limit"},
	{"L", "低报", []string{"alarms", "L"}, kNum, "low alarm limit"},
	{"H", "高报", []string{"alarms", "H"}, kNum, "high alarm limit"},
	{"HH", "高高报", []string{"alarms", "HH"}, kNum, "high-high alarm limit"},
	{"hysteresis", "回差", []string{"alarms", "hysteresis"}, kNum, "alarm clears this far back inside the limit"},
	{"on_delay", "报警延时", []string{"alarms", "on_delay"}, kDur, "alarm raised after this long beyond the limit"},
	{"off_delay", "消警延时", []string{"alarms", "off_delay"}, kDur, "alarm cleared after this long back inside"},
	{"alarm_when", "报警状态", []string{"alarms", "alarm_when"}, kBool, "bool point: alarm while the value is this"},
	{"alarm_level", "报警级别", []string{"alarms", "level"}, kStr, "bool point's alarm level: HH (default) or H"},
	{"gas", "气体类型", []string{"gas", "type"}, kStr, "combustible, toxic, oxygen (gas points)"},
	{"oel", "职业接触限值", []string{"gas", "oel"}, kNum, "toxic gas: OEL in the point's unit"},
	{"idlh", "IDLH", []string{"gas", "idlh"}, kNum, "toxic gas: IDLH in the point's unit"},
	{"report", "上报方式", []string{"report", "mode"}, kStr, "every (default) or change"},
	{"deadband", "死区", []string{"report", "deadband"}, kNum, "change: in the point's unit"},
	{"max_interval", "最长上报间隔", []string{"report", "max_interval"}, kDur, "change: forced report (default 1m)"},
	{"hj212_factor", "因子编码", []string{"hj212", "factor"}, kStr, "HJ 212 factor code, e.g. a21026"},
}

// column finds the column a header names: its key, its Chinese label, or
// both ("位号 code", "位号(code)"), case-insensitively for the key.
func column(header string) (int, bool) {
	h := strings.TrimSpace(strings.TrimPrefix(header, "\ufeff"))
	if h == "" {
		return 0, false
	}
	cands := []string{h}
	if i := strings.IndexAny(h, "(（"); i > 0 {
		inner := strings.TrimRight(h[i:], ")）")
		inner = strings.TrimLeft(inner, "(（")
		cands = append(cands, strings.TrimSpace(h[:i]), strings.TrimSpace(inner))
	}
	if f := strings.Fields(h); len(f) == 2 {
		cands = append(cands, f[0], f[1])
	}
	for _, c := range cands {
		for i, col := range Columns {
			if c == col.ZH || c == col.Key || (strings.EqualFold(c, col.Key) && len(col.Key) > 2) {
				return i, true
			}
		}
	}
	return 0, false
}

// cellRef is the spreadsheet name of a cell: column letters and row
// number, both from 1 ("F7").
func cellRef(col, row int) string {
	return colName(col) + itoa(row)
}

func colName(col int) string {
	s := ""
	for col > 0 {
		col--
		s = string(rune('A'+col%26)) + s
		col /= 26
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
