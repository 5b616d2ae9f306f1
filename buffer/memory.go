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
type Memory struct {
	opts Opts
	mu   sync.Mutex
	*book
	msgs    []memEntry // by seq
	bytes   int64
	last    uint64
	closed  bool
	scratch []byte
	// assign gives the next seq; the badger store's fallback queue uses the
	// store's own counter.
	assign func() uint64
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

func (s *Memory) over() bool {
	return (s.opts.MaxBytes > 0 && s.bytes > s.opts.MaxBytes) || (s.opts.MaxMessages > 0 && len(s.msgs) > s.opts.MaxMessages)
}

// enforce applies the caps: evict acknowledged messages oldest first, then
// drop readings, then events, and report the drops.
func (s *Memory) enforce() {
	now := s.opts.now()
	var dropped []uint64
	if s.opts.Retention > 0 {
		cut := now.Add(-s.opts.Retention)
		s.remove(func(e memEntry) bool { return !e.drop && e.m.Created.Before(cut) }, func() bool { return true }, &dropped)
	}
	if s.over() {
		s.remove(func(e memEntry) bool { return s.ackedByAll(e.m.Seq) }, s.over, nil)
		for c := 0; c < 2 && s.over(); c++ {
			s.remove(func(e memEntry) bool { return class(e.m.Kind, e.drop) == c }, s.over, &dropped)
		}
	}
	if len(dropped) > 0 {
		sort.Slice(dropped, func(i, j int) bool { return dropped[i] < dropped[j] })
		s.add(s.recordDrop(dropped, "memory buffer full or over age", now), false)
	}
}

// remove deletes, oldest first while more() holds, the entries pick selects.
// Entries not acknowledged by every uplink are added to dropped (when given;
// otherwise only acknowledged ones may be picked).
func (s *Memory) remove(pick func(memEntry) bool, more func() bool, dropped *[]uint64) {
	kept := s.msgs[:0]
	var gone []uint64
	for i, e := range s.msgs {
		if !more() {
			kept = append(kept, s.msgs[i:]...)
			break
		}
		if !pick(e) {
			kept = append(kept, e)
			continue
		}
		s.bytes -= e.size
		gone = append(gone, e.m.Seq)
		if dropped != nil && !s.ackedByAll(e.m.Seq) {
			*dropped = append(*dropped, e.m.Seq)
		}
	}
	clear(s.msgs[len(kept):])
	s.msgs = kept
	for _, r := range rangesOf(gone) {
		s.gone(r.First, r.Last)
	}
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
	for i := s.index(from); i < len(s.msgs) && len(out) < max; i++ {
		m := s.msgs[i].m
		if to != 0 && m.Seq >= to {
			break
		}
		if !a.Contains(m.Seq) {
			out = append(out, m)
		}
	}
	return out, nil
}

func (s *Memory) Ack(uplink string, seqs ...uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.ackSet(uplink)
	if err != nil {
		return err
	}
	for _, q := range seqs {
		a.Add(q)
	}
	return nil
}

func (s *Memory) Between(from, to time.Time, fn func(*edge.Message) bool) error {
	s.mu.Lock()
	var sel []*edge.Message
	for _, e := range s.msgs {
		if !e.m.Created.Before(from) && e.m.Created.Before(to) {
			sel = append(sel, e.m)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(sel, func(i, j int) bool { return sel[i].Created.Before(sel[j].Created) })
	for _, m := range sel {
		if !fn(m) {
			break
		}
	}
	return nil
}

func (s *Memory) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *Memory) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Messages: uint64(len(s.msgs)), Bytes: s.bytes, LastSeq: s.last, Uplinks: map[string]UplinkStats{},
		Dropped: s.dropped, DroppedRanges: append([]edge.SeqRange(nil), s.ranges...), MemoryQueued: len(s.msgs),
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

// take removes and returns every message (oldest first); used to move the
// memory queue into the database once the disk is usable again.
func (s *Memory) take() []*edge.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
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
func newQueue(max int, b *book, assign func() uint64) *Memory {
	return &Memory{opts: Opts{MaxMessages: max}, book: b, assign: assign}
}
