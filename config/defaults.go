package config

import (
	"time"

	"github.com/hazwatch/edgecollector/buffer"
	"github.com/hazwatch/edgecollector/drivers/i2c/ads1115"
	"github.com/hazwatch/edgecollector/drivers/i2c/bme280"
	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/i2c/generic"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/drivers/regs"
	"github.com/hazwatch/edgecollector/edge"
	"github.com/hazwatch/edgecollector/uplink/hj212"
	"github.com/hazwatch/edgecollector/uplink/mqtt"
)

// Defaults, named so the docs and the sample can quote them. Those of a
// component with a DefaultOpts (Modbus lines and devices, I2C chips, the
// HJ 212 client) are taken from it, so there is one place for each number.
var (
	DefaultBaud       = modbus.DefaultLineOpts().Baud
	DefaultTimeout    = Duration(modbus.DefaultDeviceOpts().Timeout)
	DefaultRetries    = modbus.DefaultDeviceOpts().Retries
	DefaultMaxGap     = modbus.DefaultDeviceOpts().Limits.MaxGap
	DefaultProbeEvery = modbus.DefaultDeviceOpts().ProbeEvery
)

// The buffer's, the hand-off's, the engine's and the MQTT uplink's, from
// their components too.
var (
	DefaultMaxBytes        = Size(buffer.DefaultBadgerOpts().MaxBytes)
	DefaultMinFree         = Size(buffer.DefaultBadgerOpts().MinFree)
	DefaultRetention       = Duration(buffer.DefaultBadgerOpts().Retention)
	DefaultMemoryQueue     = buffer.DefaultBadgerOpts().MemoryQueue
	DefaultQueue           = edge.DefaultQueue
	DefaultMaxMessageBytes = edge.DefaultMaxMessageBytes
	DefaultCommitInterval  = Duration(edge.DefaultCommitInterval)
	DefaultReadbackEvery   = edge.DefaultReadbackEvery // interlock outputs read back while tripped
	DefaultTopicPrefix     = mqtt.DefaultOpts().TopicPrefix
	DefaultInflight        = mqtt.DefaultOpts().Inflight
	DefaultHeartbeat       = Duration(mqtt.DefaultOpts().Heartbeat)
)

// Defaults that are the config's own (they describe the site, not a
// component).
const (
	DefaultUTCOffset   = "+08:00"
	DefaultRTDInterval = 30 * time.Second // HJ 212 real-time packet interval (config and platform command)
	DefaultInterval    = Duration(time.Second)
	DefaultMaxInterval = Duration(60 * time.Second)
	DefaultDir         = "/var/lib/edgecollector"
)

// i2cDefaults are the timeout and probe interval of an I2C model, from its
// driver.
func i2cDefaults(model string) (time.Duration, int) {
	switch {
	case chip.Measures(model) != nil:
		o := bme280.DefaultOpts()
		return o.Timeout, o.ProbeEvery
	case chip.IsADC(model):
		o := ads1115.DefaultOpts()
		return o.Timeout, o.ProbeEvery
	}
	o := generic.DefaultOpts()
	return o.Timeout, o.ProbeEvery
}

func ptr[T any](v T) *T { return &v }

