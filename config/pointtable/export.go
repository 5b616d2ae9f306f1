package pointtable

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hazwatch/edgecollector/config"
)

// alwaysExported are written even when no point sets them.
var alwaysExported = []string{"code", "name", "kind", "device", "table", "address", "type", "unit", "range_lo", "range_hi", "LL", "L", "H", "HH"}

// Export is a config's points as a point table, and the keys of points
// that the table cannot carry (e.g. "GT-1: diagnostics"), which an export
// would lose.
func Export(configFile string) (*Table, []string, error) {
	b, err := os.ReadFile(configFile)
	if err != nil {
		return nil, nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", configFile, err)
	}
	pts := lookup(root(&doc), "points")
	if pts == nil || pts.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("%s: no points list", configFile)
	}
	known := map[string]bool{}
	for _, c := range Columns {
		p := c.Path
		if l := p[len(p)-1]; l == "0" || l == "1" {
			p = p[:len(p)-1]
		}
		known[strings.Join(p, ".")] = true
		if len(p) > 1 {
			known[p[0]] = true
		}
	}
	rows := make([][]string, 0, len(pts.Content))
	var lost []string
	used := make([]bool, len(Columns))
	for _, pt := range pts.Content {
		pt = deref(pt)
		row := make([]string, len(Columns))
		for k, c := range Columns {
			n := at(pt, c.Path)
			if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
				continue
			}
			v, err := canon(c.kind, n.Value)
			if err != nil {
				v = n.Value
			}
			row[k], used[k] = v, true
		}
		rows = append(rows, row)
		var extra []string
		walkKeys(pt, "", known, func(path string) { extra = append(extra, path) })
		if len(extra) > 0 {
			lost = append(lost, fmt.Sprintf("%s: %s", row[0], strings.Join(extra, ", ")))
		}
	}
	var keep []int
	for k, c := range Columns {
		if used[k] || slices.Contains(alwaysExported, c.Key) {
			keep = append(keep, k)
		}
	}
	t := &Table{Sheet: "points"}
	hdr := make([]string, len(keep))
	for i, k := range keep {
		hdr[i] = Columns[k].Key
		t.Numeric = append(t.Numeric, Columns[k].kind == kNum || Columns[k].kind == kInt)
	}
	t.Rows = append(t.Rows, hdr)
	for _, r := range rows {
		out := make([]string, len(keep))
		for i, k := range keep {
			out[i] = r[k]
		}
		t.Rows = append(t.Rows, trimRow(out))
	}
	return t, lost, nil
}

func trimRow(r []string) []string {
	for len(r) > 0 && r[len(r)-1] == "" {
		r = r[:len(r)-1]
	}
	return r
}

func root(doc *yaml.Node) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return doc
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// at follows a column path; a last "0"/"1" indexes a pair.
func at(m *yaml.Node, path []string) *yaml.Node {
	n := m
	for _, p := range path {
		if p == "0" || p == "1" {
			if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
				return nil
			}
			return deref(n.Content[p[0]-'0'])
		}
		n = lookup(n, p)
	}
	return n
}

// walkKeys calls f for the key paths of m that the table does not know;
// known sub-mappings are walked into.
func walkKeys(m *yaml.Node, prefix string, known map[string]bool, f func(string)) {
	if m == nil || m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		p := m.Content[i].Value
		if prefix != "" {
			p = prefix + "." + p
		}
		v := deref(m.Content[i+1])
		if !known[p] {
			f(p)
			continue
		}
		if v.Kind == yaml.MappingNode {
			walkKeys(v, p, known, f)
		}
	}
}

// Presets of the platform sensor table.
var Presets = []string{"generic", "jiangsu"}

// Sensors is the platform's sensor table of a validated config: code,
// name, unit, range and alarm limits, in the preset's layout. Jiangsu's
// "five in one" layout (our reading of its sensor table, second-hand):
// TARGET_CODE and BIT_NO (位号) carry the point code, GATEWAY_CODE the
// gateway code, LOW_VALUE/TOP_VALUE the range, LOW_VALUE_01 LL,
// LOW_VALUE_02 L, TOP_VALUE_01 H, TOP_VALUE_02 HH.
func Sensors(cfg *config.Config, preset string) (*Table, error) {
	var hdr []string
	switch preset {
	case "", "generic":
		hdr = []string{"code", "name", "unit", "range_lo", "range_hi", "LL", "L", "H", "HH"}
	case "jiangsu":
		hdr = []string{"TARGET_CODE", "TARGET_NAME", "GATEWAY_CODE", "BIT_NO", "UNIT", "LOW_VALUE", "TOP_VALUE", "LOW_VALUE_01", "LOW_VALUE_02", "TOP_VALUE_01", "TOP_VALUE_02"}
	default:
		return nil, fmt.Errorf("unknown preset %q: want one of %s", preset, strings.Join(Presets, ", "))
	}
	t := &Table{Sheet: "sensors", Rows: [][]string{hdr}}
	num := func(f *float64) string {
		if f == nil {
			return ""
		}
		return strconv.FormatFloat(*f, 'f', -1, 64)
	}
	for _, p := range cfg.Points {
		var lo, hi *float64
		if len(p.Range) == 2 {
			lo, hi = &p.Range[0], &p.Range[1]
		}
		var a config.Alarms
		if p.Alarms != nil {
			a = *p.Alarms
		}
		var r []string
		if preset == "jiangsu" {
			r = []string{p.Code, p.Name, cfg.Gateway.Code, p.Code, p.Unit, num(lo), num(hi), num(a.LL), num(a.L), num(a.H), num(a.HH)}
		} else {
			r = []string{p.Code, p.Name, p.Unit, num(lo), num(hi), num(a.LL), num(a.L), num(a.H), num(a.HH)}
		}
		t.Rows = append(t.Rows, trimRow(r))
	}
	off := 3
	if preset == "jiangsu" {
		off = 5
	}
	t.Numeric = make([]bool, len(hdr))
	for i := off; i < len(hdr); i++ {
		t.Numeric[i] = true
	}
	return t, nil
}
