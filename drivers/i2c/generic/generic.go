package generic

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

// MaxString is the longest string a point may read, in bytes.
const MaxString = chip.MaxString

// Point is one value in the device's register map.
type Point struct {
	Register uint8
	Type     modbus.Type
	Order    modbus.Order
	// Length of a string, in bytes (1-MaxString).
	Length int
	// Bit of a bool: 0-7 of the byte read; -1: true when the byte is not 0.
	Bit int
}

// Size is how many bytes the point reads.
func (p Point) Size() int {
	switch p.Type {
	case modbus.Bool:
		return 1
	case modbus.String:
		return p.Length
	}
	return 2 * p.Type.Registers(0)
}

func (p Point) String() string { return fmt.Sprintf("reg 0x%02x %s %s", p.Register, p.Type, p.Order) }

// Validate reports what is wrong with the point, if anything.
func (p Point) Validate() error {
	if p.Type < modbus.Bool || p.Type > modbus.String {
		return fmt.Errorf("unknown data type %d", p.Type)
	}
	if p.Order > modbus.DCBA {
		return fmt.Errorf("unknown byte order %d", p.Order)
	}
	switch p.Type {
	case modbus.String:
		if p.Length < 1 || p.Length > MaxString {
			return fmt.Errorf("string of %d bytes: want 1-%d", p.Length, MaxString)
		}
		if p.Length%2 == 1 && (p.Order == modbus.BADC || p.Order == modbus.DCBA) {
			return fmt.Errorf("string of %d bytes in order %s: byte-swapped strings need an even length", p.Length, p.Order)
		}
	case modbus.Bool:
		if p.Bit < -1 || p.Bit > chip.MaxBit {
			return fmt.Errorf("bit %d: want 0-%d, or -1 for any bit set", p.Bit, chip.MaxBit)
		}
	}
	return nil
}

// Decode turns the bytes read for p into its value. It never panics: bytes
// of the wrong length or that are not a value of the type give an error
// wrapping modbus.ErrDecode.
func Decode(p Point, raw []byte) (edge.Value, error) {
	if err := p.Validate(); err != nil {
		return edge.Value{}, fmt.Errorf("%w: %v", modbus.ErrDecode, err)
	}
	if len(raw) != p.Size() {
		return edge.Value{}, fmt.Errorf("%w: %s needs %d bytes, got %d", modbus.ErrDecode, p.Type, p.Size(), len(raw))
	}
	switch p.Type {
	case modbus.Bool:
		if p.Bit < 0 {
			return edge.BoolValue(raw[0] != 0), nil
		}
		return edge.BoolValue(raw[0]>>uint(p.Bit)&1 == 1), nil
	case modbus.String:
		b := raw
		if len(b)%2 == 1 {
			b = append(slices.Clone(b), 0)
		}
		return modbus.DecodeRegisters(modbus.Spec{Type: modbus.String, Order: p.Order, Length: len(b) / 2, Bit: -1}, b)
	}
	return modbus.DecodeRegisters(modbus.Spec{Type: p.Type, Order: p.Order, Bit: -1}, raw)
}

// Opts configure a source.
type Opts struct {
	// Command is written to the device before the registers are read (a
	// "start conversion" command); none when empty.
	Command []byte
	// Wait after the command, for the conversion.
	Wait time.Duration
	// Timeout bounds one poll's transactions; the Wait comes on top.
	Timeout time.Duration
	// ProbeEvery: once the device stops answering it is tried only every N
	// polls until it answers again.
	ProbeEvery int
	Logger     *slog.Logger
}

// DefaultOpts returns no command, a 1 s timeout and a probe every 10 polls.
func DefaultOpts() Opts { return Opts{Timeout: time.Second, ProbeEvery: 10} }

// Source reads points from one register device.
type Source struct {
	conn   *devconn.Conn
	points []Point
	opts   Opts
	log    *slog.Logger

	mu      sync.Mutex
	backoff devconn.Backoff
}

var _ edge.Source = (*Source)(nil)

// New returns a source reading points, in that order, from the device at
// addr (0x08-0x77) on bus. It does not touch the bus.
func New(bus i2c.Bus, addr uint16, points []Point, opts *Opts) (*Source, error) {
	if bus == nil {
		return nil, fmt.Errorf("i2c device 0x%02x: no bus", addr)
	}
	name := fmt.Sprintf("i2c device 0x%02x on bus %q", addr, bus.String())
	o := DefaultOpts()
	if opts != nil {
		o = *opts
	}
	if addr < 0x08 || addr > 0x77 {
		return nil, fmt.Errorf("%s: address must be 0x08-0x77 (7-bit, not shifted)", name)
	}
	if len(points) == 0 {
		return nil, fmt.Errorf("%s: no points to read", name)
	}
	for i, p := range points {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s: point %d (reg 0x%02x): %w", name, i, p.Register, err)
		}
	}
	if o.Wait < 0 {
		return nil, fmt.Errorf("%s: negative wait %s", name, o.Wait)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.ProbeEvery <= 0 {
		o.ProbeEvery = 10
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Command = slices.Clone(o.Command)
	s := &Source{conn: devconn.New(bus, addr), points: slices.Clone(points), opts: o}
	s.backoff.Every = o.ProbeEvery
	s.log = o.Logger.With("device", s.String())
	return s, nil
}

// String names the device and its bus: i2c device 0x40 on bus "onboard".
func (s *Source) String() string {
	return fmt.Sprintf("i2c device 0x%02x on bus %q", s.conn.Addr(), s.conn.BusName())
}

// Read sends the command, waits, and reads each point's register; it fills
// out[i] for points[i].
func (s *Source) Read(ctx context.Context, out []edge.Raw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(out), len(s.points))
	if s.backoff.SkipPoll(s, out[:n]) {
		return
	}
	end := s.conn.Begin(ctx, s.opts.Timeout+s.opts.Wait)
	defer end()
	fail := func(from int, err error) {
		if s.backoff.Fail(err) && ctx.Err() == nil {
			s.log.Warn("device stopped answering; probing every few polls", "err", err, "probe_every", s.opts.ProbeEvery)
		}
		for j := from; j < n; j++ {
			out[j] = edge.Raw{Quality: devconn.Quality(err), Err: err}
		}
	}
	if len(s.opts.Command) > 0 {
		if err := s.conn.Tx(s.conn.Addr(), s.opts.Command, nil); err != nil {
			fail(0, fmt.Errorf("%s: command: %w", s, err))
			return
		}
		if s.opts.Wait > 0 {
			if err := s.conn.Sleep(s.opts.Wait); err != nil {
				fail(0, fmt.Errorf("%s: waiting after the command: %w", s, err))
				return
			}
		}
	}
	var buf [MaxString]byte
	for i := range n {
		p := s.points[i]
		raw := buf[:p.Size()]
		clear(raw)
		if err := s.conn.Tx(s.conn.Addr(), []byte{p.Register}, raw); err != nil {
			fail(i, fmt.Errorf("%s: %w", s, err))
			return
		}
		v, err := Decode(p, raw)
		if err != nil {
			out[i] = edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: %s: % x: %w", s, p, raw, err)}
			continue
		}
		out[i] = edge.Raw{Value: v}
	}
	if s.backoff.OK() {
		s.log.Info("device answers again")
	}
}
