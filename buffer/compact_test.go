package buffer

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// TestCompactionKeepsLevelZeroLow: badger's compactors are off (each woke
// every 50 ms, work or not); the buffer compacts when a commit finds a level
// over its target. Small records (kept whole in the LSM) are appended until
// many memtables have been flushed: level 0 never reaches the stall count
// (an append would then block until something compacted), the buffer did
// compact, every message reads back, and no compactor goroutine runs.
func TestCompactionKeepsLevelZeroLow(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	defer s.Close()
	if n := goroutinesIn("runCompactor"); n != 0 {
		t.Fatalf("%d badger compactor goroutines run", n)
	}
	stall := badgerOptions(s.opts, s.dbDir()).NumLevelZeroTablesStall
	written0 := ioWritten(t)
	now := time.Now()
	const batches, per = 700, 64 // 44,800 messages of 30 readings (~700 B each: inline, 9 memtables)
	maxL0 := 0
	done := make(chan error, 1)
	go func() {
		for b := range batches {
			msgs := make([]*edge.Message, per)
			for i := range msgs {
				msgs[i] = rt(now.Add(time.Duration(b*per+i)*time.Millisecond), 30)
			}
			if err := s.Append(context.Background(), msgs...); err != nil {
				done <- fmt.Errorf("append %d: %w", b, err)
				return
			}
			s.mu.Lock()
			maxL0 = max(maxL0, s.db.Levels()[0].NumTables)
			s.mu.Unlock()
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		// A full level 0 blocks a commit until something compacts.
		t.Fatalf("appends stalled: level 0 at %d tables", s.db.Levels()[0].NumTables)
	}
	if maxL0 >= stall {
		t.Fatalf("level 0 reached %d tables (stall at %d)", maxL0, stall)
	}
	l0tables := badgerOptions(s.opts, s.dbDir()).NumLevelZeroTables
	waitFor(t, func() bool { return s.compactions.Load() >= 2 && s.db.Levels()[0].NumTables <= l0tables })
	t.Logf("%d messages (%d KB): %d compactions, level 0 at most %d tables; %d KB written to disk",
		batches*per, s.Stats().Bytes>>10, s.compactions.Load(), maxL0, (ioWritten(t)-written0)>>10)
	if got, _ := s.Unacked("mqtt", 1, 0, batches*per+1); len(got) != batches*per {
		t.Fatalf("read back %d of %d messages", len(got), batches*per)
	}
	if n := goroutinesIn("runCompactor"); n != 0 {
		t.Fatalf("%d badger compactor goroutines run after compacting", n)
	}
}

// goroutinesIn counts goroutines with fn on their stack.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}

// ioWritten is the bytes this process caused to be written to storage.
func ioWritten(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
