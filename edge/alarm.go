package edge

import (
	"fmt"
	"time"
)

// Limits are a point's process alarm limits (absent ones are nil).
type Limits struct {
	LL, L, H, HH      *float64
	Hysteresis        float64
	OnDelay, OffDelay time.Duration
	// When, for a bool point: the alarm at WhenLevel is raised while the
	// value equals *When (a status bit, a detector's relay).
	When      *bool
	WhenLevel Level
}

func (l *Limits) limit(lv Level) *float64 {
	switch lv {
	case LL:
		return l.LL
	case L:
		return l.L
	case H:
		return l.H
	case HH:
		return l.HH
	}
	return nil
}

type levelState struct {
	active  bool
	acked   bool
	pending bool
	since   time.Time
}

// alarmState is the alarm state machine of one point: process alarms per
// level with hysteresis and delays, and a device-fault alarm kept apart.
type alarmState struct {
	lv    [numLevels]levelState
	fault string // active fault kind: comm, sensor, range; "" none
}

// faultKind is the fault alarm a quality raises.
func faultKind(q Quality) string {
	switch q {
	case CommFault, Exception, Stale:
		return "comm"
	case SensorFault:
		return "sensor"
	case OverRange, UnderRange:
		return "range"
	}
	return ""
}

// active is the most severe active process alarm.
func (a *alarmState) active() Level {
	for _, lv := range []Level{HH, LL, H, L} {
		if a.lv[lv].active {
			return lv
		}
	}
	return NoLevel
}

// at reports whether the alarm at lv, or a more severe one on the same
// side, is active: the interlock input "level: H" is true at H or HH.
func (a *alarmState) at(lv Level) bool {
	switch lv {
	case H:
		return a.lv[H].active || a.lv[HH].active
	case L:
		return a.lv[L].active || a.lv[LL].active
	}
	return a.lv[lv].active
}

// eval advances the state machine with one poll and returns its events.
// Process alarms hold their state while the point has no value.
func (a *alarmState) eval(p *PointConf, now time.Time, v Value, q Quality, fault string) []Event {
	var evs []Event
	if fk := faultKind(q); fk != a.fault {
		if a.fault != "" {
			evs = append(evs, Event{Type: EventFault, State: StateCleared, Point: p.Code, TS: now, Level: a.fault, Unit: p.Unit,
				Value: v, Message: fmt.Sprintf("%s fault cleared, quality %s", a.fault, q)})
		}
		if fk != "" {
			msg := fmt.Sprintf("%s fault: quality %s", fk, q)
			if fault != "" {
				msg = fmt.Sprintf("%s fault: %s (quality %s)", fk, fault, q)
			}
			evs = append(evs, Event{Type: EventFault, State: StateRaised, Point: p.Code, TS: now, Level: fk, Unit: p.Unit,
				Value: v, Message: msg})
		}
		a.fault = fk
	}
	lim := p.Alarms
	// A point without a value, or in maintenance (out of service, a
	// detector in warm-up or inhibit), holds its process alarms.
	if lim == nil || !q.HasValue() || q == Maintenance {
		return evs
	}
	if lim.When != nil {
		if v.Kind == Bool {
			cond := v.Bool == *lim.When
			evs = a.step(p, now, lim.WhenLevel, cond, !cond, v, BoolValue(*lim.When), evs)
		}
		return evs
	}
	if v.Kind != Number {
		return evs
	}
	x := v.Num
	for _, lv := range []Level{LL, L, H, HH} {
		thr := lim.limit(lv)
		if thr == nil {
			continue
		}
		high := lv == H || lv == HH
		var cond, clear bool
		if high {
			cond = x >= *thr || (p.Gas && q == OverRange)
			clear = x < *thr-lim.Hysteresis && !(p.Gas && q == OverRange)
		} else {
			cond = x <= *thr
			clear = x > *thr+lim.Hysteresis
		}
		evs = a.step(p, now, lv, cond, clear, v, Num(*thr), evs)
	}
	return evs
}

// step advances one level's state machine: cond raises it after the on
// delay, clear clears it after the off delay.
func (a *alarmState) step(p *PointConf, now time.Time, lv Level, cond, clear bool, v, thr Value, evs []Event) []Event {
	lim := p.Alarms
	{
		s := &a.lv[lv]
		switch {
		case !s.active && cond:
			if !s.pending {
				s.pending, s.since = true, now
			}
			if now.Sub(s.since) >= lim.OnDelay {
				*s = levelState{active: true}
				evs = append(evs, Event{Type: EventAlarm, State: StateRaised, Point: p.Code, TS: now, Level: lv.String(),
					Value: v, Threshold: thr, Unit: p.Unit})
			}
		case s.active && clear:
			if !s.pending {
				s.pending, s.since = true, now
			}
			if now.Sub(s.since) >= lim.OffDelay {
				*s = levelState{}
				evs = append(evs, Event{Type: EventAlarm, State: StateCleared, Point: p.Code, TS: now, Level: lv.String(),
					Value: v, Threshold: thr, Unit: p.Unit})
			}
		default:
			s.pending = false
		}
	}
	return evs
}

// ack acknowledges the active process alarms not yet acknowledged.
func (a *alarmState) ack(p *PointConf, now time.Time) []Event {
	var evs []Event
	for _, lv := range []Level{LL, L, H, HH} {
		s := &a.lv[lv]
		if s.active && !s.acked {
			s.acked = true
			ev := Event{Type: EventAlarm, State: StateAcked, Point: p.Code, TS: now, Level: lv.String(), Unit: p.Unit}
			if thr := p.Alarms.limit(lv); thr != nil {
				ev.Threshold = Num(*thr)
			} else if w := p.Alarms.When; w != nil {
				ev.Threshold = BoolValue(*w)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}
