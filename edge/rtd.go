package edge

import "time"

// The HJ 212 real-time snapshot: a platform stores one 2011 row per MN and
// DataTime, so the gateway sends one per rtd_interval, aligned to the
// interval's boundary, with the latest value, quality and time of every
// factor: not one per poll group and tick (those would give two packets in
// one second and none in the next).

// SetRTDInterval changes the snapshot's interval (a platform's CN 1062);
// the next boundary is computed afresh.
func (e *Engine) SetRTDInterval(d time.Duration) {
	e.mu.Lock()
	e.rtdEvery, e.rtdNext = d, time.Time{}
	e.mu.Unlock()
	e.poke()
}

// RTDInterval is the snapshot's interval (0: off).
func (e *Engine) RTDInterval() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rtdEvery
}

// rtdBoundary is the first boundary of every after t, aligned in loc.
func rtdBoundary(t time.Time, every time.Duration, loc *time.Location) time.Time {
	_, off := t.In(loc).Zone()
	shift := time.Duration(off) * time.Second
	return t.Add(shift).Truncate(every).Add(every).Add(-shift).In(loc)
}

// closeRTD returns the snapshot of a boundary that has passed, if one has.
func (e *Engine) closeRTD(now time.Time) *Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rtdEvery <= 0 {
		return nil
	}
	if e.rtdNext.IsZero() {
		e.rtdNext = rtdBoundary(now, e.rtdEvery, e.loc)
		return nil
	}
	if now.Before(e.rtdNext) {
		return nil
	}
	at := e.rtdNext
	// A step forward skips the boundaries in between; after a step back
	// no boundary already sent is sent again.
	e.rtdNext = rtdBoundary(now, e.rtdEvery, e.loc)
	if !at.After(e.rtdSent) {
		return nil
	}
	e.rtdSent = at
	m := &Message{Kind: KindRTD, Created: at}
	for _, ps := range e.points {
		if !ps.conf.RTD || !ps.polled {
			continue
		}
		r := Reading{Point: ps.conf.Code, TS: ps.updated, Value: ps.value, Unit: ps.conf.Unit, Quality: ps.quality, Alarm: ps.alarm.active(), Fault: ps.fault}
		if iv := ps.conf.Interval; iv > 0 && now.Sub(ps.updated) > 2*iv && r.Quality.HasValue() {
			// Not polled for two intervals (a hung line): the value is old.
			r.Value, r.Quality, r.Fault = Value{}, Stale, "last polled "+ps.updated.Format(time.RFC3339)
		}
		m.Readings = append(m.Readings, r)
	}
	if len(m.Readings) == 0 {
		return nil
	}
	return m
}
