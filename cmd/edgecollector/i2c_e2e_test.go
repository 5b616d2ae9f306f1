package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// chipBus emulates, from their datasheets' register maps, a BMP280 at 0x76
// (with the datasheet's worked-example calibration and ADC values) and an
// ADS1115 at 0x48 whose inputs carry settable 4-20 mA loop currents through
// a 150 ohm shunt. It is injected as the bus the config names.
type chipBus struct {
	mu     sync.Mutex
	bmpReg byte
	adsCfg uint16
	adsPtr byte
	mA     [4]float64
	txs    int
	closed bool
}

func (b *chipBus) String() string                  { return "emulated /dev/i2c-1" }
func (b *chipBus) SetSpeed(physic.Frequency) error { return nil }
func (b *chipBus) Close() error                    { b.mu.Lock(); b.closed = true; b.mu.Unlock(); return nil }
func (b *chipBus) setLoop(ch int, mA float64)      { b.mu.Lock(); b.mA[ch] = mA; b.mu.Unlock() }

var _ i2c.BusCloser = (*chipBus)(nil)

// BMP280 datasheet section 3.12: calibration and raw values.
func bmp280Memory() map[byte]byte {
	m := map[byte]byte{0xD0: 0x58, 0xF3: 0}
	words := []uint16{27504, 26435, uint16(0xFC18) /* -1000 */, 36477, uint16(0xD641) /* -10685 */, 3024, 2855, 140,
		uint16(0xFFF9) /* -7 */, 15500, uint16(0xC6F8) /* -14600 */, 6000}
	for i, w := range words {
		m[0x88+byte(2*i)], m[0x89+byte(2*i)] = byte(w), byte(w>>8)
	}
	adcP, adcT := uint32(415148), uint32(519888)
	for i, v := range []byte{byte(adcP >> 12), byte(adcP >> 4), byte(adcP << 4), byte(adcT >> 12), byte(adcT >> 4), byte(adcT << 4)} {
		m[0xF7+byte(i)] = v
	}
	return m
}

var bmpMem = bmp280Memory()

func (b *chipBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.txs++
	switch addr {
	case 0x76:
		if len(w) > 0 {
			b.bmpReg = w[0]
		}
		// writes (ctrl_meas, config) come as register/value pairs: accepted
		for i := range r {
			r[i] = bmpMem[b.bmpReg+byte(i)]
		}
		return nil
	case 0x48:
		if len(w) == 0 {
			return fmt.Errorf("ads1115: empty write")
		}
		b.adsPtr = w[0]
		if len(w) == 3 && b.adsPtr == 0x01 {
			b.adsCfg = binary.BigEndian.Uint16(w[1:])
		}
		if len(r) == 2 {
			switch b.adsPtr {
			case 0x01:
				binary.BigEndian.PutUint16(r, b.adsCfg|1<<15) // OS=1: conversion done
			case 0x00:
				ch := int(b.adsCfg>>12&7) - 4
				fsr := [...]float64{6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256}[b.adsCfg>>9&7]
				v := b.mA[ch] * 150 / 1000
				code := int16(math.Max(-32768, math.Min(32767, math.Round(v/fsr*32768))))
				binary.BigEndian.PutUint16(r, uint16(code))
			}
		}
		return nil
	}
	return fmt.Errorf("i2c: no device at %#x (NACK)", addr)
}

// TestI2CEndToEnd calls run in-process with an injected bus opener: I2C
// points flow through conversion, alarms, the buffer and MQTT to a real
// Mosquitto like the Modbus points do.
func TestI2CEndToEnd(t *testing.T) {
	broker := testpeer.Mosquitto(t, false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "i2c.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-I2C}
buses: [{name: onboard, type: i2c, device: /dev/i2c-1}]
devices:
  - {name: cabinet, bus: onboard, address: 0x76, model: bmp280}
  - {name: adc, bus: onboard, address: 0x48, model: ads1115, shunt_ohms: 150}
points:
  - {code: TE-CAB, kind: temperature, device: cabinet, interval: 200ms, unit: "°C", source: {measure: temperature}, alarms: {H: 60}}
  - {code: PE-CAB, kind: pressure, device: cabinet, interval: 200ms, unit: hPa, scale: 0.01, source: {measure: pressure}}
  - {code: LT-AI0, kind: level, device: adc, interval: 200ms, unit: "%%", loop: true, range: [0, 100], source: {channel: 0}, alarms: {H: 90}}
buffer: {dir: %q}
uplink: {mqtt: {url: %q, heartbeat: 2s}}
`, filepath.Join(dir, "data"), broker.URL()))
	bus := &chipBus{mA: [4]float64{12, 4, 4, 4}}
	var opened []string
	d := deps{openI2C: func(name string) (i2c.BusCloser, error) {
		opened = append(opened, name)
		if name != "/dev/i2c-1" {
			return nil, fmt.Errorf("no bus %q", name)
		}
		return bus, nil
	}}
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-I2C/#", "platform-i2c", false)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, &bytes.Buffer{}, &stderr, d) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("run exited %d:\n%s", code, stderr.String())
		}
	}()

	latest := func(ms []received, point string) map[string]any {
		var r map[string]any
		for _, m := range ms {
			if topicIs("rt")(m) {
				for _, x := range m.Body["readings"].([]any) {
					if rr := x.(map[string]any); rr["point"] == point {
						r = rr
					}
				}
			}
		}
		return r
	}
	ms := sub.waitFor("readings of the three I2C points", 15*time.Second, func(ms []received) bool {
		return latest(ms, "TE-CAB") != nil && latest(ms, "PE-CAB") != nil && latest(ms, "LT-AI0") != nil
	})
	te, pe, lt := latest(ms, "TE-CAB"), latest(ms, "PE-CAB"), latest(ms, "LT-AI0")
	if v := te["value"].(float64); math.Abs(v-25.08) > 0.01 || te["quality"] != "good" {
		t.Errorf("BMP280 temperature %v %v, datasheet 25.08 °C", v, te["quality"])
	}
	if v := pe["value"].(float64); math.Abs(v-1006.53) > 0.01 {
		t.Errorf("BMP280 pressure %v hPa, datasheet 100653 Pa", v)
	}
	if v := lt["value"].(float64); math.Abs(v-50) > 0.05 || lt["quality"] != "good" {
		t.Errorf("12 mA loop on 150 ohm: %v %v, want 50 %%", v, lt["quality"])
	}
	t.Logf("BMP280 %v °C, %v hPa; ADS1115 12 mA -> %v %%", te["value"], pe["value"], lt["value"])

	bus.setLoop(0, 19) // 93.75 %: above H
	sub.waitFor("alarm H on LT-AI0", 10*time.Second, func(ms []received) bool { return hasEvent(ms, "alarm", "raised", "LT-AI0") })
	bus.setLoop(0, 2) // below 3.6 mA: NAMUR sensor fault
	ms = sub.waitFor("sensor fault on LT-AI0", 10*time.Second, func(ms []received) bool {
		// the event and the reading come in separate messages
		r := latest(ms, "LT-AI0")
		return hasEvent(ms, "fault", "raised", "LT-AI0") && r != nil && r["quality"] == "sensor_fault"
	})
	if r := latest(ms, "LT-AI0"); r["value"] != nil {
		t.Errorf("2 mA: value %v, want null with sensor_fault", r["value"])
	}
	if len(opened) == 0 || opened[0] != "/dev/i2c-1" {
		t.Fatalf("the injected opener was not asked for the config's bus: %v", opened)
	}
}
