package edge

import (
	"context"
	"math"
	"sync"
	"time"
	"unicode/utf8"
)

// GroupSource is one device's points in a poll group.
type GroupSource struct {
	// Device names the source in the group's stats.
	Device string
	Source Source
	Points []int // engine point indexes, in the source's order
}

// GroupStats is what a poll group reports on itself.
type GroupStats struct {
	Name     string
	Interval time.Duration
	Ticks    uint64
	// Overruns counts ticks that took longer than the interval: the next
	// tick started late (the ticker drops the ticks it missed).
	Overruns      uint64
	LastDuration  time.Duration
	MaxDuration   time.Duration
	TotalDuration time.Duration // over all Ticks
	Sources       []SourceStats
}

// SourceStats is one device's record in a poll group.
type SourceStats struct {
	Device   string
	Reads    uint64 // reads of the device's points, one a tick
	Failures uint64 // reads in which some point came back with an error
	// LastSuccess is the end of the last read without any error (zero:
	// never).
	LastSuccess time.Time
}

// Group is one (bus, interval) poll group: one goroutine that reads its
// sources every interval, runs the engine, and queues the results.
type Group struct {
	Name     string
	Interval time.Duration
	Sources  []GroupSource
	Engine   *Engine
	Queue    *Queue
	// MaxMessageBytes splits a tick's readings into several rt messages
	// (default 65536).
	MaxMessageBytes int

	raw [][]Raw // per source, reused every tick

	mu    sync.Mutex
	stats GroupStats
}

// Stats returns the group's counters so far.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.Name, st.Interval = g.Name, g.Interval
	st.Sources = append([]SourceStats(nil), g.stats.Sources...)
	if len(st.Sources) != len(g.Sources) {
		st.Sources = make([]SourceStats, len(g.Sources))
	}
	for i := range st.Sources {
		st.Sources[i].Device = g.Sources[i].Device
	}
	return st
}

// record counts one source read.
func (g *Group) record(i int, raw []Raw, at time.Time) {
	failed := false
	for j := range raw {
		if raw[j].Err != nil {
			failed = true
			break
		}
	}
	g.mu.Lock()
	if len(g.stats.Sources) != len(g.Sources) {
		g.stats.Sources = make([]SourceStats, len(g.Sources))
	}
	s := &g.stats.Sources[i]
	s.Reads++
	if failed {
		s.Failures++
	} else {
		s.LastSuccess = at
	}
	g.mu.Unlock()
}

// Run polls until ctx ends.
func (g *Group) Run(ctx context.Context) error {
	if g.MaxMessageBytes <= 0 {
		g.MaxMessageBytes = DefaultMaxMessageBytes
	}
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	g.Tick(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.Tick(ctx)
		}
	}
}

// Tick polls every source once.
func (g *Group) Tick(ctx context.Context) {
	start := time.Now()
	var events []Event
	if len(g.raw) != len(g.Sources) {
		g.raw = make([][]Raw, len(g.Sources))
		for i, s := range g.Sources {
			g.raw[i] = make([]Raw, len(s.Points))
		}
	}
	n := 0
	for _, s := range g.Sources {
		n += len(s.Points)
	}
	readings := make([]Reading, 0, n)
	for i, s := range g.Sources {
		if ctx.Err() != nil {
			return
		}
		raw := g.raw[i]
		clear(raw)
		s.Source.Read(ctx, raw)
		if ctx.Err() != nil {
			return // a cancelled read is no reading
		}
		now := time.Now()
		g.record(i, raw, now)
		var evs []Event
		readings, evs = g.Engine.Tick(ctx, readings, now, s.Points, raw)
		events = append(events, evs...)
	}
	var out []*Message
	if len(events) > 0 {
		out = append(out, &Message{Kind: KindEvent, Created: events[0].TS, Events: events})
	}
	g.Queue.PutAll(append(out, SplitReadings(readings, start, g.MaxMessageBytes)...)...)
	d := time.Since(start)
	g.mu.Lock()
	st := &g.stats
	st.Ticks++
	st.LastDuration, st.TotalDuration = d, st.TotalDuration+d
	st.MaxDuration = max(st.MaxDuration, d)
	if g.Interval > 0 && d > g.Interval {
		st.Overruns++
	}
	g.mu.Unlock()
}

// MaxReadingBytes bounds a reading's size in the JSON format
// (docs/uplink-format.md), separator included: the strings as escaped, a
// number at its longest (24 characters), the timestamp with its offset. It
// is within a few bytes of the real size for the usual reading, so a tick
// fills its messages. (HJ 212 packets are shorter and are split by their
// own rule, PNUM/PNO.)
func MaxReadingBytes(r *Reading) int {
	// {"point":,"ts":"2006-01-02T15:04:05.000+08:00","value":,"unit":,"quality":"","alarm":}
	// and the comma before it
	const fixed = 87
	n := fixed + jsonStringBound(r.Point) + jsonStringBound(r.Unit) + len(r.Quality.String())
	switch {
	case !r.Quality.HasValue():
		n += 4 // null
	case r.Value.Kind == String:
		n += jsonStringBound(r.Value.Str)
	case r.Value.Kind == Bool:
		n += 5
	default:
		n += numberBound(r.Value.Num)
	}
	if r.Fault != "" {
		n += len(`,"fault":`) + jsonStringBound(r.Fault)
	}
	if r.Alarm == NoLevel {
		return n + 4 // null
	}
	return n + 2 + len(r.Alarm.String())
}

// numberBound is the most bytes f takes as a JSON number (shortest
// round-trip decimal, as encoding/json writes it): exact for integers below
// 1e15, at most 17 significant digits with sign and point up to 1e17, and
// 25 (-0.0000012345678901234567) beyond.
func numberBound(f float64) int {
	a := math.Abs(f)
	switch {
	case a < 1e15 && a == math.Trunc(a):
		n := 1
		for u := uint64(a); u >= 10; u /= 10 {
			n++
		}
		if f < 0 || math.Signbit(f) {
			n++
		}
		return n
	case a >= 1 && a < 1e17:
		return 19
	}
	return 25
}

// jsonStringBound is the most bytes s takes as a JSON string, quotes
// included: an escaped ASCII character takes 2 or 6, a byte that is not
// valid UTF-8 becomes \ufffd (6), and U+2028/2029 are escaped (6).
func jsonStringBound(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
}

// messageOverhead bounds a message's envelope.
const messageOverhead = 512

// SplitReadings packs readings into rt messages that stay under max bytes
// once encoded. The messages share rs's backing array: the caller hands rs
// over.
func SplitReadings(rs []Reading, created time.Time, max int) []*Message {
	var out []*Message
	start, size := 0, messageOverhead
	for i := range rs {
		n := MaxReadingBytes(&rs[i])
		if size+n > max && i > start {
			out = append(out, &Message{Kind: KindRT, Created: created, Readings: rs[start:i:i]})
			start, size = i, messageOverhead
		}
		size += n
	}
	if start < len(rs) {
		out = append(out, &Message{Kind: KindRT, Created: created, Readings: rs[start:]})
	}
	return out
}
