package uplink

import (
	"container/heap"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/backlograte"
)

// Opts configure a Delivery. Start from DefaultOpts.
type Opts struct {
	// Name is the buffer's uplink name (required).
	Name  string
	Store Store
	// Window is how many seqs may be written and awaiting their
	// confirmation (or hand-over) at once (default 32).
	Window int
	// BacklogRate caps the backlog and resends in messages per second (0:
	// unlimited). Live messages are never paced.
	BacklogRate float64
	// Timeout is how long a confirmation may take before the seq is sent
	// again (0: as long as the connection lasts).
	Timeout time.Duration
	// MaxResends is how many times a seq is sent again on one connection
	// after Timeout before the connection is given up (negative:
	// unlimited).
	MaxResends int
	// ReconnectMin/Max bound the reconnect back-off (1s, 60s), with jitter.
	ReconnectMin, ReconnectMax time.Duration
	Logger                     *slog.Logger
}

// DefaultOpts are the documented defaults; set Name and Store.
func DefaultOpts() Opts {
	return Opts{Window: 32, MaxResends: -1, ReconnectMin: time.Second, ReconnectMax: 60 * time.Second}
}

// Stats count an uplink's work; one type for every transport.
type Stats struct {
	Connected bool
	Connects  uint64
	Since     time.Time // when the current (or last) connection came up
	LastError string
	Sent      uint64 // packets or publishes written, first sends and resends
	Resent    uint64 // of which marked as resends
	Acked     uint64 // seqs acknowledged in the buffer
	Skipped   uint64 // seqs acknowledged without sending: nothing of them goes to this platform
	Timeouts  uint64 // connections given up after MaxResends went unconfirmed
	Commands  uint64 // platform commands answered (HJ 212)
	// AcksIgnored counts seqs the platform acknowledged that were not sent
	// on the connection or not awaited there; AcksRejected counts
	// acknowledgements refused whole (too big, or not understood).
	AcksIgnored  uint64
	AcksRejected uint64
}

// ErrUnconfirmed is the error of a connection given up because a seq went
// unconfirmed after MaxResends resends.
var ErrUnconfirmed = errors.New("no confirmation from the platform")

// maxBatch bounds the seqs one Step handles before the transport's loop
// looks at the platform's answers again.
const maxBatch = 256

// Delivery is the delivery algorithm of one uplink: which seq goes next, with
// which resend mark, and when a seq may be acknowledged in the buffer. It
// lives across connections; Step, Confirm and Handed belong to the
// transport's connection loop (one goroutine), Stats may be read from any.
type Delivery struct {
	o   Opts
	log *slog.Logger
	// startSeq: seqs up to it were appended before this uplink started.
	startSeq uint64
	// sent holds the seqs written (or acknowledged) in this process.
	sent       seqSet
	timeout    time.Duration
	maxResends int

	mu sync.Mutex
	st Stats

	began time.Time
	// One connection's state.
	liveFrom, liveNext, backNext uint64
	pending                      map[uint64]*entry
	inWindow                     int
	resendQ                      []uint64 // timed out, sorted
	deadlines                    deadlineHeap
	bucket                       *backlograte.Limiter
	done                         []uint64 // to acknowledge at the end of the step
	appended, rescan             <-chan struct{}
	timer                        *time.Timer
}

// entry is a seq written on this connection and awaiting its confirmation.
type entry struct {
	m        *edge.Message // while in the window; read again for a resend after
	inWindow bool
	queued   bool // timed out, waiting in resendQ
	sends    int
	gen      int // of the deadline in force
}

// New checks the options and returns a delivery; the store's last seq now
// is the line below which seqs count as sent before.
func New(o Opts) (*Delivery, error) {
	d := DefaultOpts()
	if o.Name == "" || o.Store == nil {
		return nil, errors.New("uplink: Name and Store are required")
	}
	if o.Window <= 0 {
		o.Window = d.Window
	}
	if o.ReconnectMin <= 0 {
		o.ReconnectMin = d.ReconnectMin
	}
	if o.ReconnectMax < o.ReconnectMin {
		o.ReconnectMax = max(d.ReconnectMax, o.ReconnectMin)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Delivery{o: o, log: o.Logger, startSeq: o.Store.LastSeq(), timeout: o.Timeout, maxResends: o.MaxResends, timer: t}, nil
}

// Stats returns a copy of the counters.
func (d *Delivery) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st
}

// Update changes the counters (for what only the transport knows).
func (d *Delivery) Update(f func(*Stats)) {
	d.mu.Lock()
	f(&d.st)
	d.mu.Unlock()
}

// SetLimits changes Timeout and MaxResends for seqs sent from now on (HJ 212
// CN=1000).
func (d *Delivery) SetLimits(timeout time.Duration, maxResends int) {
	d.timeout, d.maxResends = timeout, maxResends
}

