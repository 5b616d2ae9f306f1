package edge

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// recordSink records each append call and when it came.
type recordSink struct {
	mu     sync.Mutex
	calls  [][]*Message
	at     []time.Time
	called chan struct{}
}

func newRecordSink() *recordSink { return &recordSink{called: make(chan struct{}, 100)} }

func (s *recordSink) Append(_ context.Context, msgs ...*Message) error {
	s.mu.Lock()
	s.calls = append(s.calls, append([]*Message(nil), msgs...))
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	s.called <- struct{}{}
	return nil
}

func (s *recordSink) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.called:
	case <-time.After(5 * time.Second):
		t.Fatal("no append within 5s")
	}
}

func (s *recordSink) snapshot() ([][]*Message, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]*Message(nil), s.calls...), append([]time.Time(nil), s.at...)
}

func rt(n int) *Message {
	return &Message{Kind: KindRT, Created: time.Now(), Readings: make([]Reading, n)}
}

func event() *Message {
	now := time.Now()
	return &Message{Kind: KindEvent, Created: now, Events: []Event{{Type: EventAlarm, State: StateRaised, Point: "GT-1", TS: now}}}
}

func startAppender(t *testing.T, a *Appender) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	return func() { cancel(); <-done }
}

func TestAppenderCommitWindow(t *testing.T) {
	defer goleak.VerifyNone(t)
	const window = 300 * time.Millisecond
	tests := []struct {
		name      string
		window    time.Duration
		batch     int
		put       [][]*Message // each entry one PutAll, 20 ms apart
		wantCalls []int        // messages per append call
		waited    bool         // the first call came after the window
	}{
		{name: "readings share one sync after the window", window: window,
			put: [][]*Message{{rt(3), rt(3)}, {rt(3)}, {rt(3)}}, wantCalls: []int{4}, waited: true},
		{name: "an event goes at once with the readings before it", window: 10 * time.Second,
			put: [][]*Message{{rt(3)}, {rt(3)}, {event()}}, wantCalls: []int{3}},
		{name: "a full batch goes at once", window: 10 * time.Second, batch: 3,
			put: [][]*Message{{rt(1), rt(1)}, {rt(1)}}, wantCalls: []int{3}},
		{name: "no window: every wake-up appends", window: 0,
			put: [][]*Message{{rt(1), rt(1)}}, wantCalls: []int{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(100)
			sink := newRecordSink()
			stop := startAppender(t, &Appender{Queue: q, Sink: sink, CommitInterval: tc.window, Batch: tc.batch})
			defer stop()
			start := time.Now()
			for i, ms := range tc.put {
				if i > 0 {
					time.Sleep(20 * time.Millisecond)
				}
				q.PutAll(ms...)
			}
			for range tc.wantCalls {
				sink.wait(t)
			}
			calls, at := sink.snapshot()
			if len(calls) != len(tc.wantCalls) {
				t.Fatalf("%d append calls, want %d", len(calls), len(tc.wantCalls))
			}
			for i, c := range calls {
				if len(c) != tc.wantCalls[i] {
					t.Errorf("append %d had %d messages, want %d", i, len(c), tc.wantCalls[i])
				}
			}
			d := at[0].Sub(start)
			if tc.waited && d < tc.window {
				t.Errorf("first append after %s, before the %s window", d, tc.window)
			}
			if !tc.waited && d > 2*time.Second {
				t.Errorf("first append after %s: it waited for the window", d)
			}
		})
	}
}

// Stopping the appender appends what waits in its window: nothing queued is
// left behind at shutdown.
func TestAppenderFlushesWindowOnStop(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := NewQueue(100)
	sink := newRecordSink()
	stop := startAppender(t, &Appender{Queue: q, Sink: sink, CommitInterval: time.Hour})
	q.PutAll(rt(2), rt(2))
	time.Sleep(50 * time.Millisecond)
	if calls, _ := sink.snapshot(); len(calls) != 0 {
		t.Fatalf("appended %d batches before the window ended", len(calls))
	}
	stop()
	calls, _ := sink.snapshot()
	if len(calls) != 1 || len(calls[0]) != 2 {
		t.Fatalf("after stop: %d append calls (%v), want one of 2 messages", len(calls), calls)
	}
}

// A drop report is an event: it ends the window.
func TestAppenderDropReportEndsWindow(t *testing.T) {
	defer goleak.VerifyNone(t)
	q := NewQueue(2)
	sink := newRecordSink()
	stop := startAppender(t, &Appender{Queue: q, Sink: sink, CommitInterval: 10 * time.Second, Batch: 64})
	defer stop()
	q.PutAll(rt(1), rt(1), rt(1)) // one dropped
	sink.wait(t)
	calls, _ := sink.snapshot()
	if len(calls[0]) != 3 || calls[0][0].Kind != KindEvent || calls[0][0].Events[0].State != StateBufferDropped {
		t.Fatalf("first append %v, want the drop report and the 2 kept messages", calls[0])
	}
}

// Readings that arrive in the last twentieth of a commit window end it at
// once, in their own wake-up (a poll as long as the window arrives a
// moment before it would end); earlier ones wait for the window.
func TestAppenderWindowEndsWithReadingsNearItsEnd(t *testing.T) {
	const window = time.Second
	for _, tc := range []struct {
		name   string
		second time.Duration // when the second put comes, after the first
		at     time.Duration // when the one append comes
	}{
		{"just before the end: at once, with them", 960 * time.Millisecond, 960 * time.Millisecond},
		{"mid-window: they wait for its end", 500 * time.Millisecond, window},
		{"just outside the last twentieth: they wait", 940 * time.Millisecond, window},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := NewQueue(100)
				sink := newRecordSink()
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() { defer close(done); (&Appender{Queue: q, Sink: sink, CommitInterval: window}).Run(ctx) }()
				start := time.Now()
				q.PutAll(rt(3))
				time.Sleep(tc.second)
				q.PutAll(rt(3))
				<-sink.called
				calls, at := sink.snapshot()
				if len(calls) != 1 || len(calls[0]) != 2 {
					t.Fatalf("%d append calls %v, want one with both messages", len(calls), calls)
				}
				if got := at[0].Sub(start); got != tc.at {
					t.Errorf("appended at %s, want %s", got, tc.at)
				}
				cancel()
				<-done
			})
		})
	}
}
