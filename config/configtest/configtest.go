// Package configtest generates configs for tests and benchmarks of the
// config loader and of the validate command.
package configtest

import (
	"bytes"
	"fmt"
)

// Plant returns a valid config of n (at least 3) points written the way the
// sample does, without aliases: block style, every point with its own
// source, range, alarms and report; 50 Modbus TCP buses with 4 devices
// each, and one interlock.
func Plant(n int) []byte {
	var b bytes.Buffer
	b.WriteString("gateway:\n  enterprise: \"91320500MA1W2X3Y4Z\"\n  code: GW01\n\nbuses:\n")
	const buses, perBus = 50, 4
	for i := range buses {
		fmt.Fprintf(&b, "  - name: plc-%02d\n    type: modbus-tcp\n    address: 10.0.%d.%d:502\n", i, i/200, i%200+1)
	}
	b.WriteString("\ndevices:\n")
	for i := range buses * perBus {
		fmt.Fprintf(&b, "  - name: dev-%03d\n    bus: plc-%02d\n    unit: %d\n    word_order: CDAB\n", i, i/perBus, i%perBus+1)
	}
	b.WriteString("\npoints:\n")
	perDev := (n + buses*perBus - 1) / (buses * perBus)
	for i := range n {
		dev, k := i/perDev, i%perDev
		if i%2 == 0 {
			fmt.Fprintf(&b, `  - code: GT-%05d
    name: "tank dike combustible gas %d"
    kind: gas
    device: dev-%03d
    interval: 1s
    source:
      table: input
      address: %d
      type: uint16
    raw_range: [4000, 20000]
    range: [0, 100]
    unit: "%%LEL"
    loop: true
    gas:
      type: combustible
    alarms:
      H: 25
      HH: 50
      hysteresis: 2
      on_delay: 2s
    report:
      mode: change
      deadband: 1
      max_interval: 60s
`, i, i, dev, k)
		} else {
			fmt.Fprintf(&b, `  - code: LT-%05d
    name: "storage tank level %d"
    kind: level
    device: dev-%03d
    interval: 500ms
    source: {table: holding, address: %d, type: float32}
    unit: m
    range: [0, 20]
    alarms: {LL: 0.5, L: 1.0, H: 17.0, HH: 18.5, hysteresis: 0.05}
`, i, i, dev, 2*k)
		}
	}
	b.WriteString(`
interlocks:
  - name: ESD-1
    when:
      inputs:
        - {point: GT-00000, level: HH}
        - {point: GT-00002, level: HH}
    actions:
      - {device: dev-000, table: coil, address: 0, value: 0}

buffer:
  dir: /var/lib/edgecollector

uplink:
  mqtt:
    url: ssl://platform.example.cn:8883
`)
	return b.Bytes()
}
