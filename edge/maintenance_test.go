package edge

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestOutOfService: a point that votes in a fail-safe interlock is refused
// out of service unless that interlock is bypassed (or forced); out of
// service its readings are maintenance (value kept), its alarms hold, it
// ends by itself and at a restart.
func TestOutOfService(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &eventLog{}
		latches := &memLatches{}
		out := &fakeOutput{coils: map[uint16]float64{0: 1}}
		newEngine := func() *Engine {
			e, err := NewEngine(EngineOpts{Points: gasPoints(2), Latches: latches,
				Interlocks: []InterlockConf{{Name: "ESD", Need: 1, Latch: true, Inputs: []InputConf{{"GT-1", HH}},
					Actions: []ActionConf{{Device: "v", Writer: out, Table: OutputCoil, Value: 0}}}},
				Emit: func(m *Message) { log.add(m.Events...) }})
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		e := newEngine()
		stop := runEngine(t, e)
		err := e.Maintenance("GT-1", true, time.Hour, "calibration", "uid 1000", false)
		if err == nil || !strings.Contains(err.Error(), `votes in interlock "ESD"`) {
			t.Fatalf("voting point out of service without a bypass: %v", err)
		}
		if err := e.Maintenance("GT-2", true, 9*time.Hour, "calibration", "uid 1000", false); err == nil {
			t.Fatal("maintenance over 8 h accepted")
		}
		if err := e.Maintenance("GT-2", true, time.Hour, "", "uid 1000", false); err == nil {
			t.Fatal("maintenance without a reason accepted")
		}
		if err := e.Bypass("ESD", 2*time.Hour, "uid 1000"); err != nil {
			t.Fatal(err)
		}
		if err := e.Maintenance("GT-1", true, time.Hour, "calibration gas", "uid 1000", false); err != nil {
			t.Fatal(err)
		}
		rs, evs := e.Tick(context.Background(), nil, time.Now(), []int{0}, raws(60))
		if rs[0].Quality != Maintenance || rs[0].Value != Num(60) || !strings.Contains(rs[0].Fault, "calibration gas") || len(evs) != 0 {
			t.Fatalf("reading out of service: %+v, events %v", rs[0], evs)
		}
		if ev := log.last(StateStarted); ev.Type != EventMaintenance || ev.Reason != "calibration gas" || ev.By != "uid 1000" {
			t.Fatalf("started event: %+v", ev)
		}
		ps, _ := e.Snapshot()
		if ps[0].Maintenance == nil || ps[0].Maintenance.Reason != "calibration gas" {
			t.Fatalf("status: %+v", ps[0])
		}
		time.Sleep(time.Hour + 2*time.Second)
		synctest.Wait()
		if log.count(StateExpired) != 1 {
			t.Fatalf("after its hour: %v", states(log.evs))
		}
		// Forced while not bypassed is allowed; a restart ends it.
		if err := e.Maintenance("GT-2", true, time.Hour, "loop check", "uid 0", true); err != nil {
			t.Fatal(err)
		}
		stop()
		newEngine()
		if n := log.count(StateExpired); n != 2 {
			t.Fatalf("restart during maintenance: %d expired events, want 2", n)
		}
	})
}

// TestHousekeepingWakesWhenDue: Run sleeps until the next deadline (a
// bypass or maintenance that ends, a statistics or real-time boundary) or
// ClockCheckEvery, not every second: a bypass and an out-of-service period
// end at their exact time, and an idle engine looks at the clock every
// ClockCheckEvery.
func TestHousekeepingWakesWhenDue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &eventLog{}
		out := &fakeOutput{coils: map[uint16]float64{0: 1}}
		e, err := NewEngine(EngineOpts{Points: gasPoints(2),
			Interlocks: []InterlockConf{{Name: "ESD", Need: 1, Latch: true, Inputs: []InputConf{{"GT-1", HH}},
				Actions: []ActionConf{{Device: "v", Writer: out, Table: OutputCoil, Value: 0}}}},
			Emit: func(m *Message) { log.add(m.Events...) }})
		if err != nil {
			t.Fatal(err)
		}
		runEngine(t, e)
		if d := e.housekeepingIn(time.Now()); d != ClockCheckEvery {
			t.Fatalf("idle engine sleeps %s, want %s", d, ClockCheckEvery)
		}
		start := time.Now()
		if err := e.Bypass("ESD", 2500*time.Millisecond, "uid 1000"); err != nil {
			t.Fatal(err)
		}
		if err := e.Maintenance("GT-2", true, 3700*time.Millisecond, "loop check", "uid 1000", false); err != nil {
			t.Fatal(err)
		}
		if d := e.housekeepingIn(time.Now()); d != 2500*time.Millisecond {
			t.Fatalf("with a bypass ending in 2.5 s the engine sleeps %s", d)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if ev := log.last(StateBypassExpired); ev.TS.Sub(start) != 2500*time.Millisecond {
			t.Fatalf("bypass expired at +%s, want +2.5s (%v)", ev.TS.Sub(start), states(log.evs))
		}
		if ev := log.last(StateExpired); ev.TS.Sub(start) != 3700*time.Millisecond {
			t.Fatalf("maintenance expired at +%s, want +3.7s (%v)", ev.TS.Sub(start), states(log.evs))
		}
	})
	stats, err := NewEngine(EngineOpts{Points: gasPoints(1), Stats: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := stats.housekeepingIn(time.Now()); d != time.Second {
		t.Fatalf("with statistics on the engine sleeps %s, want 1s (minute boundaries)", d)
	}
}
