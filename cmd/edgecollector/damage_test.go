package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// ledger is what the platform can know from a buffer: the seqs present and
// the ranges named lost (buffer_dropped) or never issued
// (buffer_recreated).
type ledger struct {
	present   map[uint64]bool
	dropped   []edge.SeqRange
	recreated []edge.SeqRange
	texts     []string
}

func readLedger(t *testing.T, data string) ledger {
	t.Helper()
	store, err := buffer.OpenBadger(context.Background(), buffer.BadgerOpts{Dir: data, Opts: buffer.Opts{Uplinks: []string{"mqtt"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	l := ledger{present: map[uint64]bool{}}
	var from uint64
	for {
		ms, err := store.Unacked("mqtt", from, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			return l
		}
		for _, m := range ms {
			l.present[m.Seq] = true
			for _, e := range m.Events {
				switch e.State {
				case edge.StateBufferDropped:
					l.dropped = append(l.dropped, e.Ranges...)
				case edge.StateBufferRecreated:
					l.recreated = append(l.recreated, e.Ranges...)
				default:
					continue
				}
				l.texts = append(l.texts, fmt.Sprintf("seq %d %s %v: %s", m.Seq, e.State, e.Ranges, e.Message))
			}
		}
		from = ms[len(ms)-1].Seq + 1
	}
}

func within(rs []edge.SeqRange, q uint64) bool {
	for _, r := range rs {
		if q >= r.First && q <= r.Last {
			return true
		}
	}
	return false
}

// silent returns the reported seqs that are neither present nor named as
// issued and lost.
func (l ledger) silent(seqs []uint64) (missing []uint64, named int) {
	for _, q := range seqs {
		switch {
		case l.present[q]:
		case within(l.dropped, q):
			named++
		default:
			missing = append(missing, q)
		}
	}
	return missing, named
}

// TestDamagedBufferNeverStopsTheCollector: after a clean stop the largest
// table is cut to half (issue 15, item 1: badger panicked in a goroutine of
// its own and the collector crash-looped). The real binary must come up,
// poll and append above every seq issued before, keep the damaged database
// aside and name every seq it had reported appended.
func TestDamagedBufferNeverStopsTheCollector(t *testing.T) {
	slave := startFastSlave(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := writeFile(t, dir, "c.yaml", pointsConfig(slave, data, fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t)), 2, 100, 20*time.Millisecond, ""))
	p := testpeer.Start(t, collectorBin, "run", "-c", cfg, "--print-appended")
	p.WaitOutput(t, "appended ", 20*time.Second)
	time.Sleep(2 * time.Second)
	p.Signal(syscall.SIGTERM)
	if err := p.Wait(30 * time.Second); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, p.Output())
	}
	before := appendedSeqs(p.Output())
	ssts, _ := filepath.Glob(filepath.Join(data, "db", "*.sst"))
	if len(ssts) == 0 {
		t.Fatalf("no table after a clean stop (%d seqs appended)", len(before))
	}
	sort.Slice(ssts, func(i, j int) bool { return fileSize(ssts[i]) > fileSize(ssts[j]) })
	if err := os.Truncate(ssts[0], fileSize(ssts[0])/2); err != nil {
		t.Fatal(err)
	}
	p2 := testpeer.Start(t, collectorBin, "run", "-c", cfg, "--print-appended")
	p2.WaitOutput(t, "appended ", 60*time.Second)
	time.Sleep(time.Second)
	p2.Signal(syscall.SIGTERM)
	if err := p2.Wait(30 * time.Second); err != nil {
		t.Fatalf("restart on the damaged buffer: %v\n%s", err, p2.Output())
	}
	after := appendedSeqs(p2.Output())
	if len(after) == 0 || after[0] <= before[len(before)-1] {
		t.Fatalf("after the damage: appended %d seqs, first %v; want seqs above %d", len(after), after[:min(1, len(after))], before[len(before)-1])
	}
	if !strings.Contains(p2.Output(), "moving it aside") {
		t.Fatalf("the log does not say the database was moved aside:\n%s", p2.Output())
	}
	if aside, _ := filepath.Glob(filepath.Join(data, "db.corrupt-*")); len(aside) != 1 {
		t.Fatalf("damaged database not kept: %v", aside)
	}
	l := readLedger(t, data)
	missing, named := l.silent(append(before, after...))
	if len(missing) > 0 {
		t.Fatalf("%d reported seqs silently missing, e.g. %v; events:\n%s", len(missing), missing[:min(10, len(missing))], strings.Join(l.texts, "\n"))
	}
	t.Logf("%s cut to half: %d seqs appended before, %d named lost, %d appended after from seq %d; events:\n%s",
		filepath.Base(ssts[0]), len(before), named, len(after), after[0], strings.Join(l.texts, "\n"))
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}
