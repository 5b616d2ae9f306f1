package buffer

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// Memory is a Store that keeps messages in memory only: the contract twin of
// the badger store, and the bounded queue that holds messages while the disk
// is unusable. Nothing in it survives a restart.
//
// It never holds more than MaxMessages entries. An overflow drops the oldest
// readings one by one (then events, then drop reports), and all drops since
// the last report was read are named by one pending buffer_dropped report,
// updated in place, that has no seq until it is read (sent) or moved into the
// database.
type Memory struct {
	opts Opts
	mu   sync.Mutex
	*book
	msgs    []memEntry // by seq
	bytes   int64
	last    uint64
	closed  bool
	scratch []byte
	// pending is the drop report not yet read: no seq, updated in place.
	pending      *edge.Message
	pendingSet   ackSet
	pendingCount uint64
	pendingSize  int64
	// assign gives the next seq and peek tells it without taking it; the
	// badger store's fallback queue uses the store's own counter.
	assign, peek func() uint64
}

type memEntry struct {
	m    *edge.Message
	size int64
	drop bool // a drop report
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty memory store whose first seq is after+1.
func NewMemory(opts Opts, after uint64) *Memory {
	s := &Memory{opts: opts, book: newBook(opts.Uplinks), last: after}
	s.assign = func() uint64 { return s.last + 1 }
	s.peek = s.assign
	return s
}

// ErrClosed is returned by a closed store.
var ErrClosed = errors.New("buffer: closed")

func (s *Memory) Append(ctx context.Context, msgs ...*edge.Message) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	for _, m := range msgs {
		s.add(m, false)
	}
	s.enforce()
	s.mu.Unlock()
	s.signal()
	return nil
}

// add assigns the next seq (unless keepSeq) and stores m.
func (s *Memory) add(m *edge.Message, keepSeq bool) {
	if !keepSeq {
		m.Seq = s.assign()
	}
	s.last = max(s.last, m.Seq)
	s.scratch = EncodeRecord(s.scratch[:0], m)
	e := memEntry{m: m, size: int64(len(s.scratch)) + 8, drop: isDropEvent(m)}
	s.msgs = append(s.msgs, e)
	s.bytes += e.size
}

// over reports whether the store is above a cap once n more entries of
// freed bytes are gone. The pending drop report counts as an entry.
func (s *Memory) over(n int, freed int64) bool {
	entries, bytes := len(s.msgs)-n, s.bytes-freed+s.pendingSize
	if s.pending != nil {
		entries++
	}
	return (s.opts.MaxBytes > 0 && bytes > s.opts.MaxBytes) || (s.opts.MaxMessages > 0 && entries > s.opts.MaxMessages)
}

// enforce applies the age and the caps: evict acknowledged messages oldest
// first, then drop readings, then drop reports (whose ranges move into the
// pending report), then events, one at a time until under the caps.
func (s *Memory) enforce() {
	now := s.opts.now()
	if s.opts.Retention > 0 {
		cut := now.Add(-s.opts.Retention)
		s.remove(func(e memEntry) bool { return !e.drop && e.m.Created.Before(cut) }, false, now)
	}
	// A drop creates the pending report, which takes an entry itself: go
	// round again until under the caps.
	for s.over(0, 0) {
		n := s.remove(func(e memEntry) bool { return s.ackedByAll(e.m.Seq) }, true, now)
		for _, c := range dropOrder {
			if n > 0 {
				break
			}
			n = s.remove(func(e memEntry) bool { return class(e.m.Kind, e.drop) == int(c) }, true, now)
		}
		if n == 0 {
			return // only the pending report is left
		}
	}
}

// remove deletes, oldest first, the entries pick selects (while over a cap
// when capped). Unacknowledged ones are dropped and named in the pending
// report.
func (s *Memory) remove(pick func(memEntry) bool, capped bool, now time.Time) int {
	if capped && !s.over(0, 0) {
		return 0
	}
	kept := s.msgs[:0]
	var gone, dropped []uint64
	var merged []edge.SeqRange
	n, freed := 0, int64(0)
	for i, e := range s.msgs {
		if capped && !s.over(n, freed) {
			kept = append(kept, s.msgs[i:]...)
			break
		}
		if !pick(e) {
			kept = append(kept, e)
			continue
		}
		n++
		freed += e.size
		gone = append(gone, e.m.Seq)
		switch {
		case e.drop:
			merged = append(merged, e.m.Events[0].Ranges...) // named again, cumulatively
		case !s.ackedByAll(e.m.Seq):
			dropped = append(dropped, e.m.Seq)
		}
	}
	clear(s.msgs[len(kept):])
	s.msgs = kept
	s.bytes -= freed
	for _, r := range rangesOf(gone) {
		s.gone(r.First, r.Last)
	}
	if len(dropped) > 0 || len(merged) > 0 {
		s.addPending(rangesOf(dropped), uint64(len(dropped)), merged, now)
	}
	return n
}

