package uplink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/hazwatch/edgecollector/edge"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeStore is a buffer for one uplink. Hidden seqs are stored but not
// returned until reveal: a database that opens late or recovers.
type fakeStore struct {
	mu       sync.Mutex
	msgs     map[uint64]*edge.Message
	acked    map[uint64]bool
	hidden   map[uint64]bool
	last     uint64
	appended chan struct{}
	rescan   chan struct{}
	ackCalls [][]uint64
}

func newFakeStore() *fakeStore {
	return &fakeStore{msgs: map[uint64]*edge.Message{}, acked: map[uint64]bool{}, hidden: map[uint64]bool{},
		appended: make(chan struct{}), rescan: make(chan struct{})}
}

func (s *fakeStore) append(n int) (first, last uint64) {
	s.mu.Lock()
	first = s.last + 1
	for range n {
		s.last++
		s.msgs[s.last] = &edge.Message{Seq: s.last, Kind: edge.KindRT}
	}
	last = s.last
	close(s.appended)
	s.appended = make(chan struct{})
	s.mu.Unlock()
	return first, last
}

func (s *fakeStore) hide(seqs ...uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		s.hidden[q] = true
	}
}

func (s *fakeStore) reveal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.hidden)
	close(s.rescan)
	s.rescan = make(chan struct{})
}

