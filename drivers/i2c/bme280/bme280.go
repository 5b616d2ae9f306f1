package bme280

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/bmxx80"

	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/edge"
)

// Measures a source can read (package chip holds the vocabulary the config
// shares).
const (
	Temperature = chip.Temperature // °C
	Pressure    = chip.Pressure    // Pa
	Humidity    = chip.Humidity    // %RH, BME280 only
)

// Measures lists the measures in the order of the chip's data registers.
var Measures = chip.Measures(chip.BME280)

// Opts configure a source.
type Opts struct {
	// Oversampling of each measurement (bmxx80.O1x to O16x). Temperature is
	// always measured; pressure and humidity only when a point reads them.
	Temperature, Pressure, Humidity bmxx80.Oversampling
	// Timeout bounds one poll (setup, measurement, read).
	Timeout time.Duration
	// Model names the chip the config expects, "bme280" (default) or
	// "bmp280", for String and to refuse humidity on a BMP280. Either chip
	// answers to either model; the chip's id decides what it can measure.
	Model string
	// ProbeEvery: once the chip stops answering it is tried only every N
	// polls until it answers again.
	ProbeEvery int
	Logger     *slog.Logger
}

// DefaultOpts returns 4x oversampling on every measurement (about 26 ms per
// BME280 poll), a 1 s timeout and a probe every 10 polls.
func DefaultOpts() Opts {
	return Opts{Temperature: bmxx80.O4x, Pressure: bmxx80.O4x, Humidity: bmxx80.O4x,
		Timeout: time.Second, ProbeEvery: 10}
}

// Source reads some measures of one chip.
type Source struct {
	conn     *devconn.Conn
	tap      *tap
	measures []string
	opts     Opts
	bopts    bmxx80.Opts
	log      *slog.Logger

	mu      sync.Mutex
	dev     *bmxx80.Dev
	isBME   bool
	backoff devconn.Backoff
}

var _ edge.Source = (*Source)(nil)

// New returns a source reading measures (each one of Measures) from the chip
// at addr (0x76 or 0x77) on bus, in that order. It does not touch the bus:
// the chip is set up by the first poll, and again after it stopped
// answering.
func New(bus i2c.Bus, addr uint16, measures []string, opts *Opts) (*Source, error) {
	if bus == nil {
		return nil, fmt.Errorf("bme280 0x%02x: no bus", addr)
	}
	o := DefaultOpts()
	if opts != nil {
		o = *opts
	}
	switch o.Model {
	case "":
		o.Model = "bme280"
	case "bme280", "bmp280":
	default:
		return nil, fmt.Errorf("bme280 0x%02x on bus %q: unknown model %q; want bme280 or bmp280", addr, bus.String(), o.Model)
	}
	if lo, hi := chip.Addresses(o.Model); addr < lo || addr > hi {
		return nil, fmt.Errorf("%s 0x%02x on bus %q: address must be 0x76 or 0x77 (set by the SDO pin)", o.Model, addr, bus.String())
	}
	if len(measures) == 0 {
		return nil, fmt.Errorf("%s 0x%02x on bus %q: no measures to read", o.Model, addr, bus.String())
	}
	wantP, wantH := false, false
	for i, m := range measures {
		switch m {
		case Temperature:
		case Pressure:
			wantP = true
		case Humidity:
			if o.Model == "bmp280" {
				return nil, fmt.Errorf("bmp280 0x%02x on bus %q: measure %d: a BMP280 has no humidity sensor; want temperature or pressure", addr, bus.String(), i)
			}
			wantH = true
		default:
			return nil, fmt.Errorf("%s 0x%02x on bus %q: measure %d: unknown %q; want one of %s", o.Model, addr, bus.String(), i, m, strings.Join(Measures, ", "))
		}
	}
	for _, os := range []bmxx80.Oversampling{o.Temperature, o.Pressure, o.Humidity} {
		if os > bmxx80.O16x {
			return nil, fmt.Errorf("%s 0x%02x on bus %q: oversampling %d out of range", o.Model, addr, bus.String(), os)
		}
	}
	if o.Temperature == bmxx80.Off {
		o.Temperature = bmxx80.O1x // needed for pressure and humidity compensation
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
	b := bmxx80.Opts{Temperature: o.Temperature}
	if wantP {
		b.Pressure = o.Pressure
		if b.Pressure == bmxx80.Off {
			b.Pressure = bmxx80.O1x
		}
	}
	if wantH {
		b.Humidity = o.Humidity
		if b.Humidity == bmxx80.Off {
			b.Humidity = bmxx80.O1x
		}
	}
	c := devconn.New(bus, addr)
	s := &Source{conn: c, tap: &tap{Conn: c}, measures: slices.Clone(measures), opts: o, bopts: b}
	s.backoff.Every = o.ProbeEvery
	s.log = o.Logger.With("device", s.String())
	return s, nil
}

// String names the chip and its bus: bme280 0x76 on bus "onboard" (or bmp280
// ..., by Opts.Model).
func (s *Source) String() string {
	return fmt.Sprintf("%s 0x%02x on bus %q", s.opts.Model, s.conn.Addr(), s.conn.BusName())
}

// Read measures once and fills out[i] for measures[i].
func (s *Source) Read(ctx context.Context, out []edge.Raw) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(len(out), len(s.measures))
	if s.backoff.SkipPoll(s, out[:n]) {
		return
	}
	env, err := s.sense(ctx)
	if err != nil {
		s.dev = nil // set the chip up again when it answers
		err = fmt.Errorf("%s: %w", s, err)
		if s.backoff.Fail(err) && ctx.Err() == nil {
			s.log.Warn("sensor stopped answering; probing every few polls", "err", err, "probe_every", s.opts.ProbeEvery)
		}
		for i := range n {
			out[i] = edge.Raw{Quality: devconn.Quality(err), Err: err}
		}
		return
	}
	if s.backoff.OK() {
		s.log.Info("sensor answers again")
	}
	// Only measurements that were asked for count: one turned off always
	// reads its reset value.
	raw := s.tap.data
	tSkipped := len(raw) >= 6 && raw[3] == 0x80 && raw[4] == 0 && raw[5]>>4 == 0
	pSkipped := s.bopts.Pressure != bmxx80.Off && len(raw) >= 6 && raw[0] == 0x80 && raw[1] == 0 && raw[2]>>4 == 0
	hSkipped := s.isBME && s.bopts.Humidity != bmxx80.Off && len(raw) >= 8 && raw[6] == 0x80 && raw[7] == 0
	if tSkipped || pSkipped || hSkipped {
		s.dev = nil // a reset chip lost its settings: write them again
	}
	for i := range n {
		var v float64
		var skipped bool
		switch s.measures[i] {
		case Temperature:
			v, skipped = env.Temperature.Celsius(), tSkipped
		case Pressure:
			v, skipped = float64(env.Pressure)/float64(physic.Pascal), tSkipped || pSkipped
		case Humidity:
			if !s.isBME {
				out[i] = edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: the chip is a BMP280, which has no humidity sensor; check the device's model", s)}
				continue
			}
			v, skipped = float64(env.Humidity)/float64(physic.PercentRH), tSkipped || hSkipped
		}
		switch {
		case skipped:
			out[i] = edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: %s: the chip skipped the measurement (data register holds its reset value); setting it up again", s, s.measures[i])}
		case math.IsNaN(v) || math.IsInf(v, 0):
			out[i] = edge.Raw{Quality: edge.SensorFault, Err: fmt.Errorf("%s: %s: not a number", s, s.measures[i])}
		default:
			out[i] = edge.Raw{Value: edge.Num(v)}
		}
	}
}