// addPending names newly dropped seqs (and the ranges of dropped reports) in
// the pending report.
func (s *Memory) addPending(rs []edge.SeqRange, n uint64, again []edge.SeqRange, now time.Time) {
	if n > 0 {
		s.bookDrop(rs, n)
	}
	for _, r := range append(rs, again...) {
		s.pendingSet.AddRange(r.First, r.Last)
	}
	s.pendingCount = 0
	for _, r := range s.pendingSet.r {
		s.pendingCount += r.Count()
	}
	s.pending = DropEvent(append([]edge.SeqRange(nil), s.pendingSet.r...), s.pendingCount, ReasonMemory, now)
	s.scratch = EncodeRecord(s.scratch[:0], s.pending)
	s.pendingSize = int64(len(s.scratch)) + 8
}

// flushPending gives the pending report its seq and stores it.
func (s *Memory) flushPending() {
	if s.pending == nil {
		return
	}
	p := s.pending
	s.pending, s.pendingSet, s.pendingCount, s.pendingSize = nil, ackSet{}, 0, 0
	s.add(p, false)
}

func (s *Memory) index(seq uint64) int {
	return sort.Search(len(s.msgs), func(i int) bool { return s.msgs[i].m.Seq >= seq })
}

func (s *Memory) Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return nil, err
	}
	var out []*edge.Message
	scan := func(i int) {
		for ; i < len(s.msgs) && len(out) < max; i++ {
			m := s.msgs[i].m
			if to != 0 && m.Seq >= to {
				break
			}
			if !a.Contains(m.Seq) {
				out = append(out, m)
			}
		}
	}
	scan(s.index(from))
	if s.pending != nil && len(out) < max && max > 0 && (to == 0 || s.peek() < to) {
		// Read means sent: the report gets its seq now and is not changed
		// again.
		n := len(s.msgs)
		s.flushPending()
		scan(n)
	}
	return out, nil
}

// Ack records acknowledgements. Seqs never issued (0 or above the last) are
// ignored, as the badger store does.
func (s *Memory) Ack(uplink string, seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return err
	}
	for _, q := range seqs {
		if q > 0 && q <= s.last {
			a.Add(q)
		}
	}
	return nil
}

func (s *Memory) Between(from, to time.Time, kind edge.Kind, fn func(*edge.Message) bool) error {
	s.mu.Lock()
	var sel []*edge.Message
	for _, e := range s.msgs {
		if (kind == 0 || e.m.Kind == kind) && !e.m.Created.Before(from) && e.m.Created.Before(to) {
			sel = append(sel, e.m)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Seq < sel[j].Seq })
	for _, m := range sel {
		if !fn(m) {
			break
		}
	}
	return nil
}

// Rescan never fires: nothing appears below what a memory store has
// issued (its channel is never closed).
func (s *Memory) Rescan() <-chan struct{} { return nil }

func (s *Memory) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Memory) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.lenLocked()
	st := Stats{Messages: uint64(n), Bytes: s.bytes + s.pendingSize, LastSeq: s.last, Uplinks: map[string]UplinkStats{},
		Dropped: s.dropped, DroppedRanges: append([]edge.SeqRange(nil), s.ranges...), MemoryQueued: n,
		Degraded: "memory store"}
	if len(s.msgs) > 0 {
		st.Oldest = s.msgs[0].m.Created
	}
	for u, a := range s.acks {
		var us UplinkStats
		for _, e := range s.msgs {
			if !a.Contains(e.m.Seq) {
				if us.Depth == 0 {
					us.OldestUnacked = e.m.Created
				}
				us.Depth++
			}
		}
		st.Uplinks[u] = us
	}
	return st
}

func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Len is the number of messages held, the pending drop report included.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lenLocked()
}

func (s *Memory) lenLocked() int {
	if s.pending != nil {
		return len(s.msgs) + 1
	}
	return len(s.msgs)
}

// take removes and returns every message (oldest first), the pending
// report with its seq; used to move the memory queue into the database once
// the disk is usable again.
func (s *Memory) take() []*edge.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushPending()
	out := make([]*edge.Message, len(s.msgs))
	for i, e := range s.msgs {
		out[i] = e.m
	}
	s.msgs, s.bytes = nil, 0
	return out
}

// newQueue returns the memory queue of a badger store: it shares the store's
// acknowledgement book and seq counter, and is only used under the store's
// lock.
func newQueue(max int, b *book, assign, peek func() uint64) *Memory {
	return &Memory{opts: Opts{MaxMessages: max}, book: b, assign: assign, peek: peek}
}
