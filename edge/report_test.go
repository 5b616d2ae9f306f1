package edge

import (
	"context"
	"testing"
	"time"
)

// TestReportModes: every poll is reported in mode every; in mode change only
// moves beyond the deadband, quality or alarm changes and the forced
// interval are; alarms are evaluated on every poll either way.
func TestReportModes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	every := PointConf{Code: "A", Scale: 1, Alarms: &Limits{H: f(50)}}
	change := PointConf{Code: "B", Scale: 1, OnChange: true, Deadband: 0.5, MaxInterval: 10 * time.Second, Alarms: &Limits{H: f(50)}}
	e, err := NewEngine(EngineOpts{Points: []PointConf{every, change}})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at        time.Duration
		v         float64
		reportedB bool
		alarm     bool // an H alarm event on B at this poll
	}{
		{0, 10, true, false},     // first poll
		{1, 10.3, false, false},  // within the deadband
		{2, 10.6, true, false},   // 0.6 from the last reported 10
		{3, 10.9, false, false},  // 0.3 from 10.6
		{13, 10.9, true, false},  // forced: 11 s since the last report
		{14, 50.2, true, true},   // alarm raised: reported (alarm changed)
		{15, 50.3, false, false}, // within the deadband, alarm unchanged
	}
	for _, s := range steps {
		rs, evs := e.Tick(context.Background(), nil, t0.Add(s.at*time.Second), []int{0, 1}, raws(s.v, s.v))
		gotA, gotB := false, false
		for _, r := range rs {
			gotA = gotA || r.Point == "A"
			gotB = gotB || r.Point == "B"
		}
		if !gotA {
			t.Fatalf("t=%ds: mode every did not report", s.at)
		}
		if gotB != s.reportedB {
			t.Fatalf("t=%ds value %v: mode change reported %v, want %v", s.at, s.v, gotB, s.reportedB)
		}
		alarmB := false
		for _, ev := range evs {
			alarmB = alarmB || (ev.Point == "B" && ev.State == StateRaised && ev.Type == EventAlarm)
		}
		if alarmB != s.alarm {
			t.Fatalf("t=%ds: alarm event on B %v, want %v", s.at, alarmB, s.alarm)
		}
	}
	// A poll inside the deadband is still evaluated: C crosses H within 5
	// of its last report, the alarm is raised, and the alarm change forces
	// the reading out.
	e2, _ := NewEngine(EngineOpts{Points: []PointConf{{Code: "C", Scale: 1, OnChange: true, Deadband: 5, MaxInterval: time.Hour, Alarms: &Limits{H: f(50)}}}})
	e2.Tick(context.Background(), nil, t0, []int{0}, raws(48.0))
	rs, evs := e2.Tick(context.Background(), nil, t0.Add(time.Second), []int{0}, raws(50.5))
	if len(evs) != 1 || evs[0].State != StateRaised {
		t.Fatalf("alarm not evaluated on a poll inside the deadband: %+v", evs)
	}
	if len(rs) != 1 || rs[0].Alarm != H {
		t.Fatalf("the alarm change must be reported: %+v", rs)
	}
}
