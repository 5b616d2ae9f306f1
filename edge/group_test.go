package edge

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// slowSource takes d per read; fail makes every read fail.
type slowSource struct {
	d    time.Duration
	fail bool
}

func (s *slowSource) Read(ctx context.Context, out []Raw) {
	time.Sleep(s.d)
	for i := range out {
		out[i] = Raw{Value: Value{Kind: Number, Num: 1}}
		if s.fail {
			out[i] = Raw{Err: errors.New("no answer"), Quality: CommFault}
		}
	}
}

func (s *slowSource) String() string { return "slow" }

// TestGroupStats: a group reports its ticks, the ticks that overran the
// interval, their durations, and per device reads, failures and the last
// success (synctest: the durations are exact).
func TestGroupStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := NewEngine(EngineOpts{Points: []PointConf{{Code: "A", Scale: 1}, {Code: "B", Scale: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		good, bad := &slowSource{d: 30 * time.Millisecond}, &slowSource{d: 20 * time.Millisecond, fail: true}
		g := &Group{Name: "bus@100ms", Interval: 100 * time.Millisecond, Engine: e, Queue: NewQueue(100),
			Sources: []GroupSource{{Device: "ok", Source: good, Points: []int{0}}, {Device: "dead", Source: bad, Points: []int{1}}}}
		if st := g.Stats(); st.Ticks != 0 || len(st.Sources) != 2 || st.Sources[0].Device != "ok" {
			t.Fatalf("before any tick: %+v", st)
		}
		start := time.Now()
		for range 3 {
			g.Tick(context.Background())
		}
		good.d = 150 * time.Millisecond // this tick overruns the interval
		g.Tick(context.Background())
		st := g.Stats()
		if st.Ticks != 4 || st.Overruns != 1 {
			t.Errorf("ticks %d overruns %d, want 4 and 1", st.Ticks, st.Overruns)
		}
		if st.LastDuration != 170*time.Millisecond || st.MaxDuration != 170*time.Millisecond || st.TotalDuration != 320*time.Millisecond {
			t.Errorf("durations last %s max %s total %s, want 170ms 170ms 320ms", st.LastDuration, st.MaxDuration, st.TotalDuration)
		}
		ok, dead := st.Sources[0], st.Sources[1]
		if ok.Reads != 4 || ok.Failures != 0 || !ok.LastSuccess.Equal(start.Add(320*time.Millisecond-20*time.Millisecond)) {
			t.Errorf("device ok: %+v (start %s)", ok, start)
		}
		if dead.Reads != 4 || dead.Failures != 4 || !dead.LastSuccess.IsZero() {
			t.Errorf("device dead: %+v", dead)
		}
	})
}
