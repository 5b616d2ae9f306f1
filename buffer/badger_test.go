package buffer

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/edge"
)

// probeEnv makes the test binary the probe's child (see testProbe).
const probeEnv = "BUFFER_TEST_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) == "1" {
		os.Exit(ProbeMain(os.Args[1:], os.Stderr))
	}
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2/z.(*AllocatorPool).freeupAllocators"))
}

// testProbe runs the probe in a child process of the test binary, as the
// collector runs it in a child of its own binary.
func testProbe(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), probeEnv+"=1")
	return cmd
}

func openAt(t *testing.T, dir string, o BadgerOpts) *Badger {
	t.Helper()
	o.Dir = dir
	if o.Probe == nil {
		o.Probe = testProbe
	}
	if o.Uplinks == nil {
		o.Uplinks = []string{"mqtt"}
	}
	s, err := OpenBadger(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadgerReopenKeepsSeqAndAcks(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	for range 10 {
		mustAppend(t, s, rt(t0, 3))
	}
	s.Ack("mqtt", 1, 2, 3, 7)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, BadgerOpts{})
	defer s.Close()
	if s.LastSeq() != 10 {
		t.Fatalf("last seq after reopen %d, want 10", s.LastSeq())
	}
	got, _ := s.Unacked("mqtt", 0, 0, 100)
	if want := []uint64{4, 5, 6, 8, 9, 10}; !equal(seqsOf(got), want) {
		t.Fatalf("unacked after reopen %v want %v", seqsOf(got), want)
	}
	m := rt(t0, 1)
	mustAppend(t, s, m)
	if m.Seq != 11 {
		t.Fatalf("seq after reopen %d, want 11", m.Seq)
	}
}

// TestBadgerSeqSurvivesEviction: when every stored message was evicted, a
// restart must still continue above the highest seq ever issued.
func TestBadgerSeqSurvivesEviction(t *testing.T) {
	dir := t.TempDir()
	one := int64(len(EncodeRecord(nil, rt(t0, 20)))) + 9
	s := openAt(t, dir, BadgerOpts{Opts: Opts{MaxBytes: 3 * one}})
	for range 10 {
		mustAppend(t, s, rt(t0, 20))
		s.Ack("mqtt", s.LastSeq())
	}
	s.Close()
	s = openAt(t, dir, BadgerOpts{})
	defer s.Close()
	m := rt(t0, 1)
	mustAppend(t, s, m)
	if m.Seq != 11 {
		t.Fatalf("seq %d after eviction and restart, want 11", m.Seq)
	}
}

func TestBadgerSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	defer s.Close()
	_, err := OpenBadger(context.Background(), BadgerOpts{Dir: dir, Opts: Opts{Uplinks: []string{"mqtt"}}})
	if err == nil || !strings.Contains(err.Error(), "in use by another collector") {
		t.Fatalf("second open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "db")); err != nil {
		t.Fatal("the database in use was moved away")
	}
}

func TestBadgerCorruptDatabaseMovedAside(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	for range 5 {
		mustAppend(t, s, rt(t0, 2))
	}
	s.Close()
	// Destroy the manifest: badger cannot open this database any more.
	if err := os.WriteFile(filepath.Join(dir, "db", "MANIFEST"), []byte("garbage, not a manifest"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, BadgerOpts{})
	defer s.Close()
	aside, _ := filepath.Glob(filepath.Join(dir, "db.corrupt-*"))
	if len(aside) != 1 {
		t.Fatalf("corrupt database not kept aside: %v", aside)
	}
	got, _ := s.Unacked("mqtt", 0, 0, 10)
	if len(got) != 2 || got[0].Events[0].State != edge.StateBufferDropped || got[1].Events[0].State != edge.StateBufferRecreated {
		t.Fatalf("want a buffer_dropped and a buffer_recreated event, got %s", eventTexts(drain(t, s, "mqtt").events))
	}
	d, e := got[0].Events[0], got[1].Events[0]
	if got[0].Seq <= 5 || !reflect.DeepEqual(d.Ranges, []edge.SeqRange{{First: 1, Last: 5}}) || len(e.Ranges) != 1 || e.Ranges[0].First != 6 {
		t.Fatalf("events seq %d ranges %v (issued and lost) and %v (not issued): want 1-5 lost and seqs above every seq issued before", got[0].Seq, d.Ranges, e.Ranges)
	}
	t.Log(d.Message)
	t.Log(e.Message)
}

// TestBadgerDiskFullHoldsInMemory: below min_free nothing is written to
// badger; messages keep their seqs in memory, are readable by the uplink,
// and move into the database when the disk has room again.
func TestBadgerDiskFullHoldsInMemory(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(1 << 40)
	fs := func(string) (int64, error) { return free.Load(), nil }
	s := openAt(t, dir, BadgerOpts{FreeSpace: fs, FreeCheckInterval: -1, RetryInterval: 20e6, MemoryQueue: 5})
	defer s.Close()
	mustAppend(t, s, rt(t0, 2), rt(t0, 2)) // 1, 2 durable
	free.Store(1 << 20)
	for i := range 8 {
		err := s.Append(context.Background(), rt(t0, 2))
		if !errors.Is(err, ErrNotDurable) {
			t.Fatalf("append %d on a full disk: %v, want ErrNotDurable", i, err)
		}
	}
	st := s.Stats()
	if st.Durable || st.MemoryQueued == 0 || st.Dropped == 0 {
		t.Fatalf("full disk stats %+v: want not durable, queued and dropped", st)
	}
	got, _ := s.Unacked("mqtt", 0, 0, 100)
	var seqs []uint64
	drops := 0
	for _, m := range got {
		seqs = append(seqs, m.Seq)
		if isDropEvent(m) {
			drops++
		}
	}
	if drops == 0 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("unacked on a full disk %v: want 1, 2 from disk, the newest from memory and a drop report", seqs)
	}
	free.Store(1 << 40)
	waitFor(t, func() bool { return s.Stats().Durable })
	st = s.Stats()
	if st.MemoryQueued != 0 {
		t.Fatalf("memory queue not moved to disk: %+v", st)
	}
	s.Close()
	s2 := openAt(t, dir, BadgerOpts{})
	defer s2.Close()
	after, _ := s2.Unacked("mqtt", 0, 0, 100)
	if !equal(seqsOf(after), seqs) {
		t.Fatalf("after recovery and restart %v, before %v%s", seqsOf(after), seqs, eventTexts(drain(t, s2, "mqtt").events))
	}
}

func equal(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBadgerStartOnFullDisk: a restart on a disk too full to open the
// database keeps seqs above every seq issued before (the ceiling), and once
// the database opens the seqs skipped are reported as never issued.
func TestBadgerStartOnFullDisk(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	for range 5 {
		mustAppend(t, s, rt(t0, 2))
	}
	s.Close()
	var free atomic.Int64
	free.Store(1 << 20) // below the 8 MiB needed even to open
	s = openAt(t, dir, BadgerOpts{FreeSpace: func(string) (int64, error) { return free.Load(), nil }, RetryInterval: 20e6})
	defer s.Close()
	m := rt(t0, 2)
	if err := s.Append(context.Background(), m); !errors.Is(err, ErrNotDurable) {
		t.Fatalf("append on a full disk: %v", err)
	}
	if m.Seq <= 5 {
		t.Fatalf("seq %d on a full disk restart reuses an issued seq", m.Seq)
	}
	free.Store(1 << 40)
	waitFor(t, func() bool { return s.Stats().Durable })
	got, _ := s.Unacked("mqtt", 0, 0, 100)
	var report *edge.Event
	var seqs []uint64
	for _, g := range got {
		seqs = append(seqs, g.Seq)
		if len(g.Events) == 1 && g.Events[0].State == edge.StateBufferRecreated {
			report = &g.Events[0]
		}
	}
	if report == nil || report.Ranges[0].First != 6 || report.Ranges[0].Last < m.Seq-1 {
		t.Fatalf("no report of the never-issued seqs 6..%d: %v %+v", m.Seq-1, seqs, report)
	}
	if !slices.Contains(seqs, m.Seq) || !slices.Contains(seqs, 1) || !slices.Contains(seqs, 5) {
		t.Fatalf("stored seqs after recovery %v: want 1-5, the report, and %d", seqs, m.Seq)
	}
	t.Log(report.Message)
}

// TestBadgerMemorySeqsNeverReused: seqs issued while messages were held
// only in memory (disk full) are not in the database; after the process
// stops they are reported as dropped and never issued again.
func TestBadgerMemorySeqsNeverReused(t *testing.T) {
	dir := t.TempDir()
	var free atomic.Int64
	free.Store(1 << 40)
	fs := func(string) (int64, error) { return free.Load(), nil }
	s := openAt(t, dir, BadgerOpts{FreeSpace: fs, FreeCheckInterval: -1})
	mustAppend(t, s, rt(t0, 1), rt(t0, 1)) // 1, 2 durable
	free.Store(20 << 20)                   // below min_free, above what opening needs
	for range 3 {
		s.Append(context.Background(), rt(t0, 1)) // 3, 4, 5 in memory only
	}
	s.Close() // stops with them: they are lost
	free.Store(1 << 40)
	s = openAt(t, dir, BadgerOpts{FreeSpace: fs})
	defer s.Close()
	m := rt(t0, 1)
	mustAppend(t, s, m)
	if m.Seq <= 5 {
		t.Fatalf("seq %d reissued after a restart: 3-5 were issued in memory before", m.Seq)
	}
	got, _ := s.Unacked("mqtt", 0, 0, 100)
	var reported []edge.SeqRange
	for _, g := range got {
		if isDropEvent(g) {
			reported = append(reported, g.Events[0].Ranges...)
		}
	}
	if len(reported) != 1 || reported[0] != (edge.SeqRange{First: 3, Last: 5}) {
		t.Fatalf("dropped ranges reported %v, want 3-5", reported)
	}
}

// TestBadgerSeqFilesExistAfterOpen: the small files beside the database are
// created while the disk has room, so that on a full disk they are only
// rewritten in place.
func TestBadgerSeqFilesExistAfterOpen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	defer s.Close()
	mustAppend(t, s, rt(t0, 1))
	for _, f := range []string{memorySeqFile, marksFile, "seq.ceiling"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s after open and an append: %v", f, err)
		}
	}
}
