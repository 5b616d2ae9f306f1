package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// EngineOpts configure the engine.
type EngineOpts struct {
	Points     []PointConf
	Interlocks []InterlockConf
	// Emit receives events raised outside poll ticks: resets, alarm
	// acknowledgements, bypasses and their expiry.
	Emit func(*Message)
	// StateFile keeps latched and bypassed interlocks across restarts.
	StateFile string
	// NoRestore skips reading StateFile: a reload adopts the running
	// engine's state instead.
	NoRestore bool
	Now       func() time.Time
	Logger    *slog.Logger
	// Stats turns on minute and hour statistics (HJ 212 2051/2061), emitted
	// as stat messages; Location is the time zone of their boundaries.
	Stats    bool
	Location *time.Location
}

type pointState struct {
	conf    PointConf
	alarm   alarmState
	filter  reportFilter
	stuck   stuckTracker
	polled  bool
	value   Value
	quality Quality
	updated time.Time
	byIL    []int      // interlocks with this point as input
	stats   [2]statAcc // minute, hour
}

// Engine holds the state of every point and interlock. Poll groups hand it
// each tick's raw values; it converts them, runs the alarms, and trips the
// interlocks, writing their outputs before the tick's readings leave.
type Engine struct {
	opts   EngineOpts
	log    *slog.Logger
	mu     sync.Mutex
	points []*pointState
	index  map[string]int
	ils    []*interlock
	ilIdx  map[string]int
	wake   chan struct{}
	loc    *time.Location
	// pending holds closed minute and hour statistics not yet emitted.
	pending [2][]Stat
}

// NewEngine builds the engine and restores latched interlocks.
func NewEngine(opts EngineOpts) (*Engine, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Emit == nil {
		opts.Emit = func(*Message) {}
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	e := &Engine{opts: opts, log: opts.Logger.With("component", "engine"), index: map[string]int{}, ilIdx: map[string]int{},
		wake: make(chan struct{}, 1), loc: opts.Location}
	for _, p := range opts.Points {
		if _, dup := e.index[p.Code]; dup {
			return nil, fmt.Errorf("point %q defined twice", p.Code)
		}
		e.index[p.Code] = len(e.points)
		e.points = append(e.points, &pointState{conf: p})
	}
	for k, c := range opts.Interlocks {
		il := &interlock{conf: c}
		for _, in := range c.Inputs {
			pi, ok := e.index[in.Point]
			if !ok {
				return nil, fmt.Errorf("interlock %q: no point %q", c.Name, in.Point)
			}
			il.inputs = append(il.inputs, pi)
			e.points[pi].byIL = append(e.points[pi].byIL, k)
		}
		if c.Need < 1 || c.Need > len(c.Inputs) {
			return nil, fmt.Errorf("interlock %q: needs %d of %d inputs", c.Name, c.Need, len(c.Inputs))
		}
		for _, a := range append(append([]ActionConf(nil), c.Actions...), c.OnReset...) {
			if a.Writer == nil {
				return nil, fmt.Errorf("interlock %q: no writer for device %q", c.Name, a.Device)
			}
		}
		e.ilIdx[c.Name] = k
		e.ils = append(e.ils, il)
	}
	if err := e.restore(); err != nil {
		return nil, err
	}
	return e, nil
}

// Index returns a point's index by code, or -1.
func (e *Engine) Index(code string) int {
	if i, ok := e.index[code]; ok {
		return i
	}
	return -1
}

// Code returns the code of the point at index i.
func (e *Engine) Code(i int) string { return e.points[i].conf.Code }

// Tick processes one poll of the points at idx (raw[k] for idx[k]) taken
// at now. It runs alarms and interlocks, writes any interlock outputs, and
// returns the readings to report appended to dst (a poll group collects a
// tick's sources in one slice) and the events raised.
func (e *Engine) Tick(ctx context.Context, dst []Reading, now time.Time, idx []int, raw []Raw) ([]Reading, []Event) {
	readings := dst
	var events []Event
	type trip struct {
		name string
		acts []ActionConf
	}
	var trips []trip
	e.mu.Lock()
	var touched map[int]bool
	for k, i := range idx {
		ps := e.points[i]
		r := &raw[k]
		stuck := ps.stuck.stuck(&ps.conf, now, r)
		v, q := ps.conf.Convert(r, stuck)
		events = append(events, ps.alarm.eval(&ps.conf, now, v, q)...)
		ps.polled, ps.value, ps.quality, ps.updated = true, v, q, now
		e.addStat(ps, now, v, q)
		a := ps.alarm.active()
		if ps.filter.keep(&ps.conf, now, v, q, a) {
			readings = append(readings, Reading{Point: ps.conf.Code, TS: now, Value: v, Unit: ps.conf.Unit, Quality: q, Alarm: a})
		}
		if r.Err != nil && q != Good {
			e.log.Debug("point without value", "point", ps.conf.Code, "quality", q, "err", r.Err)
		}
		for _, il := range ps.byIL {
			if touched == nil {
				touched = map[int]bool{}
			}
			touched[il] = true
		}
	}
	ils := make([]int, 0, len(touched))
	for k := range touched {
		ils = append(ils, k)
	}
	sort.Ints(ils)
	for _, k := range ils {
		evs, acts := e.evaluate(e.ils[k], now)
		events = append(events, evs...)
		if len(acts) > 0 {
			trips = append(trips, trip{e.ils[k].conf.Name, acts})
		}
	}
	e.mu.Unlock()
	for _, t := range trips {
		e.log.Warn("interlock tripped; writing outputs", "interlock", t.name)
		events = append(events, runActions(ctx, t.name, t.acts, e.opts.Now)...)
	}
	return readings, events
}

// ErrUnknown is a reset, bypass or acknowledgement naming nothing configured.
var ErrUnknown = errors.New("not configured")

// Reset clears a tripped interlock's latch. It refuses while the trip
// condition is still present. It writes the on_reset outputs, if any;
// otherwise outputs are left as they are (a reset never re-opens a valve
// by itself).
func (e *Engine) Reset(ctx context.Context, name, who string) error {
	e.mu.Lock()
	k, ok := e.ilIdx[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("interlock %q: %w", name, ErrUnknown)
	}
	il := e.ils[k]
	if !il.tripped {
		e.mu.Unlock()
		return fmt.Errorf("interlock %q is not tripped", name)
	}
	if v := e.votes(il); v >= il.conf.Need {
		d := e.describeInputs(il)
		e.mu.Unlock()
		return fmt.Errorf("interlock %q: the trip condition is still present (%s); reset when it has cleared", name, d)
	}
	il.tripped = false
	e.saveState()
	now := e.opts.Now()
	e.mu.Unlock()
	evs := []Event{{Type: EventInterlock, State: StateReset, Interlock: name, TS: now, Message: "manual reset by " + who}}
	evs = append(evs, runActions(ctx, name, il.conf.OnReset, e.opts.Now)...)
	e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	return nil
}

// Bypass suspends an interlock's tripping for d (at most 8 h). It ends by
// itself, and at a restart.
func (e *Engine) Bypass(name string, d time.Duration, who string) error {
	if d <= 0 || d > MaxBypass {
		return fmt.Errorf("bypass for %s: want more than 0 and at most %s", d, MaxBypass)
	}
	e.mu.Lock()
	k, ok := e.ilIdx[name]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("interlock %q: %w", name, ErrUnknown)
	}
	now := e.opts.Now()
	il := e.ils[k]
	il.bypassUntil = now.Add(d)
	e.saveState()
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: []Event{{Type: EventInterlock, State: StateBypassed, Interlock: name, TS: now,
		Message: fmt.Sprintf("bypassed by %s for %s, until %s", who, d, il.bypassUntil.Format(time.RFC3339))}}})
	return nil
}

