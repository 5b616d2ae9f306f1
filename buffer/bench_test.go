package buffer

import (
	"context"
	"testing"
	"time"
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
