package buffer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// The reproductions of issue 15: damaged storage must never stop the
// collector, and every seq that was issued is either still there or named
// in an event.

// fill appends n messages of the given size in batches and returns their
// seqs.
func fillStore(t *testing.T, s Store, n, points int) []uint64 {
	t.Helper()
	var seqs []uint64
	for len(seqs) < n {
		var batch []*edge.Message
		for range min(100, n-len(seqs)) {
			batch = append(batch, rt(t0, points))
		}
		mustAppend(t, s, batch...)
		for _, m := range batch {
			seqs = append(seqs, m.Seq)
		}
	}
	return seqs
}

// account is what a platform sees after draining a store: the messages
// present and the ranges events named.
type account struct {
	present   map[uint64]bool
	dropped   []edge.SeqRange // buffer_dropped: issued and lost
	recreated []edge.SeqRange // buffer_recreated: never issued
	events    []edge.Event
}

func drain(t *testing.T, s Store, uplink string) account {
	t.Helper()
	a := account{present: map[uint64]bool{}}
	var from uint64
	for {
		ms, err := s.Unacked(uplink, from, 0, 5000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return a
		}
		for _, m := range ms {
			a.present[m.Seq] = true
			for _, e := range m.Events {
				switch e.State {
				case edge.StateBufferDropped:
					if !slices.Contains([]string{ReasonCap, ReasonAge, ReasonMemory, ReasonCorrupt}, e.Reason) {
						t.Fatalf("buffer_dropped seq %d has reason %q", m.Seq, e.Reason)
					}
					a.dropped = append(a.dropped, e.Ranges...)
					a.events = append(a.events, e)
				case edge.StateBufferRecreated:
					a.recreated = append(a.recreated, e.Ranges...)
					a.events = append(a.events, e)
				}
			}
		}
		from = ms[len(ms)-1].Seq + 1
	}
}

func inRanges(rs []edge.SeqRange, q uint64) bool {
	for _, r := range rs {
		if q >= r.First && q <= r.Last {
			return true
		}
	}
	return false
}

// check asserts the promise: every issued (and not acknowledged) seq is
// present or named as dropped (issued and lost: never as "not issued"),
// every seq up to the store's last is acknowledged, present or named, and a
// new append continues above all. It returns how many issued seqs were
// named lost.
func (a account) check(t *testing.T, s Store, issued []uint64, acked ...uint64) (lost int) {
	t.Helper()
	ack := map[uint64]bool{}
	for _, q := range acked {
		ack[q] = true
	}
	var top uint64
	for _, q := range issued {
		top = max(top, q)
		if a.present[q] {
			continue
		}
		if !inRanges(a.dropped, q) {
			t.Fatalf("issued seq %d is neither present nor named in a buffer_dropped range (dropped %v, recreated %v; events %s)",
				q, a.dropped, a.recreated, eventTexts(a.events))
		}
		lost++
	}
	last := s.LastSeq()
	for q := uint64(1); q <= last; q++ {
		if !a.present[q] && !ack[q] && !inRanges(a.dropped, q) && !inRanges(a.recreated, q) {
			t.Fatalf("seq %d (of 1-%d) is silently missing: not present, not named (dropped %v, recreated %v; events %s)",
				q, last, a.dropped, a.recreated, eventTexts(a.events))
		}
	}
	m := rt(t0, 1)
	if err := s.Append(context.Background(), m); err != nil && !errors.Is(err, ErrNotDurable) {
		t.Fatal(err)
	}
	if m.Seq <= top || m.Seq <= last {
		t.Fatalf("new seq %d does not continue above every seq issued before (%d) and the store's last (%d)", m.Seq, top, last)
	}
	return lost
}

func eventTexts(es []edge.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %v: %s", e.State, e.Ranges, e.Message)
	}
	return b.String()
}

// reopen opens the store in dir as the collector does and waits until the
// open has settled.
func reopen(t *testing.T, dir string, o BadgerOpts) *Badger {
	t.Helper()
	s := openAt(t, dir, o)
	t.Cleanup(func() { s.Close() })
	return s
}

func largestFile(t *testing.T, dir, glob string) string {
	t.Helper()
	fs, _ := filepath.Glob(filepath.Join(dir, glob))
	if len(fs) == 0 {
		all, _ := os.ReadDir(dir)
		t.Fatalf("no %s in %s (%v)", glob, dir, all)
	}
	sort.Slice(fs, func(i, j int) bool { return size(fs[i]) > size(fs[j]) })
	return fs[0]
}

