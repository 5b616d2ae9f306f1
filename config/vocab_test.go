package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"

	edgei2c "github.com/hazwatch/edgecollector/drivers/i2c"
	"github.com/hazwatch/edgecollector/drivers/i2c/chip"
	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/drivers/regs"
)

const vocabHead = `gateway: {enterprise: E1, code: GW1}
buses:
  - {name: plc, type: modbus-tcp, address: "127.0.0.1:502"}
  - {name: onboard, type: i2c, device: "1"}
uplink: {mqtt: {url: "tcp://127.0.0.1:1883"}}
`

// probeOrders are every spelling the vocabulary has plus near misses, so a
// driver that took more than the config (or less) is caught.
func probeOrders() []string {
	o := append(slices.Clone(regs.OrderNames), regs.OrderNames64...)
	return append(o, "abcd", "AB", "BA", "ABCDEFG", "DCBAHGFE", "XYZW")
}

func probeTypes() []string {
	return append(slices.Clone(regs.TypeNames), "uint8", "float", "Int16")
}

// modbusDecodes says whether the Modbus driver reads a point so described:
// the names parse, and a block of the right size decodes.
func modbusDecodes(table, typ, order string) bool {
	tab, err := modbus.ParseTable(table)
	if err != nil {
		return false
	}
	ty, err := modbus.ParseType(typ)
	if err != nil || tab.Bits() != (ty == modbus.Bool) && tab.Bits() {
		return false
	}
	ord, err := regs.OrderFor(order, ty)
	if err != nil {
		return false
	}
	if tab.Bits() {
		_, err = modbus.Bit([]byte{1}, 0)
		return err == nil
	}
	s := modbus.Spec{Table: tab, Type: ty, Order: ord, Bit: -1, Length: 2}
	if ty == modbus.Bool {
		s.Bit = 3
	}
	_, err = modbus.DecodeRegisters(s, make([]byte, 2*s.Registers()))
	return err == nil
}

// TestVocabularyModbus: every table, type and word order the Modbus driver
// decodes is accepted by the config for a point, and every one the config
// accepts the driver decodes.
func TestVocabularyModbus(t *testing.T) {
	n := 0
	for _, table := range append(slices.Clone(regs.TableNames), "holding_register") {
		for _, typ := range probeTypes() {
			for _, order := range probeOrders() {
				extra := ""
				if typ == "bool" && (table == "holding" || table == "input") {
					extra = ", bit: 3"
				}
				if typ == "string" {
					extra = ", length: 2"
				}
				cfg := vocabHead + fmt.Sprintf(`devices: [{name: d, bus: plc, unit: 1}]
points:
  - {code: P1, kind: other, device: d, source: {table: %s, address: 0, type: %s, word_order: %s%s}}
`, table, typ, order, extra)
				_, err := Parse("vocab.yaml", []byte(cfg))
				if drv := modbusDecodes(table, typ, order); drv != (err == nil) {
					t.Errorf("table %s type %s order %s: driver decodes=%v, config error=%v", table, typ, order, drv, err)
				}
				n++
			}
		}
	}
	// A device's order is the default of points of every type: both
	// spellings are taken there, by config and driver alike.
	for _, order := range probeOrders() {
		cfg := vocabHead + fmt.Sprintf(`devices: [{name: d, bus: plc, unit: 1, word_order: %s}]
points:
  - {code: P1, kind: other, device: d, source: {table: holding, address: 0, type: float32}}
`, order)
		_, err := Parse("vocab.yaml", []byte(cfg))
		_, derr := modbus.ParseOrder(order)
		if (derr == nil) != (err == nil) {
			t.Errorf("device word_order %s: driver error=%v, config error=%v", order, derr, err)
		}
	}
	t.Logf("%d combinations agree", n)
}

func TestVocabularyRefusalSaysWhatToWrite(t *testing.T) {
	cfg := vocabHead + `devices: [{name: d, bus: plc, unit: 1}]
points:
  - {code: P1, kind: other, device: d, source: {table: holding, address: 0, type: float32, word_order: GHEFCDAB}}
  - {code: P2, kind: other, device: d, source: {table: holding, address: 2, type: float64, word_order: GHEFCDAB}}
`
	_, err := Parse("vocab.yaml", []byte(cfg))
	ps, _ := AsProblems(err)
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "GHEFCDAB is for 64-bit values") || !strings.Contains(ps[0].Msg, "write CDAB") {
		t.Fatalf("want one problem telling to write CDAB for the float32, got %v", err)
	}
}

