package collector

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// The systemd watchdog (docs/edgecollector.service: Type=notify,
// WatchdogSec=): the collector says READY=1 once it polls, then WATCHDOG=1
// every half period for as long as every poll group keeps ticking. A
// stalled poll loop — a group that has not completed a tick within the
// watchdog period (or three of its intervals, if longer) — is not fed, so
// systemd kills and restarts the collector. Polling and interlocks never
// wait on this: it only reads the groups' tick counters.

// Notifier sends one sd_notify datagram ("READY=1", "WATCHDOG=1").
type Notifier func(state string) error

// SdNotify returns a Notifier writing to the unixgram socket named by
// $NOTIFY_SOCKET (a leading "@" is an abstract socket), as sd_notify(3).
func SdNotify(socket string) Notifier {
	return func(state string) error {
		conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("sd_notify %s: %w", socket, err)
		}
		defer conn.Close()
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte(state)); err != nil {
			return fmt.Errorf("sd_notify %s: %w", socket, err)
		}
		return nil
	}
}

// WatchdogFromEnv reads systemd's $NOTIFY_SOCKET, $WATCHDOG_USEC and
// $WATCHDOG_PID: the socket ("" when not run by systemd with
// Type=notify) and the watchdog period (0: no watchdog, or not meant for
// this process).
func WatchdogFromEnv(getenv func(string) string) (socket string, period time.Duration) {
	socket = getenv("NOTIFY_SOCKET")
	if socket == "" {
		return "", 0
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return socket, 0
	}
	us, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return socket, 0
	}
	return socket, time.Duration(us) * time.Microsecond
}

// groupTicks is a poll group's progress as the watchdog sees it.
type groupTicks struct {
	name     string
	interval time.Duration
	ticks    uint64
}

// WatchdogService is the supervised service that tells systemd the
// collector is ready and feeds its watchdog (period 0: READY=1 only).
func (c *Collector) WatchdogService(notify Notifier, period time.Duration) Service {
	ticks := func() []groupTicks {
		c.rt.RLock() // a reload applied in place replaces groups
		defer c.rt.RUnlock()
		out := make([]groupTicks, 0, len(c.groups))
		for _, gr := range c.groups {
			st := gr.g.Stats()
			out = append(out, groupTicks{name: st.Name, interval: st.Interval, ticks: st.Ticks})
		}
		return out
	}
	return Service{Name: "systemd watchdog", Run: func(ctx context.Context) error {
		return runWatchdog(ctx, notify, period, ticks, c.log.Warn)
	}}
}

// runWatchdog says READY=1, then every period/2 feeds the watchdog when
// every group ticked within its allowance: max(period, 3 × its interval).
func runWatchdog(ctx context.Context, notify Notifier, period time.Duration, ticks func() []groupTicks, warn func(string, ...any)) error {
	if err := notify("READY=1"); err != nil {
		return err
	}
	if period <= 0 {
		<-ctx.Done()
		return nil
	}
	type seen struct {
		ticks uint64
		at    time.Time
	}
	last := map[string]seen{}
	prev := time.Now() // the previous check
	stalled := ""
	t := time.NewTicker(period / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := time.Now()
		bad := ""
		// A tick first seen now happened after the previous check: count it
		// from then, so a stalled loop is never credited with more time.
		for _, g := range ticks() {
			s, ok := last[g.name]
			if !ok {
				s = seen{ticks: g.ticks, at: prev}
			}
			if g.ticks != s.ticks {
				s = seen{ticks: g.ticks, at: prev}
			}
			last[g.name] = s
			if allow := max(period, 3*g.interval); now.Sub(s.at) > allow && bad == "" {
				bad = fmt.Sprintf("poll group %s has not ticked for %s (allowed %s)", g.name, now.Sub(s.at).Round(time.Second), allow)
			}
		}
		prev = now
		if bad != "" {
			if stalled == "" {
				warn("systemd watchdog not fed: the poll loop is stalled; systemd will restart the collector", "why", bad)
			}
			stalled = bad
			continue
		}
		stalled = ""
		if err := notify("WATCHDOG=1"); err != nil {
			return err
		}
	}
}