func size(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Reproduction 1: a truncated .sst made badger.Open panic in a goroutine it
// starts, a crash loop under Restart=always.
func TestDamageTruncatedSSTDoesNotStopTheCollector(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	issued := fillStore(t, s, 3000, 20)
	s.Close()
	sst := largestFile(t, filepath.Join(dir, "db"), "*.sst")
	if err := os.Truncate(sst, size(sst)/2); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, BadgerOpts{})
	a := drain(t, s, "mqtt")
	lost := a.check(t, s, issued)
	if aside, _ := filepath.Glob(filepath.Join(dir, "db.corrupt-*")); len(aside) != 1 {
		t.Fatalf("the damaged database is not kept aside: %v", aside)
	}
	t.Logf("truncated %s: %d of %d issued seqs named lost; events:%s", filepath.Base(sst), lost, len(issued), eventTexts(a.events))
}

// Reproduction 2: 4 KiB of 0xFF in an SST with nothing acknowledged lost
// thousands of messages without a word.
func TestDamageGarbledSSTBlockIsNamed(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	issued := fillStore(t, s, 12000, 3)
	s.Close()
	sst := largestFile(t, filepath.Join(dir, "db"), "*.sst")
	f, err := os.OpenFile(sst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(slices.Repeat([]byte{0xFF}, 4096), size(sst)/3)
	f.Close()
	s = reopen(t, dir, BadgerOpts{})
	a := drain(t, s, "mqtt")
	lost := a.check(t, s, issued)
	if lost >= len(issued) {
		t.Fatalf("all %d named lost: the records before the damaged block can be read back", lost)
	}
	t.Logf("garbled %s: %d of %d issued seqs named lost, the rest read back; events:%s", filepath.Base(sst), lost, len(issued), eventTexts(a.events))
}

// Reproduction 3: a recreated database named only the last ceiling window;
// with a fresh database the window skipped seq 1.
func TestDamageRecreatedNamesEverythingUnacked(t *testing.T) {
	for _, n := range []int{5, 22607} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			s := openAt(t, dir, BadgerOpts{})
			issued := fillStore(t, s, n, 1)
			s.Ack("mqtt", issued[:n/3]...) // acknowledged: not lost
			s.Close()
			if err := os.WriteFile(filepath.Join(dir, "db", "MANIFEST"), []byte("garbage, not a manifest"), 0o600); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir, BadgerOpts{})
			a := drain(t, s, "mqtt")
			lost := a.check(t, s, issued[n/3:], issued[:n/3]...)
			if lost != n-n/3 {
				t.Fatalf("%d named lost, want every unacknowledged seq (%d)", lost, n-n/3)
			}
			for _, e := range a.events {
				if strings.Contains(e.Message, "<nil>") {
					t.Fatalf("event message names a nil error: %s", e.Message) // reproduction 7
				}
			}
			t.Logf("events:%s", eventTexts(a.events))
		})
	}
}

// Reproduction 4: a deleted db/ or a missing MANIFEST restarted seqs at 1.
func TestDamageMissingDatabaseContinuesAboveCeiling(t *testing.T) {
	for name, damage := range map[string]func(db string) error{
		"deleted db":       os.RemoveAll,
		"missing MANIFEST": func(db string) error { return os.Remove(filepath.Join(db, "MANIFEST")) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openAt(t, dir, BadgerOpts{})
			issued := fillStore(t, s, 50, 2)
			s.Ack("mqtt", issued[:10]...)
			s.Close()
			if err := damage(filepath.Join(dir, "db")); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir, BadgerOpts{})
			a := drain(t, s, "mqtt")
			if lost := a.check(t, s, issued[10:], issued[:10]...); lost == 0 && len(a.present) <= 1 {
				t.Fatalf("nothing named lost and nothing present: events%s", eventTexts(a.events))
			}
			if len(a.recreated) == 0 {
				t.Fatalf("no buffer_recreated event: %s", eventTexts(a.events))
			}
			t.Logf("events:%s", eventTexts(a.events))
		})
	}
}

