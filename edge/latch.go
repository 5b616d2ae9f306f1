package edge

import (
	"time"
)

// LatchState is what survives a restart of the interlocks: which are
// latched (since when) and which were bypassed (a restart ends a bypass).
type LatchState struct {
	Latched  map[string]time.Time
	Bypassed []string
	// Maintenance lists the points out of service (a restart ends that).
	Maintenance []string
}

// LatchStore keeps LatchState across restarts. Save may be slow (it syncs a
// file): the engine calls it from its own goroutine, after the outputs were
// written and outside every lock a poll group takes, never from a tick.
type LatchStore interface {
	// Load returns the saved state; a store that has none returns an empty
	// state and no error.
	Load() (LatchState, error)
	Save(LatchState) error
}

// latchState is the state to persist; called with mu held.
func (e *Engine) latchState() LatchState {
	st := LatchState{Latched: map[string]time.Time{}}
	for _, il := range e.ils {
		if il.tripped && il.conf.Latch {
			st.Latched[il.conf.Name] = il.trippedAt
		}
		if !il.bypassUntil.IsZero() {
			st.Bypassed = append(st.Bypassed, il.conf.Name)
		}
	}
	for _, ps := range e.points {
		if ps.maint != nil {
			st.Maintenance = append(st.Maintenance, ps.conf.Code)
		}
	}
	return st
}

// persist hands the current state to the saver goroutine (Run), replacing
// a snapshot it has not taken yet; called with mu held, so it never blocks:
// every sender holds mu and the channel has room for one.
func (e *Engine) persist() {
	if e.opts.Latches == nil {
		return
	}
	select {
	case <-e.saves:
	default:
	}
	e.saves <- e.latchState()
}

// save writes one snapshot; a failure is logged (a restart would forget the
// latch) and the next change tries again.
func (e *Engine) save(st LatchState) {
	start := time.Now()
	if err := e.opts.Latches.Save(st); err != nil {
		e.log.Error("cannot save interlock latches; a restart would forget them", "err", err)
		return
	}
	e.log.Debug("interlock latches saved", "latched", len(st.Latched), "took", time.Since(start))
}

// restore brings latched interlocks back as tripped and ends bypasses that
// were running at shutdown. Restored latches are supervised like a live
// trip once Run starts: their outputs are read back and re-asserted only on
// a mismatch, never written blindly.
func (e *Engine) restore() error {
	if e.opts.Latches == nil || e.opts.NoRestore {
		return nil
	}
	st, err := e.opts.Latches.Load()
	if err != nil {
		// Polling, alarms and interlocks must start whatever the disk did:
		// a latch that cannot be read is lost loudly, never a crash loop.
		e.log.Error("interlock latches cannot be read; starting with every interlock untripped: check the plant's valves", "err", err)
		return nil
	}
	now := e.opts.Now()
	var evs []Event
	for name, at := range st.Latched {
		k, ok := e.ilIdx[name]
		if !ok {
			e.log.Error("a latched interlock is no longer configured", "interlock", name)
			continue
		}
		il := e.ils[k]
		il.tripped, il.trippedAt = true, at
		for _, s := range il.sups {
			s.st.phase = phaseCheck
			s.st.note = "restored after a restart"
		}
		e.log.Warn("interlock restored as tripped from before the restart; its outputs will be read back, and re-asserted only on a mismatch",
			"interlock", name, "tripped_at", at)
	}
	for _, name := range st.Bypassed {
		evs = append(evs, Event{Type: EventInterlock, State: StateBypassExpired, Interlock: name, TS: now, Message: "bypass ended by restart"})
	}
	for _, code := range st.Maintenance {
		evs = append(evs, Event{Type: EventMaintenance, State: StateExpired, Point: code, TS: now, Message: "back in service: maintenance ended by restart"})
	}
	if len(evs) > 0 {
		e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	}
	if len(st.Bypassed) > 0 || len(st.Maintenance) > 0 {
		e.persist()
	}
	return nil
}
