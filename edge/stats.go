package edge

import (
	"time"
)

// Statistics: every poll of a point, whatever the report mode keeps, goes
// into a minute and an hour accumulator; at each boundary (plus a grace for
// the polls in flight) the finished period of every point becomes one
// stat message.

// statGrace is how long after a boundary the period is closed.
const statGrace = 2 * time.Second

type statAcc struct {
	start    time.Time
	sum      float64
	n        uint32
	min, max float64
	worst    Quality
	used     bool
	minutes  int // the minute period's length when it started
}

// severity orders qualities for a period's worst quality (HJ 212 flag
// precedence: B over D over T over M over N).
var severity = [...]int{Good: 0, Maintenance: 1, OverRange: 2, UnderRange: 2, Exception: 3, SensorFault: 3, Stale: 4, CommFault: 4}

// Worse reports whether q is more severe than o in that order (a period's
// worst quality, a day's worst flag).
func (q Quality) Worse(o Quality) bool { return q.rank() > o.rank() }

// rank is q's place in that order; a quality not defined ranks worst.
func (q Quality) rank() int {
	if q.Valid() {
		return severity[q]
	}
	return len(severity)
}

func (a *statAcc) add(v Value, q Quality) {
	if !a.used || q.Worse(a.worst) {
		a.worst = q
	}
	a.used = true
	if !q.HasValue() || v.Kind != Number {
		return
	}
	x := v.Num
	if a.n == 0 || x < a.min {
		a.min = x
	}
	if a.n == 0 || x > a.max {
		a.max = x
	}
	a.sum += x
	a.n++
}

func (a *statAcc) stat(code, unit string, p Period) Stat {
	s := Stat{Point: code, Period: p, Start: a.start, Unit: unit, Count: a.n, Quality: a.worst, minutes: a.minutes}
	if a.n > 0 {
		s.Avg, s.Min, s.Max = round12(a.sum/float64(a.n)), a.min, a.max
	}
	return s
}

// periodStart is the start of the minute period (min minutes long, a
// divisor of 60) or the hour holding t, in loc.
func periodStart(t time.Time, p Period, loc *time.Location, min int) time.Time {
	t = t.In(loc)
	if p == Minute {
		m := t.Minute()
		if min > 1 {
			m -= m % min
		}
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), m, 0, 0, loc)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
}

func periodEnd(start time.Time, p Period, min int) time.Time {
	if p == Minute {
		return start.Add(time.Duration(max(min, 1)) * time.Minute)
	}
	return start.Add(time.Hour)
}

// SetMinuteInterval sets the length of the "minute" statistics period in
// minutes (a platform's CN 1064; 1 by default; a divisor of 60). It takes
// effect with the next period.
func (e *Engine) SetMinuteInterval(n int) {
	if n < 1 || 60%n != 0 {
		return
	}
	e.mu.Lock()
	e.minutes = n
	e.mu.Unlock()
}

// addStat feeds one poll into the point's accumulators; a poll in a new
// period closes the old one into the pending list. Called with mu held.
func (e *Engine) addStat(ps *pointState, now time.Time, v Value, q Quality) {
	if !e.opts.Stats {
		return
	}
	for _, p := range []Period{Minute, Hour} {
		acc := &ps.stats[p-1]
		start := periodStart(now, p, e.loc, e.minutes)
		if acc.used && !acc.start.Equal(start) {
			e.pending[p-1] = append(e.pending[p-1], acc.stat(ps.conf.Code, ps.conf.Unit, p))
			*acc = statAcc{}
		}
		if !acc.used {
			acc.start, acc.minutes = start, e.minutes
		}
		acc.add(v, q)
	}
}

// closeStats closes the periods that ended more than statGrace before now
// and returns their stat messages: one per (period, start), so an HJ 212
// split series never mixes CN 2051 and 2061.
func (e *Engine) closeStats(now time.Time) []*Message {
	if !e.opts.Stats {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Stat
	for _, p := range []Period{Minute, Hour} {
		cut := now.Add(-statGrace)
		for _, ps := range e.points {
			acc := &ps.stats[p-1]
			if acc.used && !periodEnd(acc.start, p, acc.minutes).After(cut) {
				e.pending[p-1] = append(e.pending[p-1], acc.stat(ps.conf.Code, ps.conf.Unit, p))
				*acc = statAcc{}
			}
		}
		keep := e.pending[p-1][:0]
		last := e.emitted[p-1]
		for _, s := range e.pending[p-1] {
			switch {
			case periodEnd(s.Start, p, s.minutes).After(cut):
				keep = append(keep, s)
			case !s.Start.After(last):
				// The wall clock stepped back into a period already
				// emitted: never emit a (period, start) twice.
				e.log.Warn("statistics of a period already sent are dropped (the clock stepped back)", "point", s.Point, "period", p, "start", s.Start)
			default:
				out = append(out, s)
				if s.Start.After(e.emitted[p-1]) {
					e.emitted[p-1] = s.Start
				}
			}
		}
		e.pending[p-1] = keep
	}
	type key struct {
		p     Period
		start int64
	}
	var ms []*Message
	at := map[key]int{}
	for _, s := range out {
		k := key{s.Period, s.Start.UnixNano()}
		i, ok := at[k]
		if !ok {
			i = len(ms)
			at[k] = i
			ms = append(ms, &Message{Kind: KindStat, Created: now})
		}
		ms[i].Stats = append(ms[i].Stats, s)
	}
	return ms
}
