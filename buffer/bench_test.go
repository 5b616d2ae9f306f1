package buffer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// BenchmarkAppend measures durable appends of 200 readings per call, each
// synced before Append returns. readings/s is the figure issue 5 targets.
func BenchmarkAppend(b *testing.B) {
	s, err := OpenBadger(context.Background(), BadgerOpts{Dir: b.TempDir(), Opts: Opts{Uplinks: []string{"mqtt"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tmpl := rt(time.Now(), 200)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m := *tmpl
		if err := s.Append(context.Background(), &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*200)/time.Since(start).Seconds(), "readings/s")
}

// BenchmarkMemoryAppend is the in-memory baseline measured in the same run.
func BenchmarkMemoryAppend(b *testing.B) {
	s := NewMemory(Opts{Uplinks: []string{"mqtt"}, MaxMessages: 1000}, 0)
	tmpl := rt(time.Now(), 200)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		m := *tmpl
		s.Append(context.Background(), &m)
		s.Ack("mqtt", m.Seq)
	}
	b.ReportMetric(float64(b.N*200)/time.Since(start).Seconds(), "readings/s")
}

// BenchmarkHistory24h is a platform's one-day 2061 (hour statistics)
// request over a buffer holding a day of readings (one rt message of 1,000
// readings per minute, 1.44 M readings) and the day's minute and hour
// statistics of 1,000 points (the reference load's). Reported: the heap growth while the request is
// read (peak HeapAlloc over the start, sampled every 16 messages) for the
// stat messages only (what history requests read), for every kind streamed,
// and, as the baseline of the same run, the first wave's way (every message
// of the window decoded and held before the stat messages were picked).
//
//	go test ./buffer -run XXX -bench History24h -benchtime 1x
func BenchmarkHistory24h(b *testing.B) {
	s, err := OpenBadger(context.Background(), BadgerOpts{Dir: b.TempDir(), Opts: Opts{Uplinks: []string{"hj212"}, MaxBytes: 8 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	stats := func(p edge.Period, start time.Time) *edge.Message {
		m := &edge.Message{Kind: edge.KindStat, Created: start.Add(time.Minute)}
		for i := range 1000 { // the reference load's 1,000 points
			m.Stats = append(m.Stats, edge.Stat{Point: fmt.Sprintf("GT-%03d", i), Period: p, Start: start, Avg: 1, Min: 0, Max: 2, Count: 60})
		}
		return m
	}
	for min := range 24 * 60 {
		at := day.Add(time.Duration(min) * time.Minute)
		batch := []*edge.Message{rt(at, 1000), stats(edge.Minute, at)}
		if min%60 == 59 {
			batch = append(batch, stats(edge.Hour, at.Add(-59*time.Minute)))
		}
		if err := s.Append(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	peak := func(kind edge.Kind, holdAll bool) (uint64, int) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base, top, n := ms.HeapAlloc, ms.HeapAlloc, 0
		held := []*edge.Message{}
		s.Between(day, day.Add(25*time.Hour), kind, func(m *edge.Message) bool {
			n++
			if holdAll || m.Kind == edge.KindStat && m.Stats[0].Period == edge.Hour {
				held = append(held, m) // a 2061 keeps the hours; the first wave kept all
			}
			if n%16 == 0 {
				runtime.ReadMemStats(&ms)
				top = max(top, ms.HeapAlloc)
			}
			return true
		})
		_ = held
		return top - base, n
	}
	b.ResetTimer()
	var statsOnly, all, old uint64
	var nStats, nAll int
	for range b.N {
		statsOnly, nStats = peak(edge.KindStat, false)
		all, nAll = peak(0, false)
		old, _ = peak(0, true)
	}
	b.ReportMetric(float64(statsOnly)/(1<<20), "MB-heap-stat-kind")
	b.ReportMetric(float64(all)/(1<<20), "MB-heap-all-kinds")
	b.ReportMetric(float64(old)/(1<<20), "MB-heap-first-wave")
	b.ReportMetric(float64(nStats), "stat-messages")
	b.ReportMetric(float64(nAll), "messages")
}
