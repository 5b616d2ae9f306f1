// Package devconn is one device's view of a shared I2C bus, used by the chip
// drivers under drivers/i2c.
//
// A Conn bounds every poll of its device: transactions go only to the
// device's own address, the address is locked for the whole poll (so a
// conversion request and its result read are never split by another poll of
// the same chip), and once the poll's context ends or its timeout passes every
// further transaction fails at once, so a driver that loops on a status
// register can never hang a poll group. Errors name the register.
//
// It must never close, reconfigure or change the speed of the bus: the bus
// belongs to whoever opened it.
package devconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/edge"
)

// AddrLocker is implemented by shared buses that serialise polls of one
// address across all their users (drivers/i2c.Bus does).
type AddrLocker interface {
	LockAddr(addr uint16) (unlock func())
}

// ErrTimeout marks a transaction refused because the poll's time ran out.
var ErrTimeout = errors.New("poll timed out")

// Conn is one device's view of a bus. It implements i2c.Bus so periph.io
// device drivers can be handed it in place of the bus.
type Conn struct {
	bus  i2c.Bus
	addr uint16

	own sync.Mutex // the address lock when the bus has none

	mu       sync.Mutex
	ctx      context.Context
	deadline time.Time
}

// New returns the view of the device at addr on bus.
func New(bus i2c.Bus, addr uint16) *Conn {
	return &Conn{bus: bus, addr: addr, ctx: context.Background()}
}

// Addr is the device's 7-bit address.
func (c *Conn) Addr() uint16 { return c.addr }

// BusName is the name the bus gives itself.
func (c *Conn) BusName() string { return c.bus.String() }

// Begin starts a poll: it locks the device's address and bounds the poll's
// transactions by ctx and timeout (0: ctx only). Call the returned function
// when the poll is over.
func (c *Conn) Begin(ctx context.Context, timeout time.Duration) (end func()) {
	var unlock func()
	if l, ok := c.bus.(AddrLocker); ok {
		unlock = l.LockAddr(c.addr)
	} else {
		c.own.Lock()
		unlock = c.own.Unlock
	}
	c.mu.Lock()
	c.ctx = ctx
	c.deadline = time.Time{}
	if timeout > 0 {
		c.deadline = time.Now().Add(timeout)
	}
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.ctx, c.deadline = context.Background(), time.Time{}
		c.mu.Unlock()
		unlock()
	}
}

// Err reports why the current poll may not send more transactions.
func (c *Conn) Err() error {
	c.mu.Lock()
	ctx, dl := c.ctx, c.deadline
	c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if !dl.IsZero() && time.Now().After(dl) {
		return ErrTimeout
	}
	return nil
}

// Sleep waits d, or less if the poll ends first.
func (c *Conn) Sleep(d time.Duration) error {
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// String implements i2c.Bus.
func (c *Conn) String() string { return c.bus.String() }

// Tx implements i2c.Bus: one transaction to the device, refused for any other
// address and once the poll is over. The error names the register (the first
// byte written).
func (c *Conn) Tx(addr uint16, w, r []byte) error {
	if addr != c.addr {
		return fmt.Errorf("address 0x%02x: refused: this connection is for 0x%02x", addr, c.addr)
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("%s: %w", describe(w, r), err)
	}
	if err := c.bus.Tx(addr, w, r); err != nil {
		return fmt.Errorf("%s: %w", describe(w, r), err)
	}
	return nil
}

func describe(w, r []byte) string {
	switch {
	case len(w) == 0:
		return fmt.Sprintf("read %d bytes", len(r))
	case len(r) == 0:
		return fmt.Sprintf("write reg 0x%02x (%d bytes)", w[0], len(w))
	}
	return fmt.Sprintf("read reg 0x%02x (%d bytes)", w[0], len(r))
}

// SetSpeed implements i2c.Bus. A device may not change the speed of a bus it
// shares.
func (c *Conn) SetSpeed(physic.Frequency) error {
	return errors.New("a device driver may not change the speed of a shared bus")
}

var _ i2c.Bus = (*Conn)(nil)

// Quality is the quality of points whose transaction failed with err: any
// transaction error (a NACK, an arbitration loss, a kernel timeout, the poll's
// own timeout) is a comm_fault. On Linux the kernel's errno is flattened to
// text by periph.io's sysfs driver, so a NACK and a timeout cannot be told
// apart here.
func Quality(err error) edge.Quality {
	if err == nil {
		return edge.Good
	}
	return edge.CommFault
}
