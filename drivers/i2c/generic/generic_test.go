package generic

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/hazwatch/edgecollector/drivers/modbus"
	"github.com/hazwatch/edgecollector/edge"
)

func TestRead(t *testing.T) {
	f32 := make([]byte, 4)
	binary.LittleEndian.PutUint32(f32, math.Float32bits(21.5)) // little-endian float: DCBA
	u32 := []byte{0x56, 0x78, 0x12, 0x34}                      // 0x12345678, low word first: CDAB
	i16le := binary.LittleEndian.AppendUint16(nil, uint16(0xFF38))
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x40, W: []byte{0xF3}}, // start a conversion
		{Addr: 0x40, W: []byte{0x00}, R: []byte{0x01, 0xF4}},
		{Addr: 0x40, W: []byte{0x02}, R: i16le},
		{Addr: 0x40, W: []byte{0x04}, R: f32},
		{Addr: 0x40, W: []byte{0x08}, R: u32},
		{Addr: 0x40, W: []byte{0x10}, R: []byte("TX-101\x00\x00\x00")},
		{Addr: 0x40, W: []byte{0x20}, R: []byte{0b0000_0100}},
		{Addr: 0x40, W: []byte{0x21}, R: []byte{0x12, 0x9A}}, // not BCD
	}}
	points := []Point{
		{Register: 0x00, Type: modbus.Uint16},
		{Register: 0x02, Type: modbus.Int16, Order: modbus.BADC},
		{Register: 0x04, Type: modbus.Float32, Order: modbus.DCBA},
		{Register: 0x08, Type: modbus.Uint32, Order: modbus.CDAB},
		{Register: 0x10, Type: modbus.String, Length: 9},
		{Register: 0x20, Type: modbus.Bool, Bit: 2},
		{Register: 0x21, Type: modbus.BCD16},
	}
	s, err := New(pb, 0x40, points, &Opts{Command: []byte{0xF3}, Wait: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, len(points))
	start := time.Now()
	s.Read(context.Background(), out)
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("poll took %s, less than the wait", d)
	}
	if err := pb.Close(); err != nil {
		t.Fatal(err)
	}
	want := []edge.Value{edge.Num(500), edge.Num(-200), edge.Num(21.5), edge.Num(0x12345678), edge.Str("TX-101"), edge.BoolValue(true)}
	for i, w := range want {
		if out[i].Quality != edge.Good || out[i].Value != w {
			t.Errorf("point %d (%s): %v %v %v, want %v", i, points[i], out[i].Value, out[i].Quality, out[i].Err, w)
		}
	}
	if r := out[6]; r.Quality != edge.SensorFault || !errors.Is(r.Err, modbus.ErrDecode) || !strings.Contains(r.Err.Error(), "reg 0x21") {
		t.Errorf("bad BCD: %v %v", r.Quality, r.Err)
	}
	if got, want := s.String(), `i2c device 0x40 on bus "playback"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestNACK(t *testing.T) {
	// The device acknowledges the first register and then stops answering.
	pb := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{{Addr: 0x23, W: []byte{0x01}, R: []byte{0, 7}}}}
	s, err := New(pb, 0x23, []Point{{Register: 1, Type: modbus.Uint16}, {Register: 2, Type: modbus.Uint16}, {Register: 3, Type: modbus.Int16}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 3)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.Good || out[0].Value != edge.Num(7) {
		t.Errorf("point 0: %v %v", out[0].Value, out[0].Quality)
	}
	for _, r := range out[1:] {
		if r.Quality != edge.CommFault || !strings.Contains(r.Err.Error(), "0x23") || !strings.Contains(r.Err.Error(), "reg 0x02") {
			t.Errorf("%v %v", r.Quality, r.Err)
		}
	}
	t.Log(out[1].Err)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.Stale {
		t.Errorf("next poll: %v %v", out[0].Quality, out[0].Err)
	}
}

func TestCommandNACK(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	s, err := New(pb, 0x44, []Point{{Register: 0, Type: modbus.Uint16}}, &Opts{Command: []byte{0x24, 0x00}, Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]edge.Raw, 1)
	s.Read(context.Background(), out)
	if out[0].Quality != edge.CommFault || !strings.Contains(out[0].Err.Error(), "command: write reg 0x24") {
		t.Errorf("%v %v", out[0].Quality, out[0].Err)
	}
}

func TestNewRejects(t *testing.T) {
	pb := &i2ctest.Playback{DontPanic: true}
	for _, tc := range []struct {
		addr uint16
		p    []Point
		want string
	}{
		{0x80, []Point{{Type: modbus.Uint16}}, "0x08-0x77"},
		{0x40, nil, "no points"},
		{0x40, []Point{{Type: modbus.String, Length: 0}}, "1-32"},
		{0x40, []Point{{Type: modbus.String, Length: 3, Order: modbus.BADC}}, "even length"},
		{0x40, []Point{{Type: modbus.Bool, Bit: 8}}, "bit 8"},
		{0x40, []Point{{Type: 0}}, "data type"},
	} {
		_, err := New(pb, tc.addr, tc.p, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(0x%02x, %v): %v, want %q", tc.addr, tc.p, err, tc.want)
		}
	}
}

// FuzzDecode feeds arbitrary device bytes to every type and order: Decode
// never panics, errors wrap ErrDecode, and bytes of the right size always
// decode for the types where every bit pattern is a value.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(modbus.Uint16), uint8(0), 0, 0, []byte{1, 2})
	f.Add(uint8(modbus.Float32), uint8(3), 0, 0, []byte{0, 0, 0xC0, 0x7F})
	f.Add(uint8(modbus.String), uint8(2), 5, 0, []byte("abcde"))
	f.Add(uint8(modbus.Bool), uint8(0), 0, 7, []byte{0x80})
	f.Add(uint8(modbus.BCD32), uint8(1), 0, 0, []byte{0x12, 0x34, 0x56, 0xFA})
	f.Add(uint8(modbus.Float64), uint8(1), 0, 0, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, typ, order uint8, length, bit int, raw []byte) {
		p := Point{Type: modbus.Type(typ), Order: modbus.Order(order), Length: length, Bit: bit}
		v, err := Decode(p, raw)
		if err != nil {
			if !errors.Is(err, modbus.ErrDecode) {
				t.Fatalf("%v: error does not wrap ErrDecode: %v", p, err)
			}
			return
		}
		if p.Validate() != nil || len(raw) != p.Size() {
			t.Fatalf("%v: decoded % x (%d bytes) to %v without error", p, raw, len(raw), v)
		}
		if v.Kind == edge.Null {
			t.Fatalf("%v: null value without error", p)
		}
		if v.Kind == edge.String && len(v.Str) > p.Length {
			t.Fatalf("%v: string %q longer than %d bytes", p, v.Str, p.Length)
		}
	})
}
