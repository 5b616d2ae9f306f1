package i2c

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/edge"
)

func TestOpenInjected(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x40, W: []byte{1}, R: []byte{2}}}}
	var asked string
	b, err := Open("onboard", "/dev/i2c-1", func(name string) (i2c.BusCloser, error) { asked = name; return pb, nil })
	if err != nil {
		t.Fatal(err)
	}
	if asked != "/dev/i2c-1" || b.String() != "onboard" || b.Device() != "/dev/i2c-1" {
		t.Errorf("opened %q as %q (%s)", asked, b, b.Device())
	}
	r := make([]byte, 1)
	if err := b.Tx(0x40, []byte{1}, r); err != nil || r[0] != 2 {
		t.Fatalf("%v % x", err, r)
	}
	if err := b.Tx(0x41, []byte{1}, r); err == nil {
		t.Fatal("a transaction with no answer succeeded")
	}
	st := b.Stats()
	if st.Tx != 2 || st.Errors != 1 || st.ByAddr[0x41] != 1 {
		t.Errorf("stats %+v", st)
	}
	// Close closes what Open opened (Playback checks every op was used).
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := b.Tx(0x40, []byte{1}, r); !errors.Is(err, ErrClosed) {
		t.Errorf("after close: %v", err)
	}
}

func TestOpenFails(t *testing.T) {
	_, err := Open("onboard", "3", func(string) (i2c.BusCloser, error) { return nil, errors.New("no such bus") })
	if err == nil || !strings.Contains(err.Error(), `bus "onboard"`) {
		t.Errorf("%v", err)
	}
	_, err = Open("onboard", "3", func(string) (i2c.BusCloser, error) { return nil, nil })
	if err == nil {
		t.Error("nil bus accepted")
	}
}

// On a machine with no I2C bus (CI, laptops) periph's host opener says so.
func TestOpenHostNoBus(t *testing.T) {
	if _, err := os.Stat("/dev/i2c-1"); err == nil {
		t.Skip("this machine has /dev/i2c-1")
	}
	for _, name := range []string{"1", "/dev/i2c-1"} {
		_, err := Open("onboard", name, nil)
		if err == nil {
			t.Fatalf("%s: opened a bus that does not exist", name)
		}
		t.Logf("%s: %v", name, err)
		if !strings.Contains(err.Error(), `bus "onboard"`) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error does not name the bus: %v", name, err)
		}
	}
}

func TestNewBusDoesNotOwn(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x40, W: []byte{1}}}}
	b := NewBus("onboard", pb)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The playback was not closed: its pending op would have made Close fail.
	if err := pb.Tx(0x40, []byte{1}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestQuality(t *testing.T) {
	if Quality(nil) != edge.Good || Quality(errors.New("i2c: NACK")) != edge.CommFault || Quality(context.DeadlineExceeded) != edge.CommFault {
		t.Error("Quality")
	}
}

// fakeADS is an ADS1115 register model: a conversion is of the input the
// config register selects when the result is read. Two polls that
// interleave their config write and result read get the other's input.
type fakeADS struct {
	mu   sync.Mutex
	cfg  uint16
	code [4]int16
	tx   int
}

func (f *fakeADS) String() string                  { return "fake" }
func (f *fakeADS) SetSpeed(physic.Frequency) error { return nil }
func (f *fakeADS) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tx++
	if addr != 0x48 {
		return fmt.Errorf("NACK 0x%02x", addr)
	}
	switch {
	case len(w) == 3 && w[0] == 1:
		f.cfg = binary.BigEndian.Uint16(w[1:])
	case len(w) == 1 && w[0] == 1 && len(r) == 2:
		binary.BigEndian.PutUint16(r, f.cfg|0x8000)
	case len(w) == 1 && w[0] == 0 && len(r) == 2:
		mux := int(f.cfg>>12&7) - 4
		binary.BigEndian.PutUint16(r, uint16(f.code[mux]))
	default:
		return fmt.Errorf("unexpected % x", w)
	}
	return nil
}

// Two poll groups reading one ADC never mix up inputs, while a dead sensor
// on the same bus fails on its own.
func TestSharedBus(t *testing.T) {
	chip := &fakeADS{code: [4]int16{4800, 9600, 14400, 19200}} // 4, 8, 12, 16 mA on 150 Ω
	bus := NewBus("onboard", chip)
	a, err := NewSource(bus, Device{Name: "ai-1", Model: ModelADS1115, Address: 0x48, ShuntOhms: 150}, []Point{{Channel: 0}, {Channel: 1}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSource(bus, Device{Name: "ai-1", Model: ModelADS1115, Address: 0x48, ShuntOhms: 150}, []Point{{Channel: 3}, {Channel: 2}})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := NewSource(bus, Device{Name: "env", Model: ModelBMP280, Address: 0x76}, []Point{{Measure: "temperature"}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	check := func(s edge.Source, want ...float64) {
		defer wg.Done()
		for range 10 {
			out := make([]edge.Raw, len(want))
			s.Read(context.Background(), out)
			for i, w := range want {
				if out[i].Quality != edge.Good || math.Abs(out[i].Value.Num-w) > 1e-3 {
					errs <- fmt.Errorf("%s input %d: %v %v %v, want %g mA", s, i, out[i].Value, out[i].Quality, out[i].Err, w)
				}
			}
		}
	}
	wg.Add(3)
	go check(a, 4, 8)
	go check(b, 16, 12)
	go func() {
		defer wg.Done()
		out := make([]edge.Raw, 1)
		for range 10 {
			dead.Read(context.Background(), out)
			if out[0].Quality != edge.CommFault && out[0].Quality != edge.Stale {
				errs <- fmt.Errorf("dead sensor: %v", out[0].Quality)
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := bus.Stats()
	t.Logf("bus stats: %d transactions, %d errors, by address %v", st.Tx, st.Errors, st.ByAddr)
	if st.ByAddr[0x76] != 1 || st.ByAddr[0x48] != 0 {
		t.Errorf("errors by address %v: want one failed probe of 0x76 (then backing off)", st.ByAddr)
	}
	if got, want := dead.String(), `bmp280 0x76 on bus "onboard"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