func (s *fakeStore) Unacked(_ string, from, to uint64, max int) ([]*edge.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*edge.Message
	for q := from; q <= s.last && (to == 0 || q < to) && len(out) < max; q++ {
		if m := s.msgs[q]; m != nil && !s.acked[q] && !s.hidden[q] {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *fakeStore) Ack(_ string, seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ackCalls = append(s.ackCalls, slices.Clone(seqs))
	for _, q := range seqs {
		if s.msgs[q] == nil || s.acked[q] {
			return fmt.Errorf("seq %d acknowledged twice or unknown", q)
		}
		s.acked[q] = true
	}
	return nil
}

func (s *fakeStore) LastSeq() uint64 { s.mu.Lock(); defer s.mu.Unlock(); return s.last }

func (s *fakeStore) Appended() <-chan struct{} { s.mu.Lock(); defer s.mu.Unlock(); return s.appended }

func (s *fakeStore) Rescan() <-chan struct{} { s.mu.Lock(); defer s.mu.Unlock(); return s.rescan }

func (s *fakeStore) isAcked(q uint64) bool { s.mu.Lock(); defer s.mu.Unlock(); return s.acked[q] }

// sendRec is one call of the transport.
type sendRec struct {
	seq    uint64
	resend bool
	at     time.Time
}

// recorder is a transport that writes nothing and answers with outcome.
type recorder struct {
	outcome Outcome
	sends   []sendRec
}

func (r *recorder) send(m *edge.Message, resend bool) (Sent, error) {
	r.sends = append(r.sends, sendRec{m.Seq, resend, time.Now()})
	return Sent{Outcome: r.outcome, Packets: 1}, nil
}

func (r *recorder) seqs() []uint64 {
	var out []uint64
	for _, s := range r.sends {
		out = append(out, s.seq)
	}
	return out
}

func newDelivery(t *testing.T, st Store, edit func(*Opts)) *Delivery {
	t.Helper()
	o := DefaultOpts()
	o.Name, o.Store = "test", st
	if edit != nil {
		edit(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func step(t *testing.T, d *Delivery, send SendFunc) Waits {
	t.Helper()
	w, err := d.Step(send)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestResendMark: the resend mark is set exactly when the seq may have
// reached the platform before: appended before the uplink started, or sent
// on an earlier connection. Seqs appended while the first connection comes
// up, or during an outage, are not resends (issue 19 item 6).
func TestResendMark(t *testing.T) {
	st := newFakeStore()
	st.append(3) // 1-3: an earlier run of the collector
	d := newDelivery(t, st, nil)
	st.append(2) // 4-5: while the first connection comes up
	r := &recorder{outcome: Await}
	d.Begin()
	step(t, d, r.send)
	st.append(1) // 6: live
	step(t, d, r.send)
	d.Confirm(1, 4)
	d.end(errors.New("lost"))
	st.append(2) // 7-8: during the outage
	d.Begin()
	step(t, d, r.send)
	want := []sendRec{
		// first connection: 1-5 are its backlog (there at Begin), 6 live
		{seq: 1, resend: true}, {seq: 2, resend: true}, {seq: 3, resend: true}, {seq: 4}, {seq: 5}, {seq: 6},
		// second: what is unacknowledged, oldest first
		{seq: 2, resend: true}, {seq: 3, resend: true}, {seq: 5, resend: true}, {seq: 6, resend: true}, {seq: 7}, {seq: 8}}
	if len(r.sends) != len(want) {
		t.Fatalf("sends %v, want %v", r.sends, want)
	}
	for i, w := range want {
		if g := r.sends[i]; g.seq != w.seq || g.resend != w.resend {
			t.Errorf("send %d: seq %d resend %v, want seq %d resend %v", i, g.seq, g.resend, w.seq, w.resend)
		}
	}
}

// TestConfirmOnlyAwaited: a confirmation counts only for seqs written on
// this connection and still awaited; the rest is ignored and counted, and
// the buffer keeps them for delivery (issue 16 item 1).
func TestConfirmOnlyAwaited(t *testing.T) {
	st := newFakeStore()
	st.append(10)
	d := newDelivery(t, st, func(o *Opts) { o.Window = 3 })
	r := &recorder{outcome: Await}
	d.Begin()
	step(t, d, r.send) // 1-3 in the window
	d.end(errors.New("lost"))
	d.Begin()
	step(t, d, r.send) // 1-3 again
	d.Confirm(2)       // frees one slot
	step(t, d, r.send) // 4
	// 5-10 never sent, 2 already confirmed, 99 never issued.
	if n := d.Confirm(1, 2, 4, 5, 6, 7, 8, 9, 10, 99); n != 8 {
		t.Fatalf("%d ignored, want 8", n)
	}
	for q := uint64(1); q <= 10; q++ {
		if want := q == 1 || q == 2 || q == 4; st.isAcked(q) != want {
			t.Errorf("seq %d acknowledged %v, want %v", q, st.isAcked(q), want)
		}
	}
	if s := d.Stats(); s.AcksIgnored != 8 || s.Acked != 3 {
		t.Errorf("stats %+v: want 8 ignored, 3 acknowledged", s)
	}
	// The ignored seqs still go out and are acknowledged when confirmed.
	for range 10 {
		step(t, d, r.send)
		d.Confirm(3, 5, 6, 7, 8, 9, 10)
	}
	for q := uint64(1); q <= 10; q++ {
		if !st.isAcked(q) {
			t.Errorf("seq %d never acknowledged", q)
		}
	}
}

// TestBacklogRate: the backlog goes oldest first at the configured rate
// while live messages are never paced.
func TestBacklogRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore()
		st.append(50)
		d := newDelivery(t, st, func(o *Opts) { o.BacklogRate, o.Window = 10, 1000 })
		r := &recorder{outcome: Done}
		d.Begin()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		go func() {
			time.Sleep(2 * time.Second)
			st.append(20) // 51-70: live, all at once
		}()
		for {
			w := step(t, d, r.send)
			if len(r.sends) >= 70 {
				break
			}
			select {
			case <-w.Appended:
			case <-w.Timer:
			case <-ctx.Done():
				t.Fatalf("only %d sends", len(r.sends))
			}
		}
		var backlog []sendRec
		var liveAt []time.Duration
		for _, s := range r.sends {
			if s.seq <= 50 {
				backlog = append(backlog, s)
			} else {
				liveAt = append(liveAt, s.at.Sub(start))
			}
		}
		if !slices.IsSortedFunc(backlog, func(a, b sendRec) int { return int(a.seq) - int(b.seq) }) {
			t.Errorf("backlog not oldest first: %v", r.seqs())
		}
		// A burst of one second's worth, then 10/s: 50 take 4 s.
		if took := backlog[len(backlog)-1].at.Sub(start); took < 3900*time.Millisecond || took > 4200*time.Millisecond {
			t.Errorf("50 backlog messages at 10/s took %s, want 4 s", took)
		}
		for _, at := range liveAt {
			if at != 2*time.Second {
				t.Errorf("a live message went at %s, want at once (2s): live is never paced", at)
			}
		}
	})
}

// TestTimeouts: an unconfirmed seq is sent again (marked) after Timeout, at
// most MaxResends times, then the connection is given up; a late
// confirmation of a seq waiting to go again still counts.
func TestTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore()
		d := newDelivery(t, st, func(o *Opts) { o.Timeout, o.MaxResends = time.Second, 2 })
		r := &recorder{outcome: Await}
		d.Begin()
		st.append(2)
		var err error
		for err == nil {
			var w Waits
			if w, err = d.Step(r.send); err == nil {
				if len(r.sends) == 2 {
					d.Confirm(2)
				}
				<-w.Timer
			}
		}
		if !errors.Is(err, ErrUnconfirmed) {
			t.Fatalf("err %v, want ErrUnconfirmed", err)
		}
		want := []sendRec{{seq: 1}, {seq: 2}, {seq: 1, resend: true}, {seq: 1, resend: true}}
		if len(r.sends) != len(want) {
			t.Fatalf("sends %v, want %v", r.sends, want)
		}
		for i, w := range want {
			if g := r.sends[i]; g.seq != w.seq || g.resend != w.resend {
				t.Errorf("send %d: %+v, want %+v", i, g, w)
			}
		}
		if gap := r.sends[3].at.Sub(r.sends[2].at); gap != time.Second {
			t.Errorf("resends %s apart, want the timeout (1s)", gap)
		}
		if s := d.Stats(); s.Timeouts != 1 || s.Resent != 2 || st.isAcked(1) || !st.isAcked(2) {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestHandOver: a seq handed over leaves the window and awaits the platform
// for Timeout; unconfirmed, it is read again from the buffer and resent.
func TestHandOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore()
		st.append(4)
		d := newDelivery(t, st, func(o *Opts) { o.Window, o.Timeout = 2, time.Second })
		r := &recorder{outcome: HandOver}
		d.Begin()
		step(t, d, r.send)
		if got := r.seqs(); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("window of 2 sent %v", got)
		}
		d.Handed(1)
		d.Handed(2)
		step(t, d, r.send)
		d.Handed(3)
		d.Handed(4)
		d.Confirm(1, 3, 4) // 3 and 4: handed, awaited
		w := step(t, d, r.send)
		<-w.Timer
		step(t, d, r.send)
		if got := r.seqs(); !slices.Equal(got, []uint64{1, 2, 3, 4, 2}) || !r.sends[4].resend {
			t.Errorf("sends %v: want 2 sent again after the timeout", r.sends)
		}
		if d.Confirm(2) != 0 || !st.isAcked(2) {
			t.Error("the resent seq's confirmation did not count")
		}
	})
}

