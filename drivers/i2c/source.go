package i2c

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/hazwatch/edgecollector/drivers/i2c/ads1115"
	"github.com/hazwatch/edgecollector/drivers/i2c/bme280"
	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/i2c/generic"
	"github.com/hazwatch/edgecollector/drivers/regs"
	"github.com/hazwatch/edgecollector/edge"
)

// Device models (package chip holds the vocabulary the config shares).
const (
	ModelBME280  = chip.BME280
	ModelBMP280  = chip.BMP280
	ModelADS1115 = chip.ADS1115
	ModelADS1015 = chip.ADS1015
	ModelGeneric = chip.Generic
)

// Models lists the device models NewSource builds.
var Models = chip.Models

// Device is one I2C device, as the command translates it from the config.
type Device struct {
	Name    string // the config's device name, for errors
	Model   string // one of Models
	Address uint16 // 7-bit address
	// ShuntOhms (ads1115, ads1015): the 4-20 mA shunt; the raw value is the
	// loop current in mA. 0: the raw value is volts.
	ShuntOhms float64
	// Command and Wait (generic): bytes written before the registers are
	// read, and the wait after them.
	Command []byte
	Wait    time.Duration
	// WordOrder (generic): the default byte/word order, ABCD when empty.
	WordOrder  string
	Timeout    time.Duration // bounds one poll; default 1s
	ProbeEvery int           // a dead device is tried every N polls; default 10
	Logger     *slog.Logger
}

// Point says where one point's raw value comes from on its device; which
// field counts depends on the device's model.
type Point struct {
	Code string // the point's tag, for errors

	Measure string // bme280, bmp280: temperature (°C), pressure (Pa), humidity (%RH)
	Channel int    // ads1115, ads1015: single-ended input 0-3

	// generic
	Register  int    // register address 0-255
	Type      string // data type, one of regs.TypeNames
	WordOrder string // overrides Device.WordOrder
	Length    int    // string: bytes
	Bit       *int   // bool only: bit 0-7 of the byte; nil: true when the byte is not 0
}

// NewSource returns the edge.Source that reads points, in that order, from
// dev on bus: the shared Bus of the device's bus (or any i2c.Bus in tests).
// It checks the device and points and does not touch the bus: devices are
// set up by their first poll, so one missing sensor does not stop the
// collector from starting.
func NewSource(bus i2c.Bus, dev Device, points []Point) (edge.Source, error) {
	src, err := newSource(bus, dev, points)
	if err != nil {
		return nil, fmt.Errorf("device %q: %w", dev.Name, err)
	}
	return src, nil
}

func newSource(bus i2c.Bus, dev Device, points []Point) (edge.Source, error) {
	if bus == nil {
		return nil, fmt.Errorf("no bus")
	}
	if dev.Address < 0x08 || dev.Address > 0x77 {
		return nil, fmt.Errorf("I2C address 0x%02x is out of range; want 0x08-0x77 (7-bit, not shifted)", dev.Address)
	}
	if len(points) == 0 {
		return nil, fmt.Errorf("no points")
	}
	pointErr := func(i int, format string, args ...any) error {
		p := fmt.Sprintf("point %d", i)
		if points[i].Code != "" {
			p = fmt.Sprintf("point %q", points[i].Code)
		}
		return fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...))
	}
	switch dev.Model {
	case ModelBME280, ModelBMP280:
		measures := make([]string, len(points))
		for i, p := range points {
			switch {
			case p.Measure == chip.Humidity && dev.Model == ModelBMP280:
				return nil, pointErr(i, "a bmp280 has no humidity sensor; want temperature or pressure")
			case !slices.Contains(chip.Measures(dev.Model), p.Measure):
				return nil, pointErr(i, "measure %q: want one of %s", p.Measure, strings.Join(chip.Measures(dev.Model), ", "))
			}
			measures[i] = p.Measure
		}
		o := bme280.DefaultOpts()
		o.Model, o.Logger = dev.Model, dev.Logger
		if dev.Timeout > 0 {
			o.Timeout = dev.Timeout
		}
		if dev.ProbeEvery > 0 {
			o.ProbeEvery = dev.ProbeEvery
		}
		return bme280.New(bus, dev.Address, measures, &o)

	case ModelADS1115, ModelADS1015:
		channels := make([]int, len(points))
		for i, p := range points {
			if n := chip.Channels(dev.Model); p.Channel < 0 || p.Channel >= n {
				return nil, pointErr(i, "channel %d: an %s has inputs 0-%d", p.Channel, dev.Model, n-1)
			}
			channels[i] = p.Channel
		}
		o := ads1115.DefaultOpts()
		if dev.Model == ModelADS1015 {
			o.Chip = ads1115.ADS1015
		}
		o.ShuntOhms, o.Logger = dev.ShuntOhms, dev.Logger
		if dev.Timeout > 0 {
			o.Timeout = dev.Timeout
		}
		if dev.ProbeEvery > 0 {
			o.ProbeEvery = dev.ProbeEvery
		}
		return ads1115.New(bus, dev.Address, channels, &o)

	case ModelGeneric:
		specs := make([]generic.Point, len(points))
		for i, p := range points {
			if p.Register < 0 || p.Register > chip.MaxRegister {
				return nil, pointErr(i, "register %d: want 0-%d", p.Register, chip.MaxRegister)
			}
			typ, err := regs.ParseType(p.Type)
			if err != nil {
				return nil, pointErr(i, "%v", err)
			}
			ord := regs.ABCD
			if dev.WordOrder != "" {
				if ord, err = regs.ParseOrder(dev.WordOrder); err != nil {
					return nil, pointErr(i, "%v", err)
				}
			}
			if p.WordOrder != "" {
				if ord, err = regs.OrderFor(p.WordOrder, typ); err != nil {
					return nil, pointErr(i, "%v", err)
				}
			}
			bit := -1
			if p.Bit != nil {
				if typ != regs.Bool || *p.Bit < 0 || *p.Bit > chip.MaxBit {
					return nil, pointErr(i, "bit %d: a bool point reads bit 0-%d of its byte (no bit: true when the byte is not 0)", *p.Bit, chip.MaxBit)
				}
				bit = *p.Bit
			}
			specs[i] = generic.Point{Register: uint8(p.Register), Type: typ, Order: ord, Length: p.Length, Bit: bit}
			if err := specs[i].Validate(); err != nil {
				return nil, pointErr(i, "%v", err)
			}
		}
		o := generic.DefaultOpts()
		o.Command, o.Wait, o.Logger = dev.Command, dev.Wait, dev.Logger
		if dev.Timeout > 0 {
			o.Timeout = dev.Timeout
		}
		if dev.ProbeEvery > 0 {
			o.ProbeEvery = dev.ProbeEvery
		}
		return generic.New(bus, dev.Address, specs, &o)
	}
	return nil, fmt.Errorf("unknown I2C model %q; want one of %s", dev.Model, strings.Join(Models, ", "))
}