// i2cBuilds says whether the I2C driver builds a source for one point.
func i2cBuilds(dev edgei2c.Device, pt edgei2c.Point) error {
	bus := edgei2c.NewBus("onboard", &i2ctest.Playback{DontPanic: true})
	_, err := edgei2c.NewSource(bus, dev, []edgei2c.Point{pt})
	return err
}

// TestVocabularyI2C: models, addresses, measures, channels, shunts, data
// types and orders of generic devices: the config accepts exactly what the
// I2C drivers build.
func TestVocabularyI2C(t *testing.T) {
	check := func(what, device, source string, dev edgei2c.Device, pt edgei2c.Point) {
		t.Helper()
		cfg := vocabHead + "devices: [{name: d, bus: onboard, " + device + "}]\n" +
			"points:\n  - {code: P1, kind: other, device: d, source: {" + source + "}}\n"
		_, err := Parse("vocab.yaml", []byte(cfg))
		derr := i2cBuilds(dev, pt)
		if (derr == nil) != (err == nil) {
			t.Errorf("%s: driver error=%v, config error=%v", what, derr, err)
		}
	}
	models := append(slices.Clone(chip.Models), "sht31")
	for _, m := range models {
		for _, addr := range []uint16{0x08, 0x40, 0x48, 0x4B, 0x4C, 0x76, 0x77} {
			for _, measure := range []string{chip.Temperature, chip.Pressure, chip.Humidity, "temp"} {
				if chip.Measures(m) == nil && measure != chip.Temperature {
					continue
				}
				dev := edgei2c.Device{Name: "d", Model: m, Address: addr}
				pt := edgei2c.Point{Code: "P1", Measure: measure, Type: "uint16"}
				src := "measure: " + measure
				switch {
				case chip.IsADC(m):
					src = "channel: 0"
				case m == chip.Generic || chip.Measures(m) == nil:
					src = "register: 0, type: uint16"
				}
				check(fmt.Sprintf("%s at %#x %s", m, addr, src), fmt.Sprintf("model: %s, address: %#x", m, addr), src, dev, pt)
			}
		}
	}
	for _, m := range []string{chip.ADS1115, chip.ADS1015} {
		for ch := -1; ch <= 4; ch++ {
			check(fmt.Sprintf("%s channel %d", m, ch), "model: "+m+", address: 0x48", fmt.Sprintf("channel: %d", ch),
				edgei2c.Device{Name: "d", Model: m, Address: 0x48}, edgei2c.Point{Code: "P1", Channel: ch})
		}
		for _, shunt := range []float64{-1, 0, 150, 250, 256, 257, 500} {
			check(fmt.Sprintf("%s shunt %g", m, shunt), fmt.Sprintf("model: %s, address: 0x48, shunt_ohms: %g", m, shunt), "channel: 0",
				edgei2c.Device{Name: "d", Model: m, Address: 0x48, ShuntOhms: shunt}, edgei2c.Point{Code: "P1"})
		}
	}
	for _, typ := range probeTypes() {
		for _, order := range probeOrders() {
			for _, length := range []int{0, 3, 8, 33} {
				if (typ == "string") != (length != 0) {
					continue
				}
				src := fmt.Sprintf("register: 16, type: %s, word_order: %s", typ, order)
				if length != 0 {
					src += fmt.Sprintf(", length: %d", length)
				}
				check("generic "+src, "model: generic, address: 0x40", src,
					edgei2c.Device{Name: "d", Model: chip.Generic, Address: 0x40},
					edgei2c.Point{Code: "P1", Register: 16, Type: typ, WordOrder: order, Length: length})
			}
		}
	}
	for _, typ := range []string{"bool", "uint16"} {
		for _, bit := range []int{-1, 0, 7, 8} {
			b := bit
			check(fmt.Sprintf("generic %s bit %d", typ, bit), "model: generic, address: 0x40", fmt.Sprintf("register: 1, type: %s, bit: %d", typ, bit),
				edgei2c.Device{Name: "d", Model: chip.Generic, Address: 0x40}, edgei2c.Point{Code: "P1", Register: 1, Type: typ, Bit: &b})
		}
	}
	for _, reg := range []int{-1, 0, 255, 256} {
		check(fmt.Sprintf("generic register %d", reg), "model: generic, address: 0x40", fmt.Sprintf("register: %d, type: uint16", reg),
			edgei2c.Device{Name: "d", Model: chip.Generic, Address: 0x40}, edgei2c.Point{Code: "P1", Register: reg, Type: "uint16"})
	}
}
