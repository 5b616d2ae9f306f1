package collector

import (
	"context"

	"github.com/hazwatch/edgecollector/config"
	"github.com/hazwatch/edgecollector/uplink/modbusserver"
)

// modbusServer is the control room's Modbus TCP server of the config, or
// nil when modbus_server is off. It reads the engine's snapshot; it never
// stops the collector (an address it cannot take is retried).
func (c *Collector) modbusServer() (func(context.Context) error, error) {
	ms := c.cfg.ModbusServer
	if ms == nil {
		return nil, nil
	}
	m, err := modbusserver.FromConfig(c.cfg)
	if err != nil {
		return nil, err
	}
	o := modbusserver.DefaultOpts()
	o.Listen, o.Unit, o.Map, o.Source, o.Logger = ms.Listen, byte(*ms.Unit), m, c.engine, c.log
	s, err := modbusserver.New(o)
	if err != nil {
		return nil, err
	}
	return s.Run, nil
}

// modbusMap is what the running Modbus server was built from (nil when it
// is off): a reload that changes it restarts the collector, so that the
// control room never reads a map that no longer matches modbus-map.
func modbusMap(c *config.Config) any {
	if c.ModbusServer == nil {
		return nil
	}
	m, err := modbusserver.FromConfig(c)
	if err != nil {
		return err.Error()
	}
	return []any{*c.ModbusServer, m.Rows()}
}
