package modbus

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	gmodbus "github.com/grid-x/modbus"
)

// LineOpts configure a Line. Exactly one of Address (TCP) and Device (RTU)
// is set.
type LineOpts struct {
	Name string

	// Modbus TCP
	Address        string        // host:port
	ConnectTimeout time.Duration // default 3s

	// Modbus RTU
	Device   string
	Baud     int    // default 9600
	DataBits int    // default 8
	Parity   string // none|even|odd, default none
	StopBits int    // default 1
	// FrameGap is extra silence after each transaction, beyond the 3.5
	// character times RTU requires.
	FrameGap time.Duration
}

// Line is one RS-485 line or TCP endpoint. Every request on it is
// serialised; interlock writes go first.
type Line struct {
	opts   LineOpts
	lock   prioLock
	client gmodbus.Client
	slave  func(byte)
	tmo    func(time.Duration)
	close  func() error
}

// NewLine prepares a line; nothing is opened until the first request.
func NewLine(opts LineOpts) (*Line, error) {
	l := &Line{opts: opts}
	switch {
	case opts.Address != "" && opts.Device == "":
		if opts.ConnectTimeout <= 0 {
			opts.ConnectTimeout = 3 * time.Second
		}
		h := gmodbus.NewTCPClientHandler(opts.Address, gmodbus.WithDialer((&net.Dialer{Timeout: opts.ConnectTimeout}).DialContext))
		h.IdleTimeout = 5 * time.Minute
		l.client = gmodbus.NewClient(h)
		l.slave = h.SetSlave
		l.tmo = func(d time.Duration) {
			// A late answer to a timed-out request arrives before the
			// answer to the next one: grid-x skips it (its transaction id
			// is older) instead of reporting a mismatch, within this bound.
			// It is the request's own timeout, so a peer that only ever
			// sends foreign transaction ids cannot hold the line longer.
			h.Timeout, h.ProtocolRecoveryTimeout = d, d
		}
		l.close = h.Close
	case opts.Device != "" && opts.Address == "":
		t, err := newRTUTransport(opts)
		if err != nil {
			return nil, fmt.Errorf("bus %q: %w", opts.Name, err)
		}
		p := &gmodbus.RTUClientHandler{} // used for its RTU framing and CRC only
		l.client = gmodbus.NewClient2(p, t)
		l.slave = p.SetSlave
		l.tmo = func(d time.Duration) { t.timeout = d }
		l.close = t.Close
	default:
		return nil, fmt.Errorf("bus %q: give either a TCP address or a serial device", opts.Name)
	}
	return l, nil
}

func (l *Line) String() string {
	if l.opts.Address != "" {
		return fmt.Sprintf("modbus-tcp %s (%s)", l.opts.Name, l.opts.Address)
	}
	return fmt.Sprintf("modbus-rtu %s (%s)", l.opts.Name, l.opts.Device)
}

// Name is the bus name from the config.
func (l *Line) Name() string { return l.opts.Name }

// Do runs fn for one unit with the line to itself. Priority requests (the
// interlock writes) are served before any waiting poll request.
func (l *Line) Do(ctx context.Context, prio bool, unit byte, timeout time.Duration, fn func(ctx context.Context, c gmodbus.Client) error) error {
	if err := l.lock.lock(ctx, prio); err != nil {
		return err
	}
	defer l.lock.unlock()
	l.slave(unit)
	l.tmo(timeout) // both transports bound every request by it
	return fn(ctx, l.client)
}

// Close closes the connection or port. The line reopens it on next use.
func (l *Line) Close() error {
	l.lock.lock(context.Background(), true)
	defer l.lock.unlock()
	return l.close()
}

// prioLock is a mutex whose priority waiters are served before the others.
// Ownership is handed straight to the next waiter on unlock.
type prioLock struct {
	mu      sync.Mutex
	held    bool
	waiters [2][]chan struct{} // [0] normal, [1] priority
}

func (l *prioLock) lock(ctx context.Context, prio bool) error {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return nil
	}
	q := 0
	if prio {
		q = 1
	}
	ch := make(chan struct{})
	l.waiters[q] = append(l.waiters[q], ch)
	l.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		for i, w := range l.waiters[q] {
			if w == ch {
				l.waiters[q] = append(l.waiters[q][:i], l.waiters[q][i+1:]...)
				l.mu.Unlock()
				return ctx.Err()
			}
		}
		l.mu.Unlock()
		// Handed over while we gave up: pass it on.
		l.unlock()
		return ctx.Err()
	}
}

func (l *prioLock) unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for q := 1; q >= 0; q-- {
		if len(l.waiters[q]) > 0 {
			ch := l.waiters[q][0]
			l.waiters[q] = l.waiters[q][1:]
			close(ch)
			return
		}
	}
	l.held = false
}
