package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseBits reads a bit field "4-5" (or "3"): its first bit and width.
func ParseBits(s string) (lo, width int, err error) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	lo, err = strconv.Atoi(strings.TrimSpace(a))
	hi := lo
	if err == nil && found {
		hi, err = strconv.Atoi(strings.TrimSpace(b))
	}
	if err != nil || lo < 0 || hi > 15 || hi < lo {
		return 0, 0, fmt.Errorf("want the field's bits as \"first-last\" within 0-15, e.g. bits: \"4-5\", got %q", s)
	}
	return lo, hi - lo + 1, nil
}

// QualityName is the quality the condition sets (default sensor_fault).
func (d *Diagnostic) QualityName() string {
	if d.Quality == "" {
		return "sensor_fault"
	}
	return d.Quality
}

// bitField checks source.bits.
func (v *validator) bitField(p string, pt *Point) {
	s := pt.Source
	if s.Bits == "" {
		return
	}
	sp := p + ".source.bits"
	if _, _, err := ParseBits(s.Bits); err != nil {
		v.at(sp, "%s", err)
	}
	if s.Table != TableHolding && s.Table != TableInput {
		v.at(sp, "a bit field is part of a holding or input register")
	} else if s.Type != "uint16" {
		v.at(p+".source.type", "a bit field reads as an unsigned number: write type: uint16 (or leave it out)")
	}
	if s.Bit != nil {
		v.at(p+".source.bit", "write bit (one bit, a bool) or bits (a field), not both")
	}
}

// states checks the names of a state field's values.
func (v *validator) states(p string, pt *Point) {
	if len(pt.States) == 0 {
		return
	}
	seen := map[int]bool{}
	for i, st := range pt.States {
		sp := fmt.Sprintf("%s.states[%d]", p, i)
		switch {
		case st.Value == nil:
			v.at(sp+".value", "required: the field's value this name stands for, e.g. {value: 0, name: warm-up}")
		case seen[*st.Value]:
			v.at(sp+".value", "value %d is named twice", *st.Value)
		default:
			seen[*st.Value] = true
		}
		if st.Name == "" {
			v.at(sp+".name", "required: the state's name, e.g. name: warm-up")
		}
	}
	if t := pt.Source.Type; t == "bool" || t == "string" {
		v.at(p+".states", "states name the values of a numeric field (source.bits); this point is %s", t)
	}
	if a := pt.Alarms; a != nil && (a.LL != nil || a.L != nil || a.H != nil || a.HH != nil) {
		v.at(p+".alarms", "a point with states reports their names, not numbers: limits cannot apply (use diagnostics for fault states)")
	}
}

// diagnostics checks a point's diagnostic conditions.
func (v *validator) diagnostics(p string, pt *Point) {
	names := map[string]bool{}
	for i := range pt.Diagnostics {
		d := &pt.Diagnostics[i]
		dp := fmt.Sprintf("%s.diagnostics[%d]", p, i)
		v.uniqueName(dp+".name", d.Name, names, "required: name the condition (it is the reading's fault), e.g. name: open_circuit",
			"condition %q is named twice on this point")
		if !slices.Contains(DiagQualities, d.QualityName()) {
			v.at(dp+".quality", "want one of %s, got %q", oneOf(DiagQualities), d.Quality)
		}
		s := d.Source
		sp := dp + ".source"
		bits := s.Table == TableCoil || s.Table == TableDiscrete
		switch s.Table {
		case TableHolding, TableInput, TableCoil, TableDiscrete:
		case "":
			v.at(sp+".table", "required: the table of the status register, e.g. table: holding")
		default:
			v.at(sp+".table", "unknown table %q; write one of coil, discrete, holding, input", s.Table)
		}
		if s.Address == nil {
			v.at(sp+".address", "required: the 0-based address of the status register on the point's device")
		} else if *s.Address < 0 || *s.Address > 65535 {
			v.at(sp+".address", "address %d is out of range; write 0-65535", *s.Address)
		}
		mask := d.Mask != nil || s.Mask != nil
		values := d.Equals != nil || s.Equals != nil || len(d.In) > 0 || len(s.In) > 0
		switch {
		case bits && (s.Bit != nil || mask || values):
			v.at(sp, "a %s is one bit: the condition holds while it is 1; remove bit, mask, equals and in", s.Table)
		case bits:
		case s.Bit != nil && (mask || values):
			v.at(sp, "write bit (holds while that bit is 1) or mask with equals/in, not both")
		case s.Bit != nil && (*s.Bit < 0 || *s.Bit > 15):
			v.at(sp+".bit", "want 0-15, got %d", *s.Bit)
		case s.Bit != nil:
		case s.Bit == nil && !mask:
			v.at(sp, "say which bits: bit: 3 (holds while bit 3 is 1), or mask: 0x000F with equals: 2 or in: [2, 3, 4]")
		case !values:
			v.at(dp, "a mask needs equals: N or in: [N, ...], the masked values the condition holds for")
		default:
			_, m, in := d.Condition()
			if m == 0 {
				v.at(dp+".mask", "want a mask of 0x0001-0xFFFF")
			}
			for _, x := range in {
				if x&^m != 0 {
					v.at(dp, "value 0x%04X has bits outside mask 0x%04X: it can never match", x, m)
				}
			}
		}
	}
}