// Ack acknowledges the active alarms of a point.
func (e *Engine) Ack(code, who string) error {
	e.mu.Lock()
	i, ok := e.index[code]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("point %q: %w", code, ErrUnknown)
	}
	now := e.opts.Now()
	evs := e.points[i].alarm.ack(&e.points[i].conf, now)
	e.mu.Unlock()
	if len(evs) == 0 {
		return fmt.Errorf("point %q has no unacknowledged alarm", code)
	}
	for k := range evs {
		evs[k].Message = "acknowledged by " + who
	}
	e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	return nil
}

// Run ends bypasses when they expire and emits the minute and hour
// statistics. It returns when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
		e.expireBypasses()
		if m := e.closeStats(e.opts.Now()); m != nil {
			e.opts.Emit(m)
		}
	}
}

func (e *Engine) expireBypasses() {
	now := e.opts.Now()
	var evs []Event
	e.mu.Lock()
	for _, il := range e.ils {
		if !il.bypassUntil.IsZero() && !now.Before(il.bypassUntil) {
			il.bypassUntil = time.Time{}
			evs = append(evs, Event{Type: EventInterlock, State: StateBypassExpired, Interlock: il.conf.Name, TS: now, Message: "bypass ended"})
		}
	}
	if len(evs) > 0 {
		e.saveState()
	}
	e.mu.Unlock()
	if len(evs) > 0 {
		e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	}
}

// InterlockStatus is an interlock's state for status and the CLI.
type InterlockStatus struct {
	Name        string    `json:"name"`
	Tripped     bool      `json:"tripped"`
	TrippedAt   time.Time `json:"tripped_at,omitzero"`
	BypassUntil time.Time `json:"bypass_until,omitzero"`
	Votes       int       `json:"votes"`
	Need        int       `json:"need"`
	Inputs      string    `json:"inputs"`
}

