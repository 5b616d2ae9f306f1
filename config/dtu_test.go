package config

import (
	"bytes"
	"testing"
	"time"
)

// TestDTUBusesValidate: the two DTU bus types validate with their keys,
// take their defaults and compile their registration.
func TestDTUBusesValidate(t *testing.T) {
	cfg, err := Parse("dtu.yaml", []byte(`
gateway: {enterprise: E1, code: GW1}
buffer: {dir: /tmp/x}
uplink: {mqtt: {url: "tcp://127.0.0.1:1883"}}
buses:
  - {name: srv, type: modbus-rtu-tcp, address: "192.168.1.50:8899", frame_gap: 20ms}
  - {name: dtu1, type: modbus-rtu-dtu, listen: "0.0.0.0:9000", register: {hex: "AA55 0002"}}
  - {name: dtu2, type: modbus-rtu-dtu, listen: "0.0.0.0:9000", register: {regex: "^DTU0002"}}
  - {name: dtu3, type: modbus-rtu-dtu, listen: "0.0.0.0:9000", register: {source: 10.20.0.7}}
devices:
  - {name: d1, bus: srv, unit: 1}
  - {name: d2, bus: dtu1, unit: 1}
  - {name: d3, bus: dtu2, unit: 1}
points:
  - {code: GT-1, kind: other, device: d2, source: {table: holding, address: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Buses[0].ConnectTimeout.D(); got != 3*time.Second {
		t.Errorf("modbus-rtu-tcp connect_timeout default %s, want 3s", got)
	}
	if b, err := cfg.Buses[1].Register.Bytes(); err != nil || !bytes.Equal(b, []byte{0xAA, 0x55, 0x00, 0x02}) {
		t.Errorf("hex registration: % x %v", b, err)
	}
	if re, err := cfg.Buses[2].Register.Pattern(); err != nil || !re.MatchString("DTU0002\r\n") {
		t.Errorf("regex registration: %v %v", re, err)
	}
}