func applyDefaults(c *Config) {
	modbusServerDefaults(c)
	if c.Gateway.UTCOffset == "" {
		c.Gateway.UTCOffset = DefaultUTCOffset
	}
	lo := modbus.DefaultLineOpts()
	for i := range c.Buses {
		b := &c.Buses[i]
		if b.Type == BusModbusRTU {
			if b.Baud == 0 {
				b.Baud = lo.Baud
			}
			if b.DataBits == 0 {
				b.DataBits = lo.DataBits
			}
			if b.Parity == "" {
				b.Parity = lo.Parity
			}
			if b.StopBits == 0 {
				b.StopBits = lo.StopBits
			}
		}
		if (b.Type == BusModbusTCP || b.Type == BusModbusRTUTCP) && b.ConnectTimeout == 0 {
			b.ConnectTimeout = Duration(lo.ConnectTimeout)
		}
	}
	do := modbus.DefaultDeviceOpts()
	buses := map[string]*Bus{}
	for i := range c.Buses {
		buses[c.Buses[i].Name] = &c.Buses[i]
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		timeout, probe := do.Timeout, do.ProbeEvery
		if b := buses[d.Bus]; b != nil && b.Type == BusI2C {
			timeout, probe = i2cDefaults(d.Model)
		}
		if d.Timeout == 0 {
			d.Timeout = Duration(timeout)
		}
		if d.Retries == nil {
			d.Retries = ptr(do.Retries)
		}
		if d.WordOrder == "" {
			d.WordOrder = regs.ABCD.String()
		}
		if d.MaxGap == nil {
			d.MaxGap = ptr(do.Limits.MaxGap)
		}
		if d.MaxRegisters == 0 {
			d.MaxRegisters = do.Limits.MaxRegisters
		}
		if d.MaxBits == 0 {
			d.MaxBits = do.Limits.MaxBits
		}
		if d.ProbeEvery == 0 {
			d.ProbeEvery = probe
		}
	}
	for i := range c.Points {
		p := &c.Points[i]
		if p.Interval == 0 {
			p.Interval = DefaultInterval
		}
		if p.Scale == nil {
			p.Scale = ptr(1.0)
		}
		if p.Source.Type == "" {
			switch p.Source.Table {
			case TableCoil, TableDiscrete:
				p.Source.Type = "bool"
			case TableHolding, TableInput:
				p.Source.Type = "uint16"
			}
		}
		if p.Report.Mode == "" {
			p.Report.Mode = ReportEvery
		}
		if p.Report.Mode == ReportChange && p.Report.MaxInterval == 0 {
			p.Report.MaxInterval = DefaultMaxInterval
		}
	}
	for i := range c.Interlocks {
		il := &c.Interlocks[i]
		if il.When.Vote == "" {
			il.When.Vote = "any"
		}
		if il.OnFault == "" {
			il.OnFault = OnFaultTrip
		}
		if il.Latch == nil {
			il.Latch = ptr(true)
		}
		if il.ReadbackEvery == 0 {
			il.ReadbackEvery = Duration(DefaultReadbackEvery)
		}
		for _, outs := range [][]Output{il.Actions, il.OnReset} {
			for j := range outs {
				if outs[j].Verify == nil {
					outs[j].Verify = ptr(true)
				}
				if outs[j].Retries == nil {
					outs[j].Retries = ptr(2)
				}
			}
		}
	}
	b := &c.Buffer
	if b.Dir == "" {
		b.Dir = DefaultDir
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultMaxBytes
	}
	if b.MinFree == 0 {
		b.MinFree = DefaultMinFree
	}
	if b.Retention == 0 {
		b.Retention = DefaultRetention
	}
	if b.MemoryQueue == 0 {
		b.MemoryQueue = DefaultMemoryQueue
	}
	if b.Queue == 0 {
		b.Queue = DefaultQueue
	}
	if b.MaxMessageBytes == 0 {
		b.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if b.Profile == "" {
		b.Profile = "small"
	}
	if b.CommitInterval == nil {
		b.CommitInterval = ptr(DefaultCommitInterval)
	}
	if m := c.Uplink.MQTT; m != nil {
		o := mqtt.DefaultOpts()
		if m.ClientID == "" {
			m.ClientID = c.Gateway.Enterprise + "-" + c.Gateway.Code
		}
		if m.TopicPrefix == "" {
			m.TopicPrefix = o.TopicPrefix
		}
		if m.KeepAlive == 0 {
			m.KeepAlive = Duration(o.KeepAlive)
		}
		if m.Inflight == 0 {
			m.Inflight = o.Inflight
		}
		if m.Heartbeat == 0 {
			m.Heartbeat = Duration(o.Heartbeat)
		}
		if m.ReconnectMin == 0 {
			m.ReconnectMin = Duration(o.ReconnectMin)
		}
		if m.ReconnectMax == 0 {
			m.ReconnectMax = Duration(o.ReconnectMax)
		}
		if m.PlatformAck != nil && m.PlatformAck.Timeout == 0 {
			m.PlatformAck.Timeout = Duration(o.AckTimeout)
		}
	}
	if h := c.Uplink.HJ212; h != nil {
		o := hj212.DefaultOpts()
		if h.Version == "" {
			h.Version = o.Version
		}
		if h.ST == "" {
			h.ST = o.ST
		}
		if h.PW == "" {
			h.PW = o.PW
		}
		if h.Ack == nil {
			h.Ack = ptr(o.Ack)
		}
		if h.OverTime == 0 {
			h.OverTime = Duration(o.OverTime)
		}
		if h.RTDInterval == 0 {
			h.RTDInterval = Duration(DefaultRTDInterval)
		}
		if h.AcceptPlatformTime == "" {
			h.AcceptPlatformTime = "never"
		}
		if h.ReCount == 0 {
			h.ReCount = o.ReCount
		}
		if h.Heartbeat == 0 {
			h.Heartbeat = Duration(o.Heartbeat)
		}
		if h.Stats == nil {
			h.Stats = ptr(true)
		}
		if h.Encryption != nil && h.Encryption.Encoding == "" {
			h.Encryption.Encoding = o.SM4Encoding
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}
