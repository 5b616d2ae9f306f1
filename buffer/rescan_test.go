package buffer

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink"
)

// TestRescanAfterLateOpen (issue 15 item 6): after a start on a full disk
// the database's old backlog is invisible; when the database opens, the
// store signals Rescan and an uplink already connected sends that backlog at
// once, without a reconnect.
func TestRescanAfterLateOpen(t *testing.T) {
	dir := t.TempDir()
	s := openAt(t, dir, BadgerOpts{})
	for range 5 {
		mustAppend(t, s, rt(t0, 2))
	}
	s.Close()
	var free atomic.Int64
	free.Store(1 << 20) // below what opening needs
	s = openAt(t, dir, BadgerOpts{FreeSpace: func(string) (int64, error) { return free.Load(), nil }, RetryInterval: 20 * time.Millisecond})
	defer s.Close()
	o := uplink.DefaultOpts()
	o.Name, o.Store = "mqtt", s
	d, err := uplink.New(o)
	if err != nil {
		t.Fatal(err)
	}
	var sent []uint64
	send := func(m *edge.Message, _ bool) (uplink.Sent, error) {
		sent = append(sent, m.Seq)
		return uplink.Sent{Outcome: uplink.Await, Packets: 1}, nil
	}
	d.Begin()
	w, err := d.Step(send)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(sent, 1) {
		t.Fatalf("sent %v before the database opened", sent)
	}
	free.Store(1 << 40)
	select {
	case <-w.Rescan:
	case <-time.After(20 * time.Second):
		t.Fatal("the database opened (or not) without a Rescan signal")
	}
	if _, err := d.Step(send); err != nil {
		t.Fatal(err)
	}
	for q := uint64(1); q <= 5; q++ {
		if !slices.Contains(sent, q) {
			t.Errorf("seq %d of the old backlog not sent after the database opened: sent %v", q, sent)
		}
	}
}
