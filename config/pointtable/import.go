package pointtable

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one bad cell (or row, or header) of a table.
type Problem struct {
	File  string
	Sheet string // "" for CSV
	Row   int    // 1-based, as the spreadsheet shows it; 0 for the whole table
	Col   int    // 1-based; 0 for the whole row
	// Header is the column's header text, when it has one.
	Header string
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Sheet != "" {
		fmt.Fprintf(&b, ": sheet %q", p.Sheet)
	}
	switch {
	case p.Row > 0 && p.Col > 0:
		fmt.Fprintf(&b, ": row %d column %s", p.Row, colName(p.Col))
		if p.Header != "" {
			fmt.Fprintf(&b, " (%s)", p.Header)
		}
	case p.Row > 0:
		fmt.Fprintf(&b, ": row %d", p.Row)
	}
	return b.String() + ": " + p.Msg
}

// Problems are every problem of a table, in row order.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// Imported is a table read as points.
type Imported struct {
	// Points is the YAML sequence of the points, one flow mapping each.
	Points *yaml.Node
	// Rows is the spreadsheet row (1-based) of each point.
	Rows []int
	// Cols is the spreadsheet column (1-based) of each Columns entry, 0
	// when the table has no such column.
	Cols []int
}

// Import reads t (from file, for messages) as points. Empty rows and rows
// whose first cell starts with # are skipped; so are columns whose header
// starts with #.
func Import(t *Table, file string) (*Imported, Problems) {
	var probs Problems
	var headers []string
	at := func(row, col int, format string, args ...any) {
		p := Problem{File: file, Sheet: t.Sheet, Row: row, Col: col, Msg: fmt.Sprintf(format, args...)}
		if col > 0 && col <= len(headers) {
			p.Header = strings.TrimSpace(headers[col-1])
		}
		probs = append(probs, p)
	}
	im := &Imported{Points: &yaml.Node{Kind: yaml.SequenceNode}, Cols: make([]int, len(Columns))}
	hdr := -1
	for i, r := range t.Rows {
		if !blank(r) {
			hdr = i
			break
		}
	}
	if hdr < 0 {
		at(0, 0, "the table is empty: want a header row (code, name, kind, device, table, address, ...) and one row per point")
		return im, probs
	}
	headers = t.Rows[hdr]
	colOf := make([]int, len(headers)) // header index -> Columns index, -1 ignored
	for c, h := range headers {
		colOf[c] = -1
		h = strings.TrimSpace(h)
		if h == "" || strings.HasPrefix(h, "#") {
			continue
		}
		k, ok := column(h)
		switch {
		case !ok:
			at(hdr+1, c+1, "unknown column %q; see docs/points.md for the columns (start a header with # to keep a column of notes)", h)
		case im.Cols[k] != 0:
			at(hdr+1, c+1, "column %q again (first in column %s)", Columns[k].Key, colName(im.Cols[k]))
		default:
			im.Cols[k], colOf[c] = c+1, k
		}
	}
	for _, req := range []string{"code", "kind", "device"} {
		if k, _ := column(req); im.Cols[k] == 0 {
			at(hdr+1, 0, "no %q column: the header row needs code, kind and device", req)
		}
	}
	seen := map[string]int{}
	for i := hdr + 1; i < len(t.Rows); i++ {
		r := t.Rows[i]
		if blank(r) || strings.HasPrefix(strings.TrimSpace(r[0]), "#") {
			continue
		}
		row := i + 1
		pt := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
		pairs := map[string][2]*yaml.Node{}
		pairCol := map[string][2]int{}
		for c, v := range r {
			v = strings.TrimSpace(v)
			if c >= len(colOf) {
				if v != "" {
					at(row, c+1, "a value %q in a column with no header", v)
				}
				continue
			}
			k := colOf[c]
			if k < 0 || v == "" {
				continue
			}
			col := Columns[k]
			val, err := canon(col.kind, v)
			if err != nil {
				at(row, c+1, "%v", err)
				continue
			}
			n := scalar(col.kind, val)
			if last := col.Path[len(col.Path)-1]; last == "0" || last == "1" {
				key := strings.Join(col.Path[:len(col.Path)-1], ".")
				if _, ok := pairs[key]; !ok {
					// a placeholder keeps the pair in column order
					set(pt, []string{key}, &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle})
				}
				p, pc := pairs[key], pairCol[key]
				p[last[0]-'0'], pc[last[0]-'0'] = n, c+1
				pairs[key], pairCol[key] = p, pc
				continue
			}
			set(pt, col.Path, n)
			if col.Key == "code" {
				if first, dup := seen[val]; dup {
					at(row, c+1, "point %q again (first in row %d); codes must be unique", val, first)
				}
				seen[val] = row
			}
		}
		for _, key := range []string{"raw_range", "range"} {
			p, ok := pairs[key]
			if !ok {
				continue
			}
			if p[0] == nil || p[1] == nil {
				miss := 0
				if p[1] == nil {
					miss = 1
				}
				names := map[string][2]string{"raw_range": {"raw_lo", "raw_hi"}, "range": {"range_lo", "range_hi"}}[key]
				at(row, pairCol[key][1-miss], "%s needs both %s and %s", key, names[0], names[1])
				continue
			}
			set(pt, []string{key}, &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: []*yaml.Node{p[0], p[1]}})
		}
		if len(probs) > 0 {
			continue // a half-built point is not returned
		}
		if len(pt.Content) == 0 {
			continue
		}
		im.Points.Content = append(im.Points.Content, pt)
		im.Rows = append(im.Rows, row)
	}
	if len(im.Rows) == 0 && len(probs) == 0 {
		at(0, 0, "no point rows under the header (row %d)", hdr+1)
	}
	return im, probs
}

