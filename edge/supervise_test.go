package edge

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// plantOutput is a coil table with faults: writes (and read-backs) fail
// while down; the "operator" can set a coil by hand.
type plantOutput struct {
	mu     sync.Mutex
	coils  map[uint16]float64
	down   bool
	writes int
}

var errLineDown = errors.New(`bus "plc" unit 2: write coil 0+1: i/o timeout (3 attempts)`)

func (p *plantOutput) WriteOutput(_ context.Context, _ OutputTable, a uint16, v float64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writes++
	if p.down {
		return errLineDown
	}
	p.coils[a] = v
	return nil
}

func (p *plantOutput) ReadOutput(_ context.Context, _ OutputTable, a uint16) (float64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return 0, errLineDown
	}
	return p.coils[a], nil
}

func (p *plantOutput) String() string { return "plant" }

func (p *plantOutput) set(f func(p *plantOutput)) { p.mu.Lock(); f(p); p.mu.Unlock() }

func (p *plantOutput) coil(a uint16) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.coils[a]
}

func (p *plantOutput) writeCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.writes
}

// eventLog collects every event, returned by ticks or emitted.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(evs ...Event) { l.mu.Lock(); l.evs = append(l.evs, evs...); l.mu.Unlock() }

func (l *eventLog) count(state string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.evs {
		if e.State == state {
			n++
		}
	}
	return n
}

func (l *eventLog) last(state string) Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.evs) - 1; i >= 0; i-- {
		if l.evs[i].State == state {
			return l.evs[i]
		}
	}
	return Event{}
}

// valvePlant is one gas detector (GT-1) tripping ESD, which closes coil 0
// of device "valves"; XV-ZS is the valve's limit switch (on "valves").
type valvePlant struct {
	e   *Engine
	out *plantOutput
	log *eventLog
}

func newValvePlant(t *testing.T, fb *FeedbackConf, latches LatchStore, verify bool) *valvePlant {
	t.Helper()
	vp := &valvePlant{out: &plantOutput{coils: map[uint16]float64{0: 1}}, log: &eventLog{}}
	pts := append(gasPoints(1), PointConf{Code: "XV-ZS", Device: "valves", Scale: 1})
	e, err := NewEngine(EngineOpts{
		Points: pts,
		Interlocks: []InterlockConf{{Name: "ESD", Need: 1, Latch: true, Inputs: []InputConf{{"GT-1", HH}},
			Actions: []ActionConf{{Device: "valves", Writer: vp.out, Table: OutputCoil, Address: 0, Value: 0, Verify: verify, Feedback: fb}}}},
		Latches: latches,
		Emit:    func(m *Message) { vp.log.add(m.Events...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	vp.e = e
	return vp
}

func (vp *valvePlant) gas(pct float64) {
	_, evs := vp.e.Tick(context.Background(), nil, time.Now(), []int{0}, raws(pct))
	vp.log.add(evs...)
}

func (vp *valvePlant) limitSwitch(open bool) {
	_, evs := vp.e.Tick(context.Background(), nil, time.Now(), []int{1}, []Raw{{Value: BoolValue(open)}})
	vp.log.add(evs...)
}

func (vp *valvePlant) action() ActionStatus {
	_, ils := vp.e.Snapshot()
	return ils[0].Actions[0]
}

// TestFailedWriteIsRetriedUntilVerified: the valve module's line is down at
// the trip. action_failed is reported once for the episode, the write is
// retried with back-off, and once the line is back the coil is written and
// verified without any operator action.
func TestFailedWriteIsRetriedUntilVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vp := newValvePlant(t, nil, nil, true)
		vp.out.set(func(p *plantOutput) { p.down = true })
		runEngine(t, vp.e)
		vp.gas(60)
		if vp.log.count(StateTripped) != 1 || vp.log.count(StateActionFailed) != 1 {
			t.Fatalf("trip with the line down: %v", states(vp.log.evs))
		}
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if n := vp.out.writeCount(); n < 4 || n > 10 {
			t.Fatalf("%d write attempts in 20 s: want a bounded back-off (1 s doubling to 10 s)", n)
		}
		if n := vp.log.count(StateActionFailed); n != 1 {
			t.Fatalf("action_failed %d times in one failure episode, want once", n)
		}
		if a := vp.action(); a.State != ActionFailed || !strings.Contains(a.Error, "i/o timeout") {
			t.Fatalf("status while failing: %+v", a)
		}
		vp.out.set(func(p *plantOutput) { p.down = false })
		time.Sleep(retryMax + time.Second)
		synctest.Wait()
		if vp.out.coil(0) != 0 || vp.log.count(StateActionVerified) != 1 {
			t.Fatalf("line back: coil %g, events %v", vp.out.coil(0), states(vp.log.evs))
		}
		if a := vp.action(); a.State != ActionVerified || a.ReadBack == nil || *a.ReadBack != 0 {
			t.Fatalf("status once verified: %+v", a)
		}
	})
}

// TestDeviceAnsweringRetriesAtOnce: once the output's device answers a poll
// again, a failed write is retried at once, not at the end of its back-off.
func TestDeviceAnsweringRetriesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vp := newValvePlant(t, nil, nil, true)
		vp.out.set(func(p *plantOutput) { p.down = true })
		runEngine(t, vp.e)
		vp.gas(60)
		time.Sleep(30 * time.Second) // the back-off is at its 10 s cap
		synctest.Wait()
		vp.out.set(func(p *plantOutput) { p.down = false })
		vp.limitSwitch(true) // a good poll of device "valves"
		synctest.Wait()
		if vp.out.coil(0) != 0 || vp.log.count(StateActionVerified) != 1 {
			t.Fatalf("device answered: coil %g, events %v", vp.out.coil(0), states(vp.log.evs))
		}
	})
}

