package edge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestStatsFromEveryPoll: statistics come from every poll, also those a
// report-on-change point does not report, and close at each boundary.
func TestStatsFromEveryPoll(t *testing.T) {
	loc := time.FixedZone("UTC+08:00", 8*3600)
	now := time.Date(2026, 11, 23, 10, 0, 50, 0, loc)
	clock := func() time.Time { return now }
	var emitted []*Message
	e, err := NewEngine(EngineOpts{Stats: true, Location: loc, Now: clock, Emit: func(m *Message) { emitted = append(emitted, m) },
		Points: []PointConf{{Code: "PT", Unit: "kPa", Scale: 1, OnChange: true, Deadband: 100, MaxInterval: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	reported := 0
	for _, v := range []any{10, 20, 30, CommFault, 40} {
		now = now.Add(2 * time.Second)
		rs, _ := e.Tick(context.Background(), nil, now, []int{0}, raws(v))
		reported += len(rs)
	}
	// Deadband 100: only the first poll and the two quality changes are
	// reported; 20 and 30 are not, yet they are in the statistics.
	if reported != 3 {
		t.Fatalf("report-on-change kept %d readings, want 3", reported)
	}
	// 10:00:52..10:01:00: four polls in minute 10:00 (10, 20, 30, fault), one in 10:01.
	if ms := e.closeStats(now.Add(time.Second)); ms != nil {
		t.Fatalf("minute closed before its grace: %+v", ms)
	}
	ms := e.closeStats(time.Date(2026, 11, 23, 10, 1, 3, 0, loc))
	if len(ms) != 1 || ms[0].Kind != KindStat || len(ms[0].Stats) != 1 {
		t.Fatalf("minute 10:00 not closed: %+v", ms)
	}
	s := ms[0].Stats[0]
	if s.Period != Minute || s.Count != 3 || s.Avg != 20 || s.Min != 10 || s.Max != 30 || s.Quality != CommFault ||
		!s.Start.Equal(time.Date(2026, 11, 23, 10, 0, 0, 0, loc)) {
		t.Fatalf("minute stat %+v: want avg 20 min 10 max 30 over 3 values, worst comm_fault, start 10:00", s)
	}
	hs := e.closeStats(time.Date(2026, 11, 23, 11, 0, 3, 0, loc))
	// One message per (period, start): the 10:01 minute, then the 10:00
	// hour, never both in one (an HJ 212 series must not mix 2051 and 2061).
	if len(hs) != 2 || len(hs[0].Stats) != 1 || hs[0].Stats[0].Period != Minute || len(hs[1].Stats) != 1 || hs[1].Stats[0].Period != Hour {
		t.Fatalf("at 11:00 want the 10:01 minute and the 10:00 hour in two messages, got %+v", hs)
	}
	if s := hs[1].Stats[0]; s.Count != 4 || s.Max != 40 || s.Avg != 25 {
		t.Fatalf("hour stat %+v: want 4 values, avg 25, max 40", s)
	}
}

// TestMinuteInterval: a platform's CN 1064 MinInterval=10 makes the
// "minute" statistics 10-minute periods from the next period on.
func TestMinuteInterval(t *testing.T) {
	loc := time.UTC
	e, err := NewEngine(EngineOpts{Stats: true, Location: loc, Points: []PointConf{{Code: "PT", Scale: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	e.SetMinuteInterval(10)
	e.SetMinuteInterval(7) // not a divisor of 60: ignored
	t0 := time.Date(2026, 12, 1, 8, 3, 0, 0, loc)
	for i := range 20 {
		e.Tick(context.Background(), nil, t0.Add(time.Duration(i)*time.Minute), []int{0}, raws(i))
	}
	ms := e.closeStats(time.Date(2026, 12, 1, 8, 20, 3, 0, loc))
	var starts []string
	for _, m := range ms {
		for _, s := range m.Stats {
			if s.Period == Minute {
				starts = append(starts, fmt.Sprintf("%s/%d", s.Start.Format("15:04"), s.Count))
			}
		}
	}
	if strings.Join(starts, " ") != "08:00/7 08:10/10" {
		t.Fatalf("10-minute periods: %v", starts)
	}
}
