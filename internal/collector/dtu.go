package collector

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/drivers/modbus"
)

// modbusBus reports whether a bus type is one of the Modbus ones.
func modbusBus(typ string) bool {
	switch typ {
	case config.BusModbusTCP, config.BusModbusRTU, config.BusModbusRTUTCP, config.BusModbusRTUDTU:
		return true
	}
	return false
}

// newModbusLine opens a line for a Modbus bus; lo holds the name, logger
// and (modbus-rtu) the serial settings. A modbus-rtu-dtu bus is served by
// the DTU listener of its listen address, made on first use and kept in
// dtus, which the caller runs (runDTUs) for as long as the lines are used.
func newModbusLine(b *config.Bus, lo modbus.LineOpts, dtus map[string]*modbus.DTUListener, log *slog.Logger) (*modbus.Line, error) {
	switch b.Type {
	case config.BusModbusRTUTCP:
		lo.Address, lo.ConnectTimeout, lo.FrameGap = b.Address, b.ConnectTimeout.D(), b.FrameGap.D()
		return modbus.NewRTUOverTCPLine(lo)
	case config.BusModbusRTUDTU:
		if dtus == nil {
			return nil, fmt.Errorf("bus %q: a modbus-rtu-dtu bus is reached only through the running collector's DTU listener", b.Name)
		}
		l := dtus[b.Listen]
		if l == nil {
			o := modbus.DefaultDTUListenerOpts(b.Listen)
			o.Logger = log
			var err error
			if l, err = modbus.NewDTUListener(o); err != nil {
				return nil, fmt.Errorf("bus %q: %w", b.Name, err)
			}
			dtus[b.Listen] = l
		}
		var m modbus.DTUMatch
		var err error
		if m.Register, err = b.Register.Bytes(); err != nil {
			return nil, fmt.Errorf("bus %q: register.hex: %w", b.Name, err)
		}
		if m.Pattern, err = b.Register.Pattern(); err != nil {
			return nil, fmt.Errorf("bus %q: register.regex: %w", b.Name, err)
		}
		m.Source = b.Register.Source
		lo.FrameGap = b.FrameGap.D()
		return l.Line(lo, m)
	}
	return modbus.NewLine(lo)
}

// runDTUs runs the DTU listeners until ctx ends (a listener never stops the
// collector: an address it cannot take yet is retried).
func runDTUs(dtus map[string]*modbus.DTUListener) func(context.Context) error {
	return func(ctx context.Context) error {
		done := make(chan struct{}, len(dtus))
		for _, l := range dtus {
			go func() { l.Run(ctx); done <- struct{}{} }()
		}
		for range dtus {
			<-done
		}
		return nil
	}
}

// dtuBuses are the modbus-rtu-dtu buses: their listeners are made at New,
// so a change to them restarts the collector instead of applying in place.
func dtuBuses(c *config.Config) []config.Bus {
	var out []config.Bus
	for _, b := range c.Buses {
		if b.Type == config.BusModbusRTUDTU {
			out = append(out, b)
		}
	}
	return out
}