// TestChangedOutputIsReasserted: someone sets the coil back to 1 (valve
// open) while the interlock is latched: the periodic read-back finds it,
// reports action_mismatch and sets it back to 0.
func TestChangedOutputIsReasserted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vp := newValvePlant(t, nil, nil, true)
		runEngine(t, vp.e)
		vp.gas(60)
		if vp.out.coil(0) != 0 || vp.log.count(StateActionVerified) != 1 {
			t.Fatalf("trip: %v", states(vp.log.evs))
		}
		vp.out.set(func(p *plantOutput) { p.coils[0] = 1 })
		time.Sleep(DefaultReadbackEvery + time.Second)
		synctest.Wait()
		if vp.out.coil(0) != 0 {
			t.Fatal("the re-opened valve was not closed again")
		}
		mm := vp.log.last(StateActionMismatch)
		if mm.State == "" || mm.Actions[0].ReadBack != Num(1) || !strings.Contains(mm.Message, "re-asserting") {
			t.Fatalf("mismatch event: %+v (events %v)", mm, states(vp.log.evs))
		}
		if n := vp.log.count(StateActionVerified); n != 2 {
			t.Fatalf("action_verified %d times, want the trip's and the re-assertion's", n)
		}
		// After a reset nothing is supervised: the valve may be opened.
		vp.gas(5)
		if err := vp.e.Reset(context.Background(), "ESD", "test"); err != nil {
			t.Fatal(err)
		}
		vp.out.set(func(p *plantOutput) { p.coils[0] = 1 })
		writes := vp.out.writeCount()
		time.Sleep(3 * DefaultReadbackEvery)
		synctest.Wait()
		if vp.out.coil(0) != 1 || vp.out.writeCount() != writes {
			t.Fatal("an output was written after the reset")
		}
	})
}

