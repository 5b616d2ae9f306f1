package edge

import (
	"context"
	"fmt"
	"time"
)

// Output supervision. For as long as an interlock is tripped (latched or
// not) and not bypassed, each of its actions has a supervisor that keeps
// the output in the safe state: a failed write is retried with a bounded
// back-off (at once when the output's device answers a poll again), the
// output is read back every ReadbackEvery and re-asserted when someone or
// something changed it (action_mismatch), and a configured feedback point
// (a limit switch) must reach its state within the valve's travel time
// before the action counts as verified. The first write of a trip happens
// in the poll tick that trips (its events leave with the tick's message);
// everything after runs in the supervisor's goroutine, so a dead output
// line never delays a poll group.

// Supervision timings.
const (
	// DefaultReadbackEvery is how often a tripped interlock's outputs are
	// read back.
	DefaultReadbackEvery = 10 * time.Second
	retryMin             = time.Second
	retryMax             = 10 * time.Second
)

// FeedbackConf is the proof that the plant moved: a point (a valve's limit
// switch) that must read Value within Within of the command.
type FeedbackConf struct {
	Point  string
	Value  float64
	Within time.Duration
}

// Action states shown in status.
const (
	ActionIdle             = "idle"              // the interlock is not tripped
	ActionPending          = "pending"           // being written
	ActionDone             = "done"              // written, not verifiable (verify off)
	ActionVerified         = "verified"          // read back (and feedback reached)
	ActionAwaitingFeedback = "awaiting_feedback" // written, feedback not there yet
	ActionFailed           = "failed"            // write, read-back or feedback failed; retried
	ActionMismatch         = "mismatch"          // found changed; being re-asserted
	ActionBypassed         = "bypassed"          // supervision paused by a bypass
)

type phase uint8

const (
	phaseIdle  phase = iota // not supervised
	phaseWrite              // the safe value is to be written at next
	phaseCheck              // to be read back (restored latch, bypass ended); written only on a mismatch
	phaseHeld               // written (and read back); checked every ReadbackEvery
)

type fbState uint8

const (
	fbNone fbState = iota
	fbWaiting
	fbReached
	fbFailed
)

// actionState is one action's supervision; guarded by Engine.mu.
type actionState struct {
	phase      phase
	busy       bool // an I/O operation is under way
	failing    bool // in a failure episode: action_failed was emitted once
	readFails  bool // read-backs fail; logged once
	fb         fbState
	commandAt  time.Time // last write of the safe value
	fbDeadline time.Time
	next       time.Time // next write (phaseWrite) or read-back (phaseHeld)
	backoff    time.Duration
	state      string // for status
	lastErr    string
	at         time.Time // of the last state change
	verifiedAt time.Time
	readBack   Value
	note       string // said in the next event (restored, bypass ended)
}

type supervisor struct {
	e    *Engine
	il   *interlock
	a    ActionConf
	fb   int // feedback point index, -1 without
	st   actionState
	wake chan struct{}
	// cancel stops the supervisor's goroutine (set while Run runs).
	cancel context.CancelFunc
}