// TestRescan: messages that reappear below the cursor (the database opened
// late) go out at once on the same connection, oldest first.
func TestRescan(t *testing.T) {
	st := newFakeStore()
	st.append(6)
	st.hide(2, 3, 4)
	d := newDelivery(t, st, nil)
	r := &recorder{outcome: Done}
	d.Begin()
	w := step(t, d, r.send)
	st.append(1) // 7, live
	<-w.Appended
	w = step(t, d, r.send)
	if got := r.seqs(); !slices.Equal(got, []uint64{1, 5, 6, 7}) {
		t.Fatalf("sent %v before the recovery", got)
	}
	st.reveal()
	select {
	case <-w.Rescan:
	case <-time.After(5 * time.Second):
		t.Fatal("no rescan signal")
	}
	step(t, d, r.send)
	if got := r.seqs(); !slices.Equal(got, []uint64{1, 5, 6, 7, 2, 3, 4}) {
		t.Errorf("sent %v: want 2-4 after the recovery, without a reconnect", got)
	}
	if s := d.Stats(); s.Connects != 1 || s.Acked != 7 {
		t.Errorf("stats %+v", s)
	}
}

// TestRun: Run reconnects with the back-off until ctx ends, and keeps the
// last error.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newFakeStore()
		d := newDelivery(t, st, func(o *Opts) { o.ReconnectMin, o.ReconnectMax = time.Second, 4*time.Second })
		ctx, cancel := context.WithCancel(context.Background())
		var at []time.Duration
		start := time.Now()
		err := d.Run(ctx, func(ctx context.Context) error {
			at = append(at, time.Since(start))
			if len(at) == 6 {
				cancel()
				return ctx.Err()
			}
			return errors.New("refused")
		})
		if err != nil {
			t.Fatal(err)
		}
		// waits 1, 2, 4, 4, 4 s, ±20 %
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 11 * time.Second, 15 * time.Second}
		for i := range want {
			lo, hi := want[i]-want[i]/5, want[i]+want[i]/5
			if at[i] < lo || at[i] > hi {
				t.Errorf("attempt %d at %s, want %s ±20 %%", i, at[i], want[i])
			}
		}
		if s := d.Stats(); s.Connected || s.Connects != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestSeqSet(t *testing.T) {
	for _, tc := range []struct {
		add  []uint64
		want []edge.SeqRange
	}{
		{[]uint64{1, 2, 3}, []edge.SeqRange{{First: 1, Last: 3}}},
		{[]uint64{3, 1, 2}, []edge.SeqRange{{First: 1, Last: 3}}},
		{[]uint64{5, 1, 3}, []edge.SeqRange{{First: 1, Last: 1}, {First: 3, Last: 3}, {First: 5, Last: 5}}},
		{[]uint64{5, 1, 3, 4, 2, 2}, []edge.SeqRange{{First: 1, Last: 5}}},
		{[]uint64{10, 8, 9, 20, 7}, []edge.SeqRange{{First: 7, Last: 10}, {First: 20, Last: 20}}},
	} {
		var s seqSet
		for _, q := range tc.add {
			s.Add(q)
		}
		if !slices.Equal(s.r, tc.want) {
			t.Errorf("add %v: %v, want %v", tc.add, s.r, tc.want)
		}
		for q := uint64(0); q < 22; q++ {
			if got, want := s.Contains(q), slices.Contains(tc.add, q); got != want {
				t.Errorf("add %v: Contains(%d) = %v", tc.add, q, got)
			}
		}
	}
}