// PointStatus is a point's last value.
type PointStatus struct {
	Code    string    `json:"point"`
	Value   Value     `json:"-"`
	Quality Quality   `json:"-"`
	Alarm   Level     `json:"-"`
	Fault   string    `json:"fault,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
}

// Snapshot returns the state of every point and interlock.
func (e *Engine) Snapshot() ([]PointStatus, []InterlockStatus) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := make([]PointStatus, len(e.points))
	for i, p := range e.points {
		ps[i] = PointStatus{Code: p.conf.Code, Value: p.value, Quality: p.quality, Alarm: p.alarm.active(), Fault: p.alarm.fault, Updated: p.updated}
	}
	is := make([]InterlockStatus, len(e.ils))
	for i, il := range e.ils {
		is[i] = InterlockStatus{Name: il.conf.Name, Tripped: il.tripped, TrippedAt: il.trippedAt, BypassUntil: il.bypassUntil,
			Votes: il.lastVotes, Need: il.conf.Need, Inputs: e.describeInputs(il)}
	}
	return ps, is
}

// persisted is the state file's content.
type persisted struct {
	Latched  map[string]time.Time `json:"latched"`
	Bypassed []string             `json:"bypassed,omitempty"`
}

// saveState writes latched and bypassed interlocks; called with mu held.
func (e *Engine) saveState() {
	if e.opts.StateFile == "" {
		return
	}
	st := persisted{Latched: map[string]time.Time{}}
	for _, il := range e.ils {
		if il.tripped && il.conf.Latch {
			st.Latched[il.conf.Name] = il.trippedAt
		}
		if !il.bypassUntil.IsZero() {
			st.Bypassed = append(st.Bypassed, il.conf.Name)
		}
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	tmp := e.opts.StateFile + ".tmp"
	err := os.WriteFile(tmp, b, 0o600)
	if err == nil {
		if f, ferr := os.Open(tmp); ferr == nil {
			f.Sync()
			f.Close()
		}
		err = os.Rename(tmp, e.opts.StateFile)
	}
	if err != nil {
		e.log.Error("cannot save interlock latches; a restart would forget them", "file", e.opts.StateFile, "err", err)
	}
}

// restore brings latched interlocks back as tripped (outputs are not written
// again) and ends bypasses that were running at shutdown.
func (e *Engine) restore() error {
	if e.opts.StateFile == "" || e.opts.NoRestore {
		return nil
	}
	b, err := os.ReadFile(e.opts.StateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read interlock state %s: %w", e.opts.StateFile, err)
	}
	var st persisted
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("interlock state %s is unreadable (%v); move it away only after checking the plant", e.opts.StateFile, err)
	}
	now := e.opts.Now()
	var evs []Event
	for name, at := range st.Latched {
		if k, ok := e.ilIdx[name]; ok {
			e.ils[k].tripped, e.ils[k].trippedAt = true, at
			e.log.Warn("interlock restored as tripped from before the restart; outputs are not written again", "interlock", name, "tripped_at", at)
		} else {
			e.log.Error("a latched interlock is no longer configured", "interlock", name)
		}
	}
	for _, name := range st.Bypassed {
		evs = append(evs, Event{Type: EventInterlock, State: StateBypassExpired, Interlock: name, TS: now, Message: "bypass ended by restart"})
	}
	if len(evs) > 0 {
		e.opts.Emit(&Message{Kind: KindEvent, Created: now, Events: evs})
	}
	if dir := filepath.Dir(e.opts.StateFile); dir != "" {
		e.saveState()
	}
	return nil
}

// Adopt carries the state of points and interlocks over from the engine of
// the previous config (a reload): alarms stay raised without new events,
// latches and bypasses stay. Points and interlocks are matched by name.
func (e *Engine) Adopt(old *Engine) {
	old.mu.Lock()
	defer old.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ps := range e.points {
		if i, ok := old.index[ps.conf.Code]; ok {
			o := old.points[i]
			ps.alarm, ps.filter, ps.stuck, ps.stats = o.alarm, o.filter, o.stuck, o.stats
			ps.polled, ps.value, ps.quality, ps.updated = o.polled, o.value, o.quality, o.updated
		}
	}
	for _, il := range e.ils {
		if k, ok := old.ilIdx[il.conf.Name]; ok {
			o := old.ils[k]
			il.tripped, il.trippedAt, il.bypassUntil, il.pending, il.since = o.tripped, o.trippedAt, o.bypassUntil, o.pending, o.since
		}
	}
	e.pending = old.pending
	e.saveState()
}

// Held names the interlocks that are tripped or bypassed: a reload must not
// change them.
func (e *Engine) Held() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.opts.Now()
	var out []string
	for _, il := range e.ils {
		if il.tripped || now.Before(il.bypassUntil) {
			out = append(out, il.conf.Name)
		}
	}
	return out
}