// sense sets the chip up if needed and takes one forced measurement.
func (s *Source) sense(ctx context.Context) (physic.Env, error) {
	end := s.conn.Begin(ctx, s.opts.Timeout)
	defer end()
	s.tap.data, s.tap.err = s.tap.data[:0], nil
	if s.dev == nil {
		o := s.bopts
		d, err := bmxx80.NewI2C(s.tap, s.conn.Addr(), &o)
		if err != nil {
			return physic.Env{}, fmt.Errorf("setup: %w", s.tap.cause(err))
		}
		name := d.String()
		switch {
		case strings.HasPrefix(name, "BME280"):
			s.isBME = true
		case strings.HasPrefix(name, "BMP280"):
			s.isBME = false
		default:
			return physic.Env{}, fmt.Errorf("setup: found %s, not a BME280 or BMP280", strings.SplitN(name, "{", 2)[0])
		}
		s.dev = d
	}
	var e physic.Env
	if err := s.dev.Sense(&e); err != nil {
		return physic.Env{}, fmt.Errorf("sense: %w", s.tap.cause(err))
	}
	if len(s.tap.data) < 6 {
		return physic.Env{}, fmt.Errorf("sense: data registers were not read")
	}
	return e, nil
}

// tap keeps the bytes of the last burst read of the data registers (0xF7),
// to check them for the chip's "measurement skipped" pattern, and the last
// transaction error, which periph's driver flattens to text.
type tap struct {
	*devconn.Conn
	data []byte
	err  error
}

const regData = 0xF7

func (t *tap) Tx(addr uint16, w, r []byte) error {
	err := t.Conn.Tx(addr, w, r)
	if err != nil {
		t.err = err
	} else if len(w) == 1 && w[0] == regData {
		t.data = append(t.data[:0], r...)
	}
	return err
}

// cause is the transaction error behind err from periph's driver, if any,
// so the poll's error keeps its chain (errors.Is) and reads cleanly.
func (t *tap) cause(err error) error {
	if t.err != nil {
		return t.err
	}
	return err
}
