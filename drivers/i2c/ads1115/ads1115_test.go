package ads1115

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"github.com/hazwatch/edgecollector/drivers/i2c/internal/devconn"
	"github.com/hazwatch/edgecollector/edge"
)

// Config register fields (ADS1115 datasheet section 8.6.3, table 8).
const (
	osStart    = 1 << 15 // OS: start a single conversion / not converting
	muxAIN0    = 0b100   // MUX[14:12]: AIN0 against GND; AIN1-3 follow
	pga4096    = 0b001   // PGA[11:9]: ±4.096 V
	modeSingle = 1 << 8  // MODE: single-shot
	dr128      = 0b100   // DR[7:5]: ADS1115 128 SPS
	dr128_1015 = 0b000   // DR[7:5]: ADS1015 128 SPS
	compOff    = 0b11    // COMP_QUE[1:0]: comparator disabled
)

func config(ch int, dr uint16) uint16 {
	return osStart | uint16(muxAIN0+ch)<<12 | pga4096<<9 | modeSingle | dr<<5 | compOff
}

func be(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// convert is one conversion as the chip answers it: the config write, the
// ready check reading the config back (OS=1, conversion done), and the result.
func convert(addr uint16, cfg uint16, code int16, busy int) []i2ctest.IO {
	ops := []i2ctest.IO{{Addr: addr, W: append([]byte{0x01}, be(cfg)...)}}
	for range busy {
		ops = append(ops, i2ctest.IO{Addr: addr, W: []byte{0x01}, R: be(cfg &^ osStart)})
	}
	return append(ops,
		i2ctest.IO{Addr: addr, W: []byte{0x01}, R: be(cfg)},
		i2ctest.IO{Addr: addr, W: []byte{0x00}, R: be(uint16(code))})
}

// code is the ADS1115 output code of v volts in the ±4.096 V range
// (datasheet table 3: 1 LSB = 4.096 V / 2^15).
func code(v float64) int16 { return int16(math.Round(v / 4.096 * 32768)) }

// loop is the point conversion the collector compiles for a 0-100 % loop.
var loop = edge.PointConf{Loop: true, Current: true, RawLo: 4, RawHi: 20, EngLo: 0, EngHi: 100, RangeLo: 0, RangeHi: 100, Scale: 1}

func TestLoop(t *testing.T) {
	const shunt = 150.0
	// 12 mA on 150 Ω is 1.8 V; 2 mA is 0.3 V (a broken loop); 20 mA 3.0 V.
	pb := &i2ctest.Playback{DontPanic: true, Ops: append(append(
		convert(0x48, config(0, dr128), code(12e-3*shunt), 0),
		convert(0x48, config(1, dr128), code(2e-3*shunt), 1)...),
		convert(0x48, config(3, dr128), code(20e-3*shunt), 0)...)}
	o := DefaultOpts()
	o.ShuntOhms = shunt
	s, err := New(pb, 0x48, []int{0, 1, 3}, &o)
	if err != nil {
		t.Fatal(err)
	}
	if s.FullScale() != 4096*physic.MilliVolt {
		t.Errorf("full scale %s, want 4.096V", s.FullScale())
	}
	out := make([]edge.Raw, 3)
	s.Read(context.Background(), out)
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		mA  float64
		pct float64
		q   edge.Quality
	}{{12, 50, edge.Good}, {2, 0, edge.SensorFault}, {20, 100, edge.Good}} {
		r := out[i]
		if r.Quality != edge.Good || math.Abs(r.Value.Num-want.mA) > 0.001 {
			t.Fatalf("input %d: raw %v %v %v, want %g mA", i, r.Value, r.Quality, r.Err, want.mA)
		}
		v, q := loop.Convert(&r, false)
		t.Logf("input %d: raw %.4f mA -> %v %s", i, r.Value.Num, v, q)
		if q != want.q {
			t.Errorf("input %d: quality %s, want %s", i, q, want.q)
		}
		if q == edge.Good && math.Abs(v.Num-want.pct) > 0.01 {
			t.Errorf("input %d: %v %%, want %g", i, v, want.pct)
		}
	}
}

