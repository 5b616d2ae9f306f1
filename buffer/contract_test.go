package buffer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// clock is a settable time source for retention tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

type opener func(t *testing.T, o Opts) Store

func openers() map[string]opener {
	return map[string]opener{
		"memory": func(t *testing.T, o Opts) Store { return NewMemory(o, 0) },
		"badger": func(t *testing.T, o Opts) Store {
			s, err := OpenBadger(context.Background(), BadgerOpts{Opts: o, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func rt(created time.Time, points int) *edge.Message {
	m := &edge.Message{Kind: edge.KindRT, Created: created}
	for i := range points {
		m.Readings = append(m.Readings, edge.Reading{Point: fmt.Sprintf("PT-%03d", i), TS: created, Value: edge.Num(float64(i) + 0.5), Unit: "kPa"})
	}
	return m
}

func ev(created time.Time) *edge.Message {
	return &edge.Message{Kind: edge.KindEvent, Created: created, Events: []edge.Event{{Type: edge.EventAlarm, State: edge.StateRaised, Point: "GT-1", TS: created, Level: "HH", Value: edge.Num(55), Threshold: edge.Num(50), Unit: "%LEL"}}}
}

func seqsOf(ms []*edge.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func mustAppend(t *testing.T, s Store, ms ...*edge.Message) {
	t.Helper()
	if err := s.Append(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
}

// TestContract runs the same behaviour checks against every Store.
func TestContract(t *testing.T) {
	for name, open := range openers() {
		t.Run(name, func(t *testing.T) {
			t.Run("SeqsIncrease", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				for i := range 5 {
					m := rt(t0, 2)
					mustAppend(t, s, m)
					if m.Seq != uint64(i+1) {
						t.Fatalf("append %d got seq %d", i, m.Seq)
					}
				}
				a, b := rt(t0, 1), ev(t0)
				mustAppend(t, s, a, b)
				if a.Seq != 6 || b.Seq != 7 || s.LastSeq() != 7 {
					t.Fatalf("batch seqs %d %d last %d", a.Seq, b.Seq, s.LastSeq())
				}
			})
			t.Run("UnackedSkipsAckedPerUplink", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt", "hj212"}})
				for range 10 {
					mustAppend(t, s, rt(t0, 1))
				}
				if err := s.Ack("mqtt", 1, 2, 5, 7, 8); err != nil {
					t.Fatal(err)
				}
				got, err := s.Unacked("mqtt", 0, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				if want := []uint64{3, 4, 6, 9, 10}; !reflect.DeepEqual(seqsOf(got), want) {
					t.Fatalf("mqtt unacked %v want %v", seqsOf(got), want)
				}
				got, _ = s.Unacked("mqtt", 4, 9, 100)
				if want := []uint64{4, 6}; !reflect.DeepEqual(seqsOf(got), want) {
					t.Fatalf("mqtt unacked [4,9) %v want %v", seqsOf(got), want)
				}
				got, _ = s.Unacked("mqtt", 0, 0, 2)
				if want := []uint64{3, 4}; !reflect.DeepEqual(seqsOf(got), want) {
					t.Fatalf("max 2: %v want %v", seqsOf(got), want)
				}
				got, _ = s.Unacked("hj212", 0, 0, 100)
				if len(got) != 10 {
					t.Fatalf("hj212 sees %d unacked, want all 10: acknowledgements must be per uplink", len(got))
				}
				if err := s.Ack("nosuch", 1); err == nil {
					t.Fatal("ack for an unknown uplink succeeded")
				}
				st := s.Stats()
				if st.Uplinks["mqtt"].Depth != 5 || st.Uplinks["hj212"].Depth != 10 {
					t.Fatalf("depths %+v", st.Uplinks)
				}
			})
			t.Run("RoundTrip", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				in := sampleMessage()
				mustAppend(t, s, in)
				got, _ := s.Unacked("mqtt", 0, 0, 10)
				if len(got) != 1 {
					t.Fatalf("got %d messages", len(got))
				}
				want := *in
				if !reflect.DeepEqual(normalise(got[0]), normalise(&want)) {
					t.Fatalf("round trip differs\n got %+v\nwant %+v", got[0], &want)
				}
			})
			t.Run("AppendedNotifies", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				ch := s.Appended()
				select {
				case <-ch:
					t.Fatal("closed before any append")
				default:
				}
				mustAppend(t, s, rt(t0, 1))
				select {
				case <-ch:
				case <-time.After(time.Second):
					t.Fatal("not notified of the append")
				}
			})
			t.Run("Between", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				for i := range 10 {
					mustAppend(t, s, rt(t0.Add(time.Duration(i)*30*time.Second), 1))
				}
				mustAppend(t, s, &edge.Message{Kind: edge.KindStat, Created: t0.Add(90 * time.Second), Stats: []edge.Stat{{Point: "P", Period: edge.Minute, Start: t0}}})
				var got []uint64
				s.Between(t0.Add(time.Minute), t0.Add(3*time.Minute), 0, func(m *edge.Message) bool {
					got = append(got, m.Seq)
					return true
				})
				if want := []uint64{3, 4, 5, 6, 11}; !reflect.DeepEqual(got, want) {
					t.Fatalf("between 1m and 3m: %v want %v", got, want)
				}
				got = got[:0]
				s.Between(t0.Add(time.Minute), t0.Add(3*time.Minute), edge.KindStat, func(m *edge.Message) bool {
					got = append(got, m.Seq)
					return true
				})
				if want := []uint64{11}; !reflect.DeepEqual(got, want) {
					t.Fatalf("stat messages between 1m and 3m: %v want %v", got, want)
				}
			})
			t.Run("CapEvictsAckedThenReadingsThenEvents", func(t *testing.T) {
				one := int64(len(EncodeRecord(nil, rt(t0, 20)))) + 9
				s := open(t, Opts{Uplinks: []string{"mqtt"}, MaxBytes: 12 * one})
				for range 10 {
					mustAppend(t, s, rt(t0, 20))
				}
				s.Ack("mqtt", 1, 2, 3, 4, 5)
				mustAppend(t, s, ev(t0), ev(t0)) // 11, 12
				for range 12 {
					mustAppend(t, s, rt(t0, 20)) // 13..24
				}
				st := s.Stats()
				if st.Dropped == 0 {
					t.Fatalf("nothing dropped, stats %+v", st)
				}
				all, _ := s.Unacked("mqtt", 0, 0, 1000)
				have := map[uint64]bool{}
				for _, m := range all {
					have[m.Seq] = true
				}
				if !have[11] || !have[12] {
					t.Fatalf("alarm events were dropped before readings: have %v", seqsOf(all))
				}
				// Readings 6.. were dropped oldest first; the acknowledged
				// 1-5 were evicted first and are not counted as dropped.
				var reports []edge.Event
				for _, m := range all {
					if isDropEvent(m) {
						reports = append(reports, m.Events[0])
					}
				}
				if len(reports) == 0 {
					t.Fatalf("no buffer_dropped event among %v", seqsOf(all))
				}
				if first := reports[0].Ranges[0].First; first != 6 {
					t.Fatalf("first dropped seq %d: want 6, the oldest unacknowledged reading", first)
				}
				var total uint64
				prevLast := uint64(0)
				for _, r := range reports {
					total += r.Count
					for _, rg := range r.Ranges {
						if rg.First <= prevLast {
							t.Fatalf("drops not oldest first: %v after %d", rg, prevLast)
						}
						prevLast = rg.Last
						for q := rg.First; q <= rg.Last; q++ {
							if have[q] || q <= 5 || q == 11 || q == 12 {
								t.Fatalf("seq %d reported dropped but it is still stored, acknowledged or an event", q)
							}
						}
					}
				}
				if total != st.Dropped {
					t.Fatalf("reports count %d, stats dropped %d", total, st.Dropped)
				}
				// Every seq is accounted for: stored, acknowledged-and-evicted, or reported.
				for q := uint64(1); q <= s.LastSeq(); q++ {
					reported := false
					for _, r := range reports {
						for _, rg := range r.Ranges {
							reported = reported || (q >= rg.First && q <= rg.Last)
						}
					}
					if !have[q] && q > 5 && !reported {
						t.Fatalf("seq %d vanished without a drop report", q)
					}
				}
			})
			t.Run("AckIgnoresSeqsNeverIssued", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				mustAppend(t, s, rt(t0, 1), rt(t0, 1), rt(t0, 1)) // 1-3
				if err := s.Ack("mqtt", 0, 2, 4, 5, 1000); err != nil {
					t.Fatal(err)
				}
				mustAppend(t, s, rt(t0, 1), rt(t0, 1)) // 4, 5: acknowledged before they existed
				got, _ := s.Unacked("mqtt", 0, 0, 100)
				if want := []uint64{1, 3, 4, 5}; !reflect.DeepEqual(seqsOf(got), want) {
					t.Fatalf("unacked %v want %v: an ack for a seq not yet issued must be ignored", seqsOf(got), want)
				}
				if d := s.Stats().Uplinks["mqtt"].Depth; d != 4 {
					t.Fatalf("depth %d want 4", d)
				}
			})
			t.Run("ClosedRefusesAppend", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				mustAppend(t, s, rt(t0, 1))
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.Append(context.Background(), rt(t0, 1)); !errors.Is(err, ErrClosed) {
					t.Fatalf("append after close: %v, want ErrClosed", err)
				}
				if err := s.Close(); err != nil {
					t.Fatalf("second close: %v", err)
				}
			})
			t.Run("UnackedBounds", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}})
				fillStore(t, s, 10, 1)
				for _, c := range []struct {
					from, to uint64
					max      int
					want     []uint64
				}{
					{5, 5, 10, nil}, {6, 5, 10, nil}, {0, 0, 0, nil}, {11, 0, 10, nil},
					{10, 0, 10, []uint64{10}}, {0, 3, 10, []uint64{1, 2}}, {9, 100, 10, []uint64{9, 10}},
				} {
					got, err := s.Unacked("mqtt", c.from, c.to, c.max)
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(seqsOf(got), append([]uint64{}, c.want...)) && !(len(got) == 0 && len(c.want) == 0) {
						t.Fatalf("Unacked(%d, %d, %d) = %v want %v", c.from, c.to, c.max, seqsOf(got), c.want)
					}
				}
			})
			t.Run("OverflowNamesEverySeq", func(t *testing.T) {
				s := open(t, Opts{Uplinks: []string{"mqtt"}, MaxMessages: 20})
				var issued, events []uint64
				for i := range 100 {
					m := rt(t0, 1)
					if i%10 == 0 {
						m = ev(t0)
					}
					mustAppend(t, s, m)
					issued = append(issued, m.Seq)
					if m.Kind == edge.KindEvent {
						events = append(events, m.Seq)
					}
					if n := s.Stats().Messages; n > 21 {
						t.Fatalf("%d messages held at a cap of 20", n)
					}
				}
				a := drain(t, s, "mqtt")
				a.check(t, s, issued)
				for _, q := range events {
					if !a.present[q] {
						t.Fatalf("event seq %d dropped: 10 events fit in the cap of 20, readings and drop reports go first", q)
					}
				}
			})
			t.Run("RetentionDropsUnacked", func(t *testing.T) {
				c := &clock{t: t0}
				s := open(t, Opts{Uplinks: []string{"mqtt"}, Retention: time.Hour, Now: c.Now})
				mustAppend(t, s, rt(t0, 1), rt(t0, 1), rt(t0, 1)) // 1-3
				s.Ack("mqtt", 1)
				c.Add(2 * time.Hour)
				mustAppend(t, s, rt(c.Now(), 1)) // 4
				waitFor(t, func() bool { return s.Stats().Dropped == 2 })
				all, _ := s.Unacked("mqtt", 0, 0, 100)
				if len(all) != 2 || all[0].Seq != 4 || !isDropEvent(all[1]) {
					t.Fatalf("after retention: %v", seqsOf(all))
				}
				if r := all[1].Events[0].Ranges; !reflect.DeepEqual(r, []edge.SeqRange{{First: 2, Last: 3}}) {
					t.Fatalf("dropped ranges %v want 2-3", r)
				}
			})
		})
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sampleMessage() *edge.Message {
	ts := t0.Add(1500 * time.Millisecond)
	return &edge.Message{Kind: edge.KindEvent, Created: t0,
		Readings: []edge.Reading{
			{Point: "LT-101", TS: ts, Value: edge.Num(12.345), Unit: "m", Quality: edge.Good, Alarm: edge.H},
			{Point: "GT-101", TS: ts, Unit: "%LEL", Quality: edge.CommFault},
			{Point: "XV-101", TS: ts, Value: edge.BoolValue(true), Quality: edge.Good},
			{Point: "TAG", TS: ts, Value: edge.Str("PUMP-A 运行"), Quality: edge.Maintenance},
		},
		Events: []edge.Event{{ID: "x-1", Type: edge.EventInterlock, State: edge.StateActionVerified, Interlock: "ESD-101", TS: ts,
			Actions: []edge.Action{{Device: "esd", Table: "coil", Address: 3, Write: edge.BoolValue(false), ReadBack: edge.BoolValue(false)}},
			Ranges:  []edge.SeqRange{{First: 5, Last: 9}}, Count: 5, Message: "closed"}},
		Stats: []edge.Stat{{Point: "GT-101", Period: edge.Minute, Start: t0, Unit: "%LEL", Avg: 3, Min: 1, Max: 5, Count: 60, Quality: edge.Good}},
	}
}

// normalise makes times comparable (location and monotonic reading).
func normalise(m *edge.Message) *edge.Message {
	c := *m
	c.Seq = 0
	c.Created = c.Created.UTC()
	c.Readings = append([]edge.Reading(nil), m.Readings...)
	for i := range c.Readings {
		c.Readings[i].TS = c.Readings[i].TS.UTC()
	}
	c.Events = append([]edge.Event(nil), m.Events...)
	for i := range c.Events {
		c.Events[i].TS = c.Events[i].TS.UTC()
	}
	c.Stats = append([]edge.Stat(nil), m.Stats...)
	for i := range c.Stats {
		c.Stats[i].Start = c.Stats[i].Start.UTC()
	}
	return &c
}
