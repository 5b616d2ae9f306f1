package main

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

type seqMsg struct {
	seq    uint64
	resend bool
	leaf   string
	at     time.Time
	ts     time.Time // its first reading's or event's ts, zero when absent
}

func seqsReceived(ms []received) []seqMsg {
	var out []seqMsg
	for _, m := range ms {
		s, ok := m.Body["seq"].(float64)
		if !ok {
			continue
		}
		r, _ := m.Body["resend"].(bool)
		var ts time.Time
		for _, k := range []string{"readings", "events"} {
			if l, ok := m.Body[k].([]any); ok && len(l) > 0 {
				if first, ok := l[0].(map[string]any); ok {
					v, _ := first["ts"].(string)
					ts, _ = time.Parse(time.RFC3339, v)
				}
			}
		}
		out = append(out, seqMsg{uint64(s), r, m.Topic[len(m.Topic)-5:], m.At, ts})
	}
	return out
}

// TestBrokerOutage60s: Mosquitto is stopped for 60 s while the collector
// polls 200 points at 1 s, then started again. A platform subscriber,
// connected before and after with a persistent session, must receive every
// seq from the first to the last at least once; the backlog comes oldest
// first while live readings keep arriving. Messages appended during the
// outage were never published before, so they come with resend: false
// (DESIGN.md: resend only when the seq may have reached the platform).
func TestBrokerOutage60s(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("the outage lasts 60 s; run without -short")
	}
	broker := testpeer.Mosquitto(t, true)
	slave := startFastSlave(t)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", pointsConfig(slave, filepath.Join(dir, "data"), broker.URL(), 2, 100, time.Second,
		", reconnect_min: 500ms, reconnect_max: 3s, backlog_rate: 8"))
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-T/+", "platform-outage", true)
	coll := testpeer.Start(t, collectorBin, "run", "-c", cfg)
	sub.waitFor("live readings before the outage", 15*time.Second, func(ms []received) bool { return len(seqsReceived(ms)) >= 5 })

	broker.Stop()
	down := time.Now()
	t.Logf("broker stopped (SIGTERM) at seq %d", maxSeq(seqsReceived(sub.all())))
	time.Sleep(60 * time.Second)
	broker.Start()
	up := time.Now()
	t.Logf("broker restarted after %s", up.Sub(down).Round(time.Second))

	// Let it drain and keep running live, then stop the collector and wait
	// until everything it appended has arrived.
	time.Sleep(20 * time.Second)
	if err := coll.Stop(); err != nil {
		t.Fatalf("collector did not stop cleanly: %v", err)
	}
	last := uint64(0)
	ms := sub.waitFor("every seq after the outage", 60*time.Second, func(ms []received) bool {
		got := seqsReceived(ms)
		last = maxSeq(got)
		return missing(got, last) == nil
	})
	got := seqsReceived(ms)
	if miss := missing(got, last); miss != nil {
		t.Fatalf("seqs missing: %v", miss)
	}
	// The backlog: messages polled well inside the outage (so appended
	// while no connection existed) and received after the restart, in
	// increasing seq order, with live messages arriving between them.
	var backlog []seqMsg
	liveDuring := 0
	for _, m := range got {
		if m.at.After(up) && m.ts.After(down.Add(5*time.Second)) && m.ts.Before(up.Add(-5*time.Second)) {
			backlog = append(backlog, m)
			if m.resend {
				t.Errorf("seq %d (polled at %s, during the outage) came with resend: true; it was never published before", m.seq, m.ts)
			}
		}
	}
	if len(backlog) < 50 {
		t.Fatalf("only %d messages came as backlog after a 60 s outage at 1 message/s", len(backlog))
	}
	firstB, lastB := backlog[0], backlog[len(backlog)-1]
	for i := 1; i < len(backlog); i++ {
		if backlog[i].seq < backlog[i-1].seq {
			t.Fatalf("backlog not oldest first: seq %d after %d", backlog[i].seq, backlog[i-1].seq)
		}
	}
	for _, m := range got {
		if m.ts.After(up) && m.at.After(firstB.at) && m.at.Before(lastB.at) && m.seq > lastB.seq {
			liveDuring++
		}
	}
	if liveDuring == 0 {
		t.Fatalf("no live message arrived while the backlog (%d messages, %s) drained", len(backlog), lastB.at.Sub(firstB.at))
	}
	dups := len(got) - int(last)
	t.Logf("seqs 1-%d all received (%d deliveries, %d duplicates); backlog of %d sent oldest first over %s with %d live messages in between",
		last, len(got), dups, len(backlog), lastB.at.Sub(firstB.at).Round(time.Millisecond), liveDuring)
}

func maxSeq(ms []seqMsg) uint64 {
	var m uint64
	for _, x := range ms {
		m = max(m, x.seq)
	}
	return m
}

// missing lists the seqs in 1..last not received (nil when none).
func missing(ms []seqMsg, last uint64) []uint64 {
	have := map[uint64]bool{}
	for _, m := range ms {
		have[m.seq] = true
	}
	var out []uint64
	for s := uint64(1); s <= last; s++ {
		if !have[s] {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	if len(out) > 20 {
		out = append(out[:20:20], 0)
	}
	return out
}
