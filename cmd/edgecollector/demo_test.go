package main

import (
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

var mbpollValue = regexp.MustCompile(`\[\d+\]:\s+(-?[0-9.eE+-]+)`)

// mbpoll reads one value with the independent master; args are mbpoll's.
func mbpoll(t *testing.T, addr string, args ...string) float64 {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	all := append([]string{"-m", "tcp", "-p", addr[i+1:], "-0", "-1", "-o", "2"}, args...)
	all = append(all, addr[:i])
	out, err := exec.Command("mbpoll", all...).CombinedOutput()
	m := mbpollValue.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("mbpoll %v: %v\n%s", all, err, out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// lastReading returns the newest published reading of a point received
// after since.
func lastReading(ms []received, point string, since time.Time) (float64, bool) {
	var v float64
	ok := false
	for _, m := range ms {
		if !topicIs("rt")(m) || m.At.Before(since) {
			continue
		}
		for _, r := range m.Body["readings"].([]any) {
			rr := r.(map[string]any)
			if rr["point"] == point {
				if f, isNum := rr["value"].(float64); isNum {
					v, ok = f, true
				}
			}
		}
	}
	return v, ok
}

// TestDemoAgreesWithMbpoll runs `edgecollector demo`, reads its simulated
// slaves with mbpoll, and checks the values the demo publishes; then it
// waits for the scripted leak: the alarm event arrives on the demo's broker
// and mbpoll reads T-101's inlet valve coil closed.
func TestDemoAgreesWithMbpoll(t *testing.T) {
	testpeer.Need(t, "mbpoll")
	plc := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	gas := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	brk := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	web := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort(t))
	demo := testpeer.Start(t, collectorBin, "demo", "--plc", plc, "--gas", gas, "--mqtt", brk, "--status", web, "--data", t.TempDir(), "--for", "90s")
	demo.WaitOutput(t, "edgecollector demo:", 10*time.Second)
	testpeer.WaitPort(t, brk, 10*time.Second)
	sub := subscribe(t, "tcp://"+brk, "safety/#", "platform-demo", false)

	if v := mbpoll(t, plc, "-a", "10", "-t", "0", "-r", "0", "-c", "1"); v != 1 {
		t.Fatalf("valve XV-101 coil reads %v before the leak, want 1 (open)", v)
	}
	// Each comparison: mbpoll reads now, then the demo's next published
	// reading must hold the same value (the simulator holds every value at
	// least 5 s).
	checks := []struct {
		point string
		args  []string
		conv  func(float64) float64
	}{
		{"GT-101", []string{"-a", "1", "-t", "3", "-r", "0", "-c", "1"}, func(raw float64) float64 { return (raw - 4000) * 100 / 16000 }},
		{"AT-103", []string{"-a", "3", "-t", "3", "-r", "0", "-c", "1"}, func(raw float64) float64 { return raw * 0.1 }},
		{"LT-101", []string{"-a", "1", "-t", "4:float", "-B", "-r", "0", "-c", "1"}, func(raw float64) float64 { return raw }},
		{"TT-102", []string{"-a", "2", "-t", "4", "-r", "2", "-c", "1"}, func(raw float64) float64 { return float64(int16(raw)) * 0.1 }},
	}
	for _, c := range checks {
		at := time.Now()
		want := c.conv(mbpoll(t, gasOrPLC(c.point, gas, plc), c.args...))
		var got float64
		sub.waitFor("a reading of "+c.point+" after the mbpoll read", 5*time.Second, func(ms []received) bool {
			var ok bool
			got, ok = lastReading(ms, c.point, at)
			return ok
		})
		if math.Abs(got-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: demo published %v, mbpoll reads the slave as %v", c.point, got, want)
		} else {
			t.Logf("%s: mbpoll %v, demo %v", c.point, want, got)
		}
	}

	// The scripted leak: H then HH at GT-101, the interlock trips, the valve closes.
	ms := sub.waitFor("interlock ESD-101 action verified", 60*time.Second, func(ms []received) bool {
		return hasEvent(ms, "interlock", "action_verified", "ESD-101")
	})
	if !hasEvent(ms, "alarm", "raised", "GT-101") || !hasEvent(ms, "interlock", "tripped", "ESD-101") {
		t.Fatal("the leak did not raise GT-101's alarm and trip ESD-101")
	}
	if v := mbpoll(t, plc, "-a", "10", "-t", "0", "-r", "0", "-c", "1"); v != 0 {
		t.Fatalf("after the trip mbpoll reads valve XV-101's coil as %v, want 0 (closed)", v)
	}
	if err := demo.Stop(); err != nil {
		t.Fatalf("demo did not stop cleanly: %v", err)
	}
	// A fresh demo has resent nothing (issue 19 item 6): neither its
	// platform view nor the broker shows a resend.
	if strings.Contains(demo.Output(), "(resent)") {
		t.Errorf("a fresh demo shows resent messages:\n%s", demo.Output())
	}
	for _, m := range sub.all() {
		if r, _ := m.Body["resend"].(bool); r {
			t.Errorf("a fresh demo published seq %v with resend: true", m.Body["seq"])
		}
	}
}

func gasOrPLC(point, gas, plc string) string {
	if strings.HasPrefix(point, "GT") || strings.HasPrefix(point, "AT") {
		return gas
	}
	return plc
}

func hasEvent(ms []received, typ, state, subject string) bool {
	return len(eventMessages(ms, typ, state, subject)) > 0
}
