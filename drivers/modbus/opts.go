package modbus

import (
	"time"

	"github.com/hazwatch/edgecollector/drivers/regs"
)

// DefaultLineOpts are the documented defaults of a line: a 3 s TCP
// connect, and 9600 baud 8N1 on RS-485. The config applies them; set Name
// and Address or Device.
func DefaultLineOpts() LineOpts {
	return LineOpts{ConnectTimeout: 3 * time.Second, Baud: 9600, DataBits: 8, Parity: "none", StopBits: 1}
}

// DefaultDeviceOpts are the documented defaults of a device: 1 s per
// request, one retry, a dead device probed every 10 polls, block reads up
// to the protocol's limits spanning gaps of up to 10 unused registers. The
// config applies them; set Name and Unit.
func DefaultDeviceOpts() DeviceOpts {
	return DeviceOpts{Timeout: time.Second, Retries: 1, ProbeEvery: 10,
		Limits: Limits{MaxRegisters: regs.MaxReadRegisters, MaxBits: regs.MaxReadBits, MaxGap: 10}}
}
