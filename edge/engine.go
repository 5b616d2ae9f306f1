package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Latches keeps latched and bypassed interlocks across restarts (nil:
	// not kept). It is saved from Run's goroutine, never from a tick.
	Latches LatchStore
	// NoRestore skips loading Latches: a reload adopts the running
	// engine's state instead.
	NoRestore bool
	Now       func() time.Time
	// Since is the monotonic time since start (default: time.Since of the
	// engine's creation); with Now it tells a wall-clock step.
	Since  func() time.Duration
	Logger *slog.Logger
	// Stats turns on minute and hour statistics (HJ 212 2051/2061), emitted
	// as stat messages; Location is the time zone of their boundaries.
	Stats    bool
	Location *time.Location
	// RTDInterval turns on the HJ 212 real-time snapshot: at each boundary
	// of this interval (aligned in Location) one rtd message carries the
	// latest reading of every point with RTD set.
	RTDInterval time.Duration
}

type pointState struct {
	conf    PointConf
	alarm   alarmState
	filter  reportFilter
	stuck   stuckTracker
	polled  bool
	value   Value
	quality Quality
	fault   string       // why the last reading is not good
	maint   *maintenance // out of service
	updated time.Time
	byIL    []int         // interlocks with this point as input
	stats   [2]statAcc    // minute, hour
	watch   []*supervisor // actions with this point as feedback
	// retired: a reload removed the point; its index stays (poll groups
	// hold indexes) but it is polled, shown and counted no more.
	retired bool
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
	// checkDue is when Run's housekeeping is next due at the latest (the
	// clock check), in opts.Since's monotonic time; a tick within
	// housekeepEarly of it pokes Run, so that a polling collector does it
	// in a tick's wake-up, not in one of its own. Zero: no poke wanted.
	checkDue time.Duration
	loc      *time.Location
	// pending holds closed minute and hour statistics not yet emitted;
	// emitted is the start of the last period emitted, so a clock step
	// back never emits a period twice.
	pending [2][]Stat
	emitted [2]time.Time
	// saves hands latch snapshots to Run's saver (room for one).
	saves chan LatchState
	sups  []*supervisor
	// byDevice lists the supervisors of actions on each device: a good
	// poll of the device retries their failed writes at once.
	byDevice map[string][]*supervisor
	// rtd is the real-time snapshot's interval and its next boundary.
	rtdEvery time.Duration
	rtdNext  time.Time
	rtdSent  time.Time // the last boundary sent: never sent twice
	minutes  int       // length of the "minute" statistics period (CN 1064)
	// runCtx and runWG are Run's, while it runs: supervisors of interlocks
	// a reload adds start under them.
	runCtx context.Context
	runWG  *sync.WaitGroup
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
	if opts.Since == nil {
		start := time.Now()
		opts.Since = func() time.Duration { return time.Since(start) }
	}
	e := &Engine{opts: opts, log: opts.Logger.With("component", "engine"), index: map[string]int{}, ilIdx: map[string]int{},
		wake: make(chan struct{}, 1), loc: opts.Location, saves: make(chan LatchState, 1), byDevice: map[string][]*supervisor{},
		rtdEvery: opts.RTDInterval, minutes: 1}
	if err := e.Reconfigure(opts.Points, opts.Interlocks); err != nil {
		return nil, err
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
// at now. It runs alarms and interlocks, writes the outputs of interlocks
// that trip (their supervisors take over from there), and returns the
// readings to report appended to dst (a poll group collects a tick's
// sources in one slice) and the events raised.
func (e *Engine) Tick(ctx context.Context, dst []Reading, now time.Time, idx []int, raw []Raw) ([]Reading, []Event) {
	readings := dst
	var events []Event
	var trips, resets []*interlock
	e.mu.Lock()
	housekeep := e.checkDue > 0 && e.opts.Since() >= e.checkDue-housekeepEarly
	if housekeep {
		e.checkDue = 0 // one poke; Run sets the next
	}
	var touched map[int]bool
	answered := "" // the device last seen answering in this tick
	for k, i := range idx {
		ps := e.points[i]
		if ps.retired {
			continue // a group a reload is replacing still ticks once
		}
		r := &raw[k]
		stuck := ps.stuck.stuck(&ps.conf, now, r)
		v, q := ps.conf.Convert(r, stuck)
		v, q, fault := ps.conf.diagnose(r, v, q)
		if ps.maint != nil && q.HasValue() {
			q, fault = Maintenance, "out of service: "+ps.maint.reason
		}
		events = append(events, ps.alarm.eval(&ps.conf, now, v, q, fault)...)
		ps.polled, ps.value, ps.quality, ps.updated, ps.fault = true, v, q, now, fault
		e.addStat(ps, now, v, q)
		a := ps.alarm.active()
		if ps.filter.keep(&ps.conf, now, v, q, a) {
			readings = append(readings, Reading{Point: ps.conf.Code, TS: now, Value: v, Unit: ps.conf.Unit, Quality: q, Alarm: a, Fault: fault})
		}
		if r.Err != nil && q != Good {
			e.log.Debug("point without value", "point", ps.conf.Code, "quality", q, "err", r.Err)
		}
		for _, s := range ps.watch {
			s.poke()
		}
		if r.Quality == Good && ps.conf.Device != answered {
			answered = ps.conf.Device
			e.deviceAnswers(answered, now)
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
		if len(acts) == 0 {
			continue
		}
		if il := e.ils[k]; il.tripped {
			trips = append(trips, il)
			e.log.Warn("interlock tripped; writing outputs", "interlock", il.conf.Name, "votes", il.cause)
		} else {
			resets = append(resets, il) // not latched and cleared
		}
	}
	e.mu.Unlock()
	if housekeep {
		e.poke()
	}
	for _, il := range resets {
		events = append(events, oneShot(ctx, il.conf.Name, il.conf.OnReset, e.opts.Now)...)
	}
	// The first write of a trip belongs to the tick: its result leaves in
	// the tick's message. Its supervisor claimed it (busy) and takes over.
	for _, il := range trips {
		for _, s := range il.sups {
			rb, err := s.writeSafe(ctx, 1+s.a.Retries)
			e.mu.Lock()
			events = append(events, s.written(e.opts.Now(), rb, err)...)
			s.st.busy = false
			e.mu.Unlock()
			s.poke()
		}
	}
	return readings, events
}

// deviceAnswers retries at once the failed writes of outputs on a device
// that answered a poll; called with mu held.
func (e *Engine) deviceAnswers(device string, now time.Time) {
	if device == "" {
		return
	}
	for _, s := range e.byDevice[device] {
		if s.st.phase == phaseWrite && s.st.failing && now.Before(s.st.next) {
			s.st.next = now
			s.poke()
		}
	}
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
	now := e.opts.Now()
	for _, s := range il.sups {
		s.stop(now)
	}
	e.persist()
	e.mu.Unlock()
	evs := []Event{{Type: EventInterlock, State: StateReset, Interlock: name, TS: now, Message: "manual reset by " + who}}
	evs = append(evs, oneShot(ctx, name, il.conf.OnReset, e.opts.Now)...)
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
	e.persist()
	e.mu.Unlock()
	for _, s := range il.sups {
		s.poke()
	}
	e.poke()
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

// Run supervises the outputs of tripped interlocks, saves the latches,
// ends bypasses when they expire, watches the wall clock for steps and
// emits the minute and hour statistics. It returns when ctx ends, after the
// last latch change is saved.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	e.mu.Lock()
	e.runCtx, e.runWG = ctx, &wg
	for _, s := range e.sups {
		e.startSupervisor(s)
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.runCtx, e.runWG = nil, nil
		e.mu.Unlock()
	}()
	if e.opts.Latches != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case st := <-e.saves:
					e.save(st)
				case <-ctx.Done():
					select {
					case st := <-e.saves:
						e.save(st)
					default:
					}
					return
				}
			}
		}()
	}
	defer wg.Wait()
	clock := clockWatch{}
	clock.observe(e.opts.Now(), e.opts.Since())
	// sleep is how long to wait after now; it sets the deadline ticks
	// look at (checkDue) too.
	sleep := func(now time.Time) time.Duration {
		e.mu.Lock()
		e.checkDue = e.opts.Since() + ClockCheckEvery
		e.mu.Unlock()
		return e.housekeepingIn(now)
	}
	t := time.NewTimer(sleep(e.opts.Now()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.wake:
		}
		now := e.opts.Now()
		t.Reset(sleep(now))
		if ev, ok := clock.observe(now, e.opts.Since()); ok {
			e.log.Warn("wall clock stepped", "message", ev.Message)
			e.emit(now, []Event{ev})
		}
		e.expireBypasses()
		for _, m := range e.closeStats(now) {
			e.opts.Emit(m)
		}
		if m := e.closeRTD(now); m != nil {
			e.opts.Emit(m)
		}
	}
}

