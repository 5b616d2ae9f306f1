package main

import (
	"runtime/debug"
	"testing"
)

func TestDefaultProcs(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int
	}{
		{"", 1},    // one P unless told
		{"4", 0},   // the operator's GOMAXPROCS stands
		{"bad", 0}, // Go's own handling of a bad value stands
	} {
		got := defaultProcs(func(k string) string {
			if k == "GOMAXPROCS" {
				return c.env
			}
			return ""
		})
		if got != c.want {
			t.Errorf("GOMAXPROCS=%q: defaultProcs = %d, want %d", c.env, got, c.want)
		}
	}
}

func TestPauseGCRestoresTheSettings(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(1 << 40))
	resume := pauseGC()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Errorf("GOGC while starting = %d, want off", p)
	}
	if l := debug.SetMemoryLimit(-1); l != startupMemoryLimit {
		t.Errorf("memory limit while starting = %d, want %d", l, startupMemoryLimit)
	}
	resume()
	if p := debug.SetGCPercent(-1); p != 150 {
		t.Errorf("GOGC after the start = %d, want 150 as before", p)
	}
	if l := debug.SetMemoryLimit(-1); l != 1<<40 {
		t.Errorf("memory limit after the start = %d, want %d as before", l, int64(1<<40))
	}
	// A lower limit set by the operator (GOMEMLIMIT) is kept while starting.
	debug.SetMemoryLimit(16 << 20)
	resume = pauseGC()
	if l := debug.SetMemoryLimit(-1); l != 16<<20 {
		t.Errorf("memory limit while starting = %d, want the operator's 16 MiB", l)
	}
	resume()
}
