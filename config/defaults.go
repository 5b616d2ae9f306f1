package config

import (
	"time"
)

// Defaults, named so the docs and the sample can quote them.
const (
	DefaultUTCOffset       = "+08:00"
	DefaultBaud            = 9600
	DefaultTimeout         = Duration(time.Second)
	DefaultRetries         = 1
	DefaultReadbackEvery   = 10 * time.Second
	DefaultMaxGap          = 10
	DefaultProbeEvery      = 10
	DefaultInterval        = Duration(time.Second)
	DefaultMaxInterval     = Duration(60 * time.Second)
	DefaultDir             = "/var/lib/edgecollector"
	DefaultMaxBytes        = Size(1 << 30)
	DefaultMinFree         = Size(64 << 20)
	DefaultRetention       = Duration(30 * 24 * time.Hour)
	DefaultMemoryQueue     = 10000
	DefaultQueue           = 1024
	DefaultMaxMessageBytes = 65536
	DefaultCommitInterval  = Duration(time.Second)
	DefaultTopicPrefix     = "safety"
	DefaultInflight        = 32
	DefaultHeartbeat       = Duration(30 * time.Second)
)

func ptr[T any](v T) *T { return &v }

func applyDefaults(c *Config) {
	if c.Gateway.UTCOffset == "" {
		c.Gateway.UTCOffset = DefaultUTCOffset
	}
	for i := range c.Buses {
		b := &c.Buses[i]
		if b.Type == BusModbusRTU {
			if b.Baud == 0 {
				b.Baud = DefaultBaud
			}
			if b.DataBits == 0 {
				b.DataBits = 8
			}
			if b.Parity == "" {
				b.Parity = "none"
			}
			if b.StopBits == 0 {
				b.StopBits = 1
			}
		}
		if b.Type == BusModbusTCP && b.ConnectTimeout == 0 {
			b.ConnectTimeout = Duration(3 * time.Second)
		}
	}
	for i := range c.Devices {
		d := &c.Devices[i]
		if d.Timeout == 0 {
			d.Timeout = DefaultTimeout
		}
		if d.Retries == nil {
			d.Retries = ptr(DefaultRetries)
		}
		if d.WordOrder == "" {
			d.WordOrder = "ABCD"
		}
		if d.MaxGap == nil {
			d.MaxGap = ptr(DefaultMaxGap)
		}
		if d.MaxRegisters == 0 {
			d.MaxRegisters = 125
		}
		if d.MaxBits == 0 {
			d.MaxBits = 2000
		}
		if d.ProbeEvery == 0 {
			d.ProbeEvery = DefaultProbeEvery
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
		if m.ClientID == "" {
			m.ClientID = c.Gateway.Enterprise + "-" + c.Gateway.Code
		}
		if m.TopicPrefix == "" {
			m.TopicPrefix = DefaultTopicPrefix
		}
		if m.KeepAlive == 0 {
			m.KeepAlive = Duration(30 * time.Second)
		}
		if m.Inflight == 0 {
			m.Inflight = DefaultInflight
		}
		if m.Heartbeat == 0 {
			m.Heartbeat = DefaultHeartbeat
		}
		if m.ReconnectMin == 0 {
			m.ReconnectMin = Duration(time.Second)
		}
		if m.ReconnectMax == 0 {
			m.ReconnectMax = Duration(60 * time.Second)
		}
		if m.PlatformAck != nil && m.PlatformAck.Timeout == 0 {
			m.PlatformAck.Timeout = Duration(30 * time.Second)
		}
	}
	if h := c.Uplink.HJ212; h != nil {
		if h.Version == "" {
			h.Version = "2017"
		}
		if h.ST == "" {
			h.ST = "32"
		}
		if h.PW == "" {
			h.PW = "123456"
		}
		if h.Ack == nil {
			h.Ack = ptr(true)
		}
		if h.OverTime == 0 {
			h.OverTime = Duration(10 * time.Second)
		}
		if h.ReCount == 0 {
			h.ReCount = 3
		}
		if h.Heartbeat == 0 {
			h.Heartbeat = Duration(60 * time.Second)
		}
		if h.Stats == nil {
			h.Stats = ptr(true)
		}
		if h.Encryption != nil && h.Encryption.Encoding == "" {
			h.Encryption.Encoding = "raw"
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
}
