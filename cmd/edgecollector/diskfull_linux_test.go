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

func status(t *testing.T, sock string) collector.Status {
	t.Helper()
	ans, err := collector.Call(sock, collector.Request{Cmd: "status"})
	if err != nil || ans.Status == nil {
		t.Fatalf("status: %v %+v", err, ans)
	}
	return *ans.Status
}

func waitStatus(t *testing.T, sock, what string, within time.Duration, f func(collector.Status) bool) collector.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if ans, err := collector.Call(sock, collector.Request{Cmd: "status"}); err == nil && ans.Status != nil && f(*ans.Status) {
			return *ans.Status
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDiskFull: another process fills the collector's disk. The collector
// does not crash (badger would die of SIGBUS on a full disk), keeps polling,
// holds messages in its bounded memory queue and reports what overflowed;
// killed and restarted on the full disk it starts again (no crash loop);
// when the disk has room again it is durable again, and the platform has
// every seq or a buffer_dropped report naming it.
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
	waitStatus(t, sock, "durable and publishing", 15*time.Second, func(s collector.Status) bool { return s.Buffer.Durable })
	sub.waitFor("first readings", 10*time.Second, func(ms []received) bool { return len(seqsReceived(ms)) > 5 })

	filler := fillTo(t, disk, 24<<20) // below min_free (64 MiB), above the 8 MiB needed to open
	st := waitStatus(t, sock, "degraded: disk full", 10*time.Second, func(s collector.Status) bool { return !s.Buffer.Durable })
	t.Logf("disk full: %v", st.Buffer.Degraded)
	// While the broker is up, messages held in memory are sent live and
	// acknowledged; with it down too, they pile up and the queue overflows.
	broker.Stop()
	time.Sleep(6 * time.Second) // 10 messages/s into a 40-message memory queue
	st = status(t, sock)
	if coll.Exited() {
		t.Fatalf("the collector died on a full disk:\n%s", coll.Output())
	}
	if st.Buffer.Dropped == 0 {
		t.Fatalf("6 s at 10 messages/s did not overflow a 40-message memory queue: %+v", st.Buffer)
	}
	polled := false
	for _, p := range st.Points {
		if p.Updated != "" && p.Quality == "good" {
			polled = true
		}
	}
	if !polled {
		t.Fatal("polling stopped on a full disk")
	}

	// kill -9 while full, and start again on the still-full disk
	coll.Signal(syscall.SIGKILL)
	coll.Wait(10 * time.Second)
	coll = testpeer.Start(t, collectorBin, "run", "-c", cfg)
	waitStatus(t, sock, "restarted on the full disk", 20*time.Second, func(s collector.Status) bool {
		return !s.Buffer.Durable && s.Buffer.LastSeq > 0
	})
	time.Sleep(2 * time.Second)
	if coll.Exited() {
		t.Fatalf("restart on a full disk failed:\n%s", coll.Output())
	}

	os.Remove(filler)
	st = waitStatus(t, sock, "durable again", 30*time.Second, func(s collector.Status) bool { return s.Buffer.Durable })
	broker.Start()
	time.Sleep(2 * time.Second)
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	last := st.Buffer.LastSeq
	// Every seq up to last arrived, or is named by a buffer_dropped report.
	sub.waitFor("every seq received or reported dropped", 60*time.Second, func(ms []received) bool {
		return len(unaccounted(ms, last)) == 0
	})
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
