package config

import (
	"testing"
	"time"

	"github.com/hazwatch/edgecollector/drivers/i2c/ads1115"
	"github.com/hazwatch/edgecollector/drivers/i2c/bme280"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/uplink/hj212"
)

// TestDefaultsAreTheComponents: what the config fills in for an absent key
// is the owning component's DefaultOpts, not a number of its own.
func TestDefaultsAreTheComponents(t *testing.T) {
	cfg, err := Parse("d.yaml", []byte(`gateway: {enterprise: E1, code: GW1}
buses:
  - {name: rtu, type: modbus-rtu, device: /dev/ttyS1}
  - {name: tcp, type: modbus-tcp, address: "10.0.0.1:502"}
  - {name: onboard, type: i2c, device: "1"}
devices:
  - {name: m, bus: rtu, unit: 1}
  - {name: env, bus: onboard, address: 0x76, model: bme280}
  - {name: adc, bus: onboard, address: 0x48, model: ads1115}
uplink:
  mqtt: {url: "tcp://127.0.0.1:1883"}
  hj212: {address: "10.1.1.1:8888", mn: "010000A8900016F000169DC0", encryption: {key_file: sample.yaml}, version: "2025"}
`))
	if err != nil {
		t.Fatal(err)
	}
	lo, do, ho := modbus.DefaultLineOpts(), modbus.DefaultDeviceOpts(), hj212.DefaultOpts()
	rtu, tcp := cfg.Bus("rtu"), cfg.Bus("tcp")
	m := cfg.Device("m")
	h := cfg.Uplink.HJ212
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"baud", rtu.Baud, lo.Baud}, {"data_bits", rtu.DataBits, lo.DataBits}, {"parity", rtu.Parity, lo.Parity},
		{"stop_bits", rtu.StopBits, lo.StopBits}, {"connect_timeout", tcp.ConnectTimeout.D(), lo.ConnectTimeout},
		{"timeout", m.Timeout.D(), do.Timeout}, {"retries", *m.Retries, do.Retries}, {"probe_every", m.ProbeEvery, do.ProbeEvery},
		{"max_gap", *m.MaxGap, do.Limits.MaxGap}, {"max_registers", m.MaxRegisters, do.Limits.MaxRegisters},
		{"max_bits", m.MaxBits, do.Limits.MaxBits},
		{"bme280 timeout", cfg.Device("env").Timeout.D(), bme280.DefaultOpts().Timeout},
		{"bme280 probe_every", cfg.Device("env").ProbeEvery, bme280.DefaultOpts().ProbeEvery},
		{"ads1115 timeout", cfg.Device("adc").Timeout.D(), ads1115.DefaultOpts().Timeout},
		{"hj212 st", h.ST, ho.ST}, {"hj212 pw", h.PW, ho.PW}, {"hj212 ack", *h.Ack, ho.Ack},
		{"hj212 overtime", h.OverTime.D(), ho.OverTime}, {"hj212 recount", h.ReCount, ho.ReCount},
		{"hj212 heartbeat", h.Heartbeat.D(), ho.Heartbeat}, {"hj212 encoding", h.Encryption.Encoding, ho.SM4Encoding},
	} {
		if c.got != c.want {
			t.Errorf("%s: config fills in %v, the component's default is %v", c.what, c.got, c.want)
		}
	}
	if DefaultTimeout.D() != time.Second || DefaultRetries != 1 || DefaultMaxGap != 10 || DefaultProbeEvery != 10 || DefaultBaud != 9600 {
		t.Error("the documented defaults (README, sample) changed: update the docs with them")
	}
}