func (s *supervisor) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ActionStatus is one interlock action's supervision state.
type ActionStatus struct {
	Device     string    `json:"device"`
	Table      string    `json:"table"`
	Address    uint16    `json:"address"`
	Write      float64   `json:"write"`
	State      string    `json:"state"`
	Error      string    `json:"error,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	ReadBack   *float64  `json:"read_back,omitempty"`
	Feedback   string    `json:"feedback,omitempty"`
}

func (s *supervisor) status() ActionStatus {
	st := ActionStatus{Device: s.a.Device, Table: s.a.Table.String(), Address: s.a.Address, Write: s.a.Value,
		State: s.st.state, Error: s.st.lastErr, Since: s.st.at, VerifiedAt: s.st.verifiedAt}
	if st.State == "" {
		st.State = ActionIdle
	}
	if s.st.readBack.Kind == Number {
		v := s.st.readBack.Num
		st.ReadBack = &v
	}
	if s.a.Feedback != nil {
		st.Feedback = fmt.Sprintf("%s = %g within %s", s.a.Feedback.Point, s.a.Feedback.Value, s.a.Feedback.Within)
	}
	return st
}

func (s *supervisor) setState(state string, now time.Time) {
	if s.st.state != state {
		s.st.state, s.st.at = state, now
	}
}

func (s *supervisor) action() Action {
	return Action{Device: s.a.Device, Table: s.a.Table.String(), Address: s.a.Address, Write: Num(s.a.Value)}
}

func (s *supervisor) where() string {
	return fmt.Sprintf("%s %s %d", s.a.Device, s.a.Table, s.a.Address)
}

// startTrip arms the supervisor for a new trip and claims the first write
// for the tripping tick; called with mu held.
func (s *supervisor) startTrip(now time.Time) {
	s.st = actionState{phase: phaseWrite, next: now, busy: true, backoff: retryMin}
	s.setState(ActionPending, now)
}

// stop ends supervision (reset); called with mu held.
func (s *supervisor) stop(now time.Time) {
	busy := s.st.busy
	s.st = actionState{busy: busy}
	s.setState(ActionIdle, now)
}

// run supervises until ctx ends.
func (s *supervisor) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		d := s.step(ctx)
		for d < 0 && ctx.Err() == nil {
			d = s.step(ctx)
		}
		if d > 0 {
			t.Reset(d)
		} else {
			t.Stop()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

type op uint8

const (
	opNone op = iota
	opWrite
	opRead
)

// step does what is due, at most one I/O operation, and returns how long
// until it should run again (0: only when woken; negative: at once).
func (s *supervisor) step(ctx context.Context) time.Duration {
	e := s.e
	e.mu.Lock()
	now := e.opts.Now()
	o, wait, evs := s.plan(now)
	if o != opNone {
		s.st.busy = true
	}
	e.mu.Unlock()
	e.emit(now, evs)
	if o == opNone {
		return wait
	}
	var more []Event
	if o == opWrite {
		rb, err := s.writeSafe(ctx, 1)
		e.mu.Lock()
		more = s.written(e.opts.Now(), rb, err)
	} else {
		rb, err := s.a.Writer.ReadOutput(ctx, s.a.Table, s.a.Address)
		e.mu.Lock()
		more = s.checked(e.opts.Now(), rb, err)
	}
	s.st.busy = false
	e.mu.Unlock()
	e.emit(now, more)
	return -1 // look again at once: a mismatch writes next
}

// plan decides the next operation; called with mu held.
func (s *supervisor) plan(now time.Time) (op, time.Duration, []Event) {
	il := s.il
	if s.st.busy {
		return opNone, 0, nil
	}
	if !il.tripped {
		if s.st.phase != phaseIdle {
			s.stop(now)
		}
		return opNone, 0, nil
	}
	if il.bypassed(now) {
		// Outputs are left alone while bypassed (maintenance may open the
		// valve); when the bypass ends they are read back first.
		s.st.phase = phaseCheck
		s.st.note = "after a bypass"
		s.setState(ActionBypassed, now)
		return opNone, il.bypassUntil.Sub(now), nil
	}
	switch s.st.phase {
	case phaseIdle:
		s.st.phase = phaseCheck
		fallthrough
	case phaseCheck:
		if !s.a.Verify {
			// Nothing to read back: never write blindly.
			s.st.phase = phaseHeld
			s.setState(ActionDone, now)
			return opNone, 0, nil
		}
		return opRead, 0, nil
	case phaseWrite:
		if now.Before(s.st.next) {
			return opNone, s.st.next.Sub(now), nil
		}
		return opWrite, 0, nil
	}
	// phaseHeld
	evs, o := s.feedback(now)
	if o != opNone {
		return o, 0, evs
	}
	if !s.a.Verify {
		if s.st.fb == fbWaiting {
			return opNone, s.st.fbDeadline.Sub(now), evs
		}
		return opNone, 0, evs
	}
	wait := s.st.next.Sub(now)
	if wait <= 0 {
		return opRead, 0, evs
	}
	if s.st.fb == fbWaiting && s.st.fbDeadline.Sub(now) < wait {
		wait = s.st.fbDeadline.Sub(now)
	}
	return opNone, wait, evs
}

// feedback judges the feedback point; called with mu held, phaseHeld.
func (s *supervisor) feedback(now time.Time) ([]Event, op) {
	if s.fb < 0 {
		return nil, opNone
	}
	fc := s.a.Feedback
	ps := s.e.points[s.fb]
	fresh := ps.polled && ps.updated.After(s.st.commandAt)
	at := fresh && ps.quality.HasValue() && ps.value.Float() == fc.Value
	var evs []Event
	switch {
	case at && s.st.fb != fbReached:
		took := ps.updated.Sub(s.st.commandAt).Round(time.Millisecond)
		evs = append(evs, s.event(StateActionVerified, now, fmt.Sprintf("%s reads %s %s after the command: the plant moved", fc.Point, ps.value, took), ""))
		s.st.fb, s.st.failing, s.st.lastErr, s.st.verifiedAt = fbReached, false, "", now
		s.setState(ActionVerified, now)
	case at:
	case s.st.fb == fbReached && fresh:
		msg := fmt.Sprintf("%s reads %s (%s) while %s is tripped, want %g: re-asserting %g to %s", fc.Point, ps.value, ps.quality, s.il.conf.Name, fc.Value, s.a.Value, s.where())
		evs = append(evs, s.event(StateActionMismatch, now, msg, ""))
		s.st.phase, s.st.next = phaseWrite, now
		s.setState(ActionMismatch, now)
		return evs, opNone
	case s.st.fb == fbWaiting && !now.Before(s.st.fbDeadline):
		state := "no reading"
		if ps.polled {
			state = fmt.Sprintf("%s (%s)", ps.value, ps.quality)
		}
		msg := fmt.Sprintf("valve did not reach %s in %s: %s reads %s", feedbackWord(fc.Value), fc.Within, fc.Point, state)
		s.st.fb, s.st.lastErr = fbFailed, msg
		s.setState(ActionFailed, now)
		if !s.st.failing {
			s.st.failing = true
			evs = append(evs, s.event(StateActionFailed, now, msg, msg))
		}
	}
	return evs, opNone
}

func feedbackWord(v float64) string {
	if v == 0 {
		return "closed (false)"
	}
	return fmt.Sprintf("its safe state (%g)", v)
}

// writeSafe writes the safe value (up to attempts times) and, when verify
// is on, reads it back. The trip's own write makes 1+retries attempts; the
// supervisor's retries make one each, so a dead output line costs its
// other devices at most one write per back-off.
func (s *supervisor) writeSafe(ctx context.Context, attempts int) (*float64, error) {
	var err error
	for range max(attempts, 1) {
		if err = s.a.Writer.WriteOutput(ctx, s.a.Table, s.a.Address, s.a.Value); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	if !s.a.Verify {
		return nil, nil
	}
	rb, err := s.a.Writer.ReadOutput(ctx, s.a.Table, s.a.Address)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	if rb != s.a.Value {
		return &rb, fmt.Errorf("read back %g, wrote %g: the output did not take the value", rb, s.a.Value)
	}
	return &rb, nil
}

// written applies a write's outcome; called with mu held.
func (s *supervisor) written(now time.Time, rb *float64, err error) []Event {
	if rb != nil {
		s.st.readBack = Num(*rb)
	}
	if !s.il.tripped {
		// Reset while writing: report what happened, supervise no more.
		if err != nil {
			return []Event{s.event(StateActionFailed, now, fmt.Sprintf("write %g to %s failed: %v", s.a.Value, s.where(), err), err.Error())}
		}
		return nil
	}
	if err != nil {
		s.st.lastErr = err.Error()
		s.st.phase, s.st.next = phaseWrite, now.Add(s.st.backoff)
		s.st.backoff = min(2*s.st.backoff, retryMax)
		s.setState(ActionFailed, now)
		if s.st.failing {
			s.e.log.Debug("interlock output still failing; retrying", "interlock", s.il.conf.Name, "output", s.where(), "err", err)
			return nil
		}
		s.st.failing = true
		msg := fmt.Sprintf("write %g to %s failed: %v; retrying until it holds", s.a.Value, s.where(), err)
		s.e.log.Error("interlock output failed", "interlock", s.il.conf.Name, "output", s.where(), "err", err)
		return []Event{s.event(StateActionFailed, now, msg, err.Error())}
	}
	s.st.phase, s.st.commandAt, s.st.next, s.st.backoff = phaseHeld, now, now.Add(s.il.conf.ReadbackEvery), retryMin
	s.st.lastErr, s.st.readFails = "", false
	msg := fmt.Sprintf("wrote %g to %s", s.a.Value, s.where())
	if rb != nil {
		msg += fmt.Sprintf("; read back %g", *rb)
	}
	if s.st.failing {
		msg += " (after failing)"
		s.st.failing = false // the episode is over; a feedback failure is a new one
	}
	if s.st.note != "" {
		msg += " (" + s.st.note + ")"
		s.st.note = ""
	}
	if fc := s.a.Feedback; fc != nil {
		s.st.fb, s.st.fbDeadline = fbWaiting, now.Add(fc.Within)
		s.setState(ActionAwaitingFeedback, now)
		msg += fmt.Sprintf("; waiting up to %s for %s to read %g", fc.Within, fc.Point, fc.Value)
		s.e.log.Info("interlock output written; waiting for feedback", "interlock", s.il.conf.Name, "output", s.where(), "feedback", fc.Point)
		return []Event{s.event(StateActionDone, now, msg, "")}
	}
	if !s.a.Verify {
		s.setState(ActionDone, now)
		s.e.log.Info("interlock output written (not verified)", "interlock", s.il.conf.Name, "output", s.where())
		return []Event{s.event(StateActionDone, now, msg, "")}
	}
	s.st.verifiedAt = now
	s.setState(ActionVerified, now)
	s.e.log.Info("interlock output verified", "interlock", s.il.conf.Name, "output", s.where(), "read_back", *rb)
	return []Event{s.event(StateActionVerified, now, msg, "")}
}

// checked applies a read-back; called with mu held.
func (s *supervisor) checked(now time.Time, rb float64, err error) []Event {
	if !s.il.tripped {
		return nil
	}
	if err != nil {
		// The output cannot be seen: keep looking, never write blindly.
		s.st.lastErr = "read back: " + err.Error()
		s.st.next = now.Add(min(s.st.backoff, s.il.conf.ReadbackEvery))
		s.st.backoff = min(2*s.st.backoff, retryMax)
		if s.st.phase == phaseCheck {
			s.st.phase = phaseHeld // read again at next
		}
		if !s.st.readFails {
			s.st.readFails = true
			s.e.log.Warn("cannot read an interlock output back; it is unverified until it answers", "interlock", s.il.conf.Name, "output", s.where(), "err", err)
		}
		return nil
	}
	s.st.readBack, s.st.readFails, s.st.backoff = Num(rb), false, retryMin
	if rb != s.a.Value {
		msg := fmt.Sprintf("read back %g from %s while %s is tripped, safe value %g: re-asserting", rb, s.where(), s.il.conf.Name, s.a.Value)
		if s.st.note != "" {
			msg += " (" + s.st.note + ")"
		}
		s.e.log.Warn("interlock output changed while tripped; re-asserting", "interlock", s.il.conf.Name, "output", s.where(), "read_back", rb, "safe", s.a.Value)
		s.st.phase, s.st.next, s.st.lastErr = phaseWrite, now, fmt.Sprintf("read back %g, safe value %g", rb, s.a.Value)
		s.setState(ActionMismatch, now)
		ev := s.event(StateActionMismatch, now, msg, "")
		ev.Actions[0].ReadBack = Num(rb)
		return []Event{ev}
	}
	s.st.lastErr, s.st.next = "", now.Add(s.il.conf.ReadbackEvery)
	if s.st.phase == phaseCheck || s.st.state != ActionVerified && s.st.fb == fbNone {
		// A restored latch or an ended bypass: the outputs hold.
		first := s.st.phase == phaseCheck
		s.st.phase, s.st.verifiedAt = phaseHeld, now
		if s.a.Feedback != nil {
			s.st.commandAt, s.st.fb, s.st.fbDeadline = now, fbWaiting, now.Add(s.a.Feedback.Within)
			s.setState(ActionAwaitingFeedback, now)
		} else {
			s.setState(ActionVerified, now)
		}
		if first {
			msg := fmt.Sprintf("read back %g from %s: the output holds", rb, s.where())
			if s.st.note != "" {
				msg += " (" + s.st.note + ")"
				s.st.note = ""
			}
			ev := s.event(StateActionVerified, now, msg, "")
			ev.Actions[0].ReadBack = Num(rb)
			return []Event{ev}
		}
	}
	return nil
}

func (s *supervisor) event(state string, now time.Time, msg, errText string) Event {
	act := s.action()
	act.Error = errText
	if s.st.readBack.Kind == Number {
		act.ReadBack = s.st.readBack
	}
	return Event{Type: EventInterlock, State: state, Interlock: s.il.conf.Name, TS: now, Actions: []Action{act}, Message: msg}
}

// emit sends events raised outside a tick.
func (e *Engine) emit(now time.Time, evs []Event) {
	if len(evs) > 0 {
		e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	}
}

// oneShot writes outputs once (on_reset actions): the write, the read-back
// when asked, one event per action.
func oneShot(ctx context.Context, name string, acts []ActionConf, now func() time.Time) []Event {
	var evs []Event
	for _, a := range acts {
		s := &supervisor{a: a, il: &interlock{conf: InterlockConf{Name: name}}}
		rb, err := s.writeSafe(ctx, 1+a.Retries)
		act := s.action()
		msg := fmt.Sprintf("wrote %g to %s", a.Value, s.where())
		state := StateActionDone
		switch {
		case err != nil:
			state, act.Error, msg = StateActionFailed, err.Error(), fmt.Sprintf("write %g to %s failed: %v", a.Value, s.where(), err)
		case rb != nil:
			state, act.ReadBack, msg = StateActionVerified, Num(*rb), msg+fmt.Sprintf("; read back %g", *rb)
		}
		if rb != nil {
			act.ReadBack = Num(*rb)
		}
		evs = append(evs, Event{Type: EventInterlock, State: state, Interlock: name, TS: now(), Actions: []Action{act}, Message: msg})
	}
	return evs
}