// Reproduction 5: an overflow of the memory queue dropped the whole queue,
// and drop reports made it grow without bound.
func TestMemoryQueueKeepsItsBound(t *testing.T) {
	t.Run("memory store", func(t *testing.T) {
		s := NewMemory(Opts{Uplinks: []string{"mqtt"}, MaxMessages: 100}, 0)
		for range 101 {
			mustAppend(t, s, rt(t0, 1))
		}
		st := s.Stats()
		if st.Messages > 100 || st.Messages < 98 {
			t.Fatalf("%d messages held after 101 appends at a cap of 100: want the oldest dropped one by one", st.Messages)
		}
		for range 5000 {
			mustAppend(t, s, rt(t0, 1))
		}
		st = s.Stats()
		all, _ := s.Unacked("mqtt", 0, 0, 1000)
		reports := 0
		for _, m := range all {
			if isDropEvent(m) {
				reports++
			}
		}
		if st.Messages > 100 || reports != 1 {
			t.Fatalf("after 5101 appends: %d messages, %d drop reports; want at most 100 and one cumulative report", st.Messages, reports)
		}
	})
	t.Run("badger on a full disk", func(t *testing.T) {
		var free atomic.Int64
		free.Store(1 << 40)
		dir := t.TempDir()
		s := reopen(t, dir, BadgerOpts{FreeSpace: func(string) (int64, error) { return free.Load(), nil }, FreeCheckInterval: -1, MemoryQueue: 100, RetryInterval: time.Hour})
		mustAppend(t, s, rt(t0, 1))
		free.Store(1 << 20)
		for range 3000 {
			s.Append(context.Background(), rt(t0, 1))
		}
		st := s.Stats()
		if st.MemoryQueued > 100 || st.MemoryQueued < 50 {
			t.Fatalf("memory queue holds %d at memory_queue 100", st.MemoryQueued)
		}
		all, _ := s.Unacked("mqtt", 0, 0, 1000)
		var dropped []edge.SeqRange
		readings := 0
		for _, m := range all {
			if isDropEvent(m) {
				dropped = append(dropped, m.Events[0].Ranges...)
			} else if m.Kind == edge.KindRT {
				readings++
			}
		}
		if readings < 50 {
			t.Fatalf("only %d readings left in the queue: the newest must be kept", readings)
		}
		for q := uint64(1); q <= s.LastSeq(); q++ {
			if !slices.ContainsFunc(all, func(m *edge.Message) bool { return m.Seq == q }) && !inRanges(dropped, q) {
				t.Fatalf("seq %d neither held nor named (dropped %v)", q, dropped)
			}
		}
	})
}

