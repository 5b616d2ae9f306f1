package collector

import (
	"strings"
	"testing"

	"github.com/hazwatch/edgecollector/config"
)

// TestRestartNeededForDTUsAndTheModbusMap: a DTU bus or the control room's
// register map changing cannot be applied in place (the listeners and the
// map are built at start); other point changes still can.
func TestRestartNeededForDTUsAndTheModbusMap(t *testing.T) {
	base := `gateway: {enterprise: E1, code: GW1}
buffer: {dir: /tmp/x}
uplink: {mqtt: {url: "tcp://127.0.0.1:1883"}}
buses:
  - {name: plc, type: modbus-tcp, address: "127.0.0.1:502"}
  - {name: dtu, type: modbus-rtu-dtu, listen: "127.0.0.1:9000", register: {text: DTU1}}
devices: [{name: d, bus: plc, unit: 1}, {name: e, bus: dtu, unit: 1}]
points:
  - {code: P-1, kind: other, device: d, source: {table: holding, address: 0}, range: [0, 100]}
  - {code: P-2, kind: other, device: e, source: {table: holding, address: 0}}
modbus_server: {listen: "127.0.0.1:1502", map: {points: [P-1]}}
`
	parse := func(s string) *config.Config {
		t.Helper()
		c, err := config.Parse("t.yaml", []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cur := parse(base)
	for _, c := range []struct{ name, from, to, want string }{
		{"a point outside the map", "source: {table: holding, address: 0}}\n", "source: {table: holding, address: 1}}\n", ""},
		{"the DTU's registration", "{text: DTU1}", "{text: DTU2}", "DTU buses changed"},
		{"a mapped point's range (its int16 scale)", "range: [0, 100]", "range: [0, 1000]", "the Modbus server's map changed"},
		{"the map's points", "map: {points: [P-1]}", "map: {points: [P-1, P-2]}", "the Modbus server's map changed"},
	} {
		next := parse(strings.Replace(base, c.from, c.to, 1))
		if got := restartNeeded(cur, next); got != c.want {
			t.Errorf("%s: restartNeeded = %q, want %q", c.name, got, c.want)
		}
	}
}
