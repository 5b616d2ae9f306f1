package edge

import (
	"fmt"
	"time"
)

// ClockStepThreshold is how far the wall clock may drift from the monotonic
// clock between two looks before it counts as a step.
const ClockStepThreshold = 2 * time.Second

// clockWatch tells a wall-clock step (NTP, an operator, a platform's time
// set) from the passing of time: between two looks the wall clock and the
// monotonic clock must advance alike.
type clockWatch struct {
	wall time.Time
	mono time.Duration
	ok   bool
}

// observe takes the wall time and the monotonic time since start, and
// returns a system clock_step event when the wall clock jumped.
func (c *clockWatch) observe(wall time.Time, mono time.Duration) (Event, bool) {
	prevWall, prevMono, had := c.wall, c.mono, c.ok
	c.wall, c.mono, c.ok = wall, mono, true
	if !had {
		return Event{}, false
	}
	step := wall.Round(0).Sub(prevWall.Round(0)) - (mono - prevMono)
	if step < ClockStepThreshold && step > -ClockStepThreshold {
		return Event{}, false
	}
	expected := prevWall.Add(mono - prevMono)
	return Event{Type: EventSystem, State: StateClockStep, Subject: "clock", TS: wall,
		Message: fmt.Sprintf("wall clock stepped by %s: expected %s, now %s", step.Round(time.Millisecond),
			expected.Format(time.RFC3339Nano), wall.Format(time.RFC3339Nano))}, true
}