// TestDamageEachBadgerFile truncates or garbles each kind of badger file at
// random offsets: opening never panics this process, the collector's store
// comes up, and every issued seq not acknowledged is present or named.
// BUFFER_DAMAGE_SEED repeats a run.
func TestDamageEachBadgerFile(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("BUFFER_DAMAGE_SEED"); v != "" {
		fmt.Sscan(v, &seed)
	}
	t.Logf("BUFFER_DAMAGE_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 15))
	// A database with small records (kept in the LSM tree) and large ones
	// (in the value log), a third acknowledged.
	tmpl := t.TempDir()
	s := openAt(t, tmpl, BadgerOpts{})
	var issued []uint64
	for i := range 40 {
		issued = append(issued, fillStore(t, s, 50, 1+59*(i%2))...)
	}
	acked := issued[:len(issued)/3]
	s.Ack("mqtt", acked...)
	s.Close()
	kinds := []string{"*.sst", "*.vlog", "MANIFEST", "KEYREGISTRY", "DISCARD"}
	for _, kind := range kinds {
		for _, mode := range []string{"truncate", "garble"} {
			for round := range 2 {
				t.Run(fmt.Sprintf("%s/%s/%d", kind, mode, round), func(t *testing.T) {
					dir := t.TempDir()
					copyDir(t, tmpl, dir)
					file := largestFile(t, filepath.Join(dir, "db"), kind)
					n := size(file)
					off := rng.Int64N(max(n, 1))
					if mode == "truncate" {
						if err := os.Truncate(file, off); err != nil {
							t.Fatal(err)
						}
					} else {
						junk := make([]byte, 1+rng.IntN(4096))
						for i := range junk {
							junk[i] = byte(rng.UintN(256))
						}
						f, err := os.OpenFile(file, os.O_WRONLY, 0)
						if err != nil {
							t.Fatal(err)
						}
						f.WriteAt(junk[:min(int64(len(junk)), max(1, n-off))], off)
						f.Close()
					}
					s := reopen(t, dir, BadgerOpts{})
					a := drain(t, s, "mqtt")
					lost := a.check(t, s, issued[len(acked):], acked...)
					t.Logf("%s %s at %d of %d bytes: %d of %d unacknowledged seqs named lost, %d events", filepath.Base(file), mode, off, n, lost, len(issued)-len(acked), len(a.events))
				})
			}
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		if d.Name() == "LOCK" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenInBackground: with Background the store is usable at once while
// the database opens; an open that hangs is given up after ProbeTimeout,
// the database moved aside, and appends go on.
func TestOpenInBackground(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	issued := fillStore(t, s, 10, 1)
	s.Close()
	hang := func(ctx context.Context, _ ...string) *exec.Cmd { return exec.CommandContext(ctx, "sleep", "60") }
	start := time.Now()
	s, err := OpenBadger(context.Background(), BadgerOpts{Dir: dir, Opts: Opts{Uplinks: []string{"mqtt"}}, Background: true, Probe: hang, ProbeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("OpenBadger took %s with Background", took)
	}
	if st := s.Stats(); st.Durable || st.Degraded != degradedOpening {
		t.Fatalf("stats while opening: %+v", st)
	}
	if got, _ := s.Unacked("mqtt", 0, 0, 10); len(got) != 0 {
		t.Fatalf("read %d messages before the open settled", len(got))
	}
	select {
	case <-s.Opened():
		t.Fatal("opened before the probe timed out")
	default:
	}
	m := rt(t0, 1)
	if err := s.Append(context.Background(), m); err != nil { // waits for the open to settle
		t.Fatal(err)
	}
	if time.Since(start) < time.Second {
		t.Fatal("append did not wait for the open")
	}
	a := drain(t, s, "mqtt")
	a.check(t, s, issued)
	if !strings.Contains(eventTexts(a.events), "did not finish in 1s") {
		t.Fatalf("events do not say the open hung:%s", eventTexts(a.events))
	}
	t.Logf("events:%s", eventTexts(a.events))
}

// TestRescanAfterRecovery (issue 15, item 6): a store that started on a
// full disk issues seqs above the ceiling; when the database opens later,
// its old backlog lies below seqs the uplinks have read, so Rescan fires and
// the backlog is there to be read again from the lowest unacknowledged seq.
func TestRescanAfterRecovery(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	old := fillStore(t, s, 5, 1)
	s.Close()
	var free atomic.Int64
	free.Store(1 << 20) // too full to open
	s = reopen(t, dir, BadgerOpts{FreeSpace: func(string) (int64, error) { return free.Load(), nil }, RetryInterval: 20 * time.Millisecond})
	m := rt(t0, 1)
	s.Append(context.Background(), m) // in memory, above the ceiling
	got, _ := s.Unacked("mqtt", 0, 0, 100)
	if len(got) != 1 || got[0].Seq != m.Seq {
		t.Fatalf("on the full disk the uplink sees %v, want only %d", seqsOf(got), m.Seq)
	}
	rescan := s.Rescan()
	free.Store(1 << 40)
	select {
	case <-rescan:
	case <-time.After(10 * time.Second):
		t.Fatal("no rescan signal when the database opened")
	}
	got, _ = s.Unacked("mqtt", 0, m.Seq, 100) // the backlog below what was read
	if !reflect.DeepEqual(seqsOf(got), old) {
		t.Fatalf("after the rescan signal the backlog below %d is %v, want %v", m.Seq, seqsOf(got), old)
	}
}

// TestProbeNotStartedIsNotDamage: a probe whose executable is missing says
// nothing about the database, which is opened in-process, not moved aside.
func TestProbeNotStartedIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	issued := fillStore(t, s, 10, 1)
	s.Close()
	gone := func(ctx context.Context, _ ...string) *exec.Cmd {
		return exec.CommandContext(ctx, filepath.Join(dir, "no-such-binary"))
	}
	s = reopen(t, dir, BadgerOpts{Probe: gone})
	a := drain(t, s, "mqtt")
	if lost := a.check(t, s, issued); lost != 0 || len(a.events) != 0 {
		t.Fatalf("%d named lost, events:%s", lost, eventTexts(a.events))
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "db.corrupt-*")); len(aside) != 0 {
		t.Fatalf("database moved aside: %v", aside)
	}
}

// TestRecreatedLaterKeepsMemorySeqs: a database found damaged only when the
// disk has room again names what earlier runs issued, never the messages
// this run holds in memory, which move into the new database.
func TestRecreatedLaterKeepsMemorySeqs(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	old := fillStore(t, s, 5, 1)
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "db", "MANIFEST"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var free atomic.Int64
	free.Store(1 << 20) // too full to probe or open
	s = reopen(t, dir, BadgerOpts{FreeSpace: func(string) (int64, error) { return free.Load(), nil }, RetryInterval: 20 * time.Millisecond})
	m := rt(t0, 1)
	if err := s.Append(context.Background(), m); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("append on the full disk: %v", err)
	}
	free.Store(1 << 40)
	waitFor(t, func() bool { return s.Stats().Durable })
	a := drain(t, s, "mqtt")
	if !a.present[m.Seq] || inRanges(a.dropped, m.Seq) || inRanges(a.recreated, m.Seq) {
		t.Fatalf("seq %d held in memory: present %v, named %v %v", m.Seq, a.present[m.Seq], a.dropped, a.recreated)
	}
	if lost := a.check(t, s, append(old, m.Seq)); lost != len(old) {
		t.Fatalf("%d named lost, want the %d of the damaged database; events:%s", lost, len(old), eventTexts(a.events))
	}
	t.Logf("events:%s", eventTexts(a.events))
}
