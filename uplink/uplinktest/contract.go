// Package uplinktest is the contract every uplink transport keeps, as one
// suite (RunContract) that each transport's tests run against a real peer:
// Mosquitto for MQTT, a TCP stand-in platform for HJ 212. The suite sees the
// platform only through Platform, which each transport's test implements by
// reading its own wire format, and checks what DESIGN.md promises about
// delivery: nothing acknowledged in the buffer before the platform confirmed
// it, the backlog oldest first at its rate, the resend mark exactly when a
// seq may have reached the platform before, and acknowledgements only for
// seqs sent on the current connection and awaited there.
package uplinktest

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink"
)

// Receipt is one data message as the platform received it.
type Receipt struct {
	Seq    uint64
	Resend bool // resend: true, RF=1
	Conn   int  // the uplink's connection it came on, counted from 1
	At     time.Time
}

// Platform is the far end of the transport under test.
type Platform interface {
	// Receipts returns the data messages received so far, in order.
	Receipts() []Receipt
	// SetConfirm chooses which seqs the platform confirms from now on (nil:
	// none; at first: all). A confirmation is booked (Confirmed) before it
	// goes out.
	SetConfirm(func(seq uint64) bool)
	// Confirmed reports whether the platform has confirmed seq.
	Confirmed(seq uint64) bool
	// Ack sends a confirmation naming these messages, whatever the platform
	// received (a misbehaving platform).
	Ack(ms ...*edge.Message)
	// Drop cuts the uplink's connection; it reconnects.
	Drop()
	// Refuse makes the platform (or the path to it) close every new
	// connection at once while on.
	Refuse(on bool)
}

// Opts are what a case needs of the uplink.
type Opts struct {
	BacklogRate float64
	// Timeout is the confirmation timeout (platform_ack.timeout,
	// OverTime): short, so that the suite sees resends.
	Timeout time.Duration
}

// Transport starts the uplink under test.
type Transport struct {
	// Name is the buffer's uplink name.
	Name string
	// Platform starts a platform for one case.
	Platform func(t *testing.T) Platform
	// Start runs the uplink on store against p until stop is called; stats
	// reads its counters.
	Start func(t *testing.T, p Platform, store uplink.Store, o Opts) (stop func(), stats func() uplink.Stats)
	// Message is the i-th test message (one the transport sends: rt for
	// MQTT, rtd for HJ 212).
	Message func(i int) *edge.Message
}

// checkedStore fails the case when a seq is acknowledged before the
// platform confirmed it.
type checkedStore struct {
	*buffer.Memory
	p   Platform
	mu  sync.Mutex
	bad []string
}

func (s *checkedStore) Ack(uplink string, seqs ...uint64) error {
	for _, q := range seqs {
		if !s.p.Confirmed(q) {
			s.mu.Lock()
			s.bad = append(s.bad, fmt.Sprintf("seq %d acknowledged in the buffer before the platform confirmed it", q))
			s.mu.Unlock()
		}
	}
	return s.Memory.Ack(uplink, seqs...)
}

func (s *checkedStore) acked(name string, q uint64) bool {
	ms, err := s.Memory.Unacked(name, q, q+1, 1)
	return err == nil && len(ms) == 0
}

func (s *checkedStore) allAcked(name string) bool {
	ms, err := s.Memory.Unacked(name, 1, 0, 1)
	return err == nil && len(ms) == 0
}

// Eventually waits up to within for cond, polling every 20 ms.
func Eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type fixture struct {
	t     *testing.T
	tr    Transport
	p     Platform
	store *checkedStore
	n     int
	stop  func()
	stats func() uplink.Stats
}

func newFixture(t *testing.T, tr Transport) *fixture {
	p := tr.Platform(t)
	mem := buffer.NewMemory(buffer.Opts{Uplinks: []string{tr.Name}}, 0)
	t.Cleanup(func() { mem.Close() })
	f := &fixture{t: t, tr: tr, p: p, store: &checkedStore{Memory: mem, p: p}}
	t.Cleanup(func() {
		if f.stop != nil {
			f.stop()
		}
		for _, b := range f.store.bad {
			t.Error(b)
		}
	})
	return f
}

func (f *fixture) append(n int) (first, last uint64) {
	f.t.Helper()
	first = f.store.LastSeq() + 1
	for range n {
		f.n++
		if err := f.store.Append(context.Background(), f.tr.Message(f.n)); err != nil {
			f.t.Fatal(err)
		}
	}
	return first, f.store.LastSeq()
}

func (f *fixture) start(o Opts) {
	f.stop, f.stats = f.tr.Start(f.t, f.p, f.store, o)
}

