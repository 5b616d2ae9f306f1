package edge

import (
	"context"
	"log/slog"
	"time"
)

// GroupSource is one device's points in a poll group.
type GroupSource struct {
	Source Source
	Points []int // engine point indexes, in the source's order
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
	Logger          *slog.Logger
	// OnTick, when set, is called after each tick with its duration.
	OnTick func(d time.Duration)

	raw [][]Raw // per source, reused every tick
}

// Run polls until ctx ends.
func (g *Group) Run(ctx context.Context) error {
	if g.MaxMessageBytes <= 0 {
		g.MaxMessageBytes = 65536
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
		rs, evs := g.Engine.Tick(ctx, time.Now(), s.Points, raw)
		readings = append(readings, rs...)
		events = append(events, evs...)
	}
	if len(events) > 0 {
		g.Queue.Put(&Message{Kind: KindEvent, Created: events[0].TS, Events: events})
	}
	for _, m := range SplitReadings(readings, start, g.MaxMessageBytes) {
		g.Queue.Put(m)
	}
	if g.OnTick != nil {
		g.OnTick(time.Since(start))
	}
}

// MaxReadingBytes is an upper bound of a reading's size in any uplink
// format (JSON with every character escaped).
func MaxReadingBytes(r *Reading) int {
	n := 160 + 6*(len(r.Point)+len(r.Unit))
	if r.Value.Kind == String {
		n += 6 * len(r.Value.Str)
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