func blank(r []string) bool {
	for _, c := range r {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// canon checks a cell and returns its canonical spelling.
func canon(k kind, v string) (string, error) {
	switch k {
	case kInt:
		n, err := strconv.Atoi(v)
		if err != nil {
			f, ferr := strconv.ParseFloat(v, 64)
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
				return "", fmt.Errorf("want a whole number, got %q", v)
			}
			n = int(f)
		}
		return strconv.Itoa(n), nil
	case kNum:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("want a number, got %q", v)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	case kBool:
		switch strings.ToLower(v) {
		case "true", "yes", "y", "1", "是", "√":
			return "true", nil
		case "false", "no", "n", "0", "否":
			return "false", nil
		}
		return "", fmt.Errorf("want true or false (yes/no, 是/否), got %q", v)
	case kDur:
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
			return fmtDur(time.Duration(f * float64(time.Second))), nil // a bare number is seconds
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return "", fmt.Errorf("want a duration like 500ms, 10s or 5m (a bare number is seconds), got %q", v)
		}
		return fmtDur(d), nil
	}
	return v, nil
}

// fmtDur is the canonical spelling of a duration: the largest whole unit.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
	}
	return d.String()
}

func scalar(k kind, v string) *yaml.Node {
	tag := map[kind]string{kStr: "!!str", kInt: "!!int", kNum: "!!float", kBool: "!!bool", kDur: "!!str"}[k]
	if k == kNum && !strings.ContainsAny(v, ".eE") {
		tag = "!!int" // 4000 rather than 4000.0
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
}

// set puts n at path in the mapping m, making nested mappings as needed.
func set(m *yaml.Node, path []string, n *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == path[0] {
			if len(path) == 1 {
				m.Content[i+1] = n
			} else {
				set(m.Content[i+1], path[1:], n)
			}
			return
		}
	}
	k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: path[0]}
	if len(path) == 1 {
		m.Content = append(m.Content, k, n)
		return
	}
	sub := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	m.Content = append(m.Content, k, sub)
	set(sub, path[1:], n)
}

// YAML is the `points:` document of the imported points.
func (im *Imported) YAML(comment string) ([]byte, error) {
	doc := &yaml.Node{Kind: yaml.MappingNode, HeadComment: comment, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "points"}, im.Points}}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	enc.Close()
	return []byte(b.String()), nil
}