// ackReceived has the platform confirm what it received and has not
// confirmed.
func (f *fixture) ackReceived() {
	f.t.Helper()
	ms, err := f.store.Memory.Unacked(f.tr.Name, 1, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	got := map[uint64]bool{}
	for _, r := range f.p.Receipts() {
		got[r.Seq] = true
	}
	var these []*edge.Message
	for _, m := range ms {
		if got[m.Seq] && !f.p.Confirmed(m.Seq) {
			these = append(these, m)
		}
	}
	if len(these) > 0 {
		f.p.Ack(these...)
	}
}

// received reports whether every seq in [first, last] has a receipt that
// keep accepts.
func (f *fixture) received(first, last uint64, keep func(Receipt) bool) bool {
	have := map[uint64]bool{}
	for _, r := range f.p.Receipts() {
		if keep == nil || keep(r) {
			have[r.Seq] = true
		}
	}
	for q := first; q <= last; q++ {
		if !have[q] {
			return false
		}
	}
	return true
}

// RunContract runs the uplink contract against one transport.
func RunContract(t *testing.T, tr Transport) {
	t.Run("ConfirmedOnly", func(t *testing.T) { confirmedOnly(t, tr) })
	t.Run("BacklogOldestFirstAtRate", func(t *testing.T) { backlogOrder(t, tr) })
	t.Run("ResendMarkAfterReconnect", func(t *testing.T) { resendAfterReconnect(t, tr) })
	t.Run("FreshStartIsNotResend", func(t *testing.T) { freshStart(t, tr) })
	t.Run("OnlyAwaitedSeqsAcknowledged", func(t *testing.T) { onlyAwaited(t, tr) })
}

// confirmedOnly: nothing is acknowledged before the platform confirms it; a
// seq it does not confirm is sent again (marked) and stays in the buffer.
func confirmedOnly(t *testing.T, tr Transport) {
	f := newFixture(t, tr)
	f.p.SetConfirm(func(q uint64) bool { return q%2 == 1 })
	first, last := f.append(10)
	f.start(Opts{Timeout: 300 * time.Millisecond})
	Eventually(t, 20*time.Second, "the odd seqs acknowledged", func() bool {
		for q := first; q <= last; q += 2 {
			if !f.store.acked(tr.Name, q) {
				return false
			}
		}
		return true
	})
	Eventually(t, 20*time.Second, "every even seq sent again, marked", func() bool {
		n := map[uint64]int{}
		for _, r := range f.p.Receipts() {
			if r.Seq%2 == 0 && r.Resend {
				n[r.Seq]++
			}
		}
		for q := first + 1; q <= last; q += 2 {
			if n[q] < 2 {
				return false
			}
		}
		return true
	})
	for q := first + 1; q <= last; q += 2 {
		if f.store.acked(tr.Name, q) {
			t.Errorf("seq %d acknowledged although the platform never confirmed it", q)
		}
	}
	f.p.SetConfirm(func(uint64) bool { return true })
	Eventually(t, 20*time.Second, "every seq acknowledged once confirmed", func() bool { return f.store.allAcked(tr.Name) })
}

// backlogOrder: the backlog goes oldest first, at no more than its rate,
// while a live message goes out beside it at once.
func backlogOrder(t *testing.T, tr Transport) {
	f := newFixture(t, tr)
	const n, rate = 40, 10.0
	first, last := f.append(n)
	f.start(Opts{BacklogRate: rate, Timeout: 10 * time.Second})
	Eventually(t, 20*time.Second, "the first backlog message", func() bool { return len(f.p.Receipts()) > 0 })
	live, _ := f.append(1)
	Eventually(t, 30*time.Second, "the backlog and the live message", func() bool { return f.received(first, live, nil) })
	Eventually(t, 20*time.Second, "everything acknowledged", func() bool { return f.store.allAcked(tr.Name) })
	var backlog []Receipt
	var liveAt time.Time
	for _, r := range f.p.Receipts() {
		switch {
		case r.Seq == live && liveAt.IsZero():
			liveAt = r.At
			if r.Resend {
				t.Errorf("the live seq %d came marked as a resend", live)
			}
		case r.Seq <= last:
			backlog = append(backlog, r)
			if !r.Resend {
				t.Errorf("backlog seq %d (appended before the uplink started) came without the resend mark", r.Seq)
			}
		}
	}
	seqs := make([]uint64, len(backlog))
	for i, r := range backlog {
		seqs[i] = r.Seq
	}
	if !slices.IsSorted(seqs) {
		t.Errorf("backlog not oldest first: %v", seqs)
	}
	// One second's worth at once, then the rate.
	took := backlog[len(backlog)-1].At.Sub(backlog[0].At)
	if min := time.Duration(float64(n-int(rate)-1) / rate * 0.9 * float64(time.Second)); took < min {
		t.Errorf("%d backlog messages at %.0f/s took %s, want at least %s", n, rate, took, min)
	}
	if !liveAt.Before(backlog[len(backlog)-1].At) {
		t.Errorf("the live message came at %s, after the backlog ended (%s): live must not wait for the backlog", liveAt, backlog[len(backlog)-1].At)
	}
	t.Logf("backlog of %d drained in %s at %.0f/s; live message after %s", n, took.Round(time.Millisecond), rate, liveAt.Sub(backlog[0].At).Round(time.Millisecond))
}

// resendAfterReconnect: seqs sent on a connection and not confirmed come
// again on the next one with the resend mark; seqs first sent on the new
// connection come without it.
func resendAfterReconnect(t *testing.T, tr Transport) {
	f := newFixture(t, tr)
	f.p.SetConfirm(nil)
	f.start(Opts{Timeout: time.Minute})
	first, last := f.append(5)
	Eventually(t, 20*time.Second, "the first connection's messages", func() bool { return f.received(first, last, nil) })
	f.p.Drop()
	Eventually(t, 20*time.Second, "all sent again on a later connection, marked", func() bool {
		return f.received(first, last, func(r Receipt) bool { return r.Conn > 1 && r.Resend })
	})
	f.p.SetConfirm(func(uint64) bool { return true })
	f.ackReceived() // what came on this connection unconfirmed
	first2, last2 := f.append(3)
	Eventually(t, 20*time.Second, "every seq acknowledged", func() bool { return f.store.allAcked(tr.Name) })
	for _, r := range f.p.Receipts() {
		switch {
		case r.Conn > 1 && r.Seq <= last && !r.Resend:
			t.Errorf("seq %d came again on connection %d without the resend mark", r.Seq, r.Conn)
		case r.Seq >= first2 && r.Seq <= last2 && r.Resend:
			t.Errorf("seq %d, first sent on connection %d, came marked as a resend", r.Seq, r.Conn)
		}
	}
	n := map[uint64]int{}
	for _, r := range f.p.Receipts() {
		if !r.Resend {
			if n[r.Seq]++; n[r.Seq] > 1 {
				t.Errorf("seq %d came twice without the resend mark", r.Seq)
			}
		}
	}
}

// freshStart: messages appended while the first connection is still coming
// up have never been sent: no resend mark (issue 19 item 6).
func freshStart(t *testing.T, tr Transport) {
	f := newFixture(t, tr)
	f.p.Refuse(true)
	f.start(Opts{Timeout: 10 * time.Second})
	first, last := f.append(3)
	Eventually(t, 20*time.Second, "a refused connection attempt", func() bool { return f.stats().LastError != "" })
	f.p.Refuse(false)
	Eventually(t, 30*time.Second, "every seq acknowledged", func() bool { return f.store.allAcked(tr.Name) })
	if !f.received(first, last, nil) {
		t.Fatal("acknowledged but not received")
	}
	for _, r := range f.p.Receipts() {
		if r.Resend {
			t.Errorf("seq %d came marked as a resend on a fresh start (connection %d)", r.Seq, r.Conn)
		}
	}
}

// onlyAwaited: a confirmation naming seqs not sent on this connection (the
// backlog still waiting for its rate, seqs never issued, seqs of an earlier
// connection) acknowledges none of them; they are delivered later all the
// same.
func onlyAwaited(t *testing.T, tr Transport) {
	f := newFixture(t, tr)
	f.p.SetConfirm(nil)
	first, last := f.append(20)
	f.start(Opts{BacklogRate: 2, Timeout: time.Minute})
	Eventually(t, 20*time.Second, "the first backlog messages", func() bool { return len(f.p.Receipts()) >= 2 })
	// Every message in the buffer, and one never issued.
	ms, err := f.store.Memory.Unacked(tr.Name, 1, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	ghost := tr.Message(999)
	ghost.Seq = last + 500
	f.p.Ack(append(ms, ghost)...)
	Eventually(t, 20*time.Second, "the hostile acknowledgement counted", func() bool { return f.stats().AcksIgnored > 0 })
	// A seq acknowledged now is never sent again: it must be one the
	// platform receives (or received) from before the acknowledgement.
	var acked []uint64
	for q := first; q <= last; q++ {
		if f.store.acked(tr.Name, q) {
			acked = append(acked, q)
		}
	}
	Eventually(t, 10*time.Second, fmt.Sprintf("the acknowledged seqs %v at the platform (acknowledged without being sent?)", acked), func() bool {
		sent := map[uint64]bool{}
		for _, r := range f.p.Receipts() {
			sent[r.Seq] = true
		}
		for _, q := range acked {
			if !sent[q] {
				return false
			}
		}
		return true
	})
	if f.store.allAcked(tr.Name) {
		t.Fatal("the whole backlog was acknowledged by one acknowledgement")
	}
	t.Logf("hostile ack of %d seqs: %d ignored, %d acknowledged", len(ms)+1, f.stats().AcksIgnored, f.stats().Acked)
	f.p.SetConfirm(func(uint64) bool { return true })
	f.ackReceived()
	Eventually(t, 30*time.Second, "the whole backlog delivered and acknowledged", func() bool { return f.store.allAcked(tr.Name) })
	if !f.received(first, last, nil) {
		t.Error("acknowledged without being received")
	}
}

// Proxy is a TCP proxy in front of a peer, for transports whose platform is
// behind a broker: Drop cuts the uplink's connections, Refuse closes new ones.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	count  int
	refuse bool
	wg     sync.WaitGroup
}

// NewProxy listens on 127.0.0.1:0 and forwards to target until the test
// ends.
func NewProxy(t *testing.T, target string) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Conns is how many connections the proxy has passed on.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.count++
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
	}
}

// Drop closes every connection passed on so far.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Refuse closes new connections at once while on.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Drop()
	p.wg.Wait()
}
