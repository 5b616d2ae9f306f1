package devconn

import (
	"errors"
	"fmt"

	"github.com/hazwatch/edgecollector/edge"
)

// ErrBackingOff marks points not read because their device stopped
// answering and is only probed every few polls.
var ErrBackingOff = errors.New("not answering; backing off")

// Backoff decides which polls touch a device that stopped answering: after a
// failed poll the next Every-1 polls are skipped and the one after probes.
// It is not safe for concurrent use; sources guard it with their own lock.
type Backoff struct {
	Every int // default 10

	dead    bool
	skipped int
	last    error
}

// Skip reports whether this poll must leave the device alone, and the error
// to give its points.
func (b *Backoff) Skip() (bool, error) {
	if !b.dead {
		return false, nil
	}
	every := b.Every
	if every <= 0 {
		every = 10
	}
	b.skipped++
	if b.skipped < every {
		return true, fmt.Errorf("%w (last error: %v); next try in %d polls", ErrBackingOff, b.last, every-b.skipped)
	}
	b.skipped = 0
	return false, nil
}

// Fail records a failed poll; it reports whether the device was answering
// until now.
// SkipPoll reports whether this poll is skipped because the device is
// backing off; if so it fills out with stale readings naming who.
func (b *Backoff) SkipPoll(who fmt.Stringer, out []edge.Raw) bool {
	skip, err := b.Skip()
	if !skip {
		return false
	}
	err = fmt.Errorf("%s: %w", who, err)
	for i := range out {
		out[i] = edge.Raw{Quality: edge.Stale, Err: err}
	}
	return true
}

func (b *Backoff) Fail(err error) (first bool) {
	first = !b.dead
	b.dead, b.skipped, b.last = true, 0, err
	return first
}

// OK records a poll the device answered; it reports whether the device had
// stopped answering before.
func (b *Backoff) OK() (recovered bool) {
	recovered = b.dead
	b.dead, b.skipped, b.last = false, 0, nil
	return recovered
}

// Dead reports whether the device is being backed off.
func (b *Backoff) Dead() bool { return b.dead }