// TestFeedbackThatNeverMoves: the coil is written and reads back 0, but the
// valve's limit switch still says open after the travel time: action_failed
// "valve did not reach closed"; when it finally reads closed, the action is
// verified; if it opens again while tripped, it is a mismatch.
func TestFeedbackThatNeverMoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		vp := newValvePlant(t, &FeedbackConf{Point: "XV-ZS", Value: 0, Within: 15 * time.Second}, nil, true)
		runEngine(t, vp.e)
		vp.limitSwitch(true)
		vp.gas(60)
		if vp.log.count(StateActionDone) != 1 || vp.log.count(StateActionVerified) != 0 {
			t.Fatalf("coil written, feedback pending: %v", states(vp.log.evs))
		}
		if a := vp.action(); a.State != ActionAwaitingFeedback {
			t.Fatalf("status: %+v", a)
		}
		for range 16 {
			time.Sleep(time.Second)
			vp.limitSwitch(true) // polled every second, never moves
		}
		synctest.Wait()
		f := vp.log.last(StateActionFailed)
		if !strings.Contains(f.Message, "valve did not reach closed") || !strings.Contains(f.Message, "15s") {
			t.Fatalf("after the travel time: %q (events %v)", f.Message, states(vp.log.evs))
		}
		vp.limitSwitch(false)
		synctest.Wait()
		if vp.log.count(StateActionVerified) != 1 || vp.action().State != ActionVerified {
			t.Fatalf("feedback reached: %v %+v", states(vp.log.evs), vp.action())
		}
		vp.limitSwitch(true)
		synctest.Wait()
		if vp.log.count(StateActionMismatch) != 1 {
			t.Fatalf("valve opened while tripped: %v", states(vp.log.evs))
		}
	})
}

// TestRestoredLatchIsReadBackNotWrittenBlindly: after a restart a latched
// interlock's outputs are read back; they are written only on a mismatch.
func TestRestoredLatchIsReadBackNotWrittenBlindly(t *testing.T) {
	for _, c := range []struct {
		name  string
		coil  float64
		write bool
		state string
	}{{"valve still closed", 0, false, StateActionVerified}, {"valve opened meanwhile", 1, true, StateActionMismatch}} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				latches := &memLatches{st: LatchState{Latched: map[string]time.Time{"ESD": time.Now().Add(-time.Hour)}}}
				vp := newValvePlant(t, nil, latches, true)
				vp.out.set(func(p *plantOutput) { p.coils[0] = c.coil })
				runEngine(t, vp.e)
				synctest.Wait()
				if got := vp.out.writeCount() > 0; got != c.write {
					t.Fatalf("writes %d after the restart", vp.out.writeCount())
				}
				if vp.out.coil(0) != 0 || vp.log.count(c.state) != 1 {
					t.Fatalf("coil %g, events %v", vp.out.coil(0), states(vp.log.evs))
				}
			})
		})
	}
}

// blockingLatches is a latch store whose Save blocks until released: a disk
// that takes its time to sync.
type blockingLatches struct {
	memLatches
	release chan struct{}
	saving  chan struct{}
}

func (b *blockingLatches) Save(st LatchState) error {
	b.saving <- struct{}{}
	<-b.release
	return b.memLatches.Save(st)
}

// TestTripDoesNotWaitForTheLatchStore: the trip writes the valve and the
// tick returns while the latch is still being saved; other ticks go on.
func TestTripDoesNotWaitForTheLatchStore(t *testing.T) {
	defer goleak.VerifyNone(t)
	store := &blockingLatches{release: make(chan struct{}), saving: make(chan struct{}, 4)}
	vp := newValvePlant(t, nil, store, true)
	stop := runEngine(t, vp.e)
	ticked := make(chan struct{})
	go func() { vp.gas(60); vp.limitSwitch(true); close(ticked) }()
	select {
	case <-ticked:
	case <-time.After(10 * time.Second):
		t.Fatal("the tripping tick waited for the latch store")
	}
	<-store.saving // the save is under way, and blocked
	if vp.out.coil(0) != 0 {
		t.Fatal("valve not closed while the latch was being saved")
	}
	close(store.release)
	stop()
	if st, _ := store.Load(); st.Latched["ESD"].IsZero() {
		t.Fatal("latch not saved")
	}
}

