// Package backlograte paces an uplink's backlog (messages per second, 0 for
// unlimited) with golang.org/x/time/rate, for the MQTT and HJ 212 uplinks
// alike. It never paces live messages.
package backlograte

import (
	"time"

	"golang.org/x/time/rate"
)

// Limiter paces the backlog; the zero rate means unlimited.
type Limiter struct {
	l *rate.Limiter
}

// New returns a limiter of perSecond messages per second (0: unlimited),
// with a burst of one second's worth.
func New(perSecond float64) *Limiter {
	if perSecond <= 0 {
		return &Limiter{}
	}
	return &Limiter{l: rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond)))}
}

// Limited reports whether a rate is set.
func (b *Limiter) Limited() bool { return b.l != nil }

// Available is how many messages may go now (a large number when
// unlimited).
func (b *Limiter) Available() int {
	if b.l == nil {
		return 1 << 30
	}
	return max(0, int(b.l.Tokens()))
}

// Take spends one message's allowance; it reports false when there is none.
func (b *Limiter) Take() bool {
	return b.l == nil || b.l.Allow()
}

// Wait is how long until the next message may go (at least 1 ms).
func (b *Limiter) Wait() time.Duration {
	if b.l == nil {
		return 0
	}
	need := 1 - b.l.Tokens()
	if need <= 0 {
		return time.Millisecond
	}
	return max(time.Millisecond, time.Duration(need/float64(b.l.Limit())*float64(time.Second)))
}