// ClockCheckEvery is how often, at least, Run compares the wall clock with
// the monotonic one (a step is reported within this time).
const ClockCheckEvery = 5 * time.Second

// housekeepEarly: a tick this close to checkDue pokes Run. With polls of
// up to 2 s, Run's own timer never fires: an idle wake-up costs about as
// much CPU as polling a few hundred points (docs/performance.md).
const housekeepEarly = 2 * time.Second

// housekeepingIn is how long Run may sleep after now: until the next bypass
// or maintenance expiry, the next statistics or real-time boundary (looked
// at every second while they are on), and ClockCheckEvery at most. An idle
// wake-up costs about as much CPU as polling a few hundred points
// (docs/performance.md), so Run does not tick every second for nothing.
func (e *Engine) housekeepingIn(now time.Time) time.Duration {
	d := ClockCheckEvery
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.Stats || e.rtdEvery > 0 {
		d = time.Second
	}
	until := func(t time.Time) {
		if !t.IsZero() {
			d = max(0, min(d, t.Sub(now)))
		}
	}
	for _, il := range e.ils {
		until(il.bypassUntil)
	}
	for _, ps := range e.points {
		if ps.maint != nil {
			until(ps.maint.until)
		}
	}
	return d
}

// poke makes Run look at its deadlines again (a bypass or a maintenance
// started, an interval changed).
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
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
			for _, s := range il.sups {
				s.poke()
			}
		}
	}
	evs = append(evs, e.expireMaintenance(now)...)
	if len(evs) > 0 {
		e.persist()
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
	// Cause is the vote that tripped it; Actions the state of each output.
	Cause   string         `json:"cause,omitempty"`
	Actions []ActionStatus `json:"actions"`
}

