package uplink

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the wait between connection attempts: it doubles from Min up to
// Max, starts again from Min after a connection that lasted over a minute,
// and is jittered by ±20 % so that gateways restarted together do not
// reconnect in step.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next is the wait after a connection attempt that stayed up for up (0:
// never came up).
func (b *Backoff) Next(up time.Duration) time.Duration {
	if b.next == 0 || up > time.Minute {
		b.next = b.Min
	}
	w := time.Duration(float64(b.next) * (0.8 + 0.4*rand.Float64()))
	b.next = min(2*b.next, b.Max)
	return w
}

// Run calls connect until ctx ends, waiting Backoff between connections;
// connect calls Begin once its connection is up and returns when the
// connection ends. Run never gives up and returns nil when ctx ends.
func (d *Delivery) Run(ctx context.Context, connect func(context.Context) error) error {
	b := Backoff{Min: d.o.ReconnectMin, Max: d.o.ReconnectMax}
	for {
		d.began = time.Time{}
		err := connect(ctx)
		var up time.Duration
		if !d.began.IsZero() {
			up = time.Since(d.began)
		}
		d.end(err)
		if ctx.Err() != nil {
			return nil
		}
		wait := b.Next(up)
		d.log.Warn("connection ended; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
