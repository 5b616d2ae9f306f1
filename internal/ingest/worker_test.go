package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// TestWorkerAcksAfterCommitAndDrainsOnStop runs a worker in-process against
// Mosquitto and PostgreSQL: every seq published comes back on .../ack once
// stored, and a worker stopped while messages still arrive stores and
// acknowledges everything it received before it returns.
func TestWorkerAcksAfterCommitAndDrainsOnStop(t *testing.T) {
	testpeer.Need(t, "mosquitto")
	pg := testpeer.PostgreSQL(t)
	broker := testpeer.Mosquitto(t, false)
	o := DefaultOpts()
	o.MQTT, o.Postgres, o.Name, o.Log, o.StatsEvery = broker.URL(), pg.DSN(), "w-test", quiet(), 0
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	var mu sync.Mutex
	acked := map[int64]int{}
	pc := paho.NewClient(paho.NewClientOptions().AddBroker(broker.URL()).SetClientID("gw-sim"))
	if tok := pc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pc.Disconnect(100)
	if tok := pc.Subscribe("safety/E1/G1/ack", 1, func(_ paho.Client, m paho.Message) {
		var a struct{ Seqs []int64 }
		if err := json.Unmarshal(m.Payload(), &a); err != nil {
			t.Errorf("ack %s: %v", m.Payload(), err)
		}
		mu.Lock()
		for _, s := range a.Seqs {
			acked[s]++
		}
		mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// The worker is subscribed once seq 1 comes back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc.Publish("safety/E1/G1/rt", 1, false, rtMessage("E1", "G1", 1, 5, false)).Wait()
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		n := acked[1]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("seq 1 not acknowledged within 30 s")
		}
	}
	const last = 400
	for seq := int64(2); seq <= last; seq++ {
		tok := pc.Publish("safety/E1/G1/rt", 1, false, rtMessage("E1", "G1", seq, 50, false))
		if seq == last/2 {
			tok.Wait()
			cancel() // stop the worker with messages still coming in
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not stop within 30 s")
	}
	c := w.Counters()
	if c.Received != c.Stored+c.Duplicates+c.Rejected+c.States || c.Acked != c.Stored+c.Duplicates {
		t.Fatalf("stopped with work undone: %+v", c)
	}
	if c.Received < 10 {
		t.Fatalf("only %d messages received before the stop: the test proves nothing", c.Received)
	}
	// What the worker acknowledged is exactly what the table holds (the
	// acks of its last batches may still be on their way to us).
	var stored []int64
	rows, err := openPool(t, pg).Query(context.Background(), "SELECT seq FROM messages ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s int64
		rows.Scan(&s)
		stored = append(stored, s)
	}
	waitAcks := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		var got []int64
		for s := range acked {
			got = append(got, s)
		}
		mu.Unlock()
		slices.Sort(got)
		if slices.Equal(got, stored) {
			break
		}
		if time.Now().After(waitAcks) {
			t.Fatalf("acknowledged %d seqs, stored %d: %s", len(got), len(stored), diff(got, stored))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("stopped after %d of %d seqs: %d received, %d stored, %d duplicates, all acknowledged", len(stored), last, c.Received, c.Stored, c.Duplicates)
}

func diff(a, b []int64) string {
	in := func(xs []int64, x int64) bool { _, ok := slices.BinarySearch(xs, x); return ok }
	var onlyA, onlyB []int64
	for _, x := range a {
		if !in(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !in(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return fmt.Sprintf("acked only %v; stored only %v", onlyA[:min(10, len(onlyA))], onlyB[:min(10, len(onlyB))])
}
