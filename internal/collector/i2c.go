package collector

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/hazwatch/edgecollector/config"
	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/edge"
)

// CheckHardware opens every serial port and I2C bus the config names,
// failing fast with the bus named (open nil: periph.io's host drivers).
func CheckHardware(cfg *config.Config, open edgei2c.Opener) error {
	if open == nil {
		open = edgei2c.OpenHost
	}
	errs := []error{checkSerial(cfg)}
	for _, b := range cfg.Buses {
		if b.Type != config.BusI2C {
			continue
		}
		bus, err := edgei2c.Open(b.Name, b.Device, open)
		if err != nil {
			errs = append(errs, err) // names the bus and the device
			continue
		}
		bus.Close()
	}
	return errors.Join(errs...)
}

// openI2CBuses opens each I2C bus once; its devices share it.
func (c *Collector) openI2CBuses() error {
	for _, b := range c.cfg.Buses {
		if b.Type != config.BusI2C {
			continue
		}
		bus, err := edgei2c.Open(b.Name, b.Device, c.deps.OpenI2C)
		if err != nil {
			return err // names the bus and the device
		}
		c.i2c[b.Name] = bus
	}
	return nil
}

// i2cSource builds the source of an I2C device's points.
func (c *Collector) i2cSource(device string, idx []int, log *slog.Logger) (edge.Source, error) {
	dv := c.cfg.Device(device)
	bus := c.i2c[dv.Bus]
	if bus == nil {
		return nil, fmt.Errorf("device %q: I2C bus %q is not open", device, dv.Bus)
	}
	d := edgei2c.Device{Name: dv.Name, Model: dv.Model, Address: uint16(*dv.Address), ShuntOhms: dv.ShuntOhms, Wait: dv.Wait.D(),
		WordOrder: dv.WordOrder, Timeout: dv.Timeout.D(), ProbeEvery: dv.ProbeEvery, Logger: log}
	for _, b := range dv.Command {
		d.Command = append(d.Command, byte(b))
	}
	var pts []edgei2c.Point
	for _, i := range idx {
		p := c.cfg.Point(c.engine.Code(i))
		pt := edgei2c.Point{Code: p.Code, Measure: p.Source.Measure, Type: p.Source.Type, WordOrder: p.Source.WordOrder, Length: p.Source.Length}
		if p.Source.Channel != nil {
			pt.Channel = *p.Source.Channel
		}
		if p.Source.Register != nil {
			pt.Register = *p.Source.Register
		}
		pt.Bit = p.Source.Bit // generic bool: one bit of the byte, else any bit set
		pts = append(pts, pt)
	}
	return edgei2c.NewSource(bus, d, pts)
}
