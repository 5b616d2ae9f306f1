package buffer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hazwatch/edgecollector/edge"
)

// Store is the buffer as its users see it: the appender appends, each uplink
// reads what it has not had acknowledged and acknowledges by seq.
type Store interface {
	// Append assigns the next seqs to msgs, in order, and stores them. For a
	// durable store it returns once they are synced.
	Append(ctx context.Context, msgs ...*edge.Message) error
	// Unacked returns up to max messages with from <= seq < to (to == 0: no
	// bound) that uplink has not acknowledged, oldest first.
	Unacked(uplink string, from, to uint64, max int) ([]*edge.Message, error)
	// Ack records that uplink's platform has these messages.
	Ack(uplink string, seqs ...uint64) error
	// Between calls fn for each stored message of kind (0: any) created in
	// [from, to), in seq order (creation order, but for clock steps),
	// until fn returns false. It streams: a message of another kind is
	// never decoded, and only a small batch is held at once, so a day's
	// history request costs a bounded amount of memory.
	Between(from, to time.Time, kind edge.Kind, fn func(*edge.Message) bool) error
	// LastSeq is the highest seq assigned so far.
	LastSeq() uint64
	// Appended returns a channel closed at the next append.
	Appended() <-chan struct{}
	// Rescan returns a channel closed when messages may have appeared below
	// seqs already read (a database opened or recovered): an uplink then
	// reads its backlog again from the lowest unacknowledged seq.
	Rescan() <-chan struct{}
	Stats() Stats
	Close() error
}

// Stats describes the buffer for status messages and metrics.
type Stats struct {
	Durable  bool   // false while messages are only held in memory
	Degraded string // why not durable, "" when durable
	Messages uint64 // messages stored
	Bytes    int64  // their encoded size
	LastSeq  uint64
	Oldest   time.Time // creation time of the oldest stored message: the effective retention
	Uplinks  map[string]UplinkStats
	// Dropped counts messages removed before every uplink had them; the
	// last 32 dropped ranges are kept.
	Dropped       uint64
	DroppedRanges []edge.SeqRange
	MemoryQueued  int // messages held only in memory
}

// UplinkStats is one uplink's view of the buffer.
type UplinkStats struct {
	Depth         uint64    // messages not yet acknowledged
	OldestUnacked time.Time // zero when none
}

// Opts are the settings both stores share.
type Opts struct {
	// Uplinks names every uplink that must acknowledge a message before it
	// can be evicted without loss.
	Uplinks []string
	// MaxBytes caps the encoded size of stored messages (0 = no cap).
	MaxBytes int64
	// MaxMessages caps their number (0 = no cap).
	MaxMessages int
	// Retention is how long messages are kept (0 = forever).
	Retention time.Duration
	// Location for decoded times (nil = UTC).
	Location *time.Location
	// Now is the clock (nil = time.Now).
	Now func() time.Time
}

func (o *Opts) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// keepDropRanges is how many dropped ranges status carries.
const keepDropRanges = 32

// book is the bookkeeping both stores share: acknowledgement sets, drop
// accounting and the append notification.
type book struct {
	acks    map[string]*ackSet
	uplinks []string
	dropped uint64
	ranges  []edge.SeqRange
	notify  chan struct{}
	mu      sync.Mutex // guards notify only
	rescanSignal
}

func newBook(uplinks []string) *book {
	b := &book{acks: map[string]*ackSet{}, uplinks: uplinks, notify: make(chan struct{})}
	for _, u := range uplinks {
		b.acks[u] = &ackSet{}
	}
	return b
}

func (b *book) ackSet(uplink string) (*ackSet, error) {
	a := b.acks[uplink]
	if a == nil {
		return nil, fmt.Errorf("buffer: unknown uplink %q (known: %s)", uplink, strings.Join(b.uplinks, ", "))
	}
	return a, nil
}

// ackedByAll reports whether every uplink has acknowledged seq.
func (b *book) ackedByAll(seq uint64) bool {
	for _, a := range b.acks {
		if !a.Contains(seq) {
			return false
		}
	}
	return true
}

// gone marks seqs that no longer exist as acknowledged everywhere, so the
// sets collapse to a few ranges.
func (b *book) gone(first, last uint64) {
	for _, a := range b.acks {
		a.AddRange(first, last)
	}
}

func (b *book) Appended() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.notify
}

func (b *book) signal() {
	b.mu.Lock()
	close(b.notify)
	b.notify = make(chan struct{})
	b.mu.Unlock()
}

// rangesOf folds sorted seqs into ranges.
func rangesOf(seqs []uint64) []edge.SeqRange {
	var rs []edge.SeqRange
	for _, s := range seqs {
		if n := len(rs); n > 0 && rs[n-1].Last+1 == s {
			rs[n-1].Last = s
			continue
		}
		rs = append(rs, edge.SeqRange{First: s, Last: s})
	}
	return rs
}

// bookDrop counts dropped seqs for status.
func (b *book) bookDrop(rs []edge.SeqRange, count uint64) {
	b.dropped += count
	b.ranges = append(b.ranges, rs...)
	if n := len(b.ranges); n > keepDropRanges {
		b.ranges = append([]edge.SeqRange(nil), b.ranges[n-keepDropRanges:]...)
	}
}

// recordDropRanges books dropped seqs and returns the event message
// reporting them; detail says what happened.
func (b *book) recordDropRanges(rs []edge.SeqRange, count uint64, reason string, now time.Time, detail string) *edge.Message {
	b.bookDrop(rs, count)
	m := DropEvent(rs, count, reason, now)
	if detail != "" {
		m.Events[0].Message += "; " + detail
	}
	return m
}

// Drop reasons, as DESIGN.md names them.
const (
	ReasonCap     = "cap"
	ReasonAge     = "age"
	ReasonQueue   = "queue"
	ReasonMemory  = "memory"
	ReasonCorrupt = "corrupt"
)

// DropEvent is the system buffer_dropped event message for these ranges.
func DropEvent(rs []edge.SeqRange, count uint64, reason string, now time.Time) *edge.Message {
	return &edge.Message{Kind: edge.KindEvent, Created: now, Events: []edge.Event{{
		Type: edge.EventSystem, State: edge.StateBufferDropped, Subject: "buffer", TS: now,
		Ranges: rs, Count: count, Reason: reason,
		Message: fmt.Sprintf("%d messages dropped (%s): seq %s", count, reason, rangesText(rs)),
	}}}
}

// rangesText lists ranges, the first 32 of them in full.
func rangesText(rs []edge.SeqRange) string {
	parts := make([]string, 0, min(len(rs), 33))
	for i, r := range rs {
		if i == 32 {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(rs)-32))
			break
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// isDropEvent reports whether m reports a drop; such messages are never
// dropped themselves.
func isDropEvent(m *edge.Message) bool {
	return m.Kind == edge.KindEvent && len(m.Events) == 1 && m.Events[0].Type == edge.EventSystem && m.Events[0].State == edge.StateBufferDropped
}

// dropOrder is the order in which classes are dropped: readings and
// statistics, then drop reports (their ranges carried into the next
// report), then events.
var dropOrder = [...]byte{0, 2, 1}

// class orders messages for dropping: readings and statistics first, then
// events, never drop reports.
func class(kind edge.Kind, dropReport bool) int {
	switch {
	case dropReport:
		return 2
	case kind == edge.KindEvent:
		return 1
	}
	return 0
}
