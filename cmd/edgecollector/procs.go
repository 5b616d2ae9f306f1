package main

import (
	"runtime"
	"runtime/debug"
)

// The collector's work is waiting: on instruments, on the disk's sync, on
// the broker. Its CPU is a few per cent of one core at 10,000 points/s, so
// it runs Go code on one thread (GOMAXPROCS=1) unless the GOMAXPROCS
// environment variable says otherwise. A second P only adds hand-offs: each
// goroutine made ready (a tick's readings to the appender, a commit to the
// uplink, a broker's ack) woke an idle thread that spun, found nothing and
// parked again, ~18 % of the collector's CPU at 1,000 points/s
// (docs/performance.md). Blocking syscalls (a sync, a serial read) still
// run on threads of their own, and a long computation (a backlog's JSON) is
// preempted every 10 ms, so a tick waits at most that long for the thread;
// the interlock latency under a draining backlog is unchanged (edgebench
// interlock, docs/performance.md).
//
// defaultProcs is the GOMAXPROCS the collector sets, 0 to leave Go's.
func defaultProcs(env func(string) string) int {
	if env("GOMAXPROCS") != "" {
		return 0 // the operator's choice
	}
	return 1
}

func setProcs(env func(string) string) {
	if n := defaultProcs(env); n > 0 {
		runtime.GOMAXPROCS(n)
	}
}

// startupMemoryLimit bounds the heap while the garbage collector is paused
// for the start: it collects anyway when a large config's parse reaches it.
const startupMemoryLimit = 64 << 20

// pauseGC turns the garbage collector off while the collector starts: the
// config's YAML tree, the groups and the buffer's open allocate ~12 MB that
// the collector keeps or drops at once, and the five collections on the way
// there were a seventh of the start's CPU. The heap stays under
// startupMemoryLimit meanwhile (or under a lower GOMEMLIMIT). The function
// returned restores GOGC and GOMEMLIMIT as they were; GOGC=off stays off.
func pauseGC() (resume func()) {
	limit := debug.SetMemoryLimit(-1)
	debug.SetMemoryLimit(min(limit, startupMemoryLimit))
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}
