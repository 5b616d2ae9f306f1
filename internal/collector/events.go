package collector

import (
	"sync"

	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/jsonfmt"
)

// RecentEvents is how many of the last events Status carries (the local
// page's "recent events"); the buffer and the audit log keep them all.
const RecentEvents = 50

// EventStatus is one recent event as Status shows it (newest first).
// Durable is false when its append failed (it went to the memory queue).
type EventStatus struct {
	Seq       uint64 `json:"seq"`
	ID        string `json:"id"`
	TS        string `json:"ts"`
	Type      string `json:"type"`
	State     string `json:"state"`
	Point     string `json:"point,omitempty"`
	Interlock string `json:"interlock,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Level     string `json:"level,omitempty"`
	Value     any    `json:"value,omitempty"`
	Unit      string `json:"unit,omitempty"`
	Message   string `json:"message,omitempty"`
	Durable   bool   `json:"durable"`
}

// eventRing keeps the last RecentEvents events that went through the
// appender. add is called from the appender's goroutine: it formats and
// copies under a mutex, nothing more (no I/O).
type eventRing struct {
	mu   sync.Mutex
	buf  [RecentEvents]EventStatus
	next int
	n    int
}

func (r *eventRing) add(enc *jsonfmt.Encoder, gateway string, m *edge.Message, err error) {
	if m == nil || len(m.Events) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range m.Events {
		es := EventStatus{Seq: m.Seq, ID: e.ID, Type: e.Type.String(), State: e.State, Point: e.Point, Interlock: e.Interlock,
			Subject: e.Subject, Level: e.Level, Value: plainValue(e.Value), Unit: e.Unit, Message: e.Message, Durable: err == nil}
		if es.ID == "" {
			es.ID = edge.EventID(gateway, m.Seq, i)
		}
		if p := enc.TimePtr(e.TS); p != nil {
			es.TS = *p
		}
		r.buf[r.next] = es
		r.next = (r.next + 1) % RecentEvents
		r.n = min(r.n+1, RecentEvents)
	}
}

// recent returns the kept events, newest first (never nil).
func (r *eventRing) recent() []EventStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]EventStatus, 0, r.n)
	for i := 1; i <= r.n; i++ {
		out = append(out, r.buf[(r.next-i+RecentEvents)%RecentEvents])
	}
	return out
}

// plainValue is a reading's value for JSON: a number, a bool, a string or
// nil.
func plainValue(v edge.Value) any {
	switch v.Kind {
	case edge.Number:
		return v.Num
	case edge.Bool:
		return v.Bool
	case edge.String:
		return v.Str
	}
	return nil
}
