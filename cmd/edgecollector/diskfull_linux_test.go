//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hazwatch/edgecollector/internal/collector"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// smallDisk mounts a tmpfs of size bytes (root only).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the disk-full test as root (it mounts a small tmpfs)")
		}
		t.Skip("the disk-full test mounts a tmpfs and needs root; it runs in CI")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount a %d-byte tmpfs on %s: %v", size, dir, err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func freeBytes(t *testing.T, dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillTo writes a filler file until only leave bytes are free.
func fillTo(t *testing.T, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := freeBytes(t, dir) - leave; n > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			t.Fatalf("fallocate %d: %v", n, err)
		}
	}
	return p
}

// waitStatus asks the collector on sock for its status until f holds.
func waitStatus(t *testing.T, sock, what string, within time.Duration, f func(collector.Status) bool) collector.Status {
	t.Helper()
	var st collector.Status
	testpeer.Eventually(t, within, what, func() bool {
		ans, err := collector.Call(sock, collector.Request{Cmd: "status"})
		if err != nil || ans.Status == nil {
			return false
		}
		st = *ans.Status
		return f(st)
	})
	return st
}

// ticks is the poll ticks of every group so far.
func ticks(s collector.Status) uint64 {
	var n uint64
	for _, g := range s.Groups {
		n += g.Ticks
	}
	return n
}

// TestDiskFull: another process fills the collector's disk. The collector
// does not crash (badger would die of SIGBUS on a full disk), keeps polling,
// holds messages in its bounded memory queue and reports what overflowed;
// killed and restarted on the full disk it starts again (no crash loop);
// when the disk has room again it is durable again, and the platform has
// every seq or a buffer_dropped report naming it. Every step waits for a
// positive event (a status that shows it) with a generous deadline, so a
// loaded machine makes it slower, never red.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t, 160<<20)
	broker := testpeer.Mosquitto(t, true)
	slave := startFastSlave(t)
	data := filepath.Join(disk, "data")
	dir := t.TempDir()
	// A small memory queue, so that a disk full while the broker is also
	// down overflows it.
	text := pointsConfig(slave, data, broker.URL(), 2, 50, 100*time.Millisecond, ", reconnect_min: 200ms, reconnect_max: 1s")
	cfg := writeFile(t, dir, "c.yaml", strings.Replace(text, "buffer: {dir: ", "buffer: {memory_queue: 40, dir: ", 1))
	sock := filepath.Join(data, "control.sock")
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-T/+", "platform-diskfull", true)

	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	waitStatus(t, sock, "durable and publishing", 60*time.Second, func(s collector.Status) bool { return s.Buffer.Durable })
	sub.waitFor("first readings", 60*time.Second, func(ms []received) bool { return len(seqsReceived(ms)) > 5 })

	filler := fillTo(t, disk, 24<<20) // below min_free (64 MiB), above the 8 MiB needed to open
	st := waitStatus(t, sock, "degraded: disk full", 60*time.Second, func(s collector.Status) bool { return !s.Buffer.Durable })
	t.Logf("disk full: %v", st.Buffer.Degraded)
	// While the broker is up, messages held in memory are sent live and
	// acknowledged; with it down too, they pile up and the queue overflows
	// (10 messages/s into a 40-message memory queue).
	broker.Stop()
	full := ticks(st)
	st = waitStatus(t, sock, "the memory queue overflows, polling goes on", 120*time.Second, func(s collector.Status) bool {
		return s.Buffer.Dropped > 0 && ticks(s) > full+20
	})
	if coll.Exited() {
		t.Fatalf("the collector died on a full disk:\n%s", coll.Output())
	}
	polled := false
	for _, p := range st.Points {
		if p.Updated != "" && p.Quality == "good" {
			polled = true
		}
	}
	if !polled {
		t.Fatal("no good reading on a full disk")
	}

	// kill -9 while full, and start again on the still-full disk
	coll.Signal(syscall.SIGKILL)
	coll.Wait(30 * time.Second)
	coll = testpeer.Start(t, collectorBin, "run", "-c", cfg)
	st = waitStatus(t, sock, "restarted on the full disk", 120*time.Second, func(s collector.Status) bool {
		return !s.Buffer.Durable && s.Buffer.LastSeq > 0
	})
	restarted := ticks(st)
	waitStatus(t, sock, "polling after the restart on the full disk", 60*time.Second, func(s collector.Status) bool { return ticks(s) > restarted+10 })
	if coll.Exited() {
		t.Fatalf("restart on a full disk failed:\n%s", coll.Output())
	}

	os.Remove(filler)
	st = waitStatus(t, sock, "durable again", 120*time.Second, func(s collector.Status) bool { return s.Buffer.Durable })
	broker.Start()
	last := st.Buffer.LastSeq
	// Every seq up to last arrives, or is named by a buffer_dropped report.
	sub.waitFor("every seq received or reported dropped", 180*time.Second, func(ms []received) bool {
		return len(unaccounted(ms, last)) == 0
	})
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	t.Logf("seqs 1-%d all received or reported dropped; %v dropped in memory", last, st.Buffer.Dropped)
}

// unaccounted lists seqs in 1..last neither received nor reported dropped
// (or not issued).
func unaccounted(ms []received, last uint64) []uint64 {
	have := map[uint64]bool{}
	for _, r := range seqsReceived(ms) {
		have[r.seq] = true
	}
	for _, m := range ms {
		evs, _ := m.Body["events"].([]any)
		for _, e := range evs {
			ev := e.(map[string]any)
			if ev["state"] != "buffer_dropped" && ev["state"] != "buffer_recreated" {
				continue
			}
			rs, _ := ev["ranges"].([]any)
			for _, r := range rs {
				pair := r.([]any)
				for s := uint64(pair[0].(float64)); s <= uint64(pair[1].(float64)); s++ {
					have[s] = true
				}
			}
		}
	}
	var out []uint64
	for s := uint64(1); s <= last; s++ {
		if !have[s] {
			out = append(out, s)
		}
	}
	return out
}
