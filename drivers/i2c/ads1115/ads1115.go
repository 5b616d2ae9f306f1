package ads1115

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/ads1x15"

	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/edge"
)

// Chip is the ADC model.
type Chip uint8

// Chips.
const (
	ADS1115 Chip = iota // 16-bit
	ADS1015             // 12-bit
)

func (c Chip) String() string {
	if c == ADS1015 {
		return "ads1015"
	}
	return "ads1115"
}

// Opts configure a source.
type Opts struct {
	Chip Chip
	// ShuntOhms is the shunt resistor of 4-20 mA inputs: the raw value is the
	// loop current in mA. 0: the raw value is the input voltage in volts.
	ShuntOhms float64
	// MaxMilliamps is the highest loop current to measure without clipping
	// (default 24 mA); it sets the gain in loop mode.
	MaxMilliamps float64
	// MaxVolts is the highest input voltage to measure in voltage mode
	// (default 4.096 V); it sets the gain.
	MaxVolts float64
	// SampleRate is the conversion rate (default 128 Hz); the slowest rate
	// of the chip at or above it is used.
	SampleRate physic.Frequency
	// Timeout bounds one poll of all inputs.
	Timeout time.Duration
	// ProbeEvery: once the chip stops answering it is tried only every N
	// polls until it answers again.
	ProbeEvery int
	Logger     *slog.Logger
}

// DefaultOpts returns an ADS1115 in voltage mode, 24 mA headroom for loop
// mode, 128 samples/s, a 1 s timeout and a probe every 10 polls.
func DefaultOpts() Opts {
	return Opts{Chip: ADS1115, MaxMilliamps: chip.LoopMaxMilliamps, MaxVolts: 4.096, SampleRate: 128 * physic.Hertz,
		Timeout: time.Second, ProbeEvery: 10}
}

// Source reads some inputs of one ADC.
type Source struct {
	conn     *devconn.Conn
	guard    *guard
	channels []int
	pins     []ads1x15.PinADC
	fullV    physic.ElectricPotential
	opts     Opts
	log      *slog.Logger

	mu      sync.Mutex
	backoff devconn.Backoff
}

var _ edge.Source = (*Source)(nil)

// New returns a source reading channels (single-ended inputs 0-3, in that
// order) of the ADC at addr (0x48-0x4B) on bus. It does not touch the bus.
func New(bus i2c.Bus, addr uint16, channels []int, opts *Opts) (*Source, error) {
	o := DefaultOpts()
	if opts != nil {
		o = *opts
	}
	if o.Chip != ADS1115 && o.Chip != ADS1015 {
		return nil, fmt.Errorf("ads1x15 0x%02x: unknown chip %d", addr, o.Chip)
	}
	if bus == nil {
		return nil, fmt.Errorf("%s 0x%02x: no bus", o.Chip, addr)
	}
	name := fmt.Sprintf("%s 0x%02x on bus %q", o.Chip, addr, bus.String())
	if lo, hi := chip.Addresses(chip.ADS1115); addr < lo || addr > hi {
		return nil, fmt.Errorf("%s: address must be 0x%02X-0x%02X (set by the ADDR pin)", name, lo, hi)
	}
	if len(channels) == 0 {
		return nil, fmt.Errorf("%s: no inputs to read", name)
	}
	if o.ShuntOhms < 0 || math.IsNaN(o.ShuntOhms) || math.IsInf(o.ShuntOhms, 0) {
		return nil, fmt.Errorf("%s: shunt of %g Ω: want a positive resistance, or 0 to read volts", name, o.ShuntOhms)
	}
	if o.MaxMilliamps <= 0 {
		o.MaxMilliamps = chip.LoopMaxMilliamps
	}
	if o.MaxVolts <= 0 {
		o.MaxVolts = 4.096
	}
	if o.SampleRate <= 0 {
		o.SampleRate = 128 * physic.Hertz
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
	maxV := o.MaxVolts
	if o.ShuntOhms > 0 {
		maxV = o.ShuntOhms * o.MaxMilliamps / 1000
	}
	if maxV > chip.ADCMaxVolts {
		what := fmt.Sprintf("%g V", maxV)
		if o.ShuntOhms > 0 {
			what = fmt.Sprintf("%g mA across %g Ω is %g V", o.MaxMilliamps, o.ShuntOhms, maxV)
		}
		return nil, fmt.Errorf("%s: %s, beyond the ADC's largest range of ±6.144 V; use a smaller shunt", name, what)
	}
	c := devconn.New(bus, addr)
	g := &guard{Conn: c}
	ao := ads1x15.Opts{I2cAddress: addr}
	var dev *ads1x15.Dev
	var err error
	if o.Chip == ADS1015 {
		dev, err = ads1x15.NewADS1015(g, &ao)
	} else {
		dev, err = ads1x15.NewADS1115(g, &ao)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Source{conn: c, guard: g, channels: slices.Clone(channels), opts: o}
	for i, ch := range channels {
		if ch < 0 || ch > 3 {
			return nil, fmt.Errorf("%s: input %d: channel %d; want 0-3", name, i, ch)
		}
		// Whole microvolts, so 4.096 V computed in floating point still
		// picks the ±4.096 V range.
		v := physic.ElectricPotential(math.Round(maxV*1e6)) * physic.MicroVolt
		p, err := dev.PinForChannel(ads1x15.Channel0+ads1x15.Channel(ch), v, o.SampleRate, ads1x15.BestQuality)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", name, ch, err)
		}
		s.pins = append(s.pins, p)
		_, hi := p.Range()
		s.fullV = hi.V
	}
	s.backoff.Every = o.ProbeEvery
	s.log = o.Logger.With("device", s.String())
	return s, nil
}

// String names the chip and its bus: ads1115 0x48 on bus "onboard".
func (s *Source) String() string {
	return fmt.Sprintf("%s 0x%02x on bus %q", s.opts.Chip, s.conn.Addr(), s.conn.BusName())
}

// FullScale is the input range chosen, ±FullScale.
func (s *Source) FullScale() physic.ElectricPotential { return s.fullV }

// Read converts each input in turn and fills out[i] for channels[i].
func (s *Source) Read(ctx context.Context, out []edge.Raw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(out), len(s.channels))
	if s.backoff.SkipPoll(s, out[:n]) {
		return
	}
	end := s.conn.Begin(ctx, s.opts.Timeout)
	defer end()
	for i := range n {
		smp, err := s.pins[i].Read()
		if err != nil {
			err = fmt.Errorf("%s: input %d: %w", s, s.channels[i], err)
			if s.backoff.Fail(err) && ctx.Err() == nil {
				s.log.Warn("ADC stopped answering; probing every few polls", "err", err, "probe_every", s.opts.ProbeEvery)
			}
			for j := i; j < n; j++ {
				out[j] = edge.Raw{Quality: devconn.Quality(err), Err: err}
			}
			return
		}
		out[i] = s.value(i, smp.Raw, smp.V)
	}
	if s.backoff.OK() {
		s.log.Info("ADC answers again")
	}
}

