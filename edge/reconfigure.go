package edge

import (
	"context"
	"fmt"
	"reflect"
)

// Reconfigure applies a set of points and interlocks to the engine: at
// start, and in place at a config reload, without stopping a poll group.
// Points keep their index and state by code (a changed point keeps its
// alarms and statistics; a new one is added at the end; a removed one is
// retired, its index kept, since poll groups hold indexes). An interlock
// whose configuration is unchanged keeps its state and its supervisors
// running (their writers follow a rebuilt device); a changed or new one
// starts untripped with new supervisors, and the supervisors of changed or
// removed ones stop. Refusing a reload that would change a tripped or
// bypassed interlock is the caller's rule (Held): Reconfigure applies what
// it is given. On an error nothing changes.
func (e *Engine) Reconfigure(points []PointConf, interlocks []InterlockConf) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	index := map[string]int{}
	keep := make([]bool, len(e.points))
	var add []*pointState
	for _, p := range points {
		if _, dup := index[p.Code]; dup {
			return fmt.Errorf("point %q defined twice", p.Code)
		}
		if i, ok := e.index[p.Code]; ok {
			index[p.Code], keep[i] = i, true
			continue
		}
		index[p.Code] = len(e.points) + len(add)
		add = append(add, &pointState{conf: p})
	}
	// Check every interlock before changing anything.
	old := map[string]*interlock{}
	for _, il := range e.ils {
		old[il.conf.Name] = il
	}
	for _, c := range interlocks {
		for _, in := range c.Inputs {
			if _, ok := index[in.Point]; !ok {
				return fmt.Errorf("interlock %q: no point %q", c.Name, in.Point)
			}
		}
		if c.Need < 1 || c.Need > len(c.Inputs) {
			return fmt.Errorf("interlock %q: needs %d of %d inputs", c.Name, c.Need, len(c.Inputs))
		}
		for _, a := range append(append([]ActionConf(nil), c.Actions...), c.OnReset...) {
			if a.Writer == nil {
				return fmt.Errorf("interlock %q: no writer for device %q", c.Name, a.Device)
			}
			if fc := a.Feedback; fc != nil {
				if _, ok := index[fc.Point]; !ok {
					return fmt.Errorf("interlock %q: feedback point %q is not configured", c.Name, fc.Point)
				}
				if fc.Within <= 0 {
					return fmt.Errorf("interlock %q: feedback %q needs a travel time (within)", c.Name, fc.Point)
				}
			}
		}
	}
	// Points.
	byCode := map[string]PointConf{}
	for _, p := range points {
		byCode[p.Code] = p
	}
	for i, ps := range e.points {
		if !keep[i] {
			ps.retired = true
			continue
		}
		if c := byCode[ps.conf.Code]; !reflect.DeepEqual(c, ps.conf) {
			ps.conf = c
			ps.filter = reportFilter{} // the next reading is reported
		}
	}
	e.points = append(e.points, add...)
	e.index = index
	for _, ps := range e.points {
		ps.byIL, ps.watch = nil, nil
	}
	// Interlocks.
	var ils []*interlock
	var start, stop []*supervisor
	reused := map[*interlock]bool{}
	for _, c := range interlocks {
		if c.ReadbackEvery <= 0 {
			c.ReadbackEvery = DefaultReadbackEvery
		}
		il := old[c.Name]
		if il != nil && sameInterlock(il.conf, c) {
			reused[il] = true
			il.conf = c
			for k := range il.sups {
				il.sups[k].a = c.Actions[k] // a rebuilt device's writer
			}
		} else {
			il = &interlock{conf: c}
			for _, a := range c.Actions {
				s := &supervisor{e: e, il: il, a: a, fb: -1, wake: make(chan struct{}, 1)}
				il.sups = append(il.sups, s)
				start = append(start, s)
			}
		}
		ils = append(ils, il)
	}
	for _, il := range e.ils {
		if !reused[il] {
			stop = append(stop, il.sups...)
		}
	}
	e.ils, e.ilIdx, e.sups, e.byDevice = ils, map[string]int{}, nil, map[string][]*supervisor{}
	for k, il := range ils {
		e.ilIdx[il.conf.Name] = k
		il.inputs = il.inputs[:0]
		for _, in := range il.conf.Inputs {
			pi := index[in.Point]
			il.inputs = append(il.inputs, pi)
			e.points[pi].byIL = append(e.points[pi].byIL, k)
		}
		for _, s := range il.sups {
			s.fb = -1
			if fc := s.a.Feedback; fc != nil {
				s.fb = index[fc.Point]
				e.points[s.fb].watch = append(e.points[s.fb].watch, s)
			}
			e.sups = append(e.sups, s)
			e.byDevice[s.a.Device] = append(e.byDevice[s.a.Device], s)
		}
	}
	for _, s := range stop {
		if s.cancel != nil {
			s.cancel()
		}
	}
	if e.runCtx != nil {
		for _, s := range start {
			e.startSupervisor(s)
		}
	}
	if len(stop) > 0 || len(start) > 0 {
		e.persist()
	}
	return nil
}

// startSupervisor runs s under Run's context; called with mu held while
// Run runs.
func (e *Engine) startSupervisor(s *supervisor) {
	ctx, cancel := context.WithCancel(e.runCtx)
	s.cancel = cancel
	e.runWG.Add(1)
	go func() { defer e.runWG.Done(); s.run(ctx) }()
}

// sameInterlock reports whether two interlock configurations are the same
// but for the objects that write the outputs.
func sameInterlock(a, b InterlockConf) bool {
	strip := func(c InterlockConf) InterlockConf {
		c.Actions = append([]ActionConf(nil), c.Actions...)
		c.OnReset = append([]ActionConf(nil), c.OnReset...)
		for i := range c.Actions {
			c.Actions[i].Writer = nil
		}
		for i := range c.OnReset {
			c.OnReset[i].Writer = nil
		}
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
