package edge

import (
	"fmt"
	"time"
)

// Out-of-service points (Jiangsu's WC_ENT_LEAKPOINT keeps IS_USE,
// STOP_REMARK, STOP_PSN, STOP_TIME): an operator takes a point out of
// service for a while with a reason. Its readings carry quality
// maintenance, its process alarms hold, and, like every faulted detector,
// it votes trip in a fail-safe interlock: so it is refused for a point that
// votes in an interlock not bypassed, unless forced. It ends by itself, by
// command, and at a restart.

// maintenance is a point's out-of-service period.
type maintenance struct {
	since, until time.Time
	reason, by   string
}

// MaintenanceStatus is a point's out-of-service state.
type MaintenanceStatus struct {
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
}

// Maintenance takes a point out of service for d (at most 8 h, like a
// bypass) with a reason, or (on false) puts it back. force allows a point
// that votes in an interlock that is not bypassed.
func (e *Engine) Maintenance(code string, on bool, d time.Duration, reason, who string, force bool) error {
	e.mu.Lock()
	i, ok := e.index[code]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("point %q: %w", code, ErrUnknown)
	}
	ps := e.points[i]
	now := e.opts.Now()
	var ev Event
	switch {
	case !on && ps.maint == nil:
		e.mu.Unlock()
		return fmt.Errorf("point %q is in service", code)
	case !on:
		ev = Event{Type: EventMaintenance, State: StateEnded, Point: code, TS: now, Reason: ps.maint.reason, By: who,
			Message: fmt.Sprintf("back in service, by %s (out since %s for: %s)", who, ps.maint.since.Format(time.RFC3339), ps.maint.reason)}
		ps.maint = nil
	case d <= 0 || d > MaxBypass:
		e.mu.Unlock()
		return fmt.Errorf("maintenance for %s: want more than 0 and at most %s", d, MaxBypass)
	case reason == "":
		e.mu.Unlock()
		return fmt.Errorf("point %q: say why it goes out of service (--reason)", code)
	default:
		if !force {
			for _, k := range ps.byIL {
				if il := e.ils[k]; !il.bypassed(now) && !il.conf.HoldOnFault {
					e.mu.Unlock()
					return fmt.Errorf("point %q votes in interlock %q, which is not bypassed: out of service it would vote trip; bypass %s first, or use --force", code, il.conf.Name, il.conf.Name)
				}
			}
		}
		ps.maint = &maintenance{since: now, until: now.Add(d), reason: reason, by: who}
		ev = Event{Type: EventMaintenance, State: StateStarted, Point: code, TS: now, Reason: reason, By: who,
			Message: fmt.Sprintf("out of service by %s for %s, until %s: %s", who, d, ps.maint.until.Format(time.RFC3339), reason)}
	}
	e.persist()
	e.mu.Unlock()
	e.poke()
	e.emit(now, []Event{ev})
	return nil
}

// expireMaintenance ends out-of-service periods that are over; called with
// mu held.
func (e *Engine) expireMaintenance(now time.Time) []Event {
	var evs []Event
	for _, ps := range e.points {
		if m := ps.maint; m != nil && !now.Before(m.until) {
			evs = append(evs, Event{Type: EventMaintenance, State: StateExpired, Point: ps.conf.Code, TS: now, Reason: m.reason, By: m.by,
				Message: fmt.Sprintf("back in service: the maintenance of %s ended (%s)", m.until.Sub(m.since), m.reason)})
			ps.maint = nil
		}
	}
	return evs
}
