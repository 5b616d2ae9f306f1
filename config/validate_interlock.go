package config

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// MooN parses a vote: any, all or MooN (e.g. 2oo3) over n inputs; it
// returns how many inputs must be true.
func MooN(vote string, n int) (int, error) {
	switch vote {
	case "any":
		return 1, nil
	case "all":
		return n, nil
	}
	m := mooNRE.FindStringSubmatch(vote)
	if m == nil {
		return 0, fmt.Errorf("want any, all, or MooN such as 2oo3, got %q", vote)
	}
	need, of := int(m[1][0]-'0'), int(m[2][0]-'0')
	if need > of {
		return 0, fmt.Errorf("%s: M cannot exceed N; write e.g. 2oo3", vote)
	}
	if of != n {
		return 0, fmt.Errorf("%s votes over %d inputs but this interlock lists %d; list %d inputs or write %doo%d", vote, of, n, of, min(need, n), n)
	}
	return need, nil
}

// uniqueName checks a name (letters, digits, '_', '-', '.') that must be
// unique among those seen: required and twice (with %q for the name) say
// what to write.
func (v *validator) uniqueName(path, name string, seen map[string]bool, required, twice string) {
	switch {
	case name == "":
		v.at(path, "%s", required)
	case !codeRE.MatchString(name):
		v.at(path, "%q: use letters, digits, '_', '-' and '.' only", name)
	case seen[name]:
		v.at(path, twice, name)
	default:
		seen[name] = true
	}
}

func (v *validator) interlock(i int, buses map[string]*Bus, devices map[string]*Device, points map[string]*Point, names map[string]bool) {
	il := &v.cfg.Interlocks[i]
	p := fmt.Sprintf("interlocks[%d]", i)
	v.uniqueName(p+".name", il.Name, names, "required: name the interlock, e.g. name: ESD-T101-inlet",
		"interlock %q is defined twice; names must be unique")
	if len(il.When.Inputs) == 0 {
		v.at(p+".when.inputs", "required: list the inputs, e.g. - {point: GT-1201, level: HH}")
	} else if _, err := MooN(il.When.Vote, len(il.When.Inputs)); err != nil {
		v.at(p+".when.vote", "%s", err)
	}
	for j, in := range il.When.Inputs {
		ip := fmt.Sprintf("%s.when.inputs[%d]", p, j)
		pt := points[in.Point]
		if pt == nil {
			v.at(ip+".point", "no point %q; an interlock input must name a configured point", in.Point)
			continue
		}
		if !slices.Contains([]string{"LL", "L", "H", "HH"}, in.Level) {
			v.at(ip+".level", "want LL, L, H or HH, got %q", in.Level)
			continue
		}
		if !hasLimit(pt.Alarms, in.Level) {
			v.at(ip+".level", "point %q has no %s limit; add alarms.%s to it", in.Point, in.Level, in.Level)
		}
		if pt.Maintenance && il.OnFault != OnFaultHold {
			v.at(ip+".point", "point %q is configured maintenance: true, which votes trip in this fail-safe interlock; take it out of service with `edgecollector maintenance` while the interlock is bypassed instead", in.Point)
		}
	}
	if il.OnFault != OnFaultTrip && il.OnFault != OnFaultHold {
		v.at(p+".on_fault", "want trip (fail-safe: a faulted detector votes trip) or hold, got %q", il.OnFault)
	}
	if il.OnDelay < 0 {
		v.at(p+".on_delay", "must be 0 or more")
	}
	if len(il.Actions) == 0 {
		v.at(p+".actions", "required: list the outputs to write when it trips, e.g. - {device: esd-valve, table: coil, address: 0, value: 0}")
	}
	for j := range il.Actions {
		v.output(fmt.Sprintf("%s.actions[%d]", p, j), &il.Actions[j], buses, devices)
		if fb := il.Actions[j].Feedback; fb != nil {
			v.feedback(fmt.Sprintf("%s.actions[%d].feedback", p, j), fb, points)
		}
	}
	if d := il.ReadbackEvery.D(); d < time.Second || d > 10*time.Minute {
		v.at(p+".readback_every", "want 1s to 10m, got %s", il.ReadbackEvery)
	}
	for j := range il.OnReset {
		v.output(fmt.Sprintf("%s.on_reset[%d]", p, j), &il.OnReset[j], buses, devices)
	}
}

func (v *validator) feedback(p string, fb *Feedback, points map[string]*Point) {
	if fb.Point == "" {
		v.at(p+".point", "required: name the point that proves the plant moved (a valve's limit switch), e.g. point: XV-1101-ZSC")
	} else if points[fb.Point] == nil {
		v.at(p+".point", "no point %q; feedback must name a configured point", fb.Point)
	}
	if !fb.Value.Set {
		v.at(p+".value", "required: the value the feedback point reads in the safe state, e.g. value: false")
	}
	if d := fb.Within.D(); d <= 0 || d > 10*time.Minute {
		v.at(p+".within", "want the valve's travel time, more than 0 and at most 10m (e.g. within: 15s), got %s", fb.Within)
	}
}

func hasLimit(a *Alarms, level string) bool {
	if a == nil {
		return false
	}
	if a.AlarmWhen != nil {
		// A discrete alarm raises HH (or H); an input at H is true at HH too.
		return level == "H" || level == a.DiscreteLevel()
	}
	switch level {
	case "LL":
		return a.LL != nil
	case "L":
		return a.L != nil
	case "H":
		return a.H != nil
	case "HH":
		return a.HH != nil
	}
	return false
}

func (v *validator) output(p string, o *Output, buses map[string]*Bus, devices map[string]*Device) {
	d := devices[o.Device]
	modbusDev := func(d *Device) bool { return isModbus(buses[d.Bus]) }
	switch {
	case o.Device == "":
		v.at(p+".device", "required: name the Modbus device to write (%s)", v.deviceNames(modbusDev))
	case d == nil:
		v.at(p+".device", "no device %q is configured; an interlock can only write to a configured device (%s)", o.Device, v.deviceNames(modbusDev))
	case !modbusDev(d):
		v.at(p+".device", "device %q is not on a Modbus bus; outputs are Modbus coils or registers", o.Device)
	}
	switch o.Table {
	case TableCoil, TableHolding:
	case "":
		v.at(p+".table", "required: write coil or holding")
	default:
		v.at(p+".table", "cannot write to %q; write coil or holding", o.Table)
	}
	if o.Address == nil {
		v.at(p+".address", "required: write the 0-based protocol address of the output")
	} else if *o.Address < 0 || *o.Address > 65535 {
		v.at(p+".address", "address %d is out of range; write 0-65535", *o.Address)
	}
	if o.Value == nil {
		v.at(p+".value", "required: write the value to write (coil: 0 or 1)")
	} else if o.Table == TableCoil && *o.Value != 0 && *o.Value != 1 {
		v.at(p+".value", "a coil takes 0 or 1, got %g", *o.Value)
	} else if o.Table == TableHolding && (*o.Value != math.Trunc(*o.Value) || *o.Value < -32768 || *o.Value > 65535) {
		v.at(p+".value", "a holding register takes a whole number from -32768 to 65535, got %g", *o.Value)
	}
	if *o.Retries < 0 || *o.Retries > 10 {
		v.at(p+".retries", "want 0-10, got %d", *o.Retries)
	}
}
