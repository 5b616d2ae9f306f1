package edge

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeOutput is an in-memory coil table standing in for a device.
type fakeOutput struct {
	mu     sync.Mutex
	coils  map[uint16]float64
	writes int
	fail   error
}

func (f *fakeOutput) WriteOutput(ctx context.Context, t OutputTable, a uint16, v float64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.fail != nil {
		return f.fail
	}
	f.coils[a] = v
	return nil
}

func (f *fakeOutput) ReadOutput(ctx context.Context, t OutputTable, a uint16) (float64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.coils[a], nil
}

func (f *fakeOutput) String() string { return "fake" }

func gasPoints(n int) []PointConf {
	var ps []PointConf
	for i := range n {
		ps = append(ps, PointConf{Code: fmt.Sprintf("GT-%d", i+1), Unit: "%LEL", Scale: 1, Gas: true, Alarms: &Limits{H: f(25), HH: f(50)}})
	}
	return ps
}

// memLatches is a LatchStore in memory; a nil *memLatches keeps nothing.
type memLatches struct {
	mu    sync.Mutex
	st    LatchState
	saves int
}

func (m *memLatches) Load() (LatchState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st, nil
}

func (m *memLatches) Save(st LatchState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.st = st
	m.saves++
	return nil
}

func newESD(t *testing.T, hold bool, out *fakeOutput, state *memLatches) (*Engine, *[]Event) {
	t.Helper()
	var emitted []Event
	var mu sync.Mutex
	opts := EngineOpts{
		Points: gasPoints(3),
		Interlocks: []InterlockConf{{Name: "ESD", Need: 2, HoldOnFault: hold, Latch: true,
			Inputs:  []InputConf{{"GT-1", HH}, {"GT-2", HH}, {"GT-3", HH}},
			Actions: []ActionConf{{Device: "valve", Writer: out, Table: OutputCoil, Address: 0, Value: 0, Verify: true}}}},
		Emit: func(m *Message) { mu.Lock(); emitted = append(emitted, m.Events...); mu.Unlock() },
	}
	if state != nil {
		opts.Latches = state
	}
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e, &emitted
}

func raws(vals ...any) []Raw {
	out := make([]Raw, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case float64:
			out[i] = Raw{Value: Num(x)}
		case int:
			out[i] = Raw{Value: Num(float64(x))}
		case Quality:
			out[i] = Raw{Quality: x}
		}
	}
	return out
}

// runEngine runs e.Run until the returned stop is called; stop waits for
// Run to return (the last latch change saved), like a clean shutdown.
func runEngine(t *testing.T, e *Engine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func states(evs []Event) []string {
	var s []string
	for _, e := range evs {
		if e.Type == EventInterlock {
			s = append(s, e.State)
		}
	}
	return s
}

func TestTwoOutOfThreeWithFaultedDetector(t *testing.T) {
	ctx := context.Background()
	all := []int{0, 1, 2}
	t.Run("fail-safe: faulted votes trip, one more HH trips", func(t *testing.T) {
		out := &fakeOutput{coils: map[uint16]float64{0: 1}}
		e, _ := newESD(t, false, out, nil)
		_, evs := e.Tick(ctx, nil, time.Now(), all, raws(5, CommFault, 5))
		if len(states(evs)) != 0 || out.writes != 0 {
			t.Fatalf("one faulted detector alone tripped 2oo3: %v", states(evs))
		}
		_, evs = e.Tick(ctx, nil, time.Now(), all, raws(60, CommFault, 5))
		if got := states(evs); len(got) != 2 || got[0] != StateTripped || got[1] != StateActionVerified {
			t.Fatalf("faulted + one HH: interlock events %v, want tripped, action_verified", got)
		}
		if out.coils[0] != 0 {
			t.Fatal("valve coil not written closed")
		}
	})
	t.Run("hold: faulted votes no trip", func(t *testing.T) {
		out := &fakeOutput{coils: map[uint16]float64{0: 1}}
		e, _ := newESD(t, true, out, nil)
		_, evs := e.Tick(ctx, nil, time.Now(), all, raws(60, CommFault, 5))
		if len(states(evs)) != 0 || out.writes != 0 {
			t.Fatalf("hold mode tripped on one HH and one fault: %v", states(evs))
		}
		_, evs = e.Tick(ctx, nil, time.Now(), all, raws(60, CommFault, 55))
		if got := states(evs); len(got) == 0 || got[0] != StateTripped {
			t.Fatalf("two HH with one faulted: %v, want tripped", got)
		}
	})
	t.Run("not yet polled does not vote", func(t *testing.T) {
		out := &fakeOutput{coils: map[uint16]float64{}}
		e, _ := newESD(t, false, out, nil)
		_, evs := e.Tick(ctx, nil, time.Now(), []int{0}, raws(60))
		if len(states(evs)) != 0 {
			t.Fatalf("unpolled detectors voted: %v", states(evs))
		}
	})
}

func TestLatchResetBypassRestore(t *testing.T) {
	ctx := context.Background()
	all := []int{0, 1, 2}
	state := &memLatches{}
	out := &fakeOutput{coils: map[uint16]float64{0: 1}}
	e, emitted := newESD(t, false, out, state)
	stop := runEngine(t, e)
	e.Tick(ctx, nil, time.Now(), all, raws(60, 60, 5))
	if out.coils[0] != 0 {
		t.Fatal("not tripped")
	}
	if err := e.Reset(ctx, "ESD", "test"); err == nil {
		t.Fatal("reset accepted while two detectors are still at HH")
	}
	_, evs := e.Tick(ctx, nil, time.Now(), all, raws(5, 5, 5))
	if len(states(evs)) != 0 {
		t.Fatalf("latched interlock reset itself: %v", states(evs))
	}
	stop()           // a clean stop saves the latch
	out.coils[0] = 1 // someone re-opened the valve by hand; a reset must not touch it
	// A restart keeps the latch without writing outputs blindly (its
	// supervision, under Run, reads them back first: see
	// TestRestoredLatchIsReadBackNotWrittenBlindly).
	e2, _ := newESD(t, false, out, state)
	if _, ils := e2.Snapshot(); !ils[0].Tripped {
		t.Fatal("latch lost across a restart")
	}
	writes := out.writes
	if err := e2.Reset(ctx, "ESD", "test"); err != nil {
		t.Fatal(err)
	}
	if out.writes != writes || out.coils[0] != 1 {
		t.Fatal("reset wrote outputs although no on_reset action is configured")
	}
	if err := e.Bypass("ESD", 9*time.Hour, "test"); err == nil {
		t.Fatal("bypass over 8 h accepted")
	}
	stop2 := runEngine(t, e2)
	if err := e2.Bypass("ESD", time.Hour, "test"); err != nil {
		t.Fatal(err)
	}
	_, evs = e2.Tick(ctx, nil, time.Now(), all, raws(60, 60, 60))
	if len(states(evs)) != 0 {
		t.Fatalf("bypassed interlock tripped: %v", states(evs))
	}
	// A restart ends the bypass.
	stop2()
	e3, emitted3 := newESD(t, false, out, state)
	if got := states(*emitted3); len(got) != 1 || got[0] != StateBypassExpired {
		t.Fatalf("restart during a bypass: %v, want bypass_expired", got)
	}
	_, evs = e3.Tick(ctx, nil, time.Now(), all, raws(60, 60, 60))
	if got := states(evs); len(got) == 0 || got[0] != StateTripped {
		t.Fatalf("after the bypass ended by restart: %v, want tripped", got)
	}
	_ = emitted
}