func TestClockStep(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		wall time.Duration // wall clock advance
		mono time.Duration // monotonic advance
		step bool
	}{
		{"steady", time.Second, time.Second, false},
		{"late tick", 5 * time.Second, 5 * time.Second, false},
		{"small drift", 2500 * time.Millisecond, time.Second, false},
		{"step forward", time.Hour, time.Second, true},
		{"step back", -10 * time.Minute, time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w clockWatch
			w.observe(t0, time.Minute)
			ev, ok := w.observe(t0.Add(c.wall), time.Minute+c.mono)
			if ok != c.step {
				t.Fatalf("step %v, want %v", ok, c.step)
			}
			if ok && (ev.Type != EventSystem || ev.State != StateClockStep || !strings.Contains(ev.Message, t0.Add(time.Second).Format(time.RFC3339))) {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

// TestStatsNotTwiceAfterClockStepBack: a step back into a minute already
// emitted never emits that minute again.
func TestStatsNotTwiceAfterClockStepBack(t *testing.T) {
	e, err := NewEngine(EngineOpts{Points: gasPoints(1), Stats: true, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 10, 0, time.UTC)
	ctx := context.Background()
	e.Tick(ctx, nil, t0, []int{0}, raws(5))
	e.Tick(ctx, nil, t0.Add(time.Minute), []int{0}, raws(6)) // 08:01:10 closes 08:00
	ms := e.closeStats(t0.Add(time.Minute))
	if len(ms) != 1 || len(ms[0].Stats) != 1 || ms[0].Stats[0].Start != t0.Truncate(time.Minute) {
		t.Fatalf("first emission: %+v", ms)
	}
	// The clock steps back to 08:00:30, then comes right again.
	e.Tick(ctx, nil, t0.Add(20*time.Second), []int{0}, raws(7))
	e.Tick(ctx, nil, t0.Add(2*time.Minute), []int{0}, raws(8))
	for _, m := range e.closeStats(t0.Add(2 * time.Minute)) {
		for _, s := range m.Stats {
			if s.Period == Minute && s.Start == t0.Truncate(time.Minute) {
				t.Fatalf("minute %s emitted twice", s.Start)
			}
		}
	}
}

// TestRunReportsClockStep: Run compares the wall clock with the monotonic
// one every ClockCheckEvery and emits system clock_step when the wall clock
// jumps.
func TestRunReportsClockStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		offset := time.Duration(0)
		log := &eventLog{}
		start := time.Now()
		e, err := NewEngine(EngineOpts{Points: gasPoints(1),
			Now:   func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) },
			Since: func() time.Duration { return time.Since(start) },
			Emit:  func(m *Message) { log.add(m.Events...) }})
		if err != nil {
			t.Fatal(err)
		}
		runEngine(t, e)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if log.count(StateClockStep) != 0 {
			t.Fatal("clock_step without a step")
		}
		mu.Lock()
		offset = -time.Hour // NTP or an operator sets the clock back
		mu.Unlock()
		time.Sleep(ClockCheckEvery)
		synctest.Wait()
		ev := log.last(StateClockStep)
		if log.count(StateClockStep) != 1 || ev.Subject != "clock" || !strings.Contains(ev.Message, "-1h0m0s") {
			t.Fatalf("after a step back of 1 h: %d events, %+v", log.count(StateClockStep), ev)
		}
	})
}

// A polling collector's housekeeping (here the clock check) runs in a
// tick's wake-up: a tick within housekeepEarly of the check's deadline pokes
// Run, whose own timer then never fires. Ticks at +0.5 s, +1.5 s, ...: the
// checks run at +3.5 s and +6.5 s, so a step at +4.5 s is reported at the
// +6.5 s tick (Run's timer would have reported it at +5 s, in a wake-up of
// its own).
func TestTicksCarryTheHousekeeping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		offset := time.Duration(0)
		start := time.Now()
		var reported []time.Duration
		e, err := NewEngine(EngineOpts{Points: gasPoints(1),
			Now:   func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) },
			Since: func() time.Duration { return time.Since(start) },
			Emit: func(m *Message) {
				for _, ev := range m.Events {
					if ev.State == StateClockStep {
						reported = append(reported, time.Since(start))
					}
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		runEngine(t, e)
		synctest.Wait()
		raw := []Raw{{Value: Num(1), Quality: Good}}
		time.Sleep(500 * time.Millisecond)
		for i := range 9 { // +0.5 s ... +8.5 s
			if i > 0 {
				time.Sleep(time.Second)
			}
			if time.Since(start) == 4500*time.Millisecond {
				mu.Lock()
				offset = -time.Hour // stepped after the +3.5 s check, seen at the next
				mu.Unlock()
			}
			e.Tick(context.Background(), nil, e.opts.Now(), []int{0}, raw)
			synctest.Wait()
		}
		if len(reported) != 1 || reported[0] != 6500*time.Millisecond {
			t.Fatalf("clock step reported at %v, want once, at the +6.5 s tick", reported)
		}
	})
}