func TestADS1015(t *testing.T) {
	// 12-bit result left-justified: 1.8 V is 900 counts of 2 mV, 0x3840.
	pb := &i2ctest.Playback{DontPanic: true, Ops: convert(0x49, config(2, dr128_1015), 900<<4, 0)}
	o := DefaultOpts()
	o.Chip, o.ShuntOhms = ADS1015, 150
	s, err := New(pb, 0x49, []int{2}, &o)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 1)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.Good || math.Abs(out[0].Value.Num-12) > 1e-9 {
		t.Fatalf("%v %v %v", out[0].Value, out[0].Quality, out[0].Err)
	}
	if got, want := s.String(), `ads1015 0x49 on bus "playback"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestVolts(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true, Ops: append(
		convert(0x48, config(0, dr128), code(2.5), 0),
		convert(0x48, config(1, dr128), math.MaxInt16, 0)...)}
	s, err := New(pb, 0x48, []int{0, 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 2)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.Good || math.Abs(out[0].Value.Num-2.5) > 0.0002 {
		t.Errorf("input 0: %v %v %v", out[0].Value, out[0].Quality, out[0].Err)
	}
	if out[1].Quality != edge.SensorFault || !strings.Contains(out[1].Err.Error(), "clipped") {
		t.Errorf("input 1: %v %v", out[1].Quality, out[1].Err)
	}
}

func TestNACK(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	o := DefaultOpts()
	o.ShuntOhms = 150
	s, err := New(pb, 0x4A, []int{0, 1}, &o)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 2)
	s.Read(context.Background(), out)
	for i, r := range out {
		if r.Quality != edge.CommFault || r.Err == nil || !strings.Contains(r.Err.Error(), "0x4a") || !strings.Contains(r.Err.Error(), "reg 0x01") {
			t.Fatalf("input %d: %v %v", i, r.Quality, r.Err)
		}
		if v, q := loop.Convert(&r, false); q != edge.CommFault || !v.IsNull() {
			t.Errorf("converted: %v %s", v, q)
		}
	}
	t.Log(out[0].Err)
	// The next polls leave the chip alone (stale) until the probe.
	s.Read(context.Background(), out)
	if out[0].Quality != edge.Stale || !errors.Is(out[0].Err, devconn.ErrBackingOff) {
		t.Errorf("next poll: %v %v", out[0].Quality, out[0].Err)
	}
}

// A chip that reset between the conversion request and the read reads back
// its power-on config: the result is not this input's and is refused.
func TestConversionNotTaken(t *testing.T) {
	cfg := config(0, dr128)
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x48, W: append([]byte{0x01}, be(cfg)...)},
		{Addr: 0x48, W: []byte{0x01}, R: be(0x8583)}, // power-on default
	}}
	s, err := New(pb, 0x48, []int{0}, &Opts{ShuntOhms: 150})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 1)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.CommFault || !strings.Contains(out[0].Err.Error(), "0x8583") {
		t.Fatalf("%v %v", out[0].Quality, out[0].Err)
	}
	t.Log(out[0].Err)
}

func TestNewRejects(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	for _, tc := range []struct {
		addr uint16
		ch   []int
		o    Opts
		want string
	}{
		{0x40, []int{0}, Opts{}, "0x48-0x4B"},
		{0x48, nil, Opts{}, "no inputs"},
		{0x48, []int{4}, Opts{}, "want 0-3"},
		{0x48, []int{0}, Opts{ShuntOhms: -1}, "positive"},
		{0x48, []int{0}, Opts{ShuntOhms: 500}, "6.144"},
		{0x48, []int{0}, Opts{Chip: 7}, "unknown chip"},
	} {
		_, err := New(pb, tc.addr, tc.ch, &tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(0x%02x, %v, %+v): %v, want %q", tc.addr, tc.ch, tc.o, err, tc.want)
		}
	}
	// 250 Ω (1-5 V) takes the ±6.144 V range.
	s, err := New(pb, 0x48, []int{0}, &Opts{ShuntOhms: 250})
	if err != nil || s.FullScale() != 6144*physic.MilliVolt {
		t.Errorf("250 Ω: %v %v", s.FullScale(), err)
	}
	if pb.Count != 0 {
		t.Error("New touched the bus")
	}
}

func TestTimeout(t *testing.T) {
	cfg := config(0, dr128)
	ops := []i2ctest.IO{{Addr: 0x48, W: append([]byte{0x01}, be(cfg)...)}}
	for range maxReadyPolls {
		ops = append(ops, i2ctest.IO{Addr: 0x48, W: []byte{0x01}, R: be(cfg &^ osStart)})
	}
	pb := &i2ctest.Playback{DontPanic: true, Ops: ops}
	s, err := New(pb, 0x48, []int{0}, &Opts{ShuntOhms: 150, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 1)
	start := time.Now()
	s.Read(context.Background(), out)
	if out[0].Quality != edge.CommFault || time.Since(start) > time.Second {
		t.Fatalf("%v %v after %s", out[0].Quality, out[0].Err, time.Since(start))
	}
	t.Log(out[0].Err)
}
