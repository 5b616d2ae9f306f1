package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a config.
type Problem struct {
	File   string
	Line   int
	Column int
	Path   string // field path, e.g. points[2].alarms.H
	Msg    string // what is wrong and what to write instead
	// Warning marks what a config may hold but should not: it is accepted
	// and the warning is in Config.Warnings.
	Warning bool
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one config, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// AsProblems returns the problems inside err, if it holds any.
func AsProblems(err error) (Problems, bool) {
	var ps Problems
	ok := errors.As(err, &ps)
	return ps, ok
}

// decoder walks a YAML node tree into Go values by reflection, so that every
// unknown key and badly typed value is reported (not just the first); the
// tree stays, so the checks that follow find the position of any field by
// its path (a map of every path costs more memory than the tree itself on
// a big config).
type decoder struct {
	file   string
	probs  Problems
	root   *yaml.Node                      // the document's top node
	fields map[reflect.Type]map[string]int // fieldIndex per struct type

	// Values reached through aliases are counted against aliasBudget, so a
	// small file cannot expand to a huge tree (a "billion laughs"); values
	// written out in the file cost nothing, however many there are.
	inAlias     int
	aliasAt     *yaml.Node // the outermost alias being expanded
	aliasPath   string
	aliasVisits int
	aliasBudget int
	overBudget  bool
}

// Alias budget: values reached through aliases may number aliasFactor
// times the file's own values, plus aliasSlack for a small file.
const (
	aliasFactor = 4
	aliasSlack  = 10000
)

// countNodes counts the nodes of a document as written, without following
// aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (d *decoder) add(n *yaml.Node, path, format string, args ...any) {
	p := Problem{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

// spend counts one value reached through an alias; past the budget it
// leaves that one problem alone, placed at the alias being expanded (every other would follow from the
// decoding it stops) and returns false.
func (d *decoder) spend() bool {
	if d.aliasVisits++; d.aliasVisits <= d.aliasBudget {
		return true
	}
	d.overBudget = true
	a := d.aliasAt
	d.probs = Problems{{File: d.file, Line: a.Line, Column: a.Column, Path: d.aliasPath, Msg: fmt.Sprintf(
		"aliases expand to more than %d values, %d times what the file itself holds (here: *%s); write the values out instead of aliasing them",
		d.aliasBudget, aliasFactor, a.Value)}}
	return false
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.overBudget {
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if d.inAlias == 0 {
			d.aliasAt, d.aliasPath = n, path
		}
		d.inAlias++
		defer func() { d.inAlias-- }()
		if !d.spend() {
			return
		}
		n = n.Alias
	} else if d.inAlias > 0 && !d.spend() {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // key present with no value: treated as absent
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.add(n, path, "%s", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.add(n, path, "want a list (lines starting with \"- \" or [a, b]), got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		d.decodeScalar(n, v, path)
	}
}

// node is the value at a field path such as points[2].alarms.H, as the
// decoder saw it (aliases followed, the first of keys written twice); nil
// when the file does not have it.
func (d *decoder) node(path string) *yaml.Node {
	n := d.root
	for n != nil && path != "" {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if path[0] == '[' {
			j := strings.IndexByte(path, ']')
			i, err := strconv.Atoi(path[1:max(j, 1)])
			if j < 0 || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return nil
			}
			n, path = n.Content[i], path[j+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		k := strings.IndexAny(path, ".[")
		if k < 0 {
			k = len(path)
		}
		key := path[:k]
		path = path[k:]
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var found *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				found = n.Content[i+1]
				break
			}
		}
		n = found
	}
	if n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.add(n, path, "want %s, got %s", kindWord(v.Kind()), describe(n))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(n.Value)
		return
	case reflect.Bool:
		var b bool
		if !decodeBool(n, &b) {
			d.add(n, path, "want true or false, got %q", n.Value)
			return
		}
		v.SetBool(b)
		return
	case reflect.Int, reflect.Int64:
		var i int64
		if !decodeInt(n, &i) {
			d.add(n, path, "want a whole number, got %q", n.Value)
			return
		}
		v.SetInt(i)
		return
	case reflect.Float64:
		var f float64
		if !decodeFloat(n, &f) {
			d.add(n, path, "want a number, got %q", n.Value)
			return
		}
		v.SetFloat(f)
		return
	}
	d.add(n, path, "cannot hold a value of Go type %s (a bug in the schema)", v.Type())
}

// decodeBool, decodeInt and decodeFloat are n.Decode for the plain
// spellings (true, 12, -0.5), which are most values of a big config,
// without the decoder n.Decode allocates; any other spelling goes to
// n.Decode, which has the last word on YAML's rules.
func decodeBool(n *yaml.Node, b *bool) bool {
	if n.Tag == "!!bool" && (n.Value == "true" || n.Value == "false") {
		*b = n.Value == "true"
		return true
	}
	return n.Decode(b) == nil
}

func decodeInt(n *yaml.Node, i *int64) bool {
	if n.Tag == "!!int" && plainDecimal(n.Value, false) {
		if v, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			*i = v
			return true
		}
	}
	return n.Decode(i) == nil
}

func decodeFloat(n *yaml.Node, f *float64) bool {
	if (n.Tag == "!!int" || n.Tag == "!!float") && plainDecimal(n.Value, true) {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
			*f = v
			return true
		}
	}
	return n.Decode(f) == nil
}

// plainDecimal: an optional minus, digits, and (frac) one '.' between
// digits; nothing YAML could read another way.
func plainDecimal(s string, frac bool) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	dot := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && frac && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return s != "" && (len(s) == 1 || s[0] != '0' || (frac && len(s) > 1 && s[1] == '.'))
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	}
	return "a value"
}

// fieldIndex maps YAML keys to struct field indexes, per struct type.
func fieldIndex(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			m[tag] = i
		}
	}
	return m
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.add(n, path, "want a mapping (key: value lines), got %s", describe(n))
		return
	}
	fields := d.fields[v.Type()]
	if fields == nil {
		if d.fields == nil {
			d.fields = map[reflect.Type]map[string]int{}
		}
		fields = fieldIndex(v.Type())
		d.fields[v.Type()] = fields
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := k.Value
		if path != "" {
			sub = path + "." + k.Value
		}
		if seen[k.Value] {
			d.add(k, sub, "key written twice; keep one")
			continue
		}
		seen[k.Value] = true
		idx, ok := fields[k.Value]
		if !ok {
			d.add(k, sub, "unknown key%s", suggest(k.Value, fields))
			continue
		}
		d.decode(val, v.Field(idx), sub)
	}
}

// suggest names the closest known key, or lists them.
func suggest(key string, fields map[string]int) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	best, bestD := "", 1<<30
	for _, n := range names {
		if dist := levenshtein(strings.ToLower(key), strings.ToLower(n)); dist < bestD {
			best, bestD = n, dist
		}
	}
	if best != "" && bestD <= max(2, len(key)/3) {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; known keys here: " + strings.Join(names, ", ")
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
