package collector

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// notes records what a watchdog said.
type notes struct {
	mu  sync.Mutex
	got []string
	at  []time.Time
}

func (n *notes) notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got, n.at = append(n.got, s), append(n.at, time.Now())
	return nil
}

func (n *notes) count(s string, after time.Time) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for i, g := range n.got {
		if g == s && !n.at[i].Before(after) {
			c++
		}
	}
	return c
}

// TestWatchdogFedOnlyWhileGroupsTick: in a synctest bubble, two groups
// tick and the watchdog is fed every half period; then one group stalls
// (its ticks stop) and from its allowance on the watchdog is not fed; when
// it ticks again, feeding resumes.
func TestWatchdogFedOnlyWhileGroupsTick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const period = 10 * time.Second
		var fast, slow atomic.Uint64
		var stall atomic.Bool
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The groups: "fast" ticks every 100 ms, "slow" every 5 s (its
		// allowance is max(10 s, 15 s) = 15 s).
		go func() {
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
				if !stall.Load() {
					fast.Add(1)
				}
				if i%50 == 49 {
					slow.Add(1)
				}
			}
		}()
		ticks := func() []groupTicks {
			return []groupTicks{{"fast", 100 * time.Millisecond, fast.Load()}, {"slow", 5 * time.Second, slow.Load()}}
		}
		var n notes
		var warned atomic.Int32
		done := make(chan error, 1)
		go func() { done <- runWatchdog(ctx, n.notify, period, ticks, func(string, ...any) { warned.Add(1) }) }()

		t0 := time.Now()
		time.Sleep(62 * time.Second) // off the 5 s feeding grid: no tie at the edges
		if n.count("READY=1", t0) != 1 {
			t.Fatalf("READY=1 sent %d times", n.count("READY=1", t0))
		}
		if fed := n.count("WATCHDOG=1", t0); fed != 12 {
			t.Fatalf("fed %d times in 60 s of ticking, want 12 (every 5 s)", fed)
		}
		stall.Store(true)
		stalledAt := time.Now()
		time.Sleep(60 * time.Second)
		// The checks at 65 s and 70 s are within the 10 s allowance of the
		// last tick (~62 s); from 75 s on the stalled group stops the feeding.
		if fed := n.count("WATCHDOG=1", stalledAt.Add(11*time.Second)); fed != 0 {
			t.Fatalf("fed %d times while the fast group was stalled", fed)
		}
		if fed := n.count("WATCHDOG=1", stalledAt); fed > 2 {
			t.Fatalf("fed %d times after the stall, want at most the 2 within its allowance", fed)
		}
		if warned.Load() != 1 {
			t.Errorf("warned %d times about the stall, want once", warned.Load())
		}
		stall.Store(false)
		resumed := time.Now()
		time.Sleep(20 * time.Second)
		if fed := n.count("WATCHDOG=1", resumed); fed < 3 {
			t.Fatalf("fed %d times after the group ticked again", fed)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestWatchdogFromEnv(t *testing.T) {
	me := strconv.Itoa(os.Getpid())
	cases := []struct {
		env        map[string]string
		wantSocket string
		wantPeriod time.Duration
	}{
		{map[string]string{}, "", 0},
		{map[string]string{"NOTIFY_SOCKET": "/run/n"}, "/run/n", 0},
		{map[string]string{"NOTIFY_SOCKET": "@n", "WATCHDOG_USEC": "30000000"}, "@n", 30 * time.Second},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}, "/run/n", 30 * time.Second},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, "/run/n", 0},
		{map[string]string{"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "x"}, "/run/n", 0},
	}
	for _, c := range cases {
		s, p := WatchdogFromEnv(func(k string) string { return c.env[k] })
		if s != c.wantSocket || p != c.wantPeriod {
			t.Errorf("%v: %q %s, want %q %s", c.env, s, p, c.wantSocket, c.wantPeriod)
		}
	}
}

// TestWatchdogNotifySocket runs a collector polling a live slave with its
// watchdog service pointed at a unixgram listener, as systemd's
// NOTIFY_SOCKET: READY=1, then WATCHDOG=1 datagrams while it polls.
func TestWatchdogNotifySocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	slave := &plantSlave{gas: 100}
	cfg := plantConfig(t, startSlave(t, slave), "50", "")
	r := runCollectorWith(t, cfg, func(c *Collector) []Service {
		return []Service{c.WatchdogService(SdNotify(sock), 400*time.Millisecond)}
	})
	want := []string{"READY=1", "WATCHDOG=1", "WATCHDOG=1"}
	for i, w := range want {
		select {
		case s := <-got:
			if s != w {
				t.Fatalf("datagram %d: %q, want %q", i, s, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no datagram %d (%q) within 30 s", i, w)
		}
	}
	testpeer.Eventually(t, 10*time.Second, "the collector still polling", func() bool { return r.Status().Groups[0].Ticks > 2 })
}

// runCollectorWith is runCollector with services that need the collector.
func runCollectorWith(t *testing.T, path string, services func(*Collector) []Service) *running {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := New(ctx, cfg, Deps{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &running{Collector: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, services(c)...) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}
