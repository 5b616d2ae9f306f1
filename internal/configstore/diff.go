package configstore

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/hazwatch/edgecollector/config"
)

// Diff is a readable difference of two configurations: what a plant
// engineer reviews (points, alarms, interlocks, devices, buses, and the
// other sections), by name and by the config's own keys, not by bytes.
// Lines start with + (added), - (removed) or ~ (changed).
func Diff(a, b *config.Config) []string {
	var out []string
	named := func(kind string, as, bs map[string]any, order []string) {
		for _, n := range order {
			x, inA := as[n]
			y, inB := bs[n]
			switch {
			case !inA:
				out = append(out, fmt.Sprintf("+ %s %s", kind, n))
			case !inB:
				out = append(out, fmt.Sprintf("- %s %s", kind, n))
			default:
				for _, ch := range changes(flatten(x), flatten(y)) {
					out = append(out, fmt.Sprintf("~ %s %s: %s", kind, n, ch))
				}
			}
		}
	}
	pa, pb, po := byName(a.Points, b.Points, func(p config.Point) string { return p.Code })
	da, db, do := byName(a.Devices, b.Devices, func(d config.Device) string { return d.Name })
	ba, bb, bo := byName(a.Buses, b.Buses, func(d config.Bus) string { return d.Name })
	ia, ib, io := byName(a.Interlocks, b.Interlocks, func(d config.Interlock) string { return d.Name })
	named("bus", ba, bb, bo)
	named("device", da, db, do)
	named("point", pa, pb, po)
	named("interlock", ia, ib, io)
	for _, s := range []struct {
		name string
		x, y any
	}{{"gateway", a.Gateway, b.Gateway}, {"buffer", a.Buffer, b.Buffer}, {"uplink", a.Uplink, b.Uplink},
		{"status", a.Status, b.Status}, {"audit", a.Audit, b.Audit}, {"log", a.Log, b.Log}} {
		for _, ch := range changes(flatten(s.x), flatten(s.y)) {
			out = append(out, fmt.Sprintf("~ %s: %s", s.name, ch))
		}
	}
	return out
}

// byName indexes two lists by name; order is a's names, then b's new ones.
func byName[T any](as, bs []T, name func(T) string) (map[string]any, map[string]any, []string) {
	ma, mb := map[string]any{}, map[string]any{}
	var order []string
	for _, x := range as {
		ma[name(x)] = x
		order = append(order, name(x))
	}
	for _, x := range bs {
		if _, ok := ma[name(x)]; !ok {
			order = append(order, name(x))
		}
		mb[name(x)] = x
	}
	return ma, mb, order
}

func changes(a, b map[string]string) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var ks []string
	for k := range keys {
		if a[k] != b[k] {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var out []string
	for _, k := range ks {
		x, inA := a[k]
		y, inB := b[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("%s: (unset) -> %s", k, y))
		case !inB:
			out = append(out, fmt.Sprintf("%s: %s -> (unset)", k, x))
		default:
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, x, y))
		}
	}
	return out
}

// flatten gives every set leaf of v under its YAML path (alarms.HH,
// actions[0].value).
func flatten(v any) map[string]string {
	out := map[string]string{}
	walk(reflect.ValueOf(v), "", out)
	return out
}

var stringer = reflect.TypeFor[fmt.Stringer]()

func walk(v reflect.Value, path string, out map[string]string) {
	if !v.IsValid() {
		return
	}
	if v.Type().Implements(stringer) && v.Kind() != reflect.Pointer && v.Kind() != reflect.Struct {
		out[path] = v.Interface().(fmt.Stringer).String()
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walk(v.Elem(), path, out)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			p := tag
			if path != "" {
				p = path + "." + tag
			}
			walk(v.Field(i), p, out)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walk(v.MapIndex(k), fmt.Sprintf("%s.%v", path, k), out)
		}
	default:
		if !v.IsZero() {
			out[path] = fmt.Sprint(v.Interface())
		}
	}
}
