package edge

import (
	"fmt"
	"time"
)

// InputConf is one interlock input: a point's alarm at a level.
type InputConf struct {
	Point string
	Level Level
}

// ActionConf is one output write of an interlock.
type ActionConf struct {
	Device  string
	Writer  Writer
	Table   OutputTable
	Address uint16
	Value   float64
	Verify  bool
	Retries int
	// Feedback, when set, proves the plant moved: action_verified only once
	// the feedback point reads its value within its travel time.
	Feedback *FeedbackConf
}

// InterlockConf is an interlock compiled from the config.
type InterlockConf struct {
	Name        string
	Description string
	Inputs      []InputConf
	// Need is how many inputs must vote trip (1 = any, len = all, M of MooN).
	Need int
	// HoldOnFault: a faulted input votes no trip (default: it votes trip).
	HoldOnFault bool
	OnDelay     time.Duration
	Latch       bool
	Actions     []ActionConf
	OnReset     []ActionConf
	// ReadbackEvery: while tripped, outputs are read back this often and
	// re-asserted when changed (default DefaultReadbackEvery).
	ReadbackEvery time.Duration
}

// MaxBypass is the longest bypass allowed.
const MaxBypass = 8 * time.Hour

type interlock struct {
	conf        InterlockConf
	inputs      []int // point indexes
	tripped     bool
	trippedAt   time.Time
	pending     bool
	since       time.Time
	bypassUntil time.Time
	lastVotes   int
	cause       string        // the votes that tripped it
	sups        []*supervisor // one per action
}

func (il *interlock) bypassed(now time.Time) bool { return now.Before(il.bypassUntil) }

// votes counts the inputs voting trip; a faulted detector votes trip unless
// the interlock holds on faults. Points not polled yet do not vote.
func (e *Engine) votes(il *interlock) int {
	n := 0
	for k, pi := range il.inputs {
		ps := e.points[pi]
		switch {
		case !ps.polled:
		case ps.quality.Faulted():
			if !il.conf.HoldOnFault {
				n++
			}
		case ps.alarm.at(il.conf.Inputs[k].Level):
			n++
		}
	}
	return n
}

// evaluate decides, with the lock held, whether il trips now (or, when not
// latched, resets by itself). It returns the events and the actions to run.
func (e *Engine) evaluate(il *interlock, now time.Time) (evs []Event, run []ActionConf) {
	v := e.votes(il)
	il.lastVotes = v
	cond := v >= il.conf.Need
	switch {
	case cond && !il.tripped:
		if il.bypassed(now) {
			il.pending = false
			return nil, nil
		}
		if !il.pending {
			il.pending, il.since = true, now
		}
		if now.Sub(il.since) < il.conf.OnDelay {
			return nil, nil
		}
		il.pending, il.tripped, il.trippedAt = false, true, now
		il.cause = fmt.Sprintf("%d of %d inputs vote trip (need %d): %s", v, len(il.inputs), il.conf.Need, e.describeInputs(il))
		for _, s := range il.sups {
			s.startTrip(now)
		}
		e.persist()
		evs = append(evs, Event{Type: EventInterlock, State: StateTripped, Interlock: il.conf.Name, TS: now,
			Actions: plannedActions(il.conf.Actions), Message: il.cause})
		return evs, il.conf.Actions
	case !cond && il.tripped && !il.conf.Latch:
		il.tripped = false
		for _, s := range il.sups {
			s.stop(now)
		}
		e.persist()
		evs = append(evs, Event{Type: EventInterlock, State: StateReset, Interlock: il.conf.Name, TS: now,
			Message: "condition cleared (not latched)"})
		return evs, il.conf.OnReset
	case !cond:
		il.pending = false
	}
	return nil, nil
}

func (e *Engine) describeInputs(il *interlock) string {
	s := ""
	for k, pi := range il.inputs {
		ps := e.points[pi]
		if k > 0 {
			s += ", "
		}
		state := "no"
		switch {
		case !ps.polled:
			state = "not polled"
		case ps.quality.Faulted():
			state = ps.quality.String()
			if il.conf.HoldOnFault {
				state += " (hold)"
			} else {
				state += " (votes trip)"
			}
		case ps.alarm.at(il.conf.Inputs[k].Level):
			state = il.conf.Inputs[k].Level.String()
		}
		s += fmt.Sprintf("%s %s=%s", ps.conf.Code, il.conf.Inputs[k].Level, state)
	}
	return s
}

func plannedActions(acts []ActionConf) []Action {
	out := make([]Action, len(acts))
	for i, a := range acts {
		out[i] = Action{Device: a.Device, Table: a.Table.String(), Address: a.Address, Write: Num(a.Value)}
	}
	return out
}
