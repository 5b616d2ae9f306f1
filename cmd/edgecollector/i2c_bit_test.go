package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/internal/testpeer"
)

// statusByteBus is a generic I2C device at 0x40 whose register 0x10 holds a
// status byte.
type statusByteBus struct {
	mu  sync.Mutex
	reg byte
	mem map[byte]byte
}

func (b *statusByteBus) String() string                  { return "emulated /dev/i2c-1" }
func (b *statusByteBus) SetSpeed(physic.Frequency) error { return nil }
func (b *statusByteBus) Close() error                    { return nil }
func (b *statusByteBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if addr != 0x40 {
		return fmt.Errorf("i2c: no device at %#x (NACK)", addr)
	}
	if len(w) > 0 {
		b.reg = w[0]
	}
	for i := range r {
		r[i] = b.mem[b.reg+byte(i)]
	}
	return nil
}

var _ i2c.BusCloser = (*statusByteBus)(nil)

// TestI2CGenericBits: the config's source.bit of a generic I2C bool point
// reaches the driver: bits 0 and 7 of one status byte, and no bit (the
// byte not 0).
func TestI2CGenericBits(t *testing.T) {
	broker := testpeer.Mosquitto(t, false)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "bits.yaml", fmt.Sprintf(`gateway: {enterprise: "91320500TEST", code: GW-BITS}
buses: [{name: onboard, type: i2c, device: /dev/i2c-1}]
devices: [{name: relay, bus: onboard, address: 0x40, model: generic}]
points:
  - {code: XS-0, kind: other, device: relay, interval: 200ms, source: {register: 0x10, type: bool, bit: 0}}
  - {code: XS-7, kind: other, device: relay, interval: 200ms, source: {register: 0x10, type: bool, bit: 7}}
  - {code: XS-1, kind: other, device: relay, interval: 200ms, source: {register: 0x10, type: bool, bit: 1}}
  - {code: XS-ANY, kind: other, device: relay, interval: 200ms, source: {register: 0x10, type: bool}}
buffer: {dir: %q}
uplink: {mqtt: {url: %q}}
`, filepath.Join(dir, "data"), broker.URL()))
	bus := &statusByteBus{mem: map[byte]byte{0x10: 0b1000_0001}}
	d := deps{openI2C: func(string) (i2c.BusCloser, error) { return bus, nil }}
	sub := subscribe(t, broker.URL(), "safety/91320500TEST/GW-BITS/rt", "platform-bits", false)
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
	values := func(ms []received) map[string]any {
		v := map[string]any{}
		for _, m := range ms {
			for _, x := range m.Body["readings"].([]any) {
				r := x.(map[string]any)
				v[r["point"].(string)] = r["value"]
			}
		}
		return v
	}
	ms := sub.waitFor("readings of the four bit points", 15*time.Second, func(ms []received) bool { return len(values(ms)) == 4 })
	want := map[string]any{"XS-0": true, "XS-7": true, "XS-1": false, "XS-ANY": true}
	if got := values(ms); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("status byte 0b10000001: got %v, want %v", got, want)
	}
}