// PointStatus is a point's last value.
type PointStatus struct {
	Code    string    `json:"point"`
	Value   Value     `json:"-"`
	Quality Quality   `json:"-"`
	Alarm   Level     `json:"-"`
	Fault   string    `json:"fault,omitempty"`
	Updated time.Time `json:"updated,omitzero"`
	// Maintenance is set while the point is out of service.
	Maintenance *MaintenanceStatus `json:"maintenance,omitempty"`
}

// Snapshot returns the state of every point and interlock.
func (e *Engine) Snapshot() ([]PointStatus, []InterlockStatus) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := make([]PointStatus, 0, len(e.points))
	for _, p := range e.points {
		if p.retired {
			continue
		}
		st := PointStatus{Code: p.conf.Code, Value: p.value, Quality: p.quality, Alarm: p.alarm.active(), Fault: p.fault, Updated: p.updated}
		if m := p.maint; m != nil {
			st.Maintenance = &MaintenanceStatus{Since: m.since, Until: m.until, Reason: m.reason, By: m.by}
		}
		ps = append(ps, st)
	}
	is := make([]InterlockStatus, len(e.ils))
	for i, il := range e.ils {
		is[i] = InterlockStatus{Name: il.conf.Name, Tripped: il.tripped, TrippedAt: il.trippedAt, BypassUntil: il.bypassUntil,
			Votes: il.lastVotes, Need: il.conf.Need, Inputs: e.describeInputs(il), Actions: make([]ActionStatus, len(il.sups))}
		if il.tripped {
			is[i].Cause = il.cause
		}
		for k, s := range il.sups {
			is[i].Actions[k] = s.status()
		}
	}
	return ps, is
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
			ps.polled, ps.value, ps.quality, ps.updated, ps.fault, ps.maint = o.polled, o.value, o.quality, o.updated, o.fault, o.maint
		}
	}
	for _, il := range e.ils {
		if k, ok := old.ilIdx[il.conf.Name]; ok {
			o := old.ils[k]
			il.tripped, il.trippedAt, il.bypassUntil, il.pending, il.since = o.tripped, o.trippedAt, o.bypassUntil, o.pending, o.since
			il.cause = o.cause
			if len(il.sups) == len(o.sups) {
				for i, s := range il.sups {
					s.st = o.sups[i].st
					s.st.busy = false
				}
			}
		}
	}
	e.pending, e.emitted = old.pending, old.emitted
	e.persist()
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