// Begin starts a connection's delivery: everything unacknowledged up to the
// store's last seq is the backlog, newer seqs are live.
func (d *Delivery) Begin() {
	d.liveFrom = d.o.Store.LastSeq() + 1
	d.liveNext, d.backNext = d.liveFrom, 1
	d.pending = map[uint64]*entry{}
	d.inWindow, d.resendQ, d.deadlines, d.done = 0, nil, nil, nil
	d.bucket = backlograte.New(d.o.BacklogRate)
	d.appended, d.rescan = nil, nil
	d.began = time.Now()
	d.Update(func(s *Stats) { s.Connected, s.Since = true, d.began; s.Connects++ })
}

// end forgets the connection's state; its unconfirmed seqs stay in the
// buffer and are marked as resends on the next connection.
func (d *Delivery) end(err error) {
	d.pending, d.resendQ, d.deadlines = nil, nil, nil
	d.timer.Stop()
	d.Update(func(s *Stats) { s.Connected = false; s.LastError = errString(err) })
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Waits are what the transport's loop selects on besides its own channels;
// when any fires, it calls Step again.
type Waits struct {
	Appended <-chan struct{}
	Rescan   <-chan struct{}
	Timer    <-chan time.Time // a timeout, the backlog rate, or more work
}

// Pending is how many seqs await confirmation on this connection.
func (d *Delivery) Pending() int { return len(d.pending) }

// Step does what is due: timeouts, a rescan, then sends what there is room
// for (live first, then resends and the backlog oldest first at the backlog
// rate). It returns what to wait for next. An error ends the connection.
func (d *Delivery) Step(send SendFunc) (Waits, error) {
	select {
	case <-d.rescan:
		d.log.Info("buffer recovered; reading the backlog again from the lowest unacknowledged seq")
		d.liveFrom, d.backNext = d.liveNext, 1
	default:
	}
	// Taken before reading, so that nothing appended meanwhile is missed.
	d.appended, d.rescan = d.o.Store.Appended(), d.o.Store.Rescan()
	if err := d.expire(time.Now()); err != nil {
		return Waits{}, err
	}
	more, err := d.fill(send)
	d.ack(d.done)
	d.done = d.done[:0]
	if err != nil {
		return Waits{}, err
	}
	w := Waits{Appended: d.appended, Rescan: d.rescan}
	wait, ok := time.Duration(0), more
	if !more {
		if len(d.deadlines) > 0 {
			wait, ok = max(0, time.Until(d.deadlines[0].at)), true
		}
		if d.bucket.Limited() && (d.backNext < d.liveFrom || len(d.resendQ) > 0) && (d.room() > 0 || len(d.resendQ) > 0) {
			if r := d.bucket.Wait(); !ok || r < wait {
				wait, ok = r, true
			}
		}
	}
	d.timer.Stop()
	if ok {
		d.timer.Reset(wait)
		w.Timer = d.timer.C
	}
	return w, nil
}

func (d *Delivery) room() int { return d.o.Window - d.inWindow }

func (d *Delivery) isResend(seq uint64) bool { return seq <= d.startSeq || d.sent.Contains(seq) }

// fill sends what there is room for; more reports that it stopped at
// maxBatch with room left.
func (d *Delivery) fill(send SendFunc) (more bool, err error) {
	handled := 0
	for handled < maxBatch {
		room := min(d.room(), maxBatch-handled)
		if room <= 0 {
			break
		}
		ms, err := d.o.Store.Unacked(d.o.Name, d.liveNext, 0, room)
		if err != nil {
			return false, fmt.Errorf("read buffer: %w", err)
		}
		for _, m := range ms {
			d.liveNext = m.Seq + 1
			if d.pending[m.Seq] == nil {
				if err := d.first(m, send); err != nil {
					return false, err
				}
			}
		}
		handled += len(ms)
		if len(ms) < room {
			break
		}
	}
	for len(d.resendQ) > 0 && handled < maxBatch {
		seq := d.resendQ[0]
		p := d.pending[seq]
		if p == nil || !p.queued {
			d.resendQ = d.resendQ[1:]
			continue
		}
		if (!p.inWindow && d.room() <= 0) || !d.bucket.Take() {
			break
		}
		d.resendQ = d.resendQ[1:]
		m := p.m
		if m == nil {
			ms, err := d.o.Store.Unacked(d.o.Name, seq, seq+1, 1)
			if err != nil {
				return false, fmt.Errorf("read buffer: %w", err)
			}
			if len(ms) == 0 {
				d.forget(seq, p)
				continue
			}
			m = ms[0]
		}
		handled++
		if err := d.again(m, p, send); err != nil {
			return false, err
		}
	}
	for d.backNext < d.liveFrom && handled < maxBatch {
		room := min(d.room(), maxBatch-handled, d.bucket.Available())
		if room <= 0 {
			break
		}
		ms, err := d.o.Store.Unacked(d.o.Name, d.backNext, d.liveFrom, room)
		if err != nil {
			return false, fmt.Errorf("read buffer: %w", err)
		}
		if len(ms) == 0 {
			d.backNext = d.liveFrom
			break
		}
		for _, m := range ms {
			d.backNext = m.Seq + 1
			if d.pending[m.Seq] == nil {
				d.bucket.Take()
				if err := d.first(m, send); err != nil {
					return false, err
				}
			}
		}
		handled += len(ms)
	}
	return handled >= maxBatch && d.room() > 0, nil
}

// first sends a seq not pending on this connection.
func (d *Delivery) first(m *edge.Message, send SendFunc) error {
	resend := d.isResend(m.Seq)
	d.sent.Add(m.Seq) // before the write: a failed write may have reached the platform
	s, err := send(m, resend)
	d.count(s, resend)
	if err != nil {
		return err
	}
	switch s.Outcome {
	case Done:
		d.done = append(d.done, m.Seq)
	case Await, HandOver:
		p := &entry{m: m, inWindow: true, sends: 1}
		d.pending[m.Seq] = p
		d.inWindow++
		if s.Outcome == Await {
			d.arm(m.Seq, p)
		}
	}
	return nil
}

// again sends a timed-out seq again.
func (d *Delivery) again(m *edge.Message, p *entry, send SendFunc) error {
	s, err := send(m, true)
	d.count(s, true)
	if err != nil {
		return err
	}
	p.queued = false
	p.sends++
	switch s.Outcome {
	case Done:
		d.forget(m.Seq, p)
		d.done = append(d.done, m.Seq)
	case Keep:
		d.forget(m.Seq, p)
	default:
		if !p.inWindow {
			p.inWindow, p.m = true, m
			d.inWindow++
		}
		if s.Outcome == Await {
			d.arm(m.Seq, p)
		}
	}
	return nil
}

func (d *Delivery) count(s Sent, resend bool) {
	if s.Packets == 0 && s.Outcome != Done {
		return
	}
	d.Update(func(st *Stats) {
		st.Sent += uint64(s.Packets)
		if resend {
			st.Resent += uint64(s.Packets)
		}
		if s.Packets == 0 {
			st.Skipped++
		}
	})
}

func (d *Delivery) forget(seq uint64, p *entry) {
	if p.inWindow {
		d.inWindow--
	}
	delete(d.pending, seq)
}

// arm starts the seq's confirmation timeout.
func (d *Delivery) arm(seq uint64, p *entry) {
	if d.timeout <= 0 {
		return
	}
	p.gen++
	heap.Push(&d.deadlines, deadline{at: time.Now().Add(d.timeout), seq: seq, e: p, gen: p.gen})
}

// expire queues for resending the seqs whose timeout ran out, and gives the
// connection up when one was sent MaxResends times again.
func (d *Delivery) expire(now time.Time) error {
	var late []uint64
	for len(d.deadlines) > 0 && !d.deadlines[0].at.After(now) {
		n := heap.Pop(&d.deadlines).(deadline)
		if d.pending[n.seq] != n.e || n.e.gen != n.gen || n.e.queued {
			continue // confirmed, or sent again since
		}
		if d.maxResends >= 0 && n.e.sends > d.maxResends {
			d.Update(func(s *Stats) { s.Timeouts++ })
			return fmt.Errorf("seq %d: %w after %d sends, %s apart; the next connection sends it again", n.seq, ErrUnconfirmed, n.e.sends, d.timeout)
		}
		n.e.queued = true
		late = append(late, n.seq)
	}
	if len(late) > 0 {
		slices.Sort(late)
		d.log.Warn("the platform did not confirm in time; sending again", "count", len(late), "first", late[0], "timeout", d.timeout)
		d.resendQ = append(d.resendQ, late...)
		slices.Sort(d.resendQ)
	}
	return nil
}

// Handed books a transport's hand-over (HandOver): the seq leaves the window
// and its confirmation timeout starts.
func (d *Delivery) Handed(seq uint64) {
	p := d.pending[seq]
	if p == nil || !p.inWindow || p.queued {
		return
	}
	p.inWindow, p.m = false, nil
	d.inWindow--
	d.arm(seq, p)
}

// maxLogged is how many ignored seqs a log line names.
const maxLogged = 8

// Confirm books the platform's confirmation of seqs and acknowledges them in
// the buffer: only seqs written on this connection and still awaited there.
// The others are ignored, logged and counted; it returns how many.
func (d *Delivery) Confirm(seqs ...uint64) (ignored int) {
	var ok, bad []uint64
	for _, s := range seqs {
		p := d.pending[s]
		if p == nil {
			if ignored++; len(bad) < maxLogged {
				bad = append(bad, s)
			}
			continue
		}
		d.forget(s, p)
		ok = append(ok, s)
	}
	d.ack(ok)
	if ignored > 0 {
		d.Update(func(st *Stats) { st.AcksIgnored += uint64(ignored) })
		d.log.Warn("the platform acknowledged seqs not awaited on this connection; ignored", "count", ignored, "seqs", bad)
	}
	return ignored
}

// ack acknowledges seqs in the buffer.
func (d *Delivery) ack(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	if err := d.o.Store.Ack(d.o.Name, seqs...); err != nil {
		d.log.Error("cannot record acknowledgements in the buffer; they will be sent again", "err", err, "first", seqs[0], "count", len(seqs))
		return
	}
	d.Update(func(s *Stats) { s.Acked += uint64(len(seqs)) })
}

// deadline is one confirmation timeout; stale ones (confirmed or re-armed)
// are skipped when they come up.
type deadline struct {
	at  time.Time
	seq uint64
	e   *entry
	gen int
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