func (s *Source) value(i int, raw int32, v physic.ElectricPotential) edge.Raw {
	top := int32(math.MaxInt16) // ADS1115: 16 bits
	if s.opts.Chip == ADS1015 {
		top = 0x7FF0 // 12 bits, left-justified
	}
	volts := float64(v) / float64(physic.Volt)
	if raw >= top || raw <= math.MinInt16 {
		return edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: input %d: %.3f V is at the end of the ±%s range (clipped)", s, s.channels[i], volts, s.fullV)}
	}
	if s.opts.ShuntOhms > 0 {
		return edge.Raw{Value: edge.Num(volts / s.opts.ShuntOhms * 1000)}
	}
	return edge.Raw{Value: edge.Num(volts)}
}

// Registers (datasheet section 8.6).
const (
	regConversion = 0x00
	regConfig     = 0x01
	configOS      = 0x8000 // write: start a conversion; read: 1 = not converting
	maxReadyPolls = 50
)

// guard makes sure a conversion result is read only once that conversion
// is done: between periph's config write and its read of the conversion
// register it polls the config register for OS = 1 and checks that the
// input, gain and rate read back as written.
type guard struct {
	*devconn.Conn
	want    uint16
	pending bool
}

func (g *guard) Tx(addr uint16, w, r []byte) error {
	switch {
	case len(w) == 3 && w[0] == regConfig && len(r) == 0:
		g.pending = false
		if err := g.Conn.Tx(addr, w, r); err != nil {
			return err
		}
		g.want, g.pending = binary.BigEndian.Uint16(w[1:]), true
		return nil
	case len(w) == 1 && w[0] == regConversion && len(r) == 2 && g.pending:
		g.pending = false
		if err := g.ready(addr); err != nil {
			return err
		}
	}
	return g.Conn.Tx(addr, w, r)
}

func (g *guard) ready(addr uint16) error {
	var b [2]byte
	for n := 1; ; n++ {
		if err := g.Conn.Tx(addr, []byte{regConfig}, b[:]); err != nil {
			return err
		}
		cfg := binary.BigEndian.Uint16(b[:])
		if cfg&configOS != 0 {
			if cfg&^configOS != g.want&^configOS {
				return fmt.Errorf("config register reads 0x%04x after 0x%04x was written: the chip did not run this conversion (it reset, or another master changed it)", cfg, g.want)
			}
			return nil
		}
		if n == maxReadyPolls {
			return fmt.Errorf("conversion not done after %d checks of the config register", n)
		}
		if err := g.Sleep(500 * time.Microsecond); err != nil {
			return err
		}
	}
}
