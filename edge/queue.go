package edge

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Queue is the bounded hand-off from the poll groups to the appender. Put
// never blocks: when the queue is full the oldest readings make room
// (events go last), and every drop is counted for a buffer_dropped report.
type Queue struct {
	mu    sync.Mutex
	items []*Message
	max   int
	ready chan struct{}
	drops queueDrops
	// dropped counts every message dropped since the queue was made.
	dropped uint64
}

type queueDrops struct {
	messages, readings, events int
	first, last                time.Time
}

// NewQueue returns a queue holding at most max messages.
// Hand-off defaults (config takes its numbers from here): the queue's
// bound, a tick's message size, the group commit window.
const (
	DefaultQueue           = 1024
	DefaultMaxMessageBytes = 65536
	DefaultCommitInterval  = time.Second
)

func NewQueue(max int) *Queue {
	return &Queue{max: max, ready: make(chan struct{}, 1)}
}

// Put adds m, dropping the oldest readings message (or, when the queue
// holds only events, the oldest event) if the queue is full.
func (q *Queue) Put(m *Message) { q.PutAll(m) }

// PutAll puts ms in order, waking the appender once: a tick's messages
// reach the buffer in one append, under one sync.
func (q *Queue) PutAll(ms ...*Message) {
	if len(ms) == 0 {
		return
	}
	q.mu.Lock()
	for _, m := range ms {
		q.put(m)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *Queue) put(m *Message) {
	if len(q.items) >= q.max {
		victim := -1
		for i, x := range q.items {
			if !x.Important() {
				victim = i
				break
			}
		}
		if victim < 0 && !m.Important() {
			q.drop(m)
			return
		}
		if victim < 0 {
			victim = 0
		}
		q.drop(q.items[victim])
		q.items = append(q.items[:victim], q.items[victim+1:]...)
	}
	q.items = append(q.items, m)
}

func (q *Queue) drop(m *Message) {
	d := &q.drops
	if d.messages == 0 || m.Created.Before(d.first) {
		d.first = m.Created
	}
	if m.Created.After(d.last) {
		d.last = m.Created
	}
	d.messages++
	q.dropped++
	d.readings += len(m.Readings)
	d.events += len(m.Events)
}

// Ready is signalled after a Put.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take removes up to n messages, oldest first. When messages were dropped
// since the last Take, the first message returned reports them.
func (q *Queue) Take(n int) []*Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*Message
	if d := q.drops; d.messages > 0 {
		now := time.Now()
		out = append(out, &Message{Kind: KindEvent, Created: now, Events: []Event{{
			Type: EventSystem, State: StateBufferDropped, Subject: "appender_queue", TS: now, Count: uint64(d.messages), Reason: "queue",
			Message: fmt.Sprintf("appender queue full: %d messages (%d readings, %d events) created %s to %s were dropped before they got a seq",
				d.messages, d.readings, d.events, d.first.Format(time.RFC3339Nano), d.last.Format(time.RFC3339Nano)),
		}}})
		q.drops = queueDrops{}
	}
	k := min(n, len(q.items))
	out = append(out, q.items[:k]...)
	q.items = append(q.items[:0], q.items[k:]...)
	return out
}

// urgent reports whether the waiting messages should be appended now,
// without waiting for a commit window: an event or a drop report is
// waiting, or a full batch is.
func (q *Queue) urgent(batch int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.drops.messages > 0 || len(q.items) >= batch {
		return true
	}
	for _, m := range q.items {
		if m.Important() {
			return true
		}
	}
	return false
}

// Dropped is the number of messages dropped since the queue was made.
func (q *Queue) Dropped() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

// Len is the number of messages waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// Sink is where the appender puts messages: the buffer.
type Sink interface {
	Append(ctx context.Context, msgs ...*Message) error
}

// Appender moves messages from the queue into the buffer, several per
// append, so one sync covers them.
//
// With a CommitInterval, readings wait in the queue up to that long so that
// the ticks of that time share one append and one sync (group commit): the
// sync, not the bytes, is most of what a durable append costs. Events (and
// drop reports) never wait: they are appended at once with whatever is
// queued before them. Readings not yet appended are not yet durable and not
// yet sent; the interval bounds both.
type Appender struct {
	Queue  *Queue
	Sink   Sink
	Logger *slog.Logger
	// OnAppend is called with each appended message (tests and the demo).
	OnAppend func(*Message, error)
	// OnBatch is called once per append call, after it returned.
	OnBatch func([]*Message, error)
	// Batch is the most messages per append (default 64); a full batch is
	// appended without waiting for the commit window.
	Batch int
	// CommitInterval is the most time a readings message waits for others
	// to share its sync (0: append on every wake-up).
	CommitInterval time.Duration
}

// commitEarly: readings that arrive in the last 1/commitEarly of a commit
// window end it. With polls as long as the window (1 s, the default), the
// next tick's readings arrive a moment before the window would end: they
// share the commit, made in their own wake-up, where the window's timer
// made one of its own a millisecond later. It only ever commits earlier
// than the window promises.
const commitEarly = 20

// Run appends until ctx ends, then appends what is left in the queue.
func (a *Appender) Run(ctx context.Context) error {
	if a.Batch <= 0 {
		a.Batch = 64
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lastWarn time.Time
	flush := func(actx context.Context) {
		for {
			batch := a.Queue.Take(a.Batch)
			if len(batch) == 0 {
				return
			}
			err := a.Sink.Append(actx, batch...)
			if err != nil && time.Since(lastWarn) > 10*time.Second {
				lastWarn = time.Now()
				log.Warn("append: messages are not durable", "err", err)
			}
			if a.OnBatch != nil {
				a.OnBatch(batch, err)
			}
			if a.OnAppend != nil {
				for _, m := range batch {
					a.OnAppend(m, err)
				}
			}
		}
	}
	// window runs while queued readings wait for others to share their
	// sync; windowC is nil when it does not. A window that ends within
	// commitEarly of new readings arriving ends with them, in the wake-up
	// they came with, not in one of its own a moment later.
	var window *time.Timer
	var windowC <-chan time.Time
	var windowEnd time.Time
	if a.CommitInterval > 0 {
		window = time.NewTimer(a.CommitInterval)
		window.Stop()
		defer window.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			flush(context.Background())
			return nil
		case <-windowC:
			windowC = nil
		case <-a.Queue.Ready():
			if window != nil && !a.Queue.urgent(a.Batch) {
				if windowC == nil {
					window.Reset(a.CommitInterval)
					windowC = window.C
					windowEnd = time.Now().Add(a.CommitInterval)
					continue
				}
				if time.Until(windowEnd) > a.CommitInterval/commitEarly {
					continue
				}
			}
			if windowC != nil {
				window.Stop()
				windowC = nil
			}
		}
		flush(ctx)
	}
}
