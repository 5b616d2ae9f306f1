package edge

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestTwoHoursOfRTDAndStats runs the engine for two simulated hours (no
// wall-clock wait): points polled every second by two groups at different
// phases. It must give exactly one rtd snapshot per 30 s boundary, aligned,
// with every factor point in it, and one stat message per (period, start):
// 120 minutes and 2 hours, never a minute and an hour in one message.
func TestTwoHoursOfRTDAndStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		loc := time.FixedZone("UTC+08:00", 8*3600)
		var mu sync.Mutex
		var got []*Message
		pts := []PointConf{{Code: "GT-1", RTD: true, Interval: time.Second, Scale: 1}, {Code: "GT-2", RTD: true, Interval: time.Second, Scale: 1},
			{Code: "TE-CAB", Interval: time.Second, Scale: 1}}
		e, err := NewEngine(EngineOpts{Points: pts, Stats: true, Location: loc, RTDInterval: 30 * time.Second,
			Emit: func(m *Message) { mu.Lock(); got = append(got, m); mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); e.Run(ctx) }()
		for g, idx := range [][]int{{0, 2}, {1}} {
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(g*370) * time.Millisecond) // groups are not aligned to the second
				tk := time.NewTicker(time.Second)
				defer tk.Stop()
				for n := 0; ; n++ {
					rs := make([]Raw, len(idx))
					for i := range rs {
						rs[i] = Raw{Value: Num(float64(n % 50))}
					}
					e.Tick(ctx, nil, time.Now(), idx, rs)
					select {
					case <-ctx.Done():
						return
					case <-tk.C:
					}
				}
			}()
		}
		time.Sleep(2*time.Hour + 10*time.Second)
		cancel()
		wg.Wait()
		var rtd, minutes, hours int
		seen := map[time.Time]bool{}
		for _, m := range got {
			switch m.Kind {
			case KindRTD:
				rtd++
				if m.Created.Second()%30 != 0 || m.Created.Nanosecond() != 0 || seen[m.Created] {
					t.Fatalf("rtd at %s: not on a 30 s boundary, or sent twice", m.Created)
				}
				seen[m.Created] = true
				if len(m.Readings) != 2 {
					t.Fatalf("rtd at %s has %d readings, want GT-1 and GT-2 (not TE-CAB, no factor)", m.Created, len(m.Readings))
				}
			case KindStat:
				p, start := m.Stats[0].Period, m.Stats[0].Start
				for _, s := range m.Stats {
					if s.Period != p || !s.Start.Equal(start) {
						t.Fatalf("one stat message mixes %s %s and %s %s", p, start, s.Period, s.Start)
					}
				}
				if p == Minute {
					minutes++
				} else {
					hours++
				}
			}
		}
		// Boundaries in 2 h 10 s after the first one armed: 240 (+/- the
		// first and last partial ones); minutes closed: 119-121; hours 2.
		if rtd < 239 || rtd > 241 || minutes < 119 || minutes > 121 || hours < 1 || hours > 2 {
			t.Fatalf("in two hours: %d rtd snapshots, %d minute and %d hour stat messages", rtd, minutes, hours)
		}
		t.Logf("two simulated hours: %d rtd snapshots, %d minute and %d hour stat messages", rtd, minutes, hours)
	})
}

func TestRTDBoundary(t *testing.T) {
	loc := time.FixedZone("UTC+08:00", 8*3600)
	for _, c := range []struct {
		t, want string
		every   time.Duration
	}{
		{"2026-12-01T10:00:00.100+08:00", "2026-12-01T10:00:30+08:00", 30 * time.Second},
		{"2026-12-01T10:00:29.999+08:00", "2026-12-01T10:00:30+08:00", 30 * time.Second},
		{"2026-12-01T10:00:30+08:00", "2026-12-01T10:01:00+08:00", 30 * time.Second},
		{"2026-12-01T10:17:00+08:00", "2026-12-01T11:00:00+08:00", time.Hour}, // the hour in the local zone
	} {
		tt, _ := time.Parse(time.RFC3339Nano, c.t)
		if got := rtdBoundary(tt, c.every, loc).Format(time.RFC3339); got != c.want {
			t.Errorf("after %s every %s: %s, want %s", c.t, c.every, got, c.want)
		}
	}
}
