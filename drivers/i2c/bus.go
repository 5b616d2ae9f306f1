package i2c

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/host/v3"

	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/edge"
)

// Opener opens an I2C bus by its system name: "1", "/dev/i2c-1" or "I2C1".
// The collector injects its own in tests.
type Opener func(name string) (i2c.BusCloser, error)

var hostInit = sync.OnceValue(func() error {
	_, err := host.Init()
	return err
})

// OpenHost is the default Opener: it loads periph.io's host drivers once
// (host.Init) and opens the bus with i2creg.Open. "1", "/dev/i2c-1" and
// "I2C1" name the same bus.
func OpenHost(name string) (i2c.BusCloser, error) {
	if err := hostInit(); err != nil {
		return nil, fmt.Errorf("i2c bus %q: loading periph.io host drivers: %w", name, err)
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("i2c bus: no name given; write e.g. \"1\" or \"/dev/i2c-1\"")
	}
	if len(i2creg.All()) == 0 {
		return nil, fmt.Errorf("i2c bus %q: no I2C bus on this machine (no /dev/i2c-*: enable I2C and load the i2c-dev module)", name)
	}
	b, err := i2creg.Open(name)
	if err != nil {
		var names []string
		for _, r := range i2creg.All() {
			names = append(names, r.Name)
		}
		return nil, fmt.Errorf("i2c bus %q: %w (buses here: %s)", name, err, strings.Join(names, ", "))
	}
	return b, nil
}

// ErrClosed is returned by transactions on a closed Bus.
var ErrClosed = errors.New("bus closed")

// Bus is one I2C bus shared by the devices on it. It serialises
// transactions, lets a device lock its address for a whole poll, and counts
// transactions and errors. It implements periph.io's i2c.Bus, so chip
// drivers take it like any bus.
type Bus struct {
	name   string
	device string
	bus    i2c.Bus
	closer io.Closer // nil when the Bus does not own bus

	mu     sync.Mutex // one transaction at a time
	closed bool
	stats  Stats

	amu   sync.Mutex
	addrs map[uint16]*sync.Mutex
}

// Stats counts a bus's transactions.
type Stats struct {
	Tx     uint64            // transactions sent
	Errors uint64            // transactions that failed (NACK, timeout, ...)
	ByAddr map[uint16]uint64 // failed transactions per 7-bit address
}

// Open opens the bus the config calls name, at the system bus device
// ("1" or "/dev/i2c-1"), with open (nil: OpenHost). The Bus owns what it
// opened: Close closes it.
func Open(name, device string, open Opener) (*Bus, error) {
	if open == nil {
		open = OpenHost
	}
	b, err := open(device)
	if err != nil {
		return nil, fmt.Errorf("bus %q: %w", name, err)
	}
	if b == nil {
		return nil, fmt.Errorf("bus %q: opener returned no bus for %q", name, device)
	}
	return &Bus{name: name, device: device, bus: b, closer: b, addrs: map[uint16]*sync.Mutex{}}, nil
}

// NewBus shares a bus someone else opened and keeps: Close does not close
// it.
func NewBus(name string, b i2c.Bus) *Bus {
	return &Bus{name: name, device: b.String(), bus: b, addrs: map[uint16]*sync.Mutex{}}
}

// String implements i2c.Bus: the bus's name in the config.
func (b *Bus) String() string { return b.name }

// Device is the system bus the Bus was opened on.
func (b *Bus) Device() string { return b.device }

// Tx implements i2c.Bus: one transaction, while no other runs on the bus.
func (b *Bus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.stats.Tx++
	err := b.bus.Tx(addr, w, r)
	if err != nil {
		b.stats.Errors++
		if b.stats.ByAddr == nil {
			b.stats.ByAddr = map[uint16]uint64{}
		}
		b.stats.ByAddr[addr]++
	}
	return err
}

// SetSpeed implements i2c.Bus. Devices share the bus, so it is set by its
// owner only; chip drivers are handed views that refuse it.
func (b *Bus) SetSpeed(f physic.Frequency) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	return b.bus.SetSpeed(f)
}

// LockAddr locks one address for a sequence of transactions (a conversion
// request and its result). Other addresses keep using the bus meanwhile.
func (b *Bus) LockAddr(addr uint16) (unlock func()) {
	b.amu.Lock()
	m := b.addrs[addr]
	if m == nil {
		m = &sync.Mutex{}
		b.addrs[addr] = m
	}
	b.amu.Unlock()
	m.Lock()
	return m.Unlock
}

// Stats returns the counts so far.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.ByAddr = make(map[uint16]uint64, len(b.stats.ByAddr))
	for a, n := range b.stats.ByAddr {
		s.ByAddr[a] = n
	}
	return s
}

// Close closes the bus if the Bus opened it. It is idempotent; later
// transactions fail with ErrClosed.
func (b *Bus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.closer != nil {
		if err := b.closer.Close(); err != nil {
			return fmt.Errorf("bus %q: close %s: %w", b.name, b.device, err)
		}
	}
	return nil
}

// Quality is the quality of points whose transaction failed with err: nil is
// good; any transaction error (NACK, timeout) is comm_fault.
func Quality(err error) edge.Quality { return devconn.Quality(err) }

// ErrBackingOff marks the stale points of a device that stopped answering
// and is probed only every few polls.
var ErrBackingOff = devconn.ErrBackingOff

// ErrTimeout marks a transaction refused because its poll ran out of time
// (a chip stuck "busy", a conversion that never ends).
var ErrTimeout = devconn.ErrTimeout

var (
	_ i2c.BusCloser      = (*Bus)(nil)
	_ devconn.AddrLocker = (*Bus)(nil)
)
